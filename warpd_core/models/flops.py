"""Inference cost per control step, the paper's convention (section 4.1).

A method that runs a *generation* once every ``horizon`` control steps (WARPD: K denoiser
forwards + one hypernetwork decode; LDP: K denoiser forwards + one chunk decode; Diffusion
Policy: K UNet forwards over the action chunk)
and a *per-step* module on every step (WARPD and MLP: the MLP; DP: nothing) costs

    flops_per_step = generation_flops / horizon + step_flops

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one batch-1 forward
of the exact modules that run. Convention (FlopCounterMode's): matrix products and
convolutions only, **2 FLOPs per multiply-add**; so ``nn.Linear(i, o)`` counts ``2 i o``
(the bias add is not counted), and normalisation, activations, element-wise additions and
the scheduler's update are not counted either (a small share for every method here).

WARPD's bundles (:meth:`~warpd_core.export.bundle.Generator.step_cost`) and every baseline
report their cost through this module, so they count the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


def count_flops(module, *args: Any) -> int:
    """FLOPs of one ``module(*args)`` call (2 per multiply-add, matmul/conv only), no grad."""
    import torch  # noqa: PLC0415
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        module(*args)
    return int(fc.get_total_flops())


def count_params(*modules) -> int:
    """Number of parameters (trainable or not) of the given ``nn.Module``s; buffers excluded."""
    return int(sum(p.numel() for m in modules for p in m.parameters()))


@dataclass(frozen=True)
class StepCost:
    """Cost of one method at one action horizon.

    Attributes:
        generation_flops: FLOPs of one generation (all denoising steps + decode); 0 if none.
        step_flops: FLOPs run on every control step (the per-step policy); 0 if none.
        horizon: control steps one generation serves.
        step_params: parameters of what runs on every step (the MLP; DP: 0).
        generation_params: parameters of what runs once per generation.
    """

    generation_flops: int
    step_flops: int
    horizon: int
    step_params: int = 0
    generation_params: int = 0

    def __post_init__(self) -> None:
        if int(self.horizon) <= 0:
            raise ValueError(f"StepCost.horizon must be positive, got {self.horizon!r}")
        if self.generation_flops < 0 or self.step_flops < 0:
            raise ValueError(f"StepCost: FLOPs must be >= 0, got {self.generation_flops}, {self.step_flops}")

    @property
    def flops_per_step(self) -> float:
        """generation_flops / horizon + step_flops (FLOPs per control step)."""
        return self.generation_flops / int(self.horizon) + self.step_flops

    def to_dict(self) -> dict:
        return {**asdict(self), "flops_per_step": self.flops_per_step}


def latent_diffusion_flops(denoiser, steps: int) -> int:
    """FLOPs of ``steps`` forwards of a :class:`~warpd_core.models.denoiser.LatentDenoiser`
    (batch 1, with the condition inputs it uses): the sampling part of one WARPD or LDP generation."""
    import torch  # noqa: PLC0415

    x = torch.zeros(1, *denoiser.latent_shape)
    state = torch.zeros(1, denoiser.state_dim) if denoiser.uses_state else None
    task = torch.zeros(1, dtype=torch.long) if denoiser.uses_task else None
    return count_flops(denoiser, x, torch.full((1,), 10.0), state, task) * int(steps)


def mlp_step_cost(spec, horizon: int) -> StepCost:
    """An MLP (``spec``, a ``PolicySpec``) on every step, no generation: 2 * sum(in * out) FLOPs
    (bias adds not counted). The MLP baseline's cost, and the per-step part of WARPD's."""
    import torch  # noqa: PLC0415

    from warpd_core.models.policy_torch import mlp_layers  # noqa: PLC0415 - torch stays out of the import

    net = mlp_layers(spec)
    return StepCost(0, count_flops(net, torch.zeros(1, spec.in_dim)), horizon, count_params(net), 0)


def warpd_step_cost(denoiser, hypernet, spec, steps: int, horizon: int) -> StepCost:
    """WARPD: one generation = ``steps`` denoiser forwards + one hypernetwork decode; the generated
    MLP (``spec``, a ``PolicySpec``) runs every step."""
    import torch  # noqa: PLC0415

    generation = latent_diffusion_flops(denoiser, steps) + count_flops(hypernet, torch.zeros(1, denoiser.latent_dim))
    policy = mlp_step_cost(spec, horizon)
    return StepCost(generation, policy.step_flops, horizon, policy.step_params, count_params(denoiser, hypernet))
