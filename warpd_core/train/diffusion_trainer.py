"""Stage 2: latent diffusion over the trained VAE's latents.

Training data: every stage-1 window of the dataset (a window starting at every
``window_stride``-th step, default the VAE's stride) is encoded once with the frozen VAE
encoder; the target latent is the posterior mean ``mu`` (with beta_KL ~ 1e-10 the posterior
is nearly a point, and mu is what decodes to the window's policy -- our choice). Condition:
the window's first state, normalised with the VAE's state normaliser, and/or its task id.
Latents are min-max normalised to [-1, 1] per dimension (stored in the denoiser) and viewed
as (T, C) = ``latent_shape``. Epsilon-prediction MSE with ``diffusers.DDPMScheduler``
(100 steps, squaredcos_cap_v2), AdamW with linear warm-up then cosine decay (Diffusion
Policy's recipe), EMA of the weights (power 0.75) used for sampling and export: the recipe of
:mod:`warpd_core.train.noise_prediction`. :mod:`warpd_core.train.denoiser_checkpoint` rebuilds
the trained denoiser.
The same stage trains the LDP baseline's latent diffusion: ``--vae`` may name a ``warpd train
ldp`` checkpoint (:func:`load_encoder`).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from warpd_core.baselines.ldp import load_ldp
from warpd_core.config import DiffusionTrainConfig
from warpd_core.data import EpisodeDataset
from warpd_core.train.base import Trainer
from warpd_core.train.data import build_dataset
from warpd_core.train.denoiser_checkpoint import build_denoiser
from warpd_core.train.ema import EMA
from warpd_core.train.noise_prediction import make_noise_scheduler, noise_prediction_epoch
from warpd_core.train.stages import ENCODER_STAGES, model_kind
from warpd_core.train.vae_trainer import load_vae


@torch.no_grad()
def encode_dataset(vae, ds: EpisodeDataset, index: np.ndarray, length: int, batch: int = 1024) -> dict[str, np.ndarray]:
    """mu (K, latent_dim), normalised first states (K, S), task ids (K,) for every window
    ``index`` (rows ``(start, episode)``) of ``length`` steps."""
    mus, conds, tasks = [], [], []
    for b0 in range(0, len(index), batch):
        g = ds.gather_snippets(index[b0 : b0 + batch], length)
        s, a = torch.from_numpy(g["states"]), torch.from_numpy(g["actions"])
        mu, _ = vae.encode(s, a, torch.from_numpy(g["mask"]))
        mus.append(mu.numpy())
        conds.append(vae.state_norm.normalize(s[:, 0]).numpy())
        tasks.append(g["task_ids"])
    return {"latents": np.concatenate(mus), "states_n": np.concatenate(conds), "task_ids": np.concatenate(tasks)}


def load_encoder(vae_dir: str):
    """The stage-1 model whose encoder gives the latents, and its config (window length,
    ``snippet_stride``, ``dataset``: see :func:`stage1_windows`): WARPD's VAE, or the LDP baseline's chunk VAE when
    ``<vae_dir>/last.json`` says stage ``ldp`` (warpd_core.baselines.ldp; same ``encode`` and
    ``state_norm``)."""
    try:
        stage, _ = model_kind(os.fspath(vae_dir), ENCODER_STAGES)
    except ValueError:
        stage = None  # load_vae reports the problem, naming the file
    if stage == "ldp":
        model, cfg, _ = load_ldp(vae_dir)
        return model, cfg
    vae, _, cfg, _ = load_vae(vae_dir)
    return vae, cfg


def stage1_windows(cfg, ds: EpisodeDataset, stride: int | None = None) -> tuple[np.ndarray, int]:
    """The windows stage 1 trains on, and their length: WARPD's trajectory windows
    (``trajectory_length``), or the LDP baseline's fixed-length chunks (``horizon``); every
    ``stride``-th start (None: stage 1's ``snippet_stride``)."""
    stride = stride or cfg.snippet_stride
    length = getattr(cfg, "trajectory_length", None)
    if length is None:
        return ds.snippet_starts(cfg.horizon, stride), cfg.horizon
    return ds.trajectory_windows(length, stride), length


class DiffusionTrainer(Trainer):
    stage = "diffusion"

    def __init__(self, cfg: DiffusionTrainConfig, out_dir: str, vae_dir: str, dataset: EpisodeDataset | None = None,
                 latents: dict[str, np.ndarray] | None = None, resume: bool = False, device: str | None = None,
                 show_progress: bool = True):
        """``latents`` (keys latents, states_n, task_ids) skips the VAE and dataset: used by tests
        that train the diffusion model on latents directly (then ``vae_dir`` may be None)."""
        super().__init__(cfg, out_dir, device, show_progress)
        self.vae_dir = vae_dir
        if latents is None:
            vae, vae_cfg = load_encoder(vae_dir)
            ds = dataset if dataset is not None else build_dataset(cfg.dataset or vae_cfg.dataset)
            latents = encode_dataset(vae, ds, *stage1_windows(vae_cfg, ds, cfg.window_stride))
        self.data = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in latents.items()}
        self.source_dim = self.data["latents"].shape[1]  # the VAE's latent size
        state_dim = self.data["states_n"].shape[1]
        self.n_tasks = 0
        if "task" in cfg.condition:
            self.n_tasks = cfg.n_tasks or int(self.data["task_ids"].max()) + 1
        torch.manual_seed(cfg.seed)
        self.model = build_denoiser(cfg, self.source_dim, state_dim, self.n_tasks)
        if self.model.projection is not None:  # diffuse over principal-component coordinates
            self.model.projection.fit(latents["latents"])
            self.data["latents"] = self.model.projection.project(self.data["latents"]).contiguous()
        self.model.latent_norm.fit(self.data["latents"].numpy())
        self.model.to(self.device)
        self.ema = EMA(self.model, cfg.ema_power, cfg.ema_max_decay)
        self.scheduler = make_noise_scheduler(cfg)
        self.modules = {"denoiser": self.model, "ema": self.ema.model}
        self.optimizers = {"denoiser": torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}
        self.steps_per_epoch = math.ceil(len(self.data["latents"]) / cfg.batch_size)
        if resume:
            self.load()
            self.ema.optimization_step = self.step
        self.run_model = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.run_model = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def extra_meta(self) -> dict:
        m = self.model
        return {"latent_dim": self.source_dim, "diffused_dim": m.latent_dim, "state_dim": int(self.data["states_n"].shape[1]), "n_tasks": self.n_tasks,
                "vae_dir": os.path.abspath(self.vae_dir) if self.vae_dir else None}

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        m = self.model
        B = rows.shape[0]
        x0 = m.latent_norm.normalize(self.data["latents"][rows].to(self.device)).view(B, *m.latent_shape)
        noise = torch.randn(x0.shape, generator=self.gen).to(self.device)
        t = torch.randint(0, self.cfg.num_train_timesteps, (B,), generator=self.gen).to(self.device)
        xt = self.scheduler.add_noise(x0, noise, t)
        state = self.data["states_n"][rows].to(self.device) if m.uses_state else None
        task = self.data["task_ids"][rows].to(self.device) if m.uses_task else None
        return F.mse_loss(self.run_model(xt, t, state, task), noise)

    def run_epoch(self) -> dict:
        n = len(self.data["latents"])
        perm = torch.from_numpy(self.np_rng.permutation(n))
        if self.dist.enabled:
            perm = perm[: n // self.dist.world_size * self.dist.world_size][self.dist.rank :: self.dist.world_size]
        return noise_prediction_epoch(self, self.optimizers["denoiser"], perm, "diffusion")
