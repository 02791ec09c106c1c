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
