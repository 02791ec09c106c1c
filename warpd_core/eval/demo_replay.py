"""Which stage limits a PushT WARPD model: the VAE, or the latent diffusion?

``warpd eval pusht-demos --vae VAE_DIR --model BUNDLE`` starts the PushT env in the first
state of each demonstration episode and runs, closed loop, for ``max_steps`` steps:

* ``encoder``: ONE policy for the whole episode, decoded from the encoder's posterior mean of
  the demonstration's first trajectory window -- the policy the VAE learned for exactly this
  demonstration. Its score is the ceiling stage 2 can reach from this start state.
* ``diffusion``: ONE policy for the whole episode, decoded from a latent the diffusion model
  samples given only the start state (what the runtime generates).
* ``diffusion@H``: the runtime's schedule, a freshly sampled policy every H steps.

A gap between ``encoder`` and ``diffusion`` is stage 2's (sampling misses the demonstrations'
latents); a low ``encoder`` score is stage 1's (the decoded policy does not reproduce its own
demonstration in closed loop). The demonstrations are the VAE's training data unless the
dataset given with ``--data`` holds others, so ``encoder`` measures reconstruction, not
generalisation.

The demo's start state sets agent position, block position and angle, at rest
(:meth:`~warpd_core.envs.pusht.PushTEnv.reset_to`). Actions are clipped to the workspace as
the env does; no perturbation.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Sequence

import numpy as np

from warpd_core.cli_args import add_progress_flag

VARIANTS_HELP = "encoder, diffusion (one policy per episode) and diffusion@H for each --horizons H"


def _rollout(env, start: np.ndarray, policy_for, horizon: int | None, max_steps: int) -> tuple[float, float]:
    """Closed-loop episode from ``start``; ``policy_for(obs)`` gives a new MLPPolicy at step 0
    and every ``horizon`` steps (None: never again). Returns (score, final coverage)."""
    obs = env.reset_to(start)
    policy = None
    for t in range(max_steps):
        if policy is None or (horizon is not None and t % horizon == 0):
            policy = policy_for(obs)
        res = env.step(np.array(policy.act(obs), copy=True))
        obs = res.obs
        if res.done:
            break
    return env.score, env.coverage


def replay_demos(vae_dir: str, bundle: str, data: str | None = None, episodes: Sequence[int] | None = None,
                 horizons: Sequence[int] = (16, 128), max_steps: int = 300, seed: int = 0,
                 progress: bool = True) -> dict:
    """Scores per demonstration episode and variant; returns ``{"episodes": [...], "summary": {...}}``."""
    import torch
    from tqdm.auto import tqdm

    from warpd_core.data.io import load_dataset
    from warpd_core.envs.pusht import PushTEnv
    from warpd_core.eval.metrics import mean_std_se
    from warpd_core.export.bundle import load_generator
    from warpd_core.policy.spec import MLPPolicy
    from warpd_core.train.vae_trainer import load_vae
    from warpd_core.train.data import build_dataset

    vae, _, vae_cfg, _ = load_vae(vae_dir)
    ds = load_dataset(data) if data else build_dataset(vae_cfg.dataset)
    if (ds.state_dim, ds.action_dim) != (5, 2):
        raise ValueError(f"{data or vae_cfg.dataset.path}: state/action dims ({ds.state_dim}, {ds.action_dim}); "
                         "PushT needs 5 and 2")
    gen = load_generator(bundle, seed=seed)
    if gen.spec != vae.spec:
        raise ValueError(f"{bundle}: policy spec {gen.spec} differs from the VAE's {vae.spec} ({vae_dir})")
    s_scale, s_offset = vae.state_norm.numpy()
    a_scale, a_offset = vae.action_norm.numpy()
    fold = (s_scale, s_offset, 1.0 / a_scale, -a_offset / a_scale)
    L = vae.trajectory_length
    chosen = list(range(ds.n_episodes)) if episodes is None else [int(e) for e in episodes]
    for e in chosen:
        if not 0 <= e < ds.n_episodes:
            raise ValueError(f"--episodes: {e} out of range (the dataset has {ds.n_episodes} episodes)")
    env = PushTEnv(max_steps=max_steps)
    rows = []
    for e in tqdm(chosen, desc="demo replay", unit="episode", disable=not progress):
        start = int(ds.episode_starts[e])
        g = ds.gather_snippets(np.array([[start, e]]), L)
        with torch.no_grad():
            mu, _ = vae.encode(torch.from_numpy(g["states"]), torch.from_numpy(g["actions"]),
                               torch.from_numpy(g["mask"]))
            theta_n = vae.decode(mu).numpy()[0]
        enc_policy = MLPPolicy(vae.spec, vae.spec.fold_affine(theta_n, *fold))
        row = {"episode": e, "demo_steps": int(ds.episode_ends[e] - start)}
        row["encoder"] = _rollout(env, ds.states[start], lambda obs: enc_policy, None, max_steps)
        gen.reseed(seed + e)
        row["diffusion"] = _rollout(env, ds.states[start], lambda obs: MLPPolicy(gen.spec, gen.generate(obs)[0]),
                                    None, max_steps)
        for h in horizons:
            gen.reseed(seed + e)
            row[f"diffusion@{h}"] = _rollout(env, ds.states[start],
                                             lambda obs: MLPPolicy(gen.spec, gen.generate(obs)[0]), h, max_steps)
        rows.append(row)
    env.close()
    variants = ["encoder", "diffusion"] + [f"diffusion@{h}" for h in horizons]
    summary = {}
    for v in variants:
        score = mean_std_se([r[v][0] for r in rows])
        final = mean_std_se([r[v][1] for r in rows])
        summary[v] = {"score_mean": score[0], "score_se": score[2], "final_coverage_mean": final[0],
                      "final_coverage_se": final[2]}
    return {"vae": os.path.abspath(vae_dir), "bundle": os.path.abspath(bundle), "trajectory_length": L,
            "max_steps": max_steps, "n_episodes": len(rows), "variants": variants, "summary": summary,
            "episodes": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in rows]}


def register(eval_subparsers) -> None:
    q = eval_subparsers.add_parser(
        "pusht-demos", help="VAE vs diffusion: closed-loop scores from the demonstrations' start states",
        description="Start PushT in each demonstration's first state and run " + VARIANTS_HELP + "; tells whether "
                    "stage 1 (VAE reconstruction) or stage 2 (latent sampling) limits the model.")
    q.add_argument("--vae", required=True, help="stage-1 run folder (warpd train vae --out DIR)")
    q.add_argument("--model", required=True, help="bundle exported from that VAE (warpd export)")
    q.add_argument("--data", help="demonstrations (default: the VAE's training dataset)")
    q.add_argument("--episodes", type=int, nargs="+", help="episode indices (default: all)")
    q.add_argument("--first", type=int, help="only the first N episodes")
    q.add_argument("--horizons", type=int, nargs="*", default=[16, 128], help="regeneration horizons (default 16 128)")
    q.add_argument("--max-steps", type=int, default=300, help="episode length (default 300)")
    q.add_argument("--seed", type=int, default=0, help="sampling seed (episode e uses seed + e)")
    q.add_argument("--out", default="results/pusht_demos", help="results folder (default results/pusht_demos)")
    add_progress_flag(q)
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    episodes = args.episodes if args.episodes else (list(range(args.first)) if args.first else None)
    res = replay_demos(args.vae, args.model, args.data, episodes, args.horizons, args.max_steps, args.seed,
                       progress=not args.no_progress)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "demo_replay.json"), "w", encoding="utf-8") as fh:
        json.dump(res, fh, indent=1)
        fh.write("\n")
    lines = [f"{res['n_episodes']} demonstrations, trajectory length {res['trajectory_length']}, "
             f"{res['max_steps']} steps; mean ± SE", "", "| variant | score | final coverage |", "|---|---|---|"]
    for v in res["variants"]:
        s = res["summary"][v]
        lines.append(f"| {v} | {s['score_mean']:.3f} ± {s['score_se']:.3f} | "
                     f"{s['final_coverage_mean']:.3f} ± {s['final_coverage_se']:.3f} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text + f"wrote {os.path.abspath(args.out)}: demo_replay.json, summary.md")
    return 0
