"""Latent-space analysis of a trained VAE: encode demonstration snippets, embed in 2-D.

Pipeline (``warpd analyze latents``): every training window (length L, the VAE's trajectory length) of the
demonstrations -> ``PolicyVAE.encode`` -> posterior mean ``mu`` (latent_dim) -> PCA (numpy
SVD) and exact t-SNE (numpy, below) -> scatter plots coloured by episode and by a *mode*
label, plus a CSV of the 2-D coordinates.

Mode labels say which behaviour a snippet shows, so one can see whether the latent space
separates modes (the paper's argument for diffusion over latents). For PushT (state
``[agent_x, agent_y, block_x, block_y, block_angle]``) the label is the side of the T the
agent is on at the snippet's first step, in the block's own frame: ``bar side``, ``stem
end``, ``left`` or ``right``. For other datasets it is the snippet's phase in its episode
(``early``, ``middle``, ``late`` third).
"""

from __future__ import annotations

import csv
import math
import os
from typing import Optional, Sequence

import numpy as np

APPROACH_SIDES = ("right", "stem end", "left", "bar side")
"""PushT mode names, indexed by the label :func:`pusht_approach_side` returns."""
PHASES = ("early", "middle", "late")
TSNE_MAX_POINTS = 2000
"""Exact t-SNE holds (N, N) matrices: beyond this it gets slow and memory hungry."""

# Centre of the T in its body frame (px): the cross bar spans y in [0, 30], the stem
# [30, 120]; (0, 45) lies between the two bars' centres of area, the pivot of the sides.
_TEE_CENTRE = np.array([0.0, 45.0])


# ----------------------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------------------
def pusht_approach_side(states: np.ndarray) -> np.ndarray:
    """states (K, 5) PushT observations -> (K,) int label into :data:`APPROACH_SIDES`.

    The agent position is expressed in the block's body frame (``world = R(angle) body +
    position``, as ``warpd_core.envs.pusht.tee_keypoints``), relative to the T's centre,
    and its direction is binned into four 90-degree sectors centred on +x (right), +y (the
    stem's end), -x (left) and -y (the cross bar's side).
    """
    s = np.asarray(states, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 5:
        raise ValueError(f"states: expected shape (K, 5) PushT observations, got {s.shape}")
    d = s[:, 0:2] - s[:, 2:4]  # agent - block origin, world frame (K, 2)
    c, sn = np.cos(s[:, 4]), np.sin(s[:, 4])
    body = np.stack([c * d[:, 0] + sn * d[:, 1], -sn * d[:, 0] + c * d[:, 1]], axis=1) - _TEE_CENTRE  # R^T d
    ang = np.arctan2(body[:, 1], body[:, 0])
    return (np.round(ang / (math.pi / 2)).astype(np.int64)) % 4


def phase_labels(starts: np.ndarray, episode: np.ndarray, episode_starts: np.ndarray,
                 episode_ends: np.ndarray) -> np.ndarray:
    """(K,) int label into :data:`PHASES`: which third of its episode a snippet starts in."""
    e = np.asarray(episode, dtype=np.int64)
    length = np.maximum(episode_ends[e] - episode_starts[e], 1)
    frac = (np.asarray(starts) - episode_starts[e]) / length
    return np.minimum((frac * 3).astype(np.int64), 2)


# ----------------------------------------------------------------------------------------
# embeddings
# ----------------------------------------------------------------------------------------
def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (K, D) -> (coordinates on the first two principal axes (K, 2), their explained
    variance ratios (2,)). Signs are fixed so each axis' largest |loading| is positive."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"pca_2d: need (K >= 2, D) data, got {x.shape}")
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    vt = vt[:2]
    vt *= np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])[:, None]
    emb = xc @ vt.T
    if emb.shape[1] < 2:  # D == 1
        emb = np.concatenate([emb, np.zeros((emb.shape[0], 1))], axis=1)
    var = s**2
    ratio = var[:2] / max(var.sum(), 1e-300)
    return emb, np.pad(ratio, (0, 2 - ratio.size))


def components_for_variance(x: np.ndarray, levels: Sequence[float] = (0.9, 0.95, 0.99)) -> dict[str, int]:
    """How many principal components of ``x`` (K, D) hold each fraction of its variance, e.g.
    ``{"0.99": 8}``: the effective dimension the latent diffusion has to model (the PushT
    configs diffuse that many coordinates, ``latent_pca``)."""
    x = np.asarray(x, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    cum = np.cumsum(s**2) / max(float((s**2).sum()), 1e-300)
    return {f"{q:g}": int(min(np.searchsorted(cum, q) + 1, cum.size)) for q in levels}


def _conditional_p(d2: np.ndarray, perplexity: float, tol: float = 1e-5, max_iter: int = 100) -> np.ndarray:
    """Row-wise Gaussian conditionals p_{j|i} with entropy log(perplexity) (bisection on the
    precision, all rows at once). d2 (N, N) squared distances."""
    n = d2.shape[0]
    target = math.log(perplexity)
    d = d2.copy()
    np.fill_diagonal(d, np.inf)
    d -= d.min(axis=1, keepdims=True)  # shift-invariant; keeps exp() from underflowing
    beta = np.ones(n)
    lo = np.full(n, 0.0)
    hi = np.full(n, np.inf)
    for _ in range(max_iter):
        p = np.exp(-d * beta[:, None])
        sp = p.sum(axis=1)
        h = np.log(sp) + beta * (np.where(np.isfinite(d), d, 0.0) * p).sum(axis=1) / sp
        diff = h - target
        if np.all(np.abs(diff) < tol):
            break
        too_flat = diff > 0  # entropy too high -> increase precision
        lo = np.where(too_flat, beta, lo)
        hi = np.where(too_flat, hi, beta)
        beta = np.where(np.isfinite(hi), (lo + hi) / 2, beta * 2)
    p = np.exp(-d * beta[:, None])
    return p / p.sum(axis=1, keepdims=True)


def tsne_2d(x: np.ndarray, perplexity: float = 30.0, n_iter: int = 1000, seed: int = 0,
            pca_dims: int = 50) -> np.ndarray:
    """Exact t-SNE (van der Maaten and Hinton, 2008) of x (K, D) to (K, 2), K <= 2000.

    Standard schedule: inputs reduced to ``pca_dims`` by PCA, symmetric affinities from the
    given perplexity (clamped to (K - 1) / 3), early exaggeration 12 for the first 250
    iterations with momentum 0.5, then momentum 0.8; per-coordinate gains; learning rate
    ``max(K / 12 / 4, 50)`` (scikit-learn's "auto"). Deterministic in ``seed``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if x.ndim != 2 or n < 4:
        raise ValueError(f"tsne_2d: need (K >= 4, D) data, got {x.shape}")
    if n > TSNE_MAX_POINTS:
        raise ValueError(f"tsne_2d: {n} points, at most {TSNE_MAX_POINTS} (subsample first)")
    xc = x - x.mean(axis=0)
    if xc.shape[1] > pca_dims:
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        xc = xc @ vt[:pca_dims].T
    sq = (xc**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * xc @ xc.T, 0.0)
    perplexity = float(min(perplexity, (n - 1) / 3.0))
    p = _conditional_p(d2, perplexity)
    p = (p + p.T) / (2.0 * n)
    p = np.maximum(p, 1e-12)
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 1e-4, size=(n, 2))
    update = np.zeros_like(y)
    gains = np.ones_like(y)
    exaggeration, lr = 12.0, max(n / 12.0 / 4.0, 50.0)
    for it in range(int(n_iter)):
        early = it < 250
        sy = (y**2).sum(axis=1)
        num = 1.0 / (1.0 + np.maximum(sy[:, None] + sy[None, :] - 2.0 * y @ y.T, 0.0))  # (K, K)
        np.fill_diagonal(num, 0.0)
        q = np.maximum(num / num.sum(), 1e-12)
        pq = ((exaggeration if early else 1.0) * p - q) * num
        grad = 4.0 * (pq.sum(axis=1)[:, None] * y - pq @ y)  # (K, 2)
        same = (grad > 0) == (update > 0)
        gains = np.maximum(np.where(same, gains * 0.8, gains + 0.2), 0.01)
        update = (0.5 if early else 0.8) * update - lr * gains * grad
        y = y + update
        y -= y.mean(axis=0)
    return y


# ----------------------------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------------------------
def select_snippets(ds, length: int, stride: int = 1, max_points: int = 1500, seed: int = 0) -> np.ndarray:
    """Rows ``(start, episode)`` of ``ds.trajectory_windows(length, stride)`` (the VAE's
    training windows), at most ``max_points`` of them drawn without replacement (``seed``),
    in dataset order."""
    index = ds.trajectory_windows(length, stride)
    if len(index) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(index), size=max_points, replace=False))
        index = index[keep]
    return index


def encode_snippets(vae, ds, index: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Posterior means ``mu`` (K, latent_dim) float32 of the snippets at ``index`` (rows of
    ``trajectory_windows``) under ``vae`` (a ``warpd_core.models.vae.PolicyVAE``; raw states
    and actions, the VAE normalises them itself)."""
    import torch

    out = []
    with torch.no_grad():
        for b0 in range(0, len(index), batch_size):
            b = ds.gather_snippets(index[b0 : b0 + batch_size], vae.trajectory_length)
            mu, _ = vae.encode(torch.from_numpy(b["states"]), torch.from_numpy(b["actions"]),
                               torch.from_numpy(b["mask"]))
            out.append(mu.float().numpy())
    return np.concatenate(out).astype(np.float32)


# ----------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------
def plot_latent_embeddings(embeddings: dict[str, np.ndarray], episode: np.ndarray, mode: np.ndarray,
                           mode_names: Sequence[str], path: str, title: Optional[str] = None) -> str:
    """A grid of scatter plots: one row per embedding (e.g. ``{"PCA": (K, 2), "t-SNE": (K, 2)}``),
    left coloured by episode (cyclic colours), right by mode (legend ``mode_names``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    episode = np.asarray(episode)
    mode = np.asarray(mode)
    rows = list(embeddings.items())
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 4.6 * len(rows)), dpi=110, squeeze=False)
    n_eps = len(np.unique(episode))
    mode_colors = plt.get_cmap("tab10")(np.arange(len(mode_names)) % 10)
    for r, (name, emb) in enumerate(rows):
        emb = np.asarray(emb)
        if emb.shape != (len(episode), 2):
            raise ValueError(f"embedding {name!r}: expected shape ({len(episode)}, 2), got {emb.shape}")
        ax = axes[r, 0]
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=episode, cmap="hsv" if n_eps > 20 else "tab20", s=6, alpha=0.8,
                        linewidths=0)
        ax.set_title(f"{name}: by episode ({n_eps} episodes)", fontsize=10)
        fig.colorbar(sc, ax=ax, fraction=0.04, pad=0.02, label="episode")
        ax = axes[r, 1]
        for k, label in enumerate(mode_names):
            sel = mode == k
            if sel.any():
                ax.scatter(emb[sel, 0], emb[sel, 1], color=mode_colors[k], s=6, alpha=0.8, linewidths=0,
                           label=f"{label} ({int(sel.sum())})")
        ax.set_title(f"{name}: by mode", fontsize=10)
        ax.legend(fontsize=8, markerscale=2.5, loc="best")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def analyze_latents(latents: np.ndarray, episode: np.ndarray, mode: np.ndarray, mode_names: Sequence[str],
                    out_dir: str, start: Optional[np.ndarray] = None, perplexity: float = 30.0,
                    tsne_iter: int = 1000, seed: int = 0, title: Optional[str] = None) -> dict:
    """PCA + t-SNE of ``latents`` (K, D); writes ``latents_2d.csv`` and ``latents.png`` into
    ``out_dir``. Returns ``{"csv", "png", "pca_explained", "components_for_variance"}``."""
    latents = np.asarray(latents, dtype=np.float64)
    k = latents.shape[0]
    if len(episode) != k or len(mode) != k:
        raise ValueError(f"labels: expected {k} episode and mode labels, got {len(episode)} and {len(mode)}")
    os.makedirs(out_dir, exist_ok=True)
    pca, ratio = pca_2d(latents)
    tsne = tsne_2d(latents, perplexity=perplexity, n_iter=tsne_iter, seed=seed)
    csv_path = os.path.join(out_dir, "latents_2d.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "episode", "start", "mode", "mode_name", "pca_x", "pca_y", "tsne_x", "tsne_y"])
        for i in range(k):
            w.writerow([i, int(episode[i]), "" if start is None else int(start[i]), int(mode[i]),
                        mode_names[int(mode[i])], f"{pca[i, 0]:.6g}", f"{pca[i, 1]:.6g}",
                        f"{tsne[i, 0]:.6g}", f"{tsne[i, 1]:.6g}"])
    png = plot_latent_embeddings(
        {f"PCA ({100 * ratio[0]:.0f}% + {100 * ratio[1]:.0f}% var.)": pca, f"t-SNE (perplexity {perplexity:g})": tsne},
        episode, mode, mode_names, os.path.join(out_dir, "latents.png"), title)
    return {"csv": csv_path, "png": png, "pca_explained": ratio.tolist(),
            "components_for_variance": components_for_variance(latents)}


def analyze_vae_latents(vae_dir: str, data: str, out_dir: str, checkpoint: str = "last", stride: int = 1,
                        max_points: int = 1500, perplexity: float = 30.0, tsne_iter: int = 1000,
                        seed: int = 0, data_format: str = "auto") -> dict:
    """The whole ``warpd analyze latents`` pipeline; also writes ``latents.npz`` (mu, episode,
    start, mode). Returns the paths and a few numbers."""
    from warpd_core.data.io import load_dataset
    from warpd_core.train.vae_trainer import load_vae

    vae, _, _, _ = load_vae(vae_dir, checkpoint)
    ds = load_dataset(data, format=data_format)
    if (ds.state_dim, ds.action_dim) != (vae.spec.in_dim, vae.spec.out_dim):
        raise ValueError(f"{data}: state/action dims ({ds.state_dim}, {ds.action_dim}) do not match the VAE's "
                         f"({vae.spec.in_dim}, {vae.spec.out_dim}) from {vae_dir}")
    index = select_snippets(ds, vae.trajectory_length, stride, max_points, seed)
    mu = encode_snippets(vae, ds, index)
    start, episode = index[:, 0], index[:, 1]
    if ds.state_dim == 5:
        mode, names, kind = pusht_approach_side(ds.states[start]), APPROACH_SIDES, "PushT approach side"
    else:
        mode = phase_labels(start, episode, ds.episode_starts, ds.episode_ends)
        names, kind = PHASES, "episode phase"
    os.makedirs(out_dir, exist_ok=True)
    np.savez_compressed(os.path.join(out_dir, "latents.npz"), mu=mu, episode=episode, start=start, mode=mode)
    title = f"VAE latents (mu) of {len(index)} windows, L={vae.trajectory_length}, mode = {kind}"
    out = analyze_latents(mu, episode, mode, names, out_dir, start, perplexity, tsne_iter, seed, title)
    out.update({"npz": os.path.join(out_dir, "latents.npz"), "n_points": int(len(index)),
                "latent_dim": int(mu.shape[1]), "mode_kind": kind})
    return out
