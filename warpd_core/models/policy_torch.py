"""Batched torch forward of generated policies (training side of :mod:`warpd_core.policy`).

``hypnettorch.mnets.MLP`` only takes one weight vector at a time; here B policies, one per
snippet, run at once from their flat vectors with ``torch.baddbmm``. The flat layout is the
one :class:`~warpd_core.policy.PolicySpec` defines (per layer ``W (out, in)`` row-major, then
``b (out,)``), so a vector trained here runs unchanged in the numpy ``MLPPolicy``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from warpd_core.policy import PolicySpec


def _activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return torch.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "elu":
        return F.elu(x)
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if name == "identity":
        return x
    raise ValueError(f"unknown activation {name!r}")


_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "identity": nn.Identity,
            "gelu_tanh": lambda: nn.GELU(approximate="tanh")}


def mlp_layers(spec: PolicySpec) -> nn.Sequential:
    """One policy of ``spec`` as ``nn.Sequential`` of Linear (+ activation on hidden layers); its
    ``Linear.weight`` (out, in) is the flat layout's ``W_l``, so flattening it is a copy."""
    layers: list[nn.Module] = []
    sizes = spec.layer_sizes
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(spec.hidden):
            layers.append(_MODULES[spec.activation]())
    return nn.Sequential(*layers)


def split_flat(spec: PolicySpec, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """flat (B, n_weights) -> [(W (B, out, in), b (B, out)), ...] as views."""
    if flat.ndim != 2 or flat.shape[1] != spec.n_weights:
        raise ValueError(f"flat weights must be (B, {spec.n_weights}), got {tuple(flat.shape)}")
    layers = []
    off = 0
    sizes = spec.layer_sizes
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = flat[:, off : off + fan_out * fan_in].reshape(-1, fan_out, fan_in)
        off += fan_out * fan_in
        b = flat[:, off : off + fan_out]
        off += fan_out
        layers.append((w, b))
    return layers


def policy_forward(spec: PolicySpec, flat: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
    """Run B generated policies.

    Args:
        flat: (B, n_weights) one weight vector per policy.
        obs: (B, T, in_dim) -- T observations for each policy -- or (B, in_dim).
    Returns:
        actions (B, T, out_dim) or (B, out_dim), same dtype as ``flat``.
    """
    squeeze = obs.ndim == 2
    x = obs.unsqueeze(1) if squeeze else obs  # (B, T, in)
    layers = split_flat(spec, flat)
    last = len(layers) - 1
    for i, (w, b) in enumerate(layers):
        # (B, T, in) @ (B, in, out) + (B, 1, out)
        x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        if i != last:
            x = _activation(spec.activation, x)
    return x.squeeze(1) if squeeze else x
