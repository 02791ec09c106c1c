"""The noise-prediction recipe shared by WARPD's latent diffusion and the Diffusion Policy baseline.

Epsilon-prediction with ``diffusers.DDPMScheduler`` (``clip_sample``), AdamW with linear warm-up
then cosine decay to 0 (Diffusion Policy's recipe), and an EMA update after every optimiser step.
A trainer using it provides ``cfg`` (``num_train_timesteps``, ``beta_schedule``, ``batch_size``,
``epochs``, ``lr``, ``lr_warmup_steps``), ``model``, ``ema``, ``step``, ``epoch``,
``steps_per_epoch``, ``progress`` and ``loss(rows) -> scalar tensor``. Both stages depend on this
module, not on each other.
"""

from __future__ import annotations

import math

import torch


def make_noise_scheduler(cfg):
    """The training noise schedule of ``cfg`` (``num_train_timesteps``, ``beta_schedule``)."""
    from diffusers import DDPMScheduler  # noqa: PLC0415 - diffusers is slow to import

    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         clip_sample=True, prediction_type="epsilon")


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 0 (diffusers' get_cosine_schedule_with_warmup)."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def noise_prediction_epoch(trainer, opt: torch.optim.Optimizer, perm: torch.Tensor, desc: str) -> dict:
    """One epoch: rows ``perm`` in batches of ``cfg.batch_size``, ``trainer.loss(rows)``, the LR of
    :func:`lr_factor` at every step, EMA update after every step. Returns mean loss and last LR."""
    cfg = trainer.cfg
    starts = range(0, len(perm), cfg.batch_size)
    total_steps = cfg.epochs * trainer.steps_per_epoch
    trainer.model.train()
    acc = 0.0
    for b0 in trainer.progress(starts, len(starts), f"{desc} epoch {trainer.epoch + 1}/{cfg.epochs}"):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(trainer.step, cfg.lr_warmup_steps, total_steps)
        loss = trainer.loss(perm[b0 : b0 + cfg.batch_size])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        trainer.ema.update(trainer.model)
        trainer.step += 1
        acc += float(loss.detach())
    return {"loss": acc / max(1, len(starts)), "lr": opt.param_groups[0]["lr"]}
