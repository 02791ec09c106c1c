"""Diffusion Policy baseline (Chi et al. 2023), state-based: ConditionalUnet1D over an action chunk.

Model: the project's :class:`~warpd_core.models.unet1d.ConditionalUnet1D` (Table 6 sizes, the
same class and size WARPD's latent denoiser uses) denoises an action chunk ``(T, A)``
conditioned on the last ``n_obs_steps`` observations (global condition, flattened).
``T`` is the action horizon ``horizon`` rounded up to a multiple of ``2^(len(down_dims)-1)``
(the UNet halves T at every down level); the extra steps are trained on the edge-padded
continuation and never executed.

Training pairs: for every step ``t`` of every episode, observations ``s_{t-n_obs+1..t}``
(repeating the episode's first state before its start) and actions ``a_{t..t+T-1}``
(repeating its last action after its end) -- the edge padding of Diffusion Policy's sequence
sampler. Our choice: the chunk starts at the current step (DP's reference also predicts the
``n_obs-1`` past actions and drops them; they are never executed). Both are min-max
normalised to [-1, 1] (buffers in the model). Epsilon-prediction MSE with
``diffusers.DDPMScheduler``, AdamW + warm-up/cosine LR, EMA weights for sampling: the latent
diffusion's recipe (:mod:`warpd_core.train.noise_prediction`), shared.

Evaluation (:class:`DPMethod`): every ``horizon`` steps a chunk is sampled (numpy DDIM/DDPM,
:class:`~warpd_core.models.schedulers.NumpySampler`, batched over the envs that are due) and
its first ``horizon`` actions are executed open loop.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from warpd_core.baselines.task_input import with_task_onehot
from warpd_core.config import UNET_SIZES, ConfigError, DatasetConfig, config_from_dict
from warpd_core.data import EpisodeDataset
from warpd_core.models.flops import StepCost, count_flops, count_params
from warpd_core.models.normalizer import AffineNormalizer
from warpd_core.models.schedulers import NumpySampler
from warpd_core.models.unet1d import ConditionalUnet1D
from warpd_core.train.base import Trainer
from warpd_core.train.checkpoint import load_checkpoint, load_unique_state_dict, unprefixed
from warpd_core.train.ema import EMA
from warpd_core.train.noise_prediction import make_noise_scheduler, noise_prediction_epoch
from warpd_core.train.stages import check_stage

STAGE = "dp"


def padded_chunk(horizon: int, unet_size: str) -> int:
    """Smallest multiple of ``2^(levels)`` >= ``horizon`` (levels = len(down_dims) - 1)."""
    m = 2 ** (len(UNET_SIZES[unet_size][1]) - 1)
    return int(math.ceil(horizon / m) * m)


@dataclass
class DPTrainConfig:
    """Diffusion Policy on low-dim states.

    Attributes:
        dataset: the demonstrations.
        unet_size: Table 6 size (xs, s, m, l, xl); the paper compares at WARPD's UNet size.
        horizon: action horizon = chunk length executed open loop (paper: action chunk = horizon).
        n_obs_steps: observations in the condition (DP's PushT setting: 2).
        kernel_size, n_groups: UNet convolution kernel and GroupNorm groups.
        num_train_timesteps, beta_schedule: DDPM noise schedule.
        sampler, sampler_steps: default sampler at evaluation (ddim 10 or ddpm 100).
        batch_size, epochs, lr, weight_decay, lr_warmup_steps: AdamW with warm-up + cosine decay.
        ema_power, ema_max_decay: EMA of the weights (used for sampling).
        seed, device, checkpoint_every: as for the other trainers.
        task_input: ``onehot`` appends the episode's task id as a one-hot to every
            observation (so it enters the global condition; see
            :mod:`warpd_core.baselines.task_input`); ``none`` (default) uses the state only.
        n_tasks: one-hot width (0: max task id + 1 of the dataset).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    unet_size: Literal["xs", "s", "m", "l", "xl"] = "s"
    horizon: int = 16
    n_obs_steps: int = 2
    kernel_size: int = 5
    n_groups: int = 8
    num_train_timesteps: int = 100
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"
    sampler: Literal["ddpm", "ddim"] = "ddim"
    sampler_steps: int = 10
    batch_size: int = 256
    epochs: int = 100
    lr: float = 1e-4
    weight_decay: float = 1e-6
    lr_warmup_steps: int = 500
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 1
    task_input: Literal["none", "onehot"] = "none"
    n_tasks: int = 0

    def __post_init__(self) -> None:
        for name in ("horizon", "n_obs_steps", "batch_size", "epochs", "num_train_timesteps", "sampler_steps",
                     "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected > 0, got {getattr(self, name)}")
        if self.sampler_steps > self.num_train_timesteps:
            raise ConfigError(f"sampler_steps: expected <= num_train_timesteps ({self.num_train_timesteps}), "
                              f"got {self.sampler_steps}")
        if self.lr <= 0:
            raise ConfigError(f"lr: expected > 0, got {self.lr}")

    @property
    def chunk_len(self) -> int:
        return padded_chunk(self.horizon, self.unet_size)


class DPNet(nn.Module):
    """UNet + normalisers. ``forward(chunk_n (B, T, A), t (B,), obs_n (B, n_obs, S)) -> eps (B, T, A)``."""

    def __init__(self, obs_dim: int, act_dim: int, n_obs_steps: int, unet_size: str = "s",
                 kernel_size: int = 5, n_groups: int = 8):
        super().__init__()
        self.obs_dim, self.act_dim, self.n_obs_steps = int(obs_dim), int(act_dim), int(n_obs_steps)
        step_dim, down_dims = UNET_SIZES[unet_size]
        self.unet = ConditionalUnet1D(act_dim, obs_dim * n_obs_steps, step_dim, down_dims, kernel_size, n_groups)
        self.obs_norm = AffineNormalizer(obs_dim)
        self.act_norm = AffineNormalizer(act_dim)

    def forward(self, chunk_n: torch.Tensor, timestep: torch.Tensor, obs_n: torch.Tensor) -> torch.Tensor:
        return self.unet(chunk_n, timestep, obs_n.flatten(1))


def build_net(cfg: DPTrainConfig, obs_dim: int, act_dim: int) -> DPNet:
    return DPNet(obs_dim, act_dim, cfg.n_obs_steps, cfg.unet_size, cfg.kernel_size, cfg.n_groups)


def chunk_indices(ds: EpisodeDataset, n_obs_steps: int, chunk_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of every training pair: obs (N, n_obs) ending at t, actions (N, T) from t,
    clamped to t's episode (edge padding at both ends)."""
    t = np.arange(ds.n_steps, dtype=np.int64)
    ep = np.searchsorted(ds.episode_ends, t, side="right")
    start, end = ds.episode_starts[ep], ds.episode_ends[ep]
    obs_idx = np.maximum(t[:, None] + np.arange(-n_obs_steps + 1, 1)[None, :], start[:, None])
    act_idx = np.minimum(t[:, None] + np.arange(chunk_len)[None, :], end[:, None] - 1)
    return obs_idx, act_idx


class DPTrainer(Trainer):
    stage = STAGE

    def __init__(self, cfg: DPTrainConfig, out_dir: str, dataset: Optional[EpisodeDataset] = None,
                 resume: bool = False, device: Optional[str] = None, show_progress: bool = True):
        super().__init__(cfg, out_dir, device, show_progress)
        self.ds = self.single_process_dataset(dataset)
        self.n_tasks = 0
        if cfg.task_input == "onehot":  # observations become [state, onehot(task)]
            self.ds, self.n_tasks = with_task_onehot(self.ds, cfg.n_tasks)
        self.obs_idx, self.act_idx = (torch.from_numpy(a) for a in chunk_indices(self.ds, cfg.n_obs_steps, cfg.chunk_len))
        self.states, self.actions = torch.from_numpy(self.ds.states), torch.from_numpy(self.ds.actions)
        torch.manual_seed(cfg.seed)
        self.model = build_net(cfg, self.ds.state_dim, self.ds.action_dim)
        self.model.obs_norm.fit(self.ds.states)
        self.model.act_norm.fit(self.ds.actions)
        self.model.to(self.device)
        self.ema = EMA(self.model, cfg.ema_power, cfg.ema_max_decay)
        self.scheduler = make_noise_scheduler(cfg)
        self.modules = {"dp": self.model, "ema": self.ema.model}
        self.optimizers = {"dp": torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}
        self.steps_per_epoch = math.ceil(self.ds.n_steps / cfg.batch_size)
        if resume:
            self.load()
            self.ema.optimization_step = self.step

    def extra_meta(self) -> dict:
        return {"obs_dim": self.ds.state_dim, "act_dim": self.ds.action_dim, "chunk_len": self.cfg.chunk_len,
                "n_pairs": int(self.ds.n_steps), "dataset_source": self.ds.source,
                "task_input": self.cfg.task_input, "n_tasks": self.n_tasks}

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        m = self.model
        obs_n = m.obs_norm.normalize(self.states[self.obs_idx[rows]].to(self.device))  # (B, n_obs, S)
        x0 = m.act_norm.normalize(self.actions[self.act_idx[rows]].to(self.device))  # (B, T, A)
        noise = torch.randn(x0.shape, generator=self.gen).to(self.device)
        t = torch.randint(0, self.cfg.num_train_timesteps, (x0.shape[0],), generator=self.gen).to(self.device)
        return F.mse_loss(m(self.scheduler.add_noise(x0, noise, t), t, obs_n), noise)

    def run_epoch(self) -> dict:
        perm = torch.from_numpy(self.np_rng.permutation(self.ds.n_steps))
        return noise_prediction_epoch(self, self.optimizers["dp"], perm, "dp")


def load_dp(directory: str, name: str = "last", ema: bool = True) -> tuple[DPNet, DPTrainConfig, dict]:
    """Rebuild the DP network (EMA weights by default) from ``<directory>/<name>.{json,safetensors}``."""
    tensors, meta = load_checkpoint(directory, name)
    path = os.path.join(os.fspath(directory), f"{name}.json")
    check_stage(meta, path, STAGE)
    cfg = config_from_dict(DPTrainConfig, meta["config"], path)
    model = build_net(cfg, int(meta["obs_dim"]), int(meta["act_dim"]))
    load_unique_state_dict(model, unprefixed("model.ema" if ema else "model.dp", tensors), path)
    return model.eval(), cfg, meta


def eval_sampler(cfg, kind: Optional[str] = None, steps: Optional[int] = None) -> NumpySampler:
    """The numpy sampler of a trained diffusion config (``num_train_timesteps``, ``beta_schedule``,
    ``sampler``, ``sampler_steps``; DP's and the latent diffusion's): ``kind`` / ``steps`` override
    the config's. Without ``steps``: the config's steps for its own sampler or DDIM; DDPM
    otherwise runs every training timestep."""
    kind = kind or cfg.sampler
    if steps is None:
        steps = cfg.sampler_steps if kind == cfg.sampler or kind == "ddim" else cfg.num_train_timesteps
    return NumpySampler(cfg.num_train_timesteps, cfg.beta_schedule, kind, int(steps))


def dp_step_cost(model: DPNet, chunk_len: int, steps: int, horizon: int) -> StepCost:
    """One generation = ``steps`` UNet forwards over the (chunk_len, A) chunk; nothing per step."""
    x = torch.zeros(1, chunk_len, model.act_dim)
    t = torch.full((1,), 10.0)
    obs = torch.zeros(1, model.n_obs_steps, model.obs_dim)
    return StepCost(count_flops(model, x, t, obs) * int(steps), 0, horizon, 0, count_params(model.unet))


class DPMethod:
    """Diffusion Policy as a harness :class:`~warpd_core.eval.harness.Method`.

    Every episode replans at steps 0, H, 2H, ... (H = the evaluation horizon, at most the
    trained chunk length) and executes the chunk's first H actions open loop. Each env draws
    its diffusion noise from its own ``numpy.random.Generator`` seeded from
    ``(seed, env index)``, so an episode's actions do not depend on which other episodes are
    still running. Actions are clipped to ``[low, high]``.

    Args:
        model: trained :class:`DPNet` (EMA weights), eval mode.
        chunk_len: the trained chunk length T (``DPTrainConfig.chunk_len``).
        max_horizon: the largest horizon allowed (the trained ``horizon``).
        sampler: numpy DDIM/DDPM sampler.
        low, high: the task's action limits, as its controller clamps (required: a checkpoint
            does not know them).
    """

    def __init__(self, model: DPNet, chunk_len: int, max_horizon: int, sampler: NumpySampler, name: str = "dp", *,
                 low: float, high: float):
        self.name = name
        self.model = model.eval()
        self.chunk_len, self.max_horizon = int(chunk_len), int(max_horizon)
        self.sampler = sampler
        self.low, self.high = float(low), float(high)
        self.generate_seconds = 0.0

    @classmethod
    def from_checkpoint(cls, directory: str, sampler: Optional[str] = None, steps: Optional[int] = None,
                        **kwargs) -> "DPMethod":
        """``kwargs``: ``name``, and the required ``low`` / ``high``."""
        model, cfg, meta = load_dp(directory)
        return cls(model, int(meta["chunk_len"]), cfg.horizon, eval_sampler(cfg, sampler, steps), **kwargs)

    def reset(self, n_envs: int, horizon: int, seed: int) -> None:
        if not 1 <= int(horizon) <= self.max_horizon:
            raise ValueError(f"dp: horizon {horizon} outside 1..{self.max_horizon} (the trained action chunk)")
        n, m = int(n_envs), self.model
        self.horizon = int(horizon)
        self._rngs = [np.random.default_rng(np.random.SeedSequence([int(seed), i])) for i in range(n)]
        self._hist = np.zeros((n, m.n_obs_steps, m.obs_dim), np.float32)  # raw observations, oldest first
        self._plan = np.zeros((n, self.chunk_len, m.act_dim), np.float64)  # raw actions
        self._calls = np.zeros(n, np.int64)

    def act(self, obs: np.ndarray, steps: np.ndarray, active: np.ndarray) -> np.ndarray:
        """obs (B, S) raw, steps (B,), active (B,) -> actions (B, A) float64 in [low, high]."""
        obs = np.asarray(obs, dtype=np.float32)
        idx = np.flatnonzero(active)
        for i in idx:
            if steps[i] == 0:
                self._hist[i] = obs[i]  # no history yet: repeat the first observation
            else:
                self._hist[i, :-1] = self._hist[i, 1:]
                self._hist[i, -1] = obs[i]
        due = np.array([i for i in idx if steps[i] % self.horizon == 0], np.int64)
        if len(due):
            t0 = time.perf_counter()
            self._plan[due] = self.sample(due)
            self.generate_seconds += time.perf_counter() - t0
            self._calls[due] += 1
        out = np.zeros((obs.shape[0], self.model.act_dim), np.float64)
        out[idx] = self._plan[idx, np.asarray(steps)[idx] % self.horizon]
        return np.clip(out, self.low, self.high)

    @torch.inference_mode()
    def sample(self, rows: np.ndarray) -> np.ndarray:
        """Chunks (len(rows), T, A) in raw action units for the envs ``rows`` (their histories)."""
        m = self.model
        obs_n = m.obs_norm.normalize(torch.from_numpy(self._hist[rows]))
        x = self.denoise(rows, (self.chunk_len, m.act_dim), lambda x, t: m(x, t, obs_n))
        return m.act_norm.unnormalize(torch.from_numpy(x)).numpy().astype(np.float64)

    def denoise(self, rows: np.ndarray, shape: tuple[int, ...], eps_fn) -> np.ndarray:
        """Reverse diffusion for the envs ``rows``, each drawing x_T (and DDPM's noise) from its own
        stream: ``eps_fn(x (B, *shape), t (B,))`` -> eps, torch tensors. Returns x_0 (B, *shape)."""
        smp = self.sampler
        x = np.stack([self._rngs[i].standard_normal(shape).astype(np.float32) for i in rows])
        for t in smp.timesteps:
            eps = eps_fn(torch.from_numpy(x), torch.full((len(rows),), float(t))).numpy()
            noise = None
            if smp.kind == "ddpm" and t > 0:
                noise = np.stack([self._rngs[i].standard_normal(shape).astype(np.float32) for i in rows])
            x = smp.step(eps, int(t), x, None, noise=noise)
        return x

    def episode_stats(self) -> dict[str, np.ndarray]:
        return {"generation_calls": self._calls.copy()}

    def cost(self, horizon: int) -> StepCost:
        return dp_step_cost(self.model, self.chunk_len, self.sampler.steps, horizon)
