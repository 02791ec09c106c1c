"""Stage 1: VAE (encoder + hypernetwork decoder) and Gaussian world model, paper eq. (5).

Training windows (:meth:`EpisodeDataset.trajectory_windows`): a window starts at every
``snippet_stride``-th step of an episode and covers ``trajectory_length`` steps (paper Table
11: 256 for PushT) or what remains of its episode; steps past the episode end are masked
(m_t = 0) -- they add nothing to any loss and are zeroed before the encoder. The action
horizon (how often the runtime regenerates) is a separate setting, ``horizon``, that only
goes into the export bundle as the default.

Losses, per window of length L (normalised states s, actions a, mask m), summed over time
and dimensions as eq. (5) writes them, averaged over the batch:

* L_BC = sum_t m_t ||a_t - pi_theta(s_t)||^2
* L_RO = sum_{t>=2} m_t KL( WM(s_{t-1}, pi_theta(s_{t-1})) || WM(s_{t-1}, a_{t-1}) ) -- closed-form
  Gaussian KL. The world model's *parameters* are detached here (it is a fixed critic for this
  term), but the gradient flows through its input action pi_theta(s_{t-1}) into the decoder
  and encoder. On from epoch ``ro_warmup_epochs`` (paper: 10).
* L_TF = sum_{t>=2} m_t NLL(s_t | WM(s_{t-1}, a_{t-1})) -- world model only. The paper writes a
  squared error; we default to the Gaussian negative log-likelihood because L_RO needs a
  variance, and the NLL is the squared error weighted by a learned variance.
  ``tf_loss: mse`` trains the mean only with the variance fixed to 1 (then L_RO becomes half a
  squared error between the two predicted means).
* L_KL = beta * sum_i (sigma_i^2 + mu_i^2 - 1 - log sigma_i^2)  (as written in eq. 5).

Two optimisers: Adam on the VAE (L_BC + L_RO + L_KL) and Adam on the world model (L_TF); the
two graphs share no parameters, so one backward of the sum gives each its own gradients.
``use_world_model: false`` is the "w/o WM" ablation (L_BC + L_KL, no world model at all).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from warpd_core.config import DECODER_SIZES, VAETrainConfig, config_from_dict
from warpd_core.data import EpisodeDataset
from warpd_core.models.vae import PolicyVAE
from warpd_core.models.world_model import GaussianWorldModel, gaussian_kl
from warpd_core.policy import PolicySpec
from warpd_core.train.base import Trainer
from warpd_core.train.checkpoint import load_checkpoint, load_unique_state_dict, unprefixed
from warpd_core.train.common import unwrap
from warpd_core.train.data import build_dataset
from warpd_core.train.stages import check_stage


def build_models(cfg: VAETrainConfig, spec: PolicySpec) -> tuple[PolicyVAE, GaussianWorldModel | None]:
    vae = PolicyVAE(spec, cfg.trajectory_length, cfg.model.latent_dim, cfg.model.encoder_hidden,
                    DECODER_SIZES[cfg.model.decoder_size], cfg.model.bias_init_scale)
    wm = None
    if cfg.use_world_model:
        wm = GaussianWorldModel(spec.in_dim, spec.out_dim, cfg.model.world_model_hidden, cfg.model.world_model_history,
                                min_logvar=cfg.model.world_model_min_logvar)
    return vae, wm


# -- losses ---------------------------------------------------------------------------------
def wm_windows(s_n: torch.Tensor, a_n: torch.Tensor, history: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of the world model for every target s_t, t = 1..H-1.

    s_n (B, H, S), a_n (B, H, A) -> (B, H-1, h, S), (B, H-1, h, A): the h pairs ending at t-1,
    oldest first, repeating the snippet's first pair where the history reaches before it.
    """
    H = s_n.shape[1]
    idx = torch.arange(H - 1, device=s_n.device)[:, None] - (history - 1) + torch.arange(history, device=s_n.device)[None, :]
    idx = idx.clamp_min(0)  # (H-1, h)
    return s_n[:, idx], a_n[:, idx]


def teacher_forcing_loss(wm: nn.Module, hs: torch.Tensor, ha: torch.Tensor, target: torch.Tensor,
                         valid: torch.Tensor, kind: str = "nll") -> tuple[torch.Tensor, torch.Tensor]:
    """L_TF and the mean absolute one-step error of the predicted mean (a metric).

    hs (B, H-1, h, S), ha (B, H-1, h, A), target (B, H-1, S), valid (B, H-1) 0/1. The world
    model runs on the valid transitions only (packed): at trajectory length 256 most of a
    window past its episode's end is masked, and skipping it is most of the step time."""
    keep = valid > 0
    mean, logvar = wm(hs[keep], ha[keep])  # (K, S), K valid transitions
    err = target[keep] - mean
    if kind == "nll":
        per = 0.5 * (logvar + err**2 * torch.exp(-logvar)).sum(-1)
    else:
        per = (err**2).sum(-1)
    loss = per.sum() / valid.shape[0]  # summed over time, averaged over the batch
    mae = err.abs().mean(-1).sum() / keep.sum().clamp_min(1)
    return loss, mae.detach()


def rollout_loss(wm: nn.Module, hs: torch.Tensor, ha: torch.Tensor, a_pi: torch.Tensor,
                 valid: torch.Tensor, kind: str = "nll") -> torch.Tensor:
    """L_RO: KL( WM(s_{t-1}, pi(s_{t-1})) || WM(s_{t-1}, a_{t-1}) ) summed over t, batch mean.

    ``a_pi`` (B, H-1, A) is the generated policy's action at s_{t-1}; it replaces the newest
    action of each history window. The world model runs with detached parameters: no gradient
    reaches it, but one flows through ``a_pi``. Valid transitions only, as in
    :func:`teacher_forcing_loss`.
    """
    keep = valid > 0
    hs, ha, a_pi = hs[keep], ha[keep], a_pi[keep]
    raw = unwrap(wm)
    frozen = {name: p.detach() for name, p in raw.named_parameters()}
    ha_pi = torch.cat([ha[..., :-1, :], a_pi.unsqueeze(-2)], dim=-2)
    mean_p, logvar_p = functional_call(raw, frozen, (hs, ha_pi))
    with torch.no_grad():
        mean_q, logvar_q = functional_call(raw, frozen, (hs, ha))
    if kind == "mse":  # unit variance: KL = 0.5 ||mu_p - mu_q||^2
        logvar_p = torch.zeros_like(mean_p)
        logvar_q = torch.zeros_like(mean_q)
    kl = gaussian_kl(mean_p, logvar_p, mean_q, logvar_q)  # (K,)
    return kl.sum() / valid.shape[0]


def vae_losses(vae: nn.Module, wm: nn.Module | None, s_n: torch.Tensor, a_n: torch.Tensor, mask: torch.Tensor,
               noise: torch.Tensor, beta_kl: float, use_ro: bool, tf_loss: str = "nll",
               history: int = 1, policy_states_n: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All terms of eq. (5) for one batch of normalised windows. Returns a dict of scalars
    (``l_bc, l_kl, l_ro, l_tf, wm_mae``); ``total`` is their sum (what backward runs on).
    Masked steps (``mask`` False) change none of them. ``policy_states_n``: the states the
    generated policy acts on (default ``s_n``; noised ones with ``policy_state_noise``)."""
    m = mask.float()
    extra = () if policy_states_n is None else (policy_states_n,)  # LDP's ChunkVAE takes no policy states
    theta, a_pred, mu, log_sigma = vae(s_n, a_n, noise, mask, *extra)
    l_bc = (((a_pred - a_n) ** 2).sum(-1) * m).sum(1).mean()
    l_kl = beta_kl * (torch.exp(2 * log_sigma) + mu**2 - 1.0 - 2 * log_sigma).sum(-1).mean()
    zero = torch.zeros((), device=s_n.device)
    out = {"l_bc": l_bc, "l_kl": l_kl, "l_ro": zero, "l_tf": zero, "wm_mae": zero}
    if wm is not None:
        hs, ha = wm_windows(s_n, a_n, history)
        valid = m[:, 1:]
        out["l_tf"], out["wm_mae"] = teacher_forcing_loss(wm, hs, ha, s_n[:, 1:], valid, tf_loss)
        if use_ro:
            out["l_ro"] = rollout_loss(wm, hs, ha, a_pred[:, :-1], valid, tf_loss)
    out["total"] = out["l_bc"] + out["l_kl"] + out["l_ro"] + out["l_tf"]
    return out


# -- trainer ----------------------------------------------------------------------------------
class VAETrainer(Trainer):
    stage = "vae"

    def __init__(self, cfg: VAETrainConfig, out_dir: str, dataset: EpisodeDataset | None = None,
                 resume: bool = False, device: str | None = None, show_progress: bool = True):
        super().__init__(cfg, out_dir, device, show_progress)
        self.ds = dataset if dataset is not None else build_dataset(cfg.dataset)
        self.index = self.ds.trajectory_windows(cfg.trajectory_length, cfg.snippet_stride)
        self.spec = PolicySpec(self.ds.state_dim, tuple(cfg.policy.hidden), self.ds.action_dim, cfg.policy.activation)
        vae, wm = build_models(cfg, self.spec)
        vae.state_norm.fit(self.ds.states)
        vae.action_norm.fit(self.ds.actions)
        self.vae, self.wm = vae.to(self.device), (wm.to(self.device) if wm is not None else None)
        self.modules = {"vae": self.vae}
        self.optimizers = {"vae": torch.optim.Adam(self.vae.parameters(), lr=cfg.lr)}
        if self.wm is not None:
            self.modules["wm"] = self.wm
            self.optimizers["wm"] = torch.optim.Adam(self.wm.parameters(), lr=cfg.world_model_lr)
        if resume:
            self.load()
        self.vae_run, self.wm_run = self.vae, self.wm
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.vae_run = DDP(self.vae, device_ids=ids)
            if self.wm is not None:
                self.wm_run = DDP(self.wm, device_ids=ids)

    def extra_meta(self) -> dict:
        return {"policy_spec": self.spec.to_dict(), "state_dim": self.ds.state_dim,
                "action_dim": self.ds.action_dim, "n_windows": int(len(self.index)),
                "dataset_source": self.ds.source}

    def batch_tensors(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self.ds.gather_snippets(self.index[rows], self.cfg.trajectory_length)
        s = torch.from_numpy(b["states"]).to(self.device)
        a = torch.from_numpy(b["actions"]).to(self.device)
        return self.vae.state_norm.normalize(s), self.vae.action_norm.normalize(a), torch.from_numpy(b["mask"]).to(self.device)

    def run_epoch(self) -> dict:
        cfg = self.cfg
        use_ro = self.wm is not None and self.epoch >= cfg.ro_warmup_epochs
        perm = self.np_rng.permutation(len(self.index))
        if self.dist.enabled:  # equal shares so every rank runs the same number of steps
            perm = perm[: len(perm) // self.dist.world_size * self.dist.world_size][self.dist.rank :: self.dist.world_size]
        starts = range(0, len(perm), cfg.batch_size)
        sums: dict[str, float] = {}
        self.vae.train()
        for b0 in self.progress(starts, len(starts), f"vae epoch {self.epoch + 1}/{cfg.epochs}"):
            s_n, a_n, mask = self.batch_tensors(perm[b0 : b0 + cfg.batch_size])
            noise = torch.randn(s_n.shape[0], cfg.model.latent_dim, generator=self.gen).to(self.device)
            acting = None
            if cfg.policy_state_noise > 0:  # drawn only when on, so runs without it keep their stream
                eps = torch.randn(s_n.shape, generator=self.gen, dtype=s_n.dtype).to(self.device)
                acting = s_n + cfg.policy_state_noise * eps
            losses = vae_losses(self.vae_run, self.wm_run, s_n, a_n, mask, noise, cfg.beta_kl, use_ro,
                                cfg.tf_loss, cfg.model.world_model_history, acting)
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            if cfg.grad_clip:
                for module in self.modules.values():
                    torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            for opt in self.optimizers.values():
                opt.step()
            self.step += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        n = max(1, len(starts))
        return {k: v / n for k, v in sums.items()} | {"ro_on": int(use_ro)}


# -- loading a trained VAE --------------------------------------------------------------------
def load_vae(directory: str, name: str = "last") -> tuple[PolicyVAE, GaussianWorldModel | None, VAETrainConfig, dict]:
    """Rebuild the VAE (and world model) from ``<directory>/<name>.{json,safetensors}``."""
    tensors, meta = load_checkpoint(directory, name)
    path = os.path.join(os.fspath(directory), f"{name}.json")
    check_stage(meta, path, "vae")
    cfg = config_from_dict(VAETrainConfig, meta["config"], path)
    spec = PolicySpec.from_dict(meta["policy_spec"])
    vae, wm = build_models(cfg, spec)
    load_unique_state_dict(vae, unprefixed("model.vae", tensors), path)
    if wm is not None:
        load_unique_state_dict(wm, unprefixed("model.wm", tensors), path)
    return vae.eval(), (wm.eval() if wm is not None else None), cfg, meta
