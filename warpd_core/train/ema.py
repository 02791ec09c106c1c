"""Exponential moving average of model weights (the EMA Diffusion Policy samples with).

Decay schedule identical to ``diffusers.training_utils.EMAModel(use_ema_warmup=True,
power=0.75, inv_gamma=1, min_decay=0, update_after_step=0)``:
``decay = min(max_decay, 1 - (1 + n)^-power)`` at the n-th update counted from 0 (decay 0 at
the first update). Written here so its state is two plain things we can put in safetensors
(the shadow parameters, the step counter). Buffers are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, power: float = 0.75, max_decay: float = 0.9999):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power, self.max_decay = float(power), float(max_decay)
        self.optimization_step = 0

    def decay(self, optimization_step: int) -> float:
        step = max(0, optimization_step - 1)
        if step <= 0:
            return 0.0
        return max(0.0, min(1.0 - (1.0 + step) ** -self.power, self.max_decay))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.optimization_step += 1
        d = self.decay(self.optimization_step)
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            if p.requires_grad:
                ema_p.sub_((1.0 - d) * (ema_p - p))
            else:
                ema_p.copy_(p)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
