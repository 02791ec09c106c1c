"""``warpd expert robosuite ...``: scripted demonstrations and expert evaluation on robosuite Lift / Can.

    warpd expert robosuite --task lift --episodes 200 --out data/lift_expert.hdf5
    warpd expert robosuite-eval --task can --episodes 20 --perturb-probability 0.1 --perturb-translation 0.05

robosuite is imported inside the command functions: ``warpd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json


def register_expert(sub) -> None:
    """``warpd expert robosuite`` and ``warpd expert robosuite-eval`` (into ``warpd expert``'s subparsers)."""

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--task", default="lift", choices=["lift", "can"], help="robosuite task")
        q.add_argument("--episodes", type=int, default=20, help="episodes (expert: successful demonstrations to write)")
        q.add_argument("--seed", type=int, default=0, help="episode k uses env seed SEED + k; also seeds the expert")
        q.add_argument("--max-steps", type=int, default=400, help="episode step limit (20 Hz steps)")
        q.add_argument("--perturb-probability", type=float, default=0.0, help="end-effector displacement chance per step")
        q.add_argument("--perturb-translation", type=float, default=0.05, help="displacement length, m")
        q.add_argument("--perturb-rotation", type=float, default=0.0, help="displacement rotation angle, rad")

    e = sub.add_parser("robosuite", help="write scripted robosuite Lift / Can demonstrations (robomimic hdf5 layout)",
                       description="robosuite Lift and Can (Panda, OSC_POSE, 20 Hz): scripted demonstrations")
    common(e)
    e.add_argument("--out", required=True, help="output .hdf5 file")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    e.add_argument("--max-attempts", type=int, default=None, help="give up after this many episodes (default 2N + 10)")
    e.set_defaults(func=run_expert)

    v = sub.add_parser("robosuite-eval", help="success rate and time of the scripted robosuite expert")
    common(v)
    v.set_defaults(func=run_eval)


def _perturbation(args: argparse.Namespace):
    from warpd_core.envs.robosuite_env import EEPerturbation

    if args.perturb_probability <= 0.0:
        return None
    return EEPerturbation(args.perturb_probability, args.perturb_translation, args.perturb_rotation, seed=args.seed)


def run_expert(args: argparse.Namespace) -> int:
    from warpd_core.envs.robosuite_expert import generate_demonstrations

    _, stats = generate_demonstrations(args.task, args.episodes, seed=args.seed, out=args.out, max_steps=args.max_steps,
                                       max_attempts=args.max_attempts, overwrite=args.overwrite,
                                       perturbation=_perturbation(args))
    print(json.dumps({"task": args.task, "out": stats.path, "demos": stats.successes, "attempts": stats.attempts,
                      "success_rate": round(stats.success_rate, 4), "mean_steps": round(stats.mean_steps, 1),
                      "seconds": round(stats.seconds, 2)}))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from warpd_core.envs.robosuite_expert import evaluate_expert

    stats = evaluate_expert(args.task, args.episodes, seed=args.seed, max_steps=args.max_steps,
                            perturbation=_perturbation(args))
    print(json.dumps({"task": args.task, "policy": "scripted_expert", "episodes": stats.attempts,
                      "success_rate": round(stats.success_rate, 4), "mean_steps": round(stats.mean_steps, 1),
                      "seconds": round(stats.seconds, 2),
                      "perturbation": {"probability": args.perturb_probability,
                                       "translation_m": args.perturb_translation,
                                       "rotation_rad": args.perturb_rotation}}))
    return 0
