"""``warpd expert ...``: the scripted PushT expert from the command line.

    warpd expert pusht --episodes 200 --seed 0 --out data/pusht_expert.zarr [--min-score 0.9]
    warpd expert pusht-eval --episodes 100 --seed 0 --out results/pusht_expert.json [--video first.gif]
    warpd expert metaworld --episodes-per-task 10 --out data/metaworld.zarr [--max-steps 500] [--tasks ...]

``pusht`` writes demonstrations in Diffusion Policy's zarr layout (``data/state (N, 5)``,
``data/action (N, 2)``, ``meta/episode_ends (E,)``). ``pusht-eval`` prints the mean score
(mean over episodes of clip(max coverage / 0.95, 0, 1)) and the success rate (max coverage
> 0.95), and writes them with per-episode numbers as JSON. gym-pusht is imported inside the
command functions so ``warpd --help`` stays fast.

``metaworld`` plays metaworld's scripted expert policies on the ten tasks of the paper's
Table 4 (:mod:`warpd_core.envs.metaworld_expert`) and writes the successful episodes in the
same zarr layout with ``meta/task_id``; it prints the expert's success rate per task.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("expert", help="scripted experts: PushT, robosuite Lift / Can (demonstrations, evaluation), Metaworld",
                              description="Scripted PushT expert (look-ahead pushing in gym-pusht's physics); "
                                          "metaworld's scripted policies")
    sub = p.add_subparsers(dest="expert_command", metavar="SUBCOMMAND")
    sub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--episodes", type=int, default=100, help="episodes to play")
        q.add_argument("--seed", type=int, default=0, help="episode k starts from env seed SEED + k")
        q.add_argument("--max-steps", type=int, default=300, help="step limit per episode (10 Hz)")
        q.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")

    d = sub.add_parser("pusht", help="write scripted PushT demonstrations (Diffusion Policy zarr layout)")
    common(d)
    d.add_argument("--out", required=True, help="output .zarr directory")
    d.add_argument("--min-score", type=float, default=None, help="keep only episodes with score >= this")
    d.add_argument("--overwrite", action="store_true", help="replace an existing store")
    d.set_defaults(func=run_demonstrations)

    e = sub.add_parser("pusht-eval", help="mean score and success rate of the scripted PushT expert")
    common(e)
    e.add_argument("--out", default=None, help="write the summary and per-episode results as JSON here")
    e.add_argument("--video", default=None, help="also record the first episode as .gif or .mp4")
    e.set_defaults(func=run_eval)

    try:
        from warpd_core.envs.robosuite_cli import register_expert  # noqa: PLC0415

        register_expert(sub)
    except Exception as exc:  # noqa: BLE001 - robosuite is optional; PushT must keep working
        p.epilog = f"warpd expert robosuite unavailable ({type(exc).__name__}: {exc})"

    m = sub.add_parser("metaworld", help="scripted Metaworld expert demonstrations (zarr layout with meta/task_id)",
                       description="Play metaworld's scripted expert policies on the paper's ten Metaworld tasks and "
                                   "write the successful episodes (Diffusion Policy zarr layout + meta/task_id)")
    m.add_argument("--episodes-per-task", type=int, required=True, help="episodes played per task")
    m.add_argument("--out", required=True, help="output .zarr directory")
    m.add_argument("--tasks", nargs="+", default=None, help="subset of tasks (default: all ten, Table 4 order)")
    m.add_argument("--seed", type=int, default=0, help="episode k of a task starts from env seed SEED + k")
    m.add_argument("--max-steps", type=int, default=500, help="episode length limit (metaworld: 500)")
    m.add_argument("--tail", type=int, default=20, help="steps recorded after the first success (default 20)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing store")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(func=run_metaworld)


def _check(args: argparse.Namespace) -> None:
    if args.episodes <= 0:
        raise ValueError(f"--episodes must be positive, got {args.episodes}")
    if args.max_steps <= 0:
        raise ValueError(f"--max-steps must be positive, got {args.max_steps}")
    if args.workers <= 0:
        raise ValueError(f"--workers must be positive, got {args.workers}")


def run_demonstrations(args: argparse.Namespace) -> int:
    from warpd_core.data.io import write_zarr
    from warpd_core.envs.pusht_expert import generate_demonstrations

    _check(args)
    t0 = time.perf_counter()
    states, actions, ends, scores = generate_demonstrations(
        args.episodes, seed=args.seed, max_steps=args.max_steps, progress=not args.no_progress,
        min_score=args.min_score, workers=args.workers)
    path = write_zarr(args.out, states, actions, ends, overwrite=args.overwrite)
    print(json.dumps({"out": str(path), "episodes_played": args.episodes, "episodes_kept": int(len(ends)),
                      "steps": int(len(states)), "mean_score_kept": round(float(scores.mean()), 4),
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from warpd_core.envs.pusht_expert import evaluate_expert, record_expert_episode

    _check(args)
    result = evaluate_expert(args.episodes, seed=args.seed, max_steps=args.max_steps, workers=args.workers,
                             progress=not args.no_progress)
    result["policy"] = "scripted_expert"
    if args.video:
        result["video"] = record_expert_episode(args.video, seed=args.seed, max_steps=args.max_steps)
    summary = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items() if not isinstance(v, list)}
    print(json.dumps(summary))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def run_metaworld(args: argparse.Namespace) -> int:
    import numpy as np

    from warpd_core.envs.metaworld_expert import generate_demonstrations, write_demonstrations

    if args.episodes_per_task <= 0:
        raise ValueError(f"--episodes-per-task must be positive, got {args.episodes_per_task}")
    if not 1 <= args.max_steps <= 500:
        raise ValueError(f"--max-steps must be in 1..500 (metaworld's episode length), got {args.max_steps}")
    if args.tail < 0:
        raise ValueError(f"--tail must be >= 0, got {args.tail}")
    if os.path.exists(args.out) and not args.overwrite:
        raise ValueError(f"--out {args.out}: already exists (pass --overwrite to replace it)")
    t0 = time.perf_counter()
    demos = generate_demonstrations(args.episodes_per_task, args.tasks, seed=args.seed, max_steps=args.max_steps,
                                    tail=args.tail, progress=not args.no_progress)
    path = write_demonstrations(args.out, demos, overwrite=args.overwrite,
                                info={"max_steps": args.max_steps, "tail": args.tail, "seed": args.seed})
    for task, st in demos.stats.items():
        print(f"{task:>13}: expert success {st['kept']}/{st['played']} ({100 * st['success_rate']:.0f} %), "
              f"first success at step {st['mean_first_success_step'] or float('nan'):.1f} mean, "
              f"{st['max_first_success_step']} max")
    print(json.dumps({"out": str(path), "episodes_kept": int(len(demos.episode_ends)), "steps": int(len(demos.states)),
                      "expert_success_rate": round(float(np.mean([s["success_rate"] for s in demos.stats.values()])), 4),
                      "seconds": round(time.perf_counter() - t0, 1)}))
    return 0
