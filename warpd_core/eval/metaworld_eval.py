"""In-process Metaworld evaluation: success rate per task and FLOPs per control step, per method.

Protocol (ours; the paper gives the tasks, the trajectory length 500 and success rates):
for every task of :data:`~warpd_core.envs.metaworld_env.TASKS` (or a subset),
``episodes_per_task`` episodes on env seeds ``base_seed + i`` (100000 on: the expert
demonstrations use seeds from 0, so no test configuration was demonstrated), run in lock-step
across the episodes of the task. An episode succeeds when ``info['success']`` is true at any
step; with ``stop_on_success`` (default) it ends at its first success, which changes no
success but saves the steps after it. The method seed of a task is
``derive_seed(seed, task_id)``, the same for every method.

Methods (each wrapped in an :class:`EvalMethod`: the harness method, its action horizon, its
cost and how to tell it the task):

* ``warpd``: a task-conditioned bundle (condition ``task`` or ``state+task``) through the
  runtime's own :class:`~warpd_core.eval.harness.WarpdMethod` -- a
  :class:`~warpd_core.runtime.ControllerCore` per episode with action limits [-1, 1] and
  ``max_policy_age`` >= the episode length, and a ``GenerationSchedule`` whose horizon is the
  episode length: **one generation per episode**, from the first observation and the task
  id; the generated MLP then acts on every step of the episode.
* ``mlp``: a ``warpd train mlp`` checkpoint trained with ``task_input: onehot``: the one-hot
  task id is appended to every observation (:class:`~warpd_core.baselines.task_input.TaskInputMethod`).
* ``dp``: a ``warpd train dp`` checkpoint (``task_input: onehot``): Diffusion Policy replans
  every ``horizon`` steps (its trained horizon unless given) and runs the chunk open loop.

FLOPs per control step (:mod:`warpd_core.models.flops`): generation FLOPs / horizon +
per-step FLOPs. For WARPD the horizon is the episode length ``max_steps`` (one generation
serves the whole episode; the paper's convention with 500 steps), counted at the nominal
length even when ``stop_on_success`` ends an episode early; for DP its action horizon; the
MLP has no generation.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from warpd_core.envs.metaworld_env import (
    ACT_DIM,
    ACTION_HIGH,
    ACTION_LOW,
    DEFAULT_MAX_STEPS,
    MAX_PATH_LENGTH,
    OBS_DIM,
    TASKS,
    MetaworldEnv,
    parse_tasks,
    task_id,
)
from warpd_core.eval.harness import checked_actions, derive_seed, episode_counters, runtime_counters
from warpd_core.runtime import ControllerConfig
from warpd_core.train import stages

KINDS = (stages.BUNDLE, "mlp", "dp")  # the kinds build_method builds
DEFAULT_BASE_SEED = 100_000


def metaworld_controller_config(horizon: int, max_steps: int = DEFAULT_MAX_STEPS) -> ControllerConfig:
    """The controller for Metaworld: 39-d observations, 4-d actions clamped to [-1, 1], safe
    action ``hold``, ``max_policy_age`` = max(horizon, max_steps) so a policy generated at the
    first step may run the whole episode."""
    return ControllerConfig(obs_dim=OBS_DIM, act_dim=ACT_DIM, action_low=[ACTION_LOW], action_high=[ACTION_HIGH],
                            safe_mode="hold", max_policy_age=max(int(horizon), int(max_steps)))


def metaworld_env(max_steps: int):
    """The :class:`~warpd_core.eval.methods.EnvSpec` of Metaworld's ten tasks (39 -> 4, actions in
    [-1, 1]); WARPD's controller keeps a policy for up to ``max_steps`` steps (one generation per
    episode)."""
    from warpd_core.eval.methods import EnvSpec  # noqa: PLC0415

    return EnvSpec("Metaworld", OBS_DIM, ACT_DIM, ACTION_LOW, ACTION_HIGH,
                   lambda h: metaworld_controller_config(h, max_steps), n_tasks=len(TASKS))


@dataclass
class MetaworldEvalConfig:
    """Attributes:
        tasks: task names (Table 4 order by default).
        episodes_per_task: episodes (env seeds) per task.
        max_steps: episode length (metaworld and the paper: 500; at most 500).
        base_seed: env seed of episode 0 of every task.
        seed: root of the method seeds (generator / diffusion noise).
        stop_on_success: end an episode at its first success.
    """

    tasks: tuple = TASKS
    episodes_per_task: int = 10
    max_steps: int = DEFAULT_MAX_STEPS
    base_seed: int = DEFAULT_BASE_SEED
    seed: int = 0
    stop_on_success: bool = True

    def __post_init__(self) -> None:
        self.tasks = tuple(parse_tasks(list(self.tasks)))
        if int(self.episodes_per_task) <= 0:
            raise ValueError(f"episodes_per_task: expected > 0, got {self.episodes_per_task}")
        if not 1 <= int(self.max_steps) <= MAX_PATH_LENGTH:
            raise ValueError(f"max_steps: expected 1..{MAX_PATH_LENGTH}, got {self.max_steps}")
        if int(self.base_seed) < 0:
            raise ValueError(f"base_seed: expected >= 0, got {self.base_seed}")

    def to_dict(self) -> dict:
        return {"tasks": list(self.tasks), "episodes_per_task": int(self.episodes_per_task),
                "max_steps": int(self.max_steps), "base_seed": int(self.base_seed), "seed": int(self.seed),
                "stop_on_success": bool(self.stop_on_success)}


@dataclass
class EvalMethod:
    """A method ready for :func:`evaluate_metaworld`.

    Attributes:
        label: name in the results.
        kind: ``warpd``, ``mlp`` or ``dp``.
        method: a harness method (``reset``, ``act``, ``episode_stats``).
        horizon: action horizon passed to ``reset`` (WARPD: the episode length).
        cost: :class:`~warpd_core.models.flops.StepCost` at that horizon.
        set_task: called with the task id before each task's episodes.
        info: model facts for the results (path, sizes, sampler, ...).
    """

    label: str
    kind: str
    method: Any
    horizon: int
    cost: Any
    set_task: Callable[[int], None]
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# Building methods from trained models
# ----------------------------------------------------------------------------------------
def build_method(path: str, max_steps: int, label: Optional[str] = None, horizon: Optional[int] = None,
                 sampler: Optional[str] = None, steps: Optional[int] = None) -> EvalMethod:
    """An :class:`EvalMethod` for a model directory (:func:`warpd_core.eval.methods.build_method`
    in :func:`metaworld_env`; kinds :data:`KINDS`). WARPD generates once
    per episode (horizon ``max_steps``), DP replans every ``horizon`` steps (default: its trained
    horizon), the MLP has no horizon (``max_steps`` for its cost)."""
    from warpd_core.eval.methods import build_method as build, model_kind  # noqa: PLC0415

    kind, _ = model_kind(path, KINDS)
    label = label or f"{kind}:{os.path.basename(os.path.normpath(path))}"
    if kind == stages.BUNDLE and horizon is not None and int(horizon) != int(max_steps):
        raise ValueError(f"{path}: WARPD on Metaworld generates once per episode; horizon {horizon} != "
                         f"max_steps {max_steps}")
    built = build(kind, path, metaworld_env(max_steps), label=label, sampler=sampler, steps=steps, threads=0)
    if kind == "dp":
        h = int(horizon or built.info["trained_horizon"])
        if not 1 <= h <= built.info["trained_horizon"]:
            raise ValueError(f"{path}: horizon {h} outside 1..{built.info['trained_horizon']} (the trained action chunk)")
    else:
        h = int(max_steps)
    return EvalMethod(label, kind, built.method, h, built.cost(h), built.set_task, built.info)


# ----------------------------------------------------------------------------------------
# Running episodes
# ----------------------------------------------------------------------------------------
def close_envs(pool: dict) -> None:
    """Close and forget every env of an ``env_pool``."""
    for envs in pool.values():
        for env in envs:
            env.close()
    pool.clear()


def run_task_episodes(method: Any, envs: Sequence[MetaworldEnv], env_seeds: Sequence[int], horizon: int,
                      method_seed: int, stop_on_success: bool = True) -> list[dict]:
    """One episode per env (all the same task) in lock-step; one dict of raw results per env."""
    n = len(envs)
    if len(env_seeds) != n:
        raise ValueError(f"need one env seed per env, got {len(env_seeds)} for {n} envs")
    obs = np.stack([env.reset(int(s)) for env, s in zip(envs, env_seeds)]).astype(np.float32)
    method.reset(n, int(horizon), int(method_seed))
    steps = np.zeros(n, np.int64)
    active = np.ones(n, bool)
    while active.any():
        actions = checked_actions(method, obs, steps, active, ACT_DIM)
        for i in np.flatnonzero(active):
            res = envs[i].step(actions[i])
            steps[i] += 1
            obs[i] = res.obs
            if res.done or (stop_on_success and envs[i].success):
                active[i] = False
    calls, safe = episode_counters(method, n)
    return [{"env_seed": int(env_seeds[i]), "success": bool(envs[i].success),
             "first_success": envs[i].first_success, "steps": int(steps[i]),
             "generation_calls": int(calls[i]), "safe_steps": int(safe[i])} for i in range(n)]


def evaluate_metaworld(m: EvalMethod, cfg: MetaworldEvalConfig, progress: bool = True,
                       env_pool: Optional[dict] = None) -> dict:
    """Evaluate ``m`` on every task of ``cfg``. Returns a dict with ``label, kind, info, cost
    (StepCost.to_dict), flops_per_step, success (task -> rate), mean_success (mean over tasks),
    se (binomial standard error of the pooled rate), n_episodes, episodes (rows), seconds``.

    ``env_pool`` (a dict, optional) keeps the envs between calls (building one takes ~0.1 s;
    every reset is seeded, so reusing them changes nothing); the caller closes them
    (:func:`close_envs`). Without it the envs are built and closed here."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    rows: list[dict] = []
    success: dict[str, float] = {}
    task_seconds: dict[str, float] = {}
    t_start = time.perf_counter()
    seeds = [int(cfg.base_seed) + i for i in range(int(cfg.episodes_per_task))]
    bar = tqdm(total=len(cfg.tasks), desc=f"metaworld {m.label}", unit="task", disable=not progress)
    try:
        for task in cfg.tasks:
            t0 = time.perf_counter()
            tid = task_id(task)
            key = (task, int(cfg.max_steps), len(seeds))
            pool = env_pool if env_pool is not None else {}
            if key not in pool:
                pool[key] = [MetaworldEnv(task, max_steps=cfg.max_steps) for _ in seeds]
            try:
                m.set_task(tid)
                raw = run_task_episodes(m.method, pool[key], seeds, m.horizon, derive_seed(cfg.seed, tid),
                                        cfg.stop_on_success)
            finally:
                if env_pool is None:
                    close_envs(pool)
            for r in raw:
                rows.append({"method": m.label, "task": task, "task_id": tid, **r})
            success[task] = float(np.mean([r["success"] for r in raw]))
            task_seconds[task] = round(time.perf_counter() - t0, 3)
            bar.update(1)
            bar.set_postfix(task=task, success=f"{success[task]:.2f}")
    finally:
        bar.close()
    pooled = np.array([r["success"] for r in rows], np.float64)
    mean = float(np.mean(list(success.values())))
    info = dict(m.info)
    info.update(runtime_counters(m.method))  # a TaskInputMethod forwards them from the model's method
    return {
        "label": m.label, "kind": m.kind, "horizon": int(m.horizon), "info": info,
        "cost": m.cost.to_dict(), "flops_per_step": float(m.cost.flops_per_step),
        "gflops_per_step": float(m.cost.flops_per_step) / 1e9,
        "success": success, "mean_success": mean,
        "se": float(np.sqrt(max(pooled.mean() * (1 - pooled.mean()), 0.0) / max(len(pooled), 1))),
        "n_episodes": int(len(rows)),
        "mean_steps": float(np.mean([r["steps"] for r in rows])),
        "mean_generation_calls": float(np.mean([r["generation_calls"] for r in rows])),
        "safe_steps": int(sum(r["safe_steps"] for r in rows)),
        "episodes": rows, "seconds": round(time.perf_counter() - t_start, 3), "task_seconds": task_seconds,
    }
