"""``warpd export`` (trained checkpoints -> bundle) and ``warpd export init`` (fresh weights)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a runtime bundle (bundle.json + safetensors [+ ONNX])",
                              description="warpd export --vae DIR --diffusion DIR --out BUNDLE_DIR, "
                                          "or: warpd export init --obs-dim N --act-dim M --out BUNDLE_DIR")
    p.add_argument("mode", nargs="?", choices=["init"], help="'init': a bundle with freshly initialised weights")
    p.add_argument("--vae", help="trained VAE directory")
    p.add_argument("--diffusion", help="trained diffusion directory")
    p.add_argument("--bundle", help="an existing bundle to rewrite (same weights and model_id), e.g. with --onnx added")
    p.add_argument("--out", required=True, help="bundle directory to write (replaced atomically)")
    p.add_argument("--onnx", action="store_true", help="also export onnx/denoiser.onnx and onnx/hypernet.onnx")
    p.add_argument("--dtype", default=None, choices=["float32", "float16"],
                   help="dtype of the stored weights (default float32; --bundle: the bundle's own)")
    p.add_argument("--control-rate-hz", type=float, default=None,
                   help="control rate the model runs at, written to bundle.json (default: the rate recorded in the "
                        "training data, e.g. by 'warpd data from-bag'; --bundle: the bundle's own)")
    g = p.add_argument_group("init")
    g.add_argument("--obs-dim", type=int, help="observation size (required)")
    g.add_argument("--act-dim", type=int, help="action size (required)")
    g.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="hidden widths of the generated MLP")
    g.add_argument("--activation", default="relu", help="activation of the generated MLP")
    g.add_argument("--horizon", type=int, default=16, help="action horizon recorded in bundle.json (what the generator uses unless told otherwise)")
    g.add_argument("--decoder", default="xs", choices=["xs", "s", "m", "l"], help="hypernetwork decoder size")
    g.add_argument("--unet", default="s", choices=["xs", "s", "m", "l", "xl"], help="denoiser UNet size (Table 6)")
    g.add_argument("--latent-dim", type=int, default=256, help="VAE latent size")
    g.add_argument("--latent-shape", type=int, nargs=2, default=[16, 16], help="the latent viewed as (T, C) by the UNet")
    g.add_argument("--condition", default="state", choices=["state", "task", "state+task", "none"], help="what the diffusion is conditioned on")
    g.add_argument("--n-tasks", type=int, default=0, help="number of tasks (task conditions)")
    g.add_argument("--obs-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="raw obs range mapped to [-1, 1]")
    g.add_argument("--act-range", type=float, nargs=2, metavar=("LOW", "HIGH"), help="raw action range mapped to [-1, 1]")
    g.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"], help="sampler recorded in bundle.json")
    g.add_argument("--sampler-steps", type=int, default=10, help="sampler steps recorded in bundle.json")
    g.add_argument("--seed", type=int, default=0, help="seed of the random initial weights")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from warpd_core.export.writer import export_from_bundle, export_from_checkpoints, export_init

    if args.bundle:
        if args.mode == "init" or args.vae or args.diffusion:
            raise ValueError("export: --bundle rewrites an existing bundle; it takes no 'init', --vae or --diffusion")
        meta = export_from_bundle(args.bundle, args.out, args.onnx, args.dtype, args.control_rate_hz)
    elif args.mode == "init":
        if args.obs_dim is None or args.act_dim is None:
            raise ValueError("export init: --obs-dim and --act-dim are required")
        meta = export_init(args.out, args.obs_dim, args.act_dim, args.hidden, args.horizon, args.decoder, args.unet,
                           args.latent_dim, tuple(args.latent_shape), args.condition, args.n_tasks, args.seed,
                           args.onnx, args.dtype or "float32", args.obs_range, args.act_range, args.activation, args.sampler,
                           args.sampler_steps, args.control_rate_hz)
    else:
        if not args.vae or not args.diffusion:
            raise ValueError("export: --vae and --diffusion are required (or use 'warpd export init')")
        meta = export_from_checkpoints(args.vae, args.diffusion, args.out, args.onnx, args.dtype or "float32",
                                       args.control_rate_hz)
    spec = meta["policy_spec"]
    print(f"bundle {meta['model_id']} -> {args.out}: policy {spec['in_dim']}->{spec['hidden']}->{spec['out_dim']}, "
          f"horizon {meta['horizon']}, condition {meta['condition']}, "
          f"control rate {'%g Hz' % meta['control_rate_hz'] if meta.get('control_rate_hz') else 'unknown'}, "
          f"files {sorted(meta['files'])}")
    return 0
