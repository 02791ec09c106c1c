"""``warpd eval robosuite``: in-process success rate of a trained model on robosuite Lift / Can,
against the action horizon and the end-effector perturbation (the paper's robomimic adversary).

Protocol (ours; the paper reports robomimic success rates under the same adversary):
``episodes`` env instances seeded ``base_seed + i`` (the scripted demonstrations use seeds from
0, so the default 100000 on were never demonstrated), run in lock-step. For every cell
(action horizon x translation length) each env restarts from its seed; its perturbation draws
come from ``derive_seed(seed, 1, i)``, the same in every cell and for every method, so cells
and methods differ only in what they do (common random numbers). One control step ``k`` is,
as in the ``robosuite_sim`` graph: observation ``k`` -> the method's action ``k`` (WARPD:
generation when due, then :class:`~warpd_core.runtime.ControllerCore` with the controller
params file's limits and safe action) -> the perturbation of step ``k`` is applied
(:meth:`~warpd_core.envs.robosuite_env.RobosuiteEnv.displace_ee`) -> ``env.step(action)``.
An episode succeeds when the task's success check holds at any step; it ends there or after
``max_steps`` steps. The method seed is ``derive_seed(seed, 0)``.

Methods come from the one method layer (:func:`warpd_core.eval.methods.build_method` in
:func:`robosuite_env`): a WARPD bundle, an MLP, a Diffusion Policy
or LDP checkpoint trained on the task's demonstrations, or ``random``. Writes
``results.json``, ``episodes.csv``, ``summary.md`` and ``success_vs_translation.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

_TAG_METHOD, _TAG_PERTURBATION = 0, 1
DEFAULT_BASE_SEED = 100_000

# The controller parameters of config/robosuite_<task>_controller.yaml (test_robosuite_eval
# checks that they agree), kept as data so evaluation does not depend on where config/ is installed.
ROBOSUITE_CONTROLLER = {
    "act_dim": 7,
    "action_low": [-1.0],
    "action_high": [1.0],
    "safe_mode": "fixed",
    "safe_action": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    "max_policy_age": 256,
    "expected_model_id": "",
}


def robosuite_controller_config(task: str, horizon: int):
    """ControllerConfig of ``config/robosuite_<task>_controller.yaml``, with ``max_policy_age``
    raised to the horizon when it is longer than the file's 256, so a policy is not replaced by
    the safe action before the next one is due."""
    from warpd_core.envs.robosuite_env import obs_dim
    from warpd_core.runtime import ControllerConfig

    params = dict(ROBOSUITE_CONTROLLER)
    params["max_policy_age"] = max(int(params["max_policy_age"]), int(horizon))
    return ControllerConfig(obs_dim=obs_dim(task), **params)


def robosuite_env(task: str):
    """The :class:`~warpd_core.eval.methods.EnvSpec` of robosuite Lift / Can (Panda, OSC_POSE
    deltas + gripper in [-1, 1])."""
    from warpd_core.envs.robosuite_env import obs_dim
    from warpd_core.eval.methods import EnvSpec

    return EnvSpec(f"robosuite {task}", obs_dim(task), 7, -1.0, 1.0, lambda h: robosuite_controller_config(task, h),
                   random_action=(-1.0, 1.0, 7))


@dataclass(frozen=True)
class RobosuiteEvalConfig:
    """The protocol of the module docstring; every field is a command-line flag."""

    task: str = "lift"
    horizons: tuple = (16, 64)
    translations: tuple = (0.0, 0.05)
    probability: float = 0.1
    rotation: float = 0.0
    episodes: int = 10
    max_steps: int = 400
    base_seed: int = DEFAULT_BASE_SEED
    seed: int = 0

    def __post_init__(self) -> None:
        from warpd_core.envs.robosuite_env import TASKS

        if self.task not in TASKS:
            raise ValueError(f"task: expected one of {sorted(TASKS)}, got {self.task!r}")
        if not self.horizons or any(int(h) <= 0 for h in self.horizons):
            raise ValueError(f"horizons: expected positive integers, got {list(self.horizons)}")
        if not self.translations or any(not math.isfinite(t) or t < 0 for t in self.translations):
            raise ValueError(f"translations: expected finite lengths >= 0 m, got {list(self.translations)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability: expected a value in [0, 1], got {self.probability}")
        if not 0.0 <= self.rotation <= math.pi:
            raise ValueError(f"rotation: expected an angle in [0, pi] rad, got {self.rotation}")
        for name in ("episodes", "max_steps"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.base_seed < 0:
            raise ValueError(f"base_seed: expected >= 0, got {self.base_seed}")

    @property
    def n_episodes(self) -> int:
        return len(self.horizons) * len(self.translations) * int(self.episodes)

    def describe(self) -> str:
        return (f"task {self.task}, {self.episodes} env seeds from {self.base_seed} x horizons "
                f"{' '.join(map(str, self.horizons))} x translations {' '.join(f'{t:g}' for t in self.translations)} m "
                f"(p {self.probability:g}, rotation {self.rotation:g} rad) = {self.n_episodes} episodes of up to "
                f"{self.max_steps} steps")


def run_cell(method, envs: Sequence, cfg: RobosuiteEvalConfig, horizon: int, translation: float) -> list[dict]:
    """One episode per env at (horizon, translation), in lock-step; one result dict per env."""
    from warpd_core.envs.robosuite_env import ACTION_DIM, EEPerturbation
    from warpd_core.eval.harness import checked_actions, derive_seed, episode_counters

    n = len(envs)
    seeds = [int(cfg.base_seed) + i for i in range(n)]
    obs = np.stack([env.reset(s) for env, s in zip(envs, seeds)]).astype(np.float32)
    perts = [EEPerturbation(cfg.probability, translation, cfg.rotation, seed=derive_seed(cfg.seed, _TAG_PERTURBATION, i))
             for i in range(n)]
    method.reset(n, int(horizon), derive_seed(cfg.seed, _TAG_METHOD))
    steps = np.zeros(n, np.int64)
    n_pert = np.zeros(n, np.int64)
    first_success = [None] * n
    active = np.ones(n, bool)
    while active.any():
        actions = checked_actions(method, obs, steps, active, ACTION_DIM)
        for i in np.flatnonzero(active):
            d = perts[i].sample()
            if d is not None and translation > 0:
                envs[i].displace_ee(d)
                n_pert[i] += 1
            res = envs[i].step(actions[i])
            steps[i] += 1
            obs[i] = res.obs
            if res.info["success"] and first_success[i] is None:
                first_success[i] = int(steps[i])
            if res.done or steps[i] >= cfg.max_steps:
                active[i] = False
    calls, safe = episode_counters(method, n)
    return [{"horizon": int(horizon), "translation": float(translation), "env_seed": seeds[i],
             "success": first_success[i] is not None, "first_success": first_success[i], "steps": int(steps[i]),
             "perturbations": int(n_pert[i]), "generation_calls": int(calls[i]), "safe_steps": int(safe[i])}
            for i in range(n)]


def evaluate_robosuite(built, cfg: RobosuiteEvalConfig, progress: bool = True) -> dict:
    """Every cell of ``cfg`` for one built method (:class:`~warpd_core.eval.methods.BuiltMethod`).
    Returns ``{"config", "method", "cells", "episodes", "seconds"}``; a cell holds the success
    rate and its binomial standard error, the mean steps, perturbations and safe steps."""
    from tqdm.auto import tqdm

    from warpd_core.envs.robosuite_env import RobosuiteEnv
    from warpd_core.eval.harness import runtime_counters

    t0 = time.perf_counter()
    envs = [RobosuiteEnv(cfg.task, max_steps=cfg.max_steps) for _ in range(int(cfg.episodes))]
    rows: list[dict] = []
    cells = []
    grid = [(int(h), float(t)) for h in cfg.horizons for t in cfg.translations]
    bar = tqdm(total=len(grid) * len(envs), desc=f"robosuite {cfg.task} {built.method.name}", unit="episode",
               disable=not progress)
    try:
        for h, t in grid:
            raw = run_cell(built.method, envs, cfg, h, t)
            rows += raw
            ok = np.array([r["success"] for r in raw], np.float64)
            rate = float(ok.mean())
            cells.append({"horizon": h, "translation": t, "n_episodes": len(raw), "success_rate": rate,
                          "success_se": math.sqrt(rate * (1 - rate) / len(raw)),
                          "mean_steps": float(np.mean([r["steps"] for r in raw])),
                          "mean_perturbations": float(np.mean([r["perturbations"] for r in raw])),
                          "safe_steps": int(sum(r["safe_steps"] for r in raw)),
                          "flops_per_step": float(built.cost(h).flops_per_step)})
            bar.update(len(raw))
            bar.set_postfix(horizon=h, translation=t, success=f"{rate:.2f}")
    finally:
        bar.close()
        for env in envs:
            env.close()
    info = {**built.info, **runtime_counters(built.method)}
    return {"config": {**asdict(cfg), "horizons": list(cfg.horizons), "translations": list(cfg.translations)},
            "method": {"label": built.method.name, "kind": built.kind, **info}, "cells": cells, "episodes": rows,
            "seconds": round(time.perf_counter() - t0, 3)}


def summary_markdown(res: dict) -> str:
    """Success rate ± SE per horizon (rows) and translation (columns)."""
    cfg, m = res["config"], res["method"]
    ts = cfg["translations"]
    lines = [f"# robosuite {cfg['task']}: {m['label']} ({m['kind']})", "",
             f"{cfg['episodes']} env seeds from {cfg['base_seed']}, up to {cfg['max_steps']} steps; end-effector "
             f"displacements with probability {cfg['probability']:g} per step, rotation {cfg['rotation']:g} rad; "
             f"method / perturbation seed root {cfg['seed']}. Success: the task's check at any step. "
             f"{res['seconds']:.0f} s.", "",
             "| horizon \\ translation (m) | " + " | ".join(f"{t:g}" for t in ts) + " |",
             "|---|" + "---|" * len(ts)]
    by = {(c["horizon"], c["translation"]): c for c in res["cells"]}
    for h in cfg["horizons"]:
        row = [f"{by[(h, t)]['success_rate']:.2f} ± {by[(h, t)]['success_se']:.2f}" for t in ts]
        lines.append(f"| {h} | " + " | ".join(row) + " |")
    safe = sum(c["safe_steps"] for c in res["cells"])
    lines += ["", f"Safe-action steps: {safe}. MFLOPs per control step: "
              + ", ".join(f"horizon {c['horizon']} {c['flops_per_step'] / 1e6:.2f}"
                          for c in res["cells"] if c["translation"] == ts[0]) + "."]
    return "\n".join(lines) + "\n"


def plot(res: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = res["config"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for h in cfg["horizons"]:
        cs = [c for c in res["cells"] if c["horizon"] == h]
        ax.errorbar([c["translation"] for c in cs], [c["success_rate"] for c in cs],
                    yerr=[c["success_se"] for c in cs], marker="o", capsize=3, label=f"horizon {h}")
    ax.set_xlabel("end-effector translation per event (m)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"robosuite {cfg['task']}: {res['method']['label']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(res: dict, out: str) -> dict[str, str]:
    os.makedirs(out, exist_ok=True)
    paths = {"results": os.path.join(out, "results.json"), "episodes": os.path.join(out, "episodes.csv"),
             "summary": os.path.join(out, "summary.md"), "plot": os.path.join(out, "success_vs_translation.png")}
    with open(paths["results"], "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1)
    with open(paths["episodes"], "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(res["episodes"][0]))
        w.writeheader()
        w.writerows(res["episodes"])
    with open(paths["summary"], "w", encoding="utf-8") as fh:
        fh.write(summary_markdown(res))
    plot(res, paths["plot"])
    return paths


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------
def register(sub) -> None:
    """``warpd eval robosuite`` (into ``warpd eval``'s subparsers)."""
    from warpd_core.cli_args import DefaultsHelpFormatter, add_progress_flag, add_threads_flag
    from warpd_core.eval.methods import KINDS

    d = RobosuiteEvalConfig()
    q = sub.add_parser("robosuite", help="robosuite Lift / Can: one model's success rate vs horizon and perturbation",
                       description="In-process success rate of one model on robosuite Lift / Can against the action "
                                   "horizon and the end-effector perturbation, with the runtime controller logic.",
                       formatter_class=DefaultsHelpFormatter)
    q.add_argument("--model", help="bundle (warpd export) or checkpoint directory (warpd train mlp|dp|ldp) trained "
                                   "on the task's demonstrations; not needed for --method random")
    q.add_argument("--method", default=None, choices=list(KINDS),
                   help="the model's kind (default: read from the directory)")
    q.add_argument("--task", default=d.task, choices=["lift", "can"], help="robosuite task")
    q.add_argument("--horizons", type=int, nargs="+", default=list(d.horizons), help="action horizons (control steps)")
    q.add_argument("--translations", type=float, nargs="+", default=list(d.translations),
                   help="end-effector displacement lengths per event (m); 0 = no perturbation")
    q.add_argument("--probability", type=float, default=d.probability, help="displacement chance per step")
    q.add_argument("--rotation", type=float, default=d.rotation, help="displacement rotation angle (rad)")
    q.add_argument("--episodes", type=int, default=d.episodes, help="env seeds per cell (env i uses base-seed + i)")
    q.add_argument("--max-steps", type=int, default=d.max_steps, help="episode length limit (20 Hz control steps)")
    q.add_argument("--base-seed", type=int, default=d.base_seed,
                   help="first env seed (object placement and initial joint noise)")
    q.add_argument("--seed", type=int, default=d.seed,
                   help="root of the method's sampling seeds and of the perturbation draws")
    q.add_argument("--sampler", choices=["ddim", "ddpm"], default=None, help="override a diffusion model's sampler")
    q.add_argument("--steps", type=int, default=None, help="override a diffusion model's number of sampler steps")
    q.add_argument("--out", default="results/eval_robosuite", help="results folder")
    add_threads_flag(q)
    add_progress_flag(q)
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from warpd_core.eval.methods import build_method

    if args.method != "random" and not args.model:
        raise ValueError("eval robosuite: --model is required (or --method random)")
    cfg = RobosuiteEvalConfig(task=args.task, horizons=tuple(args.horizons), translations=tuple(args.translations),
                              probability=args.probability, rotation=args.rotation, episodes=args.episodes,
                              max_steps=args.max_steps, base_seed=args.base_seed, seed=args.seed)
    print(f"eval robosuite: {cfg.describe()}", flush=True)
    built = build_method(args.method, args.model, robosuite_env(cfg.task), sampler=args.sampler,
                         steps=args.steps, seed=cfg.seed, threads=args.threads)
    res = evaluate_robosuite(built, cfg, progress=not args.no_progress)
    paths = write_report(res, args.out)
    print(open(paths["summary"], encoding="utf-8").read())
    print(f"wrote {os.path.abspath(args.out)}: " + ", ".join(sorted(os.path.basename(p) for p in paths.values())))
    return 0
