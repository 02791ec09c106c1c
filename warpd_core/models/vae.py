"""The VAE of stage 1: trajectory encoder + hypernetwork decoder (+ normalisers).

Encoder (paper A.8.2): the trajectory window of normalised (state, action) pairs is
flattened, (B, L*(S+A)) for trajectory length L, and an MLP with three hidden layers of 512
maps it to (mu, log_sigma) of a diagonal Gaussian over z (latent_dim, default 256). Steps
past the end of the window's episode (``mask`` False) are zeroed before the encoder, so
what fills them never reaches the latent.
"""

from __future__ import annotations

import torch
from torch import nn

from warpd_core.models.hypernet import HyperDecoder
from warpd_core.models.normalizer import AffineNormalizer
from warpd_core.models.policy_torch import policy_forward
from warpd_core.models.world_model import mlp
from warpd_core.policy import PolicySpec


class TrajectoryEncoder(nn.Module):
    def __init__(self, length: int, state_dim: int, action_dim: int, hidden: list[int], latent_dim: int):
        super().__init__()
        self.length = int(length)
        self.net = mlp([self.length * (state_dim + action_dim), *hidden, 2 * latent_dim])

    def forward(self, states_n: torch.Tensor, actions_n: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """states_n (B, L, S), actions_n (B, L, A) normalised, mask (B, L) bool or None (all
        real) -> mu, log_sigma (B, latent_dim)."""
        x = torch.cat([states_n, actions_n], dim=-1)
        if mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        x = x.flatten(1)
        mu, log_sigma = self.net(x).chunk(2, dim=-1)
        # bounded so exp(2 log_sigma) stays finite when beta_kl ~ 1e-10 lets sigma drift
        return mu, log_sigma.clamp(-10.0, 4.0)


class PolicyVAE(nn.Module):
    """Encoder + hypernetwork decoder; the parameters optimised by L_BC + L_RO + L_KL."""

    def __init__(self, spec: PolicySpec, trajectory_length: int, latent_dim: int, encoder_hidden: list[int],
                 decoder_layers: tuple[int, ...], bias_init_scale: float = 0.1):
        super().__init__()
        self.spec = spec
        self.trajectory_length = int(trajectory_length)
        self.latent_dim = int(latent_dim)
        self.state_norm = AffineNormalizer(spec.in_dim)
        self.action_norm = AffineNormalizer(spec.out_dim)
        self.encoder = TrajectoryEncoder(trajectory_length, spec.in_dim, spec.out_dim, encoder_hidden, latent_dim)
        self.decoder = HyperDecoder(spec, latent_dim, decoder_layers, bias_init_scale)

    def encode(self, states: torch.Tensor, actions: torch.Tensor,
               mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw states (B, L, S), actions (B, L, A), mask (B, L) -> mu, log_sigma (B, latent_dim)."""
        return self.encoder(self.state_norm.normalize(states), self.action_norm.normalize(actions), mask)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> flat policy weights (B, n_weights), normalised space."""
        return self.decoder(z)

    def act_normalized(self, theta: torch.Tensor, states_n: torch.Tensor) -> torch.Tensor:
        return policy_forward(self.spec, theta, states_n)

    def forward(self, states_n: torch.Tensor, actions_n: torch.Tensor, noise: torch.Tensor,
                mask: torch.Tensor | None = None, policy_states_n: torch.Tensor | None = None):
        """One pass used in training (a single call so DDP sees every parameter).

        states_n (B, L, S), actions_n (B, L, A) normalised; noise (B, latent_dim) ~ N(0, I);
        mask (B, L) bool; policy_states_n (B, L, S): the states the generated policy acts on
        (default ``states_n``; training passes noised ones with ``policy_state_noise``).
        Returns theta (B, n_weights), predicted normalised actions (B, L, A), mu, log_sigma.
        """
        mu, log_sigma = self.encoder(states_n, actions_n, mask)
        z = mu + log_sigma.exp() * noise
        theta = self.decoder(z)
        acting = states_n if policy_states_n is None else policy_states_n
        return theta, policy_forward(self.spec, theta, acting), mu, log_sigma
