"""The latent denoiser of stage 2: ConditionalUnet1D over the VAE latent plus its condition.

The 256-d latent is viewed as (T, C) = ``latent_shape`` (default (16, 16)). Condition kinds:
``state`` (the normalised first state of the snippet), ``task`` (an ``nn.Embedding`` of the
task id), ``state+task`` (both, concatenated), ``none`` (unconditional). Latents are
normalised per dimension to [-1, 1] (min-max over the training latents, buffers
``latent_scale`` / ``latent_offset``) so the sampler's x0 clipping does no harm.

With ``source_dim`` > 0 the denoiser works on ``latent_dim`` principal-component coordinates
of a ``source_dim``-d VAE latent and carries the :class:`LatentProjection` (``projection``);
the export folds the lift into the hypernetwork's first layer, so bundles never hold it.
"""

from __future__ import annotations

import torch
from torch import nn

from warpd_core.config import UNET_SIZES
from warpd_core.models.normalizer import AffineNormalizer, LatentProjection
from warpd_core.models.unet1d import ConditionalUnet1D

CONDITIONS = ("state", "task", "state+task", "none")


class LatentDenoiser(nn.Module):
    def __init__(self, latent_dim: int, latent_shape: tuple[int, int], condition: str, state_dim: int,
                 n_tasks: int = 0, task_embed_dim: int = 32, unet_size: str = "s", kernel_size: int = 5,
                 n_groups: int = 8, source_dim: int = 0):
        super().__init__()
        if condition not in CONDITIONS:
            raise ValueError(f"condition: expected one of {CONDITIONS}, got {condition!r}")
        if latent_shape[0] * latent_shape[1] != latent_dim:
            raise ValueError(f"latent_shape {tuple(latent_shape)} does not hold latent_dim {latent_dim}")
        if "task" in condition and n_tasks <= 0:
            raise ValueError(f"condition {condition!r} needs n_tasks > 0, got {n_tasks}")
        self.latent_dim = int(latent_dim)
        self.state_dim = int(state_dim)
        self.latent_shape = (int(latent_shape[0]), int(latent_shape[1]))
        self.condition = condition
        self.uses_state = "state" in condition
        self.uses_task = "task" in condition
        self.n_tasks = int(n_tasks) if self.uses_task else 0
        cond_dim = (state_dim if self.uses_state else 0) + (task_embed_dim if self.uses_task else 0)
        self.task_embed = nn.Embedding(self.n_tasks, task_embed_dim) if self.uses_task else None
        step_dim, down_dims = UNET_SIZES[unet_size]
        self.unet = ConditionalUnet1D(self.latent_shape[1], cond_dim, step_dim, down_dims, kernel_size, n_groups)
        self.latent_norm = AffineNormalizer(latent_dim)
        self.projection = LatentProjection(source_dim, latent_dim) if source_dim else None

    def global_cond(self, state_n: torch.Tensor | None, task: torch.Tensor | None) -> torch.Tensor | None:
        parts = []
        if self.uses_state:
            parts.append(state_n)
        if self.uses_task:
            parts.append(self.task_embed(task))
        return torch.cat(parts, dim=-1) if parts else None

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, state_n: torch.Tensor | None = None,
                task: torch.Tensor | None = None) -> torch.Tensor:
        """sample (B, T, C) normalised latent, timestep (B,), state_n (B, S), task (B,) int64 -> eps (B, T, C)."""
        return self.unet(sample, timestep, self.global_cond(state_n, task))
