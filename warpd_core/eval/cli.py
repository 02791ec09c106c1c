"""``warpd eval pusht``: evaluate a bundle, a baseline checkpoint (mlp, dp, ldp) or the random baseline on PushT."""

from __future__ import annotations

import argparse
import os

from warpd_core.cli_args import add_progress_flag, add_threads_flag
from warpd_core.eval.methods import KINDS
from warpd_core.eval.profiles import DEFAULT_PROFILE, PROFILES, profile_help


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a model in simulation (in process, runtime controller logic)",
                              description="warpd eval pusht|robosuite|metaworld --model DIR [--out DIR]: one model in one environment")
    sub = p.add_subparsers(dest="env", metavar="ENV")
    q = sub.add_parser("pusht", help="PushT: score vs action horizon and perturbation magnitude",
                       description="Evaluate on PushT with the paper's protocol (section 4.1): env seeds x repeats "
                                   "for every (action horizon, perturbation magnitude) cell. Flags override the profile.")
    q.add_argument("--model", help="warpd: bundle directory (warpd export); mlp / dp: checkpoint directory "
                                   "(warpd train mlp|dp --out DIR); ldp: the 'warpd train ldp' directory holding "
                                   "stage 2 in its diffusion/ sub-folder")
    q.add_argument("--method", default="warpd", choices=list(KINDS),
                   help="warpd: the bundle through ControllerCore + GenerationSchedule; mlp: behaviour-cloned MLP; "
                        "dp: Diffusion Policy, action chunk executed open loop for the horizon; ldp: Latent Diffusion "
                        "Policy, latent decoded to an action chunk executed open loop; random: uniform random targets")
    q.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES), help=profile_help())
    add_protocol_arguments(q)
    q.add_argument("--sampler", choices=["ddim", "ddpm"], help="override the bundle's (or dp / ldp checkpoint's) sampler")
    q.add_argument("--steps", type=int, help="override the bundle's (or dp / ldp checkpoint's) number of sampler steps")
    q.add_argument("--backend", default="torch", choices=["torch", "onnx"], help="generator backend")
    q.add_argument("--device", default="cpu", help="generator device (cpu, cuda, cuda:N)")
    add_threads_flag(q)
    q.add_argument("--max-batch", type=int, default=256, help="largest batch per generate call")
    q.add_argument("--gif", nargs=2, type=float, metavar=("HORIZON", "MAGNITUDE"),
                   help="record the first episode of this cell as rollout.gif (default: first horizon, largest magnitude)")
    q.add_argument("--no-gif", action="store_true", help="do not record a rollout")
    q.add_argument("--out", default="results/pusht_eval", help="results folder (default results/pusht_eval)")
    add_progress_flag(q)
    q.set_defaults(func=run_pusht)
    from warpd_core.eval import demo_replay, robosuite_eval

    demo_replay.register(sub)
    robosuite_eval.register(sub)
    try:
        from warpd_core.eval.metaworld_compare import register_eval

        register_eval(sub)
    except Exception as exc:  # noqa: BLE001 - Metaworld is optional; PushT must keep working
        p.epilog = f"warpd eval metaworld unavailable ({type(exc).__name__}: {exc})"


def add_protocol_arguments(q: argparse.ArgumentParser) -> None:
    """The flags that override a profile's :class:`~warpd_core.eval.harness.EvalConfig` (read back
    by :func:`protocol_overrides`); shared with ``warpd compare``."""
    q.add_argument("--horizons", type=int, nargs="+", help="action horizons (control steps)")
    q.add_argument("--magnitudes", type=float, nargs="+", help="perturbation magnitudes (pixels)")
    q.add_argument("--probability", type=float, default=0.1, help="perturbation probability per step (default 0.1)")
    q.add_argument("--seeds", type=int, help="number of env seeds (env i uses base-seed + i)")
    q.add_argument("--repeats", type=int, help="episodes per env seed and cell")
    q.add_argument("--base-seed", type=int, default=100_000,
                   help="first env seed: env i starts from the initial state of seed base-seed + i (the generator "
                        "and perturbation draws do not depend on it)")
    q.add_argument("--seed", type=int, default=0,
                   help="root of the generator's sampling seeds and of the perturbation draws (where and when the "
                        "block is pushed); the env initial states come from --base-seed")
    q.add_argument("--max-steps", type=int, default=300, help="episode length limit (default 300)")


def protocol_overrides(args: argparse.Namespace) -> dict:
    """EvalConfig fields from the flags of :func:`add_protocol_arguments` (None = the profile's)."""
    return {"n_seeds": args.seeds, "repeats": args.repeats, "horizons": args.horizons, "magnitudes": args.magnitudes,
            "probability": args.probability, "max_steps": args.max_steps, "base_seed": args.base_seed,
            "seed": args.seed}


def run_pusht(args: argparse.Namespace) -> int:
    from warpd_core.eval.harness import EvalConfig, evaluate
    from warpd_core.eval.methods import build_method, pusht_env
    from warpd_core.eval.report import write_report
    from warpd_core.train.stages import BASELINES

    if args.method != "random" and not args.model:
        raise ValueError(f"eval pusht: --model is required for --method {args.method}")
    cfg = EvalConfig.from_profile(args.profile, **protocol_overrides(args))
    print(f"eval pusht ({args.profile} profile): {cfg.describe()}", flush=True)
    built = build_method(args.method, args.model, pusht_env(), sampler=args.sampler, steps=args.steps, seed=args.seed,
                         threads=args.threads, backend=args.backend, device=args.device, max_batch=args.max_batch)
    method, meta = built.method, built.info
    if built.kind in BASELINES:  # FLOPs per control step (warpd_core.models.flops)
        meta["flops_per_step"] = {str(h): built.cost(h).flops_per_step for h in cfg.horizons}
    record = None
    if not args.no_gif:
        record = (int(args.gif[0]), float(args.gif[1])) if args.gif else (cfg.horizons[0], max(cfg.magnitudes))
    results = evaluate(method, cfg, progress=not args.no_progress, record=record, meta=meta)
    paths = write_report(results, args.out)
    print(open(paths["summary"], encoding="utf-8").read())
    print(f"wrote {os.path.abspath(args.out)}: " + ", ".join(sorted(os.path.basename(p) for p in paths.values())))
    return 0
