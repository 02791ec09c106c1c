"""Rebuild stage 2's latent denoiser from its configuration or its checkpoint.

What ``warpd export`` and the LDP baseline's evaluation load, kept apart from the trainer
(:mod:`warpd_core.train.diffusion_trainer`) so that loading a denoiser never imports the
stage-1 models the trainer encodes with.
"""

from __future__ import annotations

import os

from warpd_core.config import DiffusionTrainConfig, config_from_dict
from warpd_core.models.denoiser import LatentDenoiser
from warpd_core.train.checkpoint import load_checkpoint, load_unique_state_dict, unprefixed
from warpd_core.train.stages import check_stage


def build_denoiser(cfg: DiffusionTrainConfig, latent_dim: int, state_dim: int, n_tasks: int) -> LatentDenoiser:
    """``latent_dim``: the VAE's latent size (the denoiser diffuses ``cfg.latent_pca`` of its
    principal-component coordinates when that is set)."""
    if cfg.latent_pca:
        return LatentDenoiser(cfg.latent_pca, tuple(cfg.latent_shape), cfg.condition, state_dim, n_tasks,
                              cfg.task_embed_dim, cfg.unet_size, cfg.kernel_size, cfg.n_groups, source_dim=latent_dim)
    return LatentDenoiser(latent_dim, tuple(cfg.latent_shape), cfg.condition, state_dim, n_tasks,
                          cfg.task_embed_dim, cfg.unet_size, cfg.kernel_size, cfg.n_groups)


def load_diffusion(directory: str, name: str = "last", ema: bool = True) -> tuple[LatentDenoiser, DiffusionTrainConfig, dict]:
    """Rebuild the denoiser (EMA weights by default) from a diffusion checkpoint."""
    tensors, meta = load_checkpoint(directory, name)
    path = os.path.join(os.fspath(directory), f"{name}.json")
    check_stage(meta, path, "diffusion")
    cfg = config_from_dict(DiffusionTrainConfig, meta["config"], path)
    model = build_denoiser(cfg, int(meta["latent_dim"]), int(meta["state_dim"]), int(meta["n_tasks"]))
    load_unique_state_dict(model, unprefixed("model.ema" if ema else "model.denoiser", tensors), path)
    return model.eval(), cfg, meta
