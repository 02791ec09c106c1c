"""DDPM / DDIM sampling math in numpy (no torch), matching diffusers' schedulers.

Training uses ``diffusers.DDPMScheduler`` (add_noise). Sampling in the generator uses these
numpy steps for both backends so that the ONNX path has no torch in its loop and both backends
draw the same noise from the same ``numpy.random.Generator``. The formulas reproduce
``DDPMScheduler`` (variance_type fixed_small) and ``DDIMScheduler`` (eta 0,
set_alpha_to_one, use_clipped_model_output False) with ``prediction_type='epsilon'`` and
"leading" timestep spacing; test_models_diffusion.py checks step-for-step agreement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def make_betas(num_train_timesteps: int, beta_schedule: str, beta_start: float = 1e-4, beta_end: float = 2e-2) -> np.ndarray:
    if beta_schedule == "squaredcos_cap_v2":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        n = num_train_timesteps
        return np.array([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)], dtype=np.float32)
    if beta_schedule == "linear":
        return np.linspace(beta_start, beta_end, num_train_timesteps, dtype=np.float32)
    raise ValueError(f"beta_schedule: expected 'squaredcos_cap_v2' or 'linear', got {beta_schedule!r}")


@dataclass
class NumpySampler:
    """Reverse diffusion in numpy. ``kind`` 'ddpm' or 'ddim'; ``steps`` inference steps."""

    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    kind: str = "ddim"
    steps: int = 10
    clip_sample: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("ddpm", "ddim"):
            raise ValueError(f"sampler: expected 'ddpm' or 'ddim', got {self.kind!r}")
        if not 1 <= self.steps <= self.num_train_timesteps:
            raise ValueError(f"steps: expected 1..{self.num_train_timesteps}, got {self.steps}")
        betas = make_betas(self.num_train_timesteps, self.beta_schedule)
        # diffusers computes alphas_cumprod in float32 torch; cumprod in float32 here too
        self.alphas_cumprod = np.cumprod(1.0 - betas, dtype=np.float32)
        ratio = self.num_train_timesteps // self.steps
        self.timesteps = (np.arange(0, self.steps) * ratio).round()[::-1].astype(np.int64)
        self._ratio = ratio

    def step(self, eps: np.ndarray, t: int, x: np.ndarray, rng: np.random.Generator | None,
             noise: np.ndarray | None = None) -> np.ndarray:
        """One reverse step: model output eps at timestep t, current sample x -> previous sample.

        DDPM adds ``noise`` (drawn from ``rng`` when None) for t > 0; DDIM (eta 0) is deterministic."""
        ac = self.alphas_cumprod
        prev_t = t - self._ratio
        a_t = ac[t]
        a_prev = ac[prev_t] if prev_t >= 0 else np.float32(1.0)
        b_t = 1.0 - a_t
        x0 = (x - math.sqrt(b_t) * eps) / math.sqrt(a_t)
        if self.clip_sample:
            x0 = np.clip(x0, -1.0, 1.0)
        if self.kind == "ddim":
            out = math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps
            return out.astype(np.float32)
        b_prev = 1.0 - a_prev
        cur_alpha = a_t / a_prev
        cur_beta = 1.0 - cur_alpha
        mean = (math.sqrt(a_prev) * cur_beta / b_t) * x0 + (math.sqrt(cur_alpha) * b_prev / b_t) * x
        if t > 0:
            var = max(b_prev / b_t * cur_beta, 1e-20)
            if noise is None:
                noise = rng.standard_normal(x.shape).astype(np.float32)
            mean = mean + math.sqrt(var) * noise
        return mean.astype(np.float32)
