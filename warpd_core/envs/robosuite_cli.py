"""``warpd robosuite ...``: scripted demonstrations and expert evaluation on robosuite Lift / Can.

    warpd robosuite expert --task lift --episodes 200 --out data/lift_expert.hdf5
    warpd robosuite eval --task can --episodes 20 --perturb-probability 0.1 --perturb-translation 0.05

(A top-level ``robosuite`` command, so as not to clash with ``warpd expert pusht``.)
robosuite is imported inside the command functions: ``warpd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("robosuite", help="robosuite Lift/Can: scripted demonstrations, expert evaluation",
                              description="robosuite Lift and Can (Panda, OSC_POSE, 20 Hz) tools")
    sub = p.add_subparsers(dest="robosuite_command", metavar="SUBCOMMAND")
    sub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--task", default="lift", choices=["lift", "can"], help="robosuite task")
        q.add_argument("--episodes", type=int, default=20, help="episodes (expert: successful demonstrations to write)")
        q.add_argument("--seed", type=int, default=0, help="episode k uses env seed SEED + k; also seeds the expert")
        q.add_argument("--horizon", type=int, default=400, help="episode step limit (20 Hz steps)")
        q.add_argument("--perturb-probability", type=float, default=0.0, help="end-effector displacement chance per step")
        q.add_argument("--perturb-translation", type=float, default=0.05, help="displacement length, m")
        q.add_argument("--perturb-rotation", type=float, default=0.0, help="displacement rotation angle, rad")

    e = sub.add_parser("expert", help="write scripted demonstrations in robomimic's hdf5 layout")
    common(e)
    e.add_argument("--out", required=True, help="output .hdf5 file")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    e.add_argument("--max-attempts", type=int, default=None, help="give up after this many episodes (default 2N + 10)")
    e.set_defaults(func=run_expert)

    v = sub.add_parser("eval", help="success rate and time of the scripted expert")
    common(v)
    v.set_defaults(func=run_eval)


def _perturbation(args: argparse.Namespace):
    from warpd_core.envs.robosuite_env import EEPerturbation

    if args.perturb_probability <= 0.0:
        return None
    return EEPerturbation(args.perturb_probability, args.perturb_translation, args.perturb_rotation, seed=args.seed)


def run_expert(args: argparse.Namespace) -> int:
    from warpd_core.envs.robosuite_expert import generate_demonstrations

    _, stats = generate_demonstrations(args.task, args.episodes, seed=args.seed, out=args.out, horizon=args.horizon,
                                       max_attempts=args.max_attempts, overwrite=args.overwrite,
                                       perturbation=_perturbation(args))
    print(json.dumps({"task": args.task, "out": stats.path, "demos": stats.successes, "attempts": stats.attempts,
                      "success_rate": round(stats.success_rate, 4), "mean_steps": round(stats.mean_steps, 1),
                      "seconds": round(stats.seconds, 2)}))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from warpd_core.envs.robosuite_expert import evaluate_expert

    stats = evaluate_expert(args.task, args.episodes, seed=args.seed, horizon=args.horizon,
                            perturbation=_perturbation(args))
    print(json.dumps({"task": args.task, "policy": "scripted_expert", "episodes": stats.attempts,
                      "success_rate": round(stats.success_rate, 4), "mean_steps": round(stats.mean_steps, 1),
                      "seconds": round(stats.seconds, 2),
                      "perturbation": {"probability": args.perturb_probability,
                                       "translation_m": args.perturb_translation,
                                       "rotation_rad": args.perturb_rotation}}))
    return 0
