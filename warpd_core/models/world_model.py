"""Gaussian world model p(s_{t+1} | s_{t-h+1..t}, a_{t-h+1..t}) (paper: MLP 2 x 1024).

Choices (the paper is silent): it works in normalised state/action space, predicts the
*delta* ``s_{t+1} - s_t`` (mean = s_t + MLP output), and outputs a diagonal Gaussian whose
log-variance is softly bounded to [min_logvar, max_logvar] (as in PETS, Chua et al. 2018)
so that the closed-form KL of L_RO stays finite. History h >= 1: the input is the last h
(state, action) pairs, oldest first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(sizes: list[int], act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class GaussianWorldModel(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, hidden: list[int], history: int = 1,
                 min_logvar: float = -10.0, max_logvar: float = 1.0):
        super().__init__()
        self.state_dim, self.action_dim, self.history = int(state_dim), int(action_dim), int(history)
        self.net = mlp([self.history * (state_dim + action_dim), *hidden, 2 * state_dim])
        self.register_buffer("min_logvar", torch.tensor(float(min_logvar)))
        self.register_buffer("max_logvar", torch.tensor(float(max_logvar)))

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states (..., h, S), actions (..., h, A), normalised -> (mean, logvar) of s_{t+1}, each (..., S)."""
        x = torch.cat([states, actions], dim=-1).flatten(-2)
        out = self.net(x)
        delta, logvar = out.split(self.state_dim, dim=-1)
        mean = states[..., -1, :] + delta
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar


def gaussian_kl(mean_p: torch.Tensor, logvar_p: torch.Tensor, mean_q: torch.Tensor, logvar_q: torch.Tensor) -> torch.Tensor:
    """KL(N_p || N_q) for diagonal Gaussians, summed over the last dim."""
    return 0.5 * (logvar_q - logvar_p + (logvar_p.exp() + (mean_p - mean_q) ** 2) / logvar_q.exp() - 1.0).sum(-1)
