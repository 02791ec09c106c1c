"""Affine normalisation that travels with the model as buffers (Diffusion Policy style).

Choice: per-dimension min-max to [-1, 1] (the range Diffusion Policy uses for low-dim data).
``x_n = scale * x + offset``. A dimension whose range is below ``eps`` gets ``scale = 1`` and is
centred at 0 instead of being blown up. The same (scale, offset) pairs are what
:meth:`warpd_core.policy.PolicySpec.fold_affine` folds into the generated MLP at export.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def minmax_affine(x: np.ndarray, eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) data -> (scale (D,), offset (D,)) mapping [min, max] to [-1, 1]."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
    lo, hi = x.min(axis=0), x.max(axis=0)
    rng = hi - lo
    small = rng < eps
    scale = np.where(small, 1.0, 2.0 / np.where(small, 1.0, rng))
    offset = np.where(small, -(hi + lo) / 2.0, -1.0 - lo * scale)
    return scale.astype(np.float32), offset.astype(np.float32)


class AffineNormalizer(nn.Module):
    """Holds ``scale`` and ``offset`` buffers (D,); identity until :meth:`fit` or a state-dict load."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("offset", torch.zeros(dim))

    @torch.no_grad()
    def fit(self, data: np.ndarray) -> "AffineNormalizer":
        scale, offset = minmax_affine(data)
        self.scale.copy_(torch.from_numpy(scale))
        self.offset.copy_(torch.from_numpy(offset))
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset

    def unnormalize(self, x_n: torch.Tensor) -> torch.Tensor:
        return (x_n - self.offset) / self.scale

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scale.detach().cpu().numpy().copy(), self.offset.detach().cpu().numpy().copy()


class LatentProjection(nn.Module):
    """Principal-component coordinates of the VAE latent: ``c = (z - mean) @ basis.T`` (k,),
    ``z = mean + c @ basis`` (the lift back).

    Why (measured on the PushT VAE, beta_KL 1e-10, latent 256): 99 % of the latents' variance
    lies in 6-9 directions, and projecting encoder latents onto the top 8 changes the decoded
    policies' action error by < 0.1 px. Diffusing over all 256 dimensions makes the denoiser
    model a nearly degenerate distribution; over the top-k coordinates it models only what
    varies. ``basis`` rows are orthonormal, sorted by decreasing variance.
    """

    def __init__(self, latent_dim: int, k: int):
        super().__init__()
        if not 0 < k <= latent_dim:
            raise ValueError(f"latent_pca: expected 0 < k <= latent_dim {latent_dim}, got {k}")
        self.register_buffer("mean", torch.zeros(latent_dim))
        self.register_buffer("basis", torch.eye(latent_dim)[:k].clone())

    @property
    def k(self) -> int:
        return int(self.basis.shape[0])

    @torch.no_grad()
    def fit(self, latents: np.ndarray) -> "LatentProjection":
        z = np.asarray(latents, dtype=np.float64)
        mean = z.mean(axis=0)
        _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
        if vt.shape[0] < self.k:
            raise ValueError(f"latent_pca: {self.k} components need at least {self.k} latents, got {z.shape[0]}")
        self.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        self.basis.copy_(torch.from_numpy(vt[: self.k].astype(np.float32)))
        return self

    def project(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) @ self.basis.T

    def lift(self, c: torch.Tensor) -> torch.Tensor:
        return self.mean + c @ self.basis
