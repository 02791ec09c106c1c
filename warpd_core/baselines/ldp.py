"""Latent Diffusion Policy (LDP) baseline: WARPD's VAE + latent diffusion, decoding to an action chunk.

The paper's LDP (section 4.1) keeps WARPD's structure -- a trajectory VAE, then latent diffusion
conditioned on the current state -- but its decoder maps the latent to an *action chunk* with an
MLP 2 x 256 instead of to the weights of a closed-loop policy.

Stage 1 (:class:`LDPTrainer`, ``warpd train ldp``, checkpoint stage ``ldp``):

* encoder: the project's :class:`~warpd_core.models.vae.TrajectoryEncoder` (flattened snippet of
  normalised states and actions -> MLP 3 x 512 -> mu, log_sigma; latent 256), as WARPD's;
* decoder: MLP ``model.decoder_hidden`` (2 x 256 ReLU) mapping ``(z, s_0)`` -> the normalised
  chunk ``(H, A)``, ``s_0`` = the snippet's normalised first state. **Our choice**
  (``model.decoder_state: true``): the paper only says the latent decodes to an action chunk.
  Giving the decoder the state it acts from is the chunk analogue of WARPD's generated policy,
  which sees every state; the latent then has to carry only *how* to move from there, not
  where the agent is. ``decoder_state: false`` decodes from z alone.
* loss: :func:`~warpd_core.train.vae_trainer.vae_losses` without a world model, i.e. the chunk's
  squared error summed over steps and action dimensions (L_BC of eq. 5 with the decoded chunk in
  place of the policy's actions, padding masked) + beta_KL * KL, so beta_KL means what it means
  for WARPD.

Stage 2 is WARPD's latent diffusion, unchanged: ``warpd train diffusion --vae <ldp dir>
--out <ldp dir>/diffusion`` (:class:`~warpd_core.train.diffusion_trainer.DiffusionTrainer`
encodes every snippet with this encoder, posterior mean, and trains the
:class:`~warpd_core.models.denoiser.LatentDenoiser` conditioned on the snippet's first state,
over the whole latent or its top principal-component coordinates, ``latent_pca``).

Evaluation (:class:`LDPMethod`, ``warpd eval pusht --method ldp --model <ldp dir>``): one model
directory holds both stages, stage 2 in its ``diffusion/`` sub-folder. Every H steps a latent is
sampled conditioned on the current state (the diffusion checkpoint's DDIM steps by default),
decoded to a chunk, and its first H actions are executed open loop -- Diffusion Policy's
execution (:class:`~warpd_core.baselines.diffusion_policy.DPMethod`, reused) with a different
sampler.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn

from warpd_core.baselines.diffusion_policy import DPMethod, eval_sampler
from warpd_core.config import ConfigError, DatasetConfig, config_from_dict
from warpd_core.data import EpisodeDataset
from warpd_core.models.denoiser import LatentDenoiser
from warpd_core.models.flops import StepCost, count_flops, count_params, latent_diffusion_flops
from warpd_core.models.normalizer import AffineNormalizer
from warpd_core.models.schedulers import NumpySampler
from warpd_core.models.vae import TrajectoryEncoder
from warpd_core.models.world_model import mlp
from warpd_core.train.base import Trainer
from warpd_core.train.checkpoint import load_checkpoint, load_unique_state_dict, unprefixed
from warpd_core.train.denoiser_checkpoint import load_diffusion
from warpd_core.train.stages import check_stage
from warpd_core.train.vae_trainer import vae_losses

STAGE = "ldp"
DIFFUSION_SUBDIR = "diffusion"  # stage 2 lives in <ldp dir>/diffusion


@dataclass
class LDPModelConfig:
    """Encoder as WARPD's; decoder MLP 2 x 256 to the chunk (paper).

    Attributes:
        latent_dim: latent size (256; stage 2 views it as ``latent_shape``).
        encoder_hidden: the snippet encoder's hidden widths (paper A.8.2: 3 x 512).
        decoder_hidden: the chunk decoder's hidden widths (paper: 2 x 256).
        decoder_state: the decoder also sees the snippet's normalised first state (our choice,
            see the module docstring).
    """

    latent_dim: int = 256
    encoder_hidden: list[int] = field(default_factory=lambda: [512, 512, 512])
    decoder_hidden: list[int] = field(default_factory=lambda: [256, 256])
    decoder_state: bool = True

    def __post_init__(self) -> None:
        if self.latent_dim <= 0:
            raise ConfigError(f"model.latent_dim: expected > 0, got {self.latent_dim}")
        for name in ("encoder_hidden", "decoder_hidden"):
            if any(h <= 0 for h in getattr(self, name)):
                raise ConfigError(f"model.{name}: expected positive widths, got {getattr(self, name)!r}")


@dataclass
class LDPTrainConfig:
    """Stage 1 of the LDP baseline (chunk VAE). Optimiser and beta_KL as WARPD's PushT VAE.

    Attributes:
        dataset: the demonstrations.
        model: encoder / decoder sizes.
        horizon: snippet length = chunk length H = the largest action horizon it can execute.
        snippet_stride: step between snippet starts.
        batch_size, epochs, lr: Adam.
        beta_kl: weight of the KL term (PushT: 1e-10, Table 11).
        grad_clip: optional gradient-norm clip.
        seed, device, checkpoint_every: as for the other trainers.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: LDPModelConfig = field(default_factory=LDPModelConfig)
    horizon: int = 16
    snippet_stride: int = 1
    batch_size: int = 256
    epochs: int = 100
    lr: float = 1e-4
    beta_kl: float = 1e-10
    grad_clip: Optional[float] = None
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        for name in ("horizon", "snippet_stride", "batch_size", "epochs", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected > 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr: expected > 0, got {self.lr}")
        if self.beta_kl < 0:
            raise ConfigError(f"beta_kl: expected >= 0, got {self.beta_kl}")


class ChunkVAE(nn.Module):
    """Snippet encoder + MLP chunk decoder (+ normalisers).

    ``obs_dim``, ``act_dim`` and ``n_obs_steps = 1`` (the condition is the current state) are
    what :class:`DPMethod`'s bookkeeping reads.
    """

    n_obs_steps = 1

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, latent_dim: int, encoder_hidden: list[int],
                 decoder_hidden: list[int], decoder_state: bool = True):
        super().__init__()
        self.obs_dim, self.act_dim, self.horizon = int(obs_dim), int(act_dim), int(horizon)
        self.latent_dim, self.decoder_state = int(latent_dim), bool(decoder_state)
        self.state_norm = AffineNormalizer(obs_dim)
        self.action_norm = AffineNormalizer(act_dim)
        self.encoder = TrajectoryEncoder(horizon, obs_dim, act_dim, encoder_hidden, latent_dim)
        self.decoder = mlp([latent_dim + (obs_dim if decoder_state else 0), *decoder_hidden, horizon * act_dim])

    def encode(self, states: torch.Tensor, actions: torch.Tensor,
               mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw states (B, H, S), actions (B, H, A), mask (B, H) -> mu, log_sigma (B, latent_dim)
        (what stage 2 encodes)."""
        return self.encoder(self.state_norm.normalize(states), self.action_norm.normalize(actions), mask)

    def decode(self, z: torch.Tensor, state_n: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim), normalised current state (B, S) -> normalised chunk (B, H, A)."""
        x = torch.cat([z, state_n], dim=-1) if self.decoder_state else z
        return self.decoder(x).view(z.shape[0], self.horizon, self.act_dim)

    def forward(self, states_n: torch.Tensor, actions_n: torch.Tensor, noise: torch.Tensor,
                mask: torch.Tensor | None = None):
        """Training pass with :meth:`PolicyVAE.forward`'s layout, so ``vae_losses`` applies as is:
        returns (z, chunk_n (B, H, A), mu, log_sigma) -- the first slot, the generated weights
        for WARPD, holds the sampled latent (vae_losses does not read it)."""
        mu, log_sigma = self.encoder(states_n, actions_n, mask)
        z = mu + log_sigma.exp() * noise
        return z, self.decode(z, states_n[:, 0]), mu, log_sigma


def build_chunk_vae(cfg: LDPTrainConfig, obs_dim: int, act_dim: int) -> ChunkVAE:
    m = cfg.model
    return ChunkVAE(obs_dim, act_dim, cfg.horizon, m.latent_dim, m.encoder_hidden, m.decoder_hidden, m.decoder_state)


class LDPTrainer(Trainer):
    """Stage 1: the chunk VAE on every snippet of length ``horizon`` (batch order from the seed)."""

    stage = STAGE

    def __init__(self, cfg: LDPTrainConfig, out_dir: str, dataset: Optional[EpisodeDataset] = None,
                 resume: bool = False, device: Optional[str] = None, show_progress: bool = True):
        super().__init__(cfg, out_dir, device, show_progress)
        self.ds = self.single_process_dataset(dataset)
        self.index = self.ds.snippet_starts(cfg.horizon, cfg.snippet_stride)
        self.model = build_chunk_vae(cfg, self.ds.state_dim, self.ds.action_dim)
        self.model.state_norm.fit(self.ds.states)
        self.model.action_norm.fit(self.ds.actions)
        self.model.to(self.device)
        self.modules = {"ldp": self.model}
        self.optimizers = {"ldp": torch.optim.Adam(self.model.parameters(), lr=cfg.lr)}
        if resume:
            self.load()

    def extra_meta(self) -> dict:
        return {"obs_dim": self.ds.state_dim, "act_dim": self.ds.action_dim, "n_snippets": int(len(self.index)),
                "dataset_source": self.ds.source}

    def run_epoch(self) -> dict:
        cfg, m = self.cfg, self.model
        perm = self.np_rng.permutation(len(self.index))
        starts = range(0, len(perm), cfg.batch_size)
        opt = self.optimizers["ldp"]
        m.train()
        sums = {"l_bc": 0.0, "l_kl": 0.0, "total": 0.0}
        for b0 in self.progress(starts, len(starts), f"ldp epoch {self.epoch + 1}/{cfg.epochs}"):
            g = self.ds.gather_snippets(self.index[perm[b0 : b0 + cfg.batch_size]], cfg.horizon)
            s_n = m.state_norm.normalize(torch.from_numpy(g["states"]).to(self.device))
            a_n = m.action_norm.normalize(torch.from_numpy(g["actions"]).to(self.device))
            noise = torch.randn(s_n.shape[0], cfg.model.latent_dim, generator=self.gen).to(self.device)
            losses = vae_losses(m, None, s_n, a_n, torch.from_numpy(g["mask"]).to(self.device), noise,
                                cfg.beta_kl, use_ro=False)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.grad_clip)
            opt.step()
            self.step += 1
            for k in sums:
                sums[k] += float(losses[k].detach())
        return {k: v / max(1, len(starts)) for k, v in sums.items()}


def load_ldp(directory: str, name: str = "last") -> tuple[ChunkVAE, LDPTrainConfig, dict]:
    """Rebuild the stage-1 chunk VAE from ``<directory>/<name>.{json,safetensors}``."""
    tensors, meta = load_checkpoint(directory, name)
    path = os.path.join(os.fspath(directory), f"{name}.json")
    check_stage(meta, path, STAGE)
    cfg = config_from_dict(LDPTrainConfig, meta["config"], path)
    model = build_chunk_vae(cfg, int(meta["obs_dim"]), int(meta["act_dim"]))
    load_unique_state_dict(model, unprefixed("model.ldp", tensors), path)
    return model.eval(), cfg, meta


def stage1_latent_dim(denoiser: LatentDenoiser) -> int:
    """The stage-1 latent size a denoiser's samples decode from (its PCA source when it diffuses
    principal-component coordinates, ``denoiser.projection``)."""
    return denoiser.projection.mean.numel() if denoiser.projection is not None else denoiser.latent_dim


def decode_sample(vae: ChunkVAE, denoiser: LatentDenoiser, x_n: torch.Tensor, state_n: torch.Tensor) -> torch.Tensor:
    """A diffusion sample (B, latent) in the denoiser's normalised units -> normalised chunk (B, H, A):
    un-normalise, lift principal-component coordinates back to the stage-1 latent when the
    denoiser has a projection, decode with the current state."""
    z = denoiser.latent_norm.unnormalize(x_n)
    if denoiser.projection is not None:
        z = denoiser.projection.lift(z)
    return vae.decode(z, state_n)


def ldp_step_cost(vae: ChunkVAE, denoiser: LatentDenoiser, steps: int, horizon: int) -> StepCost:
    """One generation = ``steps`` denoiser forwards + one :func:`decode_sample` (PCA lift, when
    present, and chunk decode); nothing per step."""
    decode = count_flops(lambda x, s: decode_sample(vae, denoiser, x, s), torch.zeros(1, denoiser.latent_dim),
                         torch.zeros(1, vae.obs_dim))
    return StepCost(latent_diffusion_flops(denoiser, steps) + decode, 0, horizon, 0,
                    count_params(denoiser, vae.decoder))


class LDPMethod(DPMethod):
    """LDP as a harness :class:`~warpd_core.eval.harness.Method`: DPMethod's open-loop chunk
    execution (replan at steps 0, H, 2H, ...; per-env noise streams; actions clipped to
    ``[low, high]``) with a latent-diffusion sampler.

    Args:
        vae: trained :class:`ChunkVAE` (stage 1), eval mode.
        denoiser: trained :class:`LatentDenoiser` (stage 2, EMA weights), conditioned on the state
            (or unconditional).
        sampler: numpy DDIM/DDPM sampler of stage 2's schedule.
        kwargs: DPMethod's ``low`` / ``high`` (required).
    """

    def __init__(self, vae: ChunkVAE, denoiser: LatentDenoiser, sampler: NumpySampler, name: str = "ldp", **kwargs):
        if denoiser.uses_task:
            raise ValueError("ldp: the diffusion model is task conditioned; PushT LDP conditions on the state only")
        if (stage1_latent_dim(denoiser), denoiser.state_dim) != (vae.latent_dim, vae.obs_dim):
            raise ValueError(f"ldp: diffusion latent_dim/state_dim {stage1_latent_dim(denoiser)}/{denoiser.state_dim} "
                             f"do not match stage 1's {vae.latent_dim}/{vae.obs_dim}")
        super().__init__(vae, vae.horizon, vae.horizon, sampler, name=name, **kwargs)
        self.denoiser = denoiser.eval()

    @classmethod
    def from_checkpoint(cls, directory: str, sampler: Optional[str] = None, steps: Optional[int] = None,
                        **kwargs) -> "LDPMethod":
        """Stage 1 from ``directory``, stage 2 from ``directory/diffusion``."""
        vae, _, _ = load_ldp(directory)
        denoiser, dcfg, _ = load_diffusion(os.path.join(os.fspath(directory), DIFFUSION_SUBDIR))
        return cls(vae, denoiser, eval_sampler(dcfg, sampler, steps), **kwargs)

    @torch.inference_mode()
    def sample(self, rows: np.ndarray) -> np.ndarray:
        """Chunks (len(rows), H, A) in raw action units, conditioned on each env's current state."""
        vae, den = self.model, self.denoiser
        state_n = vae.state_norm.normalize(torch.from_numpy(self._hist[rows, -1]))
        cond = state_n if den.uses_state else None
        x = self.denoise(rows, den.latent_shape, lambda x, t: den(x, t, cond))
        chunk_n = decode_sample(vae, den, torch.from_numpy(x).reshape(len(rows), -1), state_n)
        return vae.action_norm.unnormalize(chunk_n).numpy().astype(np.float64)

    def cost(self, horizon: int) -> StepCost:
        return ldp_step_cost(self.model, self.denoiser, self.sampler.steps, horizon)
