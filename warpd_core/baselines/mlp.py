"""MLP baseline: behaviour cloning with the generated policy's architecture (paper section 4.1).

One MLP ``state -> action`` (``policy.hidden`` wide, default 2 x 256 ReLU as the policies WARPD
generates) trained on every (state, action) pair of the demonstrations with an MSE on
min-max normalised data (the VAE's normalisation, :class:`~warpd_core.models.normalizer.AffineNormalizer`).
At evaluation the normalisation is folded into the first and last layer
(:meth:`PolicySpec.fold_affine`) and the policy runs in numpy with
:class:`~warpd_core.policy.MLPPolicy`, the controller's own forward.

Checkpoint: ``<dir>/last.{safetensors,json}`` written by :class:`~warpd_core.train.base.Trainer`
(stage ``mlp``); the JSON carries the config and the :class:`PolicySpec`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np
import torch
from torch import nn

from warpd_core.baselines.task_input import with_task_onehot
from warpd_core.config import ConfigError, DatasetConfig, PolicyConfig, config_from_dict
from warpd_core.data import EpisodeDataset
from warpd_core.models.flops import StepCost, mlp_step_cost
from warpd_core.models.normalizer import AffineNormalizer
from warpd_core.models.policy_torch import mlp_layers
from warpd_core.policy import MLPPolicy, PolicySpec
from warpd_core.train.base import Trainer
from warpd_core.train.checkpoint import load_checkpoint, load_unique_state_dict, unprefixed
from warpd_core.train.stages import check_stage

STAGE = "mlp"


@dataclass
class MLPTrainConfig:
    """Behaviour cloning of one MLP policy.

    Attributes:
        dataset: the demonstrations (as for the VAE).
        policy: hidden widths and activation (paper: the generated policy's, 2 x 256 ReLU;
            the sweep uses 128 / 256 / 512).
        batch_size: (state, action) pairs per step.
        epochs: passes over all pairs.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seed: weight init and batch order.
        device: cpu, cuda or cuda:N.
        checkpoint_every: epochs between checkpoints.
        task_input: ``onehot`` appends the episode's task id as a one-hot to the input
            (multi-task data read with ``dataset.options.task_key``; see
            :mod:`warpd_core.baselines.task_input`); ``none`` (default) uses the state only.
        n_tasks: one-hot width (0: max task id + 1 of the dataset).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    batch_size: int = 256
    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 1
    task_input: Literal["none", "onehot"] = "none"
    n_tasks: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected > 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr / weight_decay: expected lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")


class BCPolicy(nn.Module):
    """MLP with its normalisers: ``forward(obs_n (B, S)) -> action_n (B, A)`` in [-1, 1] units."""

    def __init__(self, spec: PolicySpec):
        super().__init__()
        self.spec = spec
        self.net = mlp_layers(spec)
        self.obs_norm = AffineNormalizer(spec.in_dim)
        self.act_norm = AffineNormalizer(spec.out_dim)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        return self.net(obs_n)

    @torch.no_grad()
    def flat_weights(self) -> np.ndarray:
        """(n_weights,) float32 mapping *raw* observations to *raw* actions (normalisation folded)."""
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        flat = self.spec.flatten([(m.weight.cpu().numpy(), m.bias.cpu().numpy()) for m in linears])
        o_scale, o_offset = self.obs_norm.numpy()
        a_scale, a_offset = self.act_norm.numpy()
        # act_norm: y_n = s a + o  =>  a = y_n / s - o / s
        return self.spec.fold_affine(flat, o_scale, o_offset, 1.0 / a_scale, -a_offset / a_scale)


class MLPTrainer(Trainer):
    stage = STAGE

    def __init__(self, cfg: MLPTrainConfig, out_dir: str, dataset: Optional[EpisodeDataset] = None,
                 resume: bool = False, device: Optional[str] = None, show_progress: bool = True):
        super().__init__(cfg, out_dir, device, show_progress)
        self.ds = self.single_process_dataset(dataset)
        self.n_tasks = 0
        if cfg.task_input == "onehot":  # the input becomes [state, onehot(task)]
            self.ds, self.n_tasks = with_task_onehot(self.ds, cfg.n_tasks)
        self.spec = PolicySpec(self.ds.state_dim, tuple(cfg.policy.hidden), self.ds.action_dim, cfg.policy.activation)
        self.model = BCPolicy(self.spec)
        self.model.obs_norm.fit(self.ds.states)
        self.model.act_norm.fit(self.ds.actions)
        self.model.to(self.device)
        self.modules = {"policy": self.model}
        self.optimizers = {"policy": torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}
        self.states = torch.from_numpy(self.ds.states)
        self.actions = torch.from_numpy(self.ds.actions)
        if resume:
            self.load()

    def extra_meta(self) -> dict:
        return {"policy_spec": self.spec.to_dict(), "n_pairs": int(self.ds.n_steps), "dataset_source": self.ds.source,
                "task_input": self.cfg.task_input, "n_tasks": self.n_tasks}

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        m = self.model
        s_n = m.obs_norm.normalize(self.states[rows].to(self.device))
        a_n = m.act_norm.normalize(self.actions[rows].to(self.device))
        return torch.nn.functional.mse_loss(m(s_n), a_n)

    def run_epoch(self) -> dict:
        cfg = self.cfg
        perm = torch.from_numpy(self.np_rng.permutation(self.ds.n_steps))
        starts = range(0, len(perm), cfg.batch_size)
        opt = self.optimizers["policy"]
        self.model.train()
        acc = 0.0
        for b0 in self.progress(starts, len(starts), f"mlp epoch {self.epoch + 1}/{cfg.epochs}"):
            loss = self.loss(perm[b0 : b0 + cfg.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.step += 1
            acc += float(loss.detach())
        return {"loss": acc / max(1, len(starts))}


def load_mlp(directory: str, name: str = "last") -> tuple[BCPolicy, MLPTrainConfig, dict]:
    """Rebuild the trained :class:`BCPolicy` from ``<directory>/<name>.{json,safetensors}``."""
    tensors, meta = load_checkpoint(directory, name)
    path = os.path.join(os.fspath(directory), f"{name}.json")
    check_stage(meta, path, STAGE)
    cfg = config_from_dict(MLPTrainConfig, meta["config"], path)
    model = BCPolicy(PolicySpec.from_dict(meta["policy_spec"]))
    load_unique_state_dict(model, unprefixed("model.policy", tensors), path)
    return model.eval(), cfg, meta


class MLPMethod:
    """The MLP baseline as a harness :class:`~warpd_core.eval.harness.Method`.

    Stateless: ``act`` runs the numpy policy on every row, then clips to the task's action limits
    ``[low, high]`` as ControllerCore would (required: a checkpoint does not know them).
    """

    def __init__(self, spec: PolicySpec, flat: np.ndarray, name: str = "mlp", *, low: float, high: float):
        self.name = name
        self.spec = spec
        self.policy = MLPPolicy(spec, flat)
        self.low, self.high = float(low), float(high)

    @classmethod
    def from_checkpoint(cls, directory: str, **kwargs) -> "MLPMethod":
        """``kwargs``: ``name``, and the required ``low`` / ``high``."""
        model, _, _ = load_mlp(directory)
        return cls(model.spec, model.flat_weights(), **kwargs)

    def reset(self, n_envs: int, horizon: int, seed: int) -> None:
        self._n = int(n_envs)

    def act(self, obs: np.ndarray, steps: np.ndarray, active: np.ndarray) -> np.ndarray:
        """obs (B, S) raw -> actions (B, A) float64 in [low, high]."""
        out = self.policy.act_batch(np.asarray(obs, dtype=np.float32)).astype(np.float64)
        return np.clip(out, self.low, self.high)

    def episode_stats(self) -> dict[str, np.ndarray]:
        return {}

    def cost(self, horizon: int) -> StepCost:
        return mlp_step_cost(self.spec, horizon)
