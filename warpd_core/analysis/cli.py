"""``warpd analyze latents``: 2-D views (PCA, t-SNE) of a trained VAE's latent space."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="analyses of trained models (latent space, ...)",
                              description="warpd analyze latents --vae CHECKPOINT_DIR --data ZARR --out DIR")
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    q = sub.add_parser("latents", help="encode demonstration snippets with the VAE; PCA + t-SNE plots and CSV",
                       description="Encode every length-H snippet of the demonstrations (H = the VAE's horizon) to its "
                                   "posterior mean, embed in 2-D (PCA, exact t-SNE) and plot, coloured by episode and by "
                                   "mode (PushT: side of the T the agent is on; else: episode phase).")
    q.add_argument("--vae", required=True, help="VAE training directory (holds <checkpoint>.json/.safetensors)")
    q.add_argument("--checkpoint", default="last", help="checkpoint name in --vae (default: last)")
    q.add_argument("--data", required=True, help="demonstrations: Diffusion Policy zarr or robomimic hdf5")
    q.add_argument("--format", default="auto", choices=["auto", "zarr", "hdf5"], help="data format (default: detect)")
    q.add_argument("--out", required=True, help="output folder (latents.png, latents_2d.csv, latents.npz)")
    q.add_argument("--max-points", type=int, default=1500, help="snippets to embed, at most 2000 (default 1500)")
    q.add_argument("--stride", type=int, default=1, help="snippet start stride before subsampling (default 1)")
    q.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    q.add_argument("--tsne-iter", type=int, default=1000, help="t-SNE iterations (default 1000)")
    q.add_argument("--seed", type=int, default=0, help="subsampling and t-SNE seed")
    q.set_defaults(func=run_latents)


def run_latents(args: argparse.Namespace) -> int:
    from warpd_core.analysis.latents import TSNE_MAX_POINTS, analyze_vae_latents

    if not 4 <= args.max_points <= TSNE_MAX_POINTS:
        raise ValueError(f"--max-points must be in [4, {TSNE_MAX_POINTS}], got {args.max_points}")
    out = analyze_vae_latents(args.vae, args.data, args.out, args.checkpoint, args.stride, args.max_points,
                              args.perplexity, args.tsne_iter, args.seed, args.format)
    print(f"{out['n_points']} snippets, latent_dim {out['latent_dim']}, PCA explained "
          f"{out['pca_explained'][0]:.2f} + {out['pca_explained'][1]:.2f}; mode = {out['mode_kind']}")
    print("principal components holding 90 / 95 / 99 % of the latent variance: "
          + " / ".join(str(v) for v in out["components_for_variance"].values()))
    print(f"wrote {out['png']}, {out['csv']}, {out['npz']}")
    return 0
