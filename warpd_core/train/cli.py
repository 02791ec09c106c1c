"""``warpd train vae|diffusion|mlp|dp|ldp``."""

from __future__ import annotations

import argparse
import os
import time


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML training config (config/train/*.yaml)")
    p.add_argument("--out", help="output directory (default: runs/<stage>/<config name>)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (overrides the config)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.{json,safetensors}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set dataset.path=data.zarr (repeatable)")
    p.add_argument("--max-epochs-this-run", type=int, default=None,
                   help="stop after this many epochs (a checkpoint is written; --resume continues)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is often faster on a busy machine)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (defaults, base: include and --set applied) as YAML and exit; "
                        "the config files hold only what differs from the defaults")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the VAE + world model (stage 1) or the latent diffusion (stage 2)")
    sub = p.add_subparsers(dest="stage", metavar="STAGE", required=True)
    vae = sub.add_parser("vae", help="stage 1: encoder + hypernetwork decoder + world model (paper eq. 5)")
    _common(vae)
    vae.set_defaults(func=run_vae)
    dif = sub.add_parser("diffusion", help="stage 2: latent diffusion on a trained VAE's latents")
    _common(dif)
    dif.add_argument("--vae", help="directory of the trained VAE (output of 'warpd train vae'; or of 'warpd train "
                                   "ldp' for the LDP baseline); required unless --print-config")
    dif.set_defaults(func=run_diffusion)
    mlp = sub.add_parser("mlp", help="baseline: behaviour-cloned MLP with the generated policy's architecture")
    _common(mlp)
    mlp.set_defaults(func=run_baseline, baseline="mlp")
    dp = sub.add_parser("dp", help="baseline: Diffusion Policy (ConditionalUnet1D over an action chunk)")
    _common(dp)
    dp.set_defaults(func=run_baseline, baseline="dp")
    ldp = sub.add_parser("ldp", help="baseline: Latent Diffusion Policy stage 1 (snippet encoder + MLP chunk decoder); "
                                     "stage 2: 'warpd train diffusion --vae <ldp dir> --out <ldp dir>/diffusion'")
    _common(ldp)
    ldp.set_defaults(func=run_baseline, baseline="ldp")


def _out(args, stage: str) -> str:
    if args.out:
        return args.out
    return os.path.join("runs", stage, os.path.splitext(os.path.basename(args.config))[0])


def _print_config(cfg) -> int:
    import yaml

    from warpd_core.config import config_to_dict

    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None), end="")
    return 0


def _write_config(out: str, cfg) -> None:
    import yaml

    from warpd_core.config import config_to_dict

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as fh:
        yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)


def _threads(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def run_vae(args) -> int:
    from warpd_core.config import VAETrainConfig, load_config
    from warpd_core.train.vae_trainer import VAETrainer

    cfg = load_config(VAETrainConfig, args.config, args.set)
    if args.print_config:
        return _print_config(cfg)
    _threads(args)
    out = _out(args, "vae")
    t0 = time.perf_counter()
    trainer = VAETrainer(cfg, out, resume=args.resume, device=args.device, show_progress=not args.no_progress)
    if trainer.dist.is_main:
        _write_config(out, cfg)
    metrics = trainer.train(args.max_epochs_this_run)
    if trainer.dist.is_main:
        print(f"vae: {trainer.epoch}/{cfg.epochs} epochs, {trainer.step} steps, {time.perf_counter() - t0:.1f} s -> {out}")
        if metrics:
            print("last epoch: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    return 0


def run_diffusion(args) -> int:
    from warpd_core.config import DiffusionTrainConfig, load_config
    from warpd_core.train.diffusion_trainer import DiffusionTrainer

    cfg = load_config(DiffusionTrainConfig, args.config, args.set)
    if args.print_config:
        return _print_config(cfg)
    if not args.vae:
        raise SystemExit("warpd train diffusion: --vae DIR is required (the trained stage-1 directory)")
    _threads(args)
    out = _out(args, "diffusion")
    t0 = time.perf_counter()
    trainer = DiffusionTrainer(cfg, out, args.vae, resume=args.resume, device=args.device,
                               show_progress=not args.no_progress)
    if trainer.dist.is_main:
        _write_config(out, cfg)
    metrics = trainer.train(args.max_epochs_this_run)
    if trainer.dist.is_main:
        print(f"diffusion: {trainer.epoch}/{cfg.epochs} epochs, {trainer.step} steps, {time.perf_counter() - t0:.1f} s -> {out}")
        if metrics:
            print("last epoch: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    return 0


def run_baseline(args) -> int:
    """``warpd train mlp|dp|ldp``: the baselines of warpd_core.baselines (one process, no DDP)."""
    from warpd_core.config import load_config

    if args.baseline == "mlp":
        from warpd_core.baselines.mlp import MLPTrainConfig as cfg_cls, MLPTrainer as trainer_cls
    elif args.baseline == "ldp":
        from warpd_core.baselines.ldp import LDPTrainConfig as cfg_cls, LDPTrainer as trainer_cls
    else:
        from warpd_core.baselines.diffusion_policy import DPTrainConfig as cfg_cls, DPTrainer as trainer_cls
    cfg = load_config(cfg_cls, args.config, args.set)
    if args.print_config:
        return _print_config(cfg)
    _threads(args)
    out = _out(args, args.baseline)
    t0 = time.perf_counter()
    trainer = trainer_cls(cfg, out, resume=args.resume, device=args.device, show_progress=not args.no_progress)
    _write_config(out, cfg)
    metrics = trainer.train(args.max_epochs_this_run)
    print(f"{args.baseline}: {trainer.epoch}/{cfg.epochs} epochs, {trainer.step} steps, {time.perf_counter() - t0:.1f} s -> {out}")
    if metrics:
        print("last epoch: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    return 0
