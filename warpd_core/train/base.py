"""The epoch loop, checkpointing and resume shared by both training stages.

A stage subclass fills ``self.modules`` (name -> nn.Module, unwrapped) and
``self.optimizers`` (name -> optimiser) and implements :meth:`run_epoch`. Everything in
those two dicts, plus the RNG states and the epoch/step counters, goes into the checkpoint,
so ``--resume`` continues exactly where the last completed epoch left off: a run stopped
after k epochs and resumed ends with the same parameters, bit for bit, as one that never
stopped (on the same device and thread count; test_train_vae.py checks it).
"""

from __future__ import annotations

import abc
import os
import time

import torch
from torch import nn

from warpd_core.config import config_to_dict
from warpd_core.train.checkpoint import (
    flatten_optimizer,
    load_checkpoint,
    load_unique_state_dict,
    prefixed,
    restore_optimizer,
    save_checkpoint,
    unique_state_dict,
    unprefixed,
)
from warpd_core.train.common import CsvLog, restore_rng, rng_state, seed_everything, setup_device_and_dist
from warpd_core.version import git_revision

# Fields that may change between a run and its resumption.
RESUMABLE_CHANGES = {"epochs", "device", "checkpoint_every"}


class Trainer(abc.ABC):
    stage = "base"

    def __init__(self, cfg, out_dir: str, device: str | None = None, show_progress: bool = True):
        self.cfg = cfg
        self.out_dir = os.fspath(out_dir)
        self.device, self.dist = setup_device_and_dist(device or cfg.device)
        self.np_rng, self.gen = seed_everything(cfg.seed, self.dist.rank)
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.epoch = 0  # completed epochs
        self.step = 0  # optimiser steps
        self.show_progress = show_progress and self.dist.is_main
        self.log = None
        self.git = git_revision()  # the code this run trains with; bundle.json's provenance carries it

    def single_process_dataset(self, dataset):
        """For trainers that run in one process only (the baselines): refuse a distributed
        launch, then return ``dataset``, or the one ``cfg.dataset`` describes when it is None."""
        if self.dist.enabled:
            raise ValueError(f"{self.stage} baseline: distributed training is not supported (run one process)")
        from warpd_core.train.data import build_dataset

        return dataset if dataset is not None else build_dataset(self.cfg.dataset)

    # -- to implement ------------------------------------------------------------------
    @abc.abstractmethod
    def run_epoch(self) -> dict:
        """One epoch over the data; returns the metrics row for the CSV log."""

    def extra_meta(self) -> dict:
        """Whatever a reader needs to rebuild the models (dims, spec, ...)."""
        return {}

    # -- checkpoint --------------------------------------------------------------------
    def save(self, name: str = "last") -> None:
        if not self.dist.is_main:
            return
        tensors: dict[str, torch.Tensor] = {}
        optim_meta = {}
        for key, module in self.modules.items():
            tensors.update(prefixed(f"model.{key}", unique_state_dict(module)))
        for key, opt in self.optimizers.items():
            t, m = flatten_optimizer(opt, f"optim.{key}")
            tensors.update(t)
            optim_meta[key] = m
        np_state, torch_state = rng_state(self.np_rng, self.gen)
        tensors["rng.torch"] = torch_state
        tensors["rng.torch_global"] = torch.get_rng_state()
        meta = {
            "stage": self.stage,
            "config": config_to_dict(self.cfg),
            "epoch": self.epoch,
            "step": self.step,
            "git": self.git,
            "rng_numpy": np_state,
            "optimizers": optim_meta,
            **self.extra_meta(),
        }
        save_checkpoint(self.out_dir, name, tensors, meta)

    def load(self, name: str = "last") -> None:
        tensors, meta = load_checkpoint(self.out_dir, name)
        path = os.path.join(self.out_dir, f"{name}.json")
        if meta.get("stage") != self.stage:
            raise ValueError(f"{path}: stage {meta.get('stage')!r} is not {self.stage!r}")
        old, new = meta["config"], config_to_dict(self.cfg)
        diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
        if diff:
            raise ValueError(f"{path}: cannot resume, config fields differ from the checkpoint: {diff}")
        for key, module in self.modules.items():
            load_unique_state_dict(module, unprefixed(f"model.{key}", tensors), path)
        for key, opt in self.optimizers.items():
            restore_optimizer(opt, f"optim.{key}", tensors, meta["optimizers"][key])
        restore_rng(self.np_rng, self.gen, meta["rng_numpy"], tensors["rng.torch"])
        torch.set_rng_state(tensors["rng.torch_global"])
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])

    # -- loop ----------------------------------------------------------------------------
    def train(self, max_epochs_this_run: int | None = None) -> dict:
        """Runs epochs ``self.epoch .. cfg.epochs-1``; stops early after ``max_epochs_this_run``
        (used to test resumption). Returns the last epoch's metrics."""
        os.makedirs(self.out_dir, exist_ok=True)
        if self.log is None:
            self.log = CsvLog(self.out_dir, enabled=self.dist.is_main)
        metrics: dict = {}
        ran = 0
        while self.epoch < self.cfg.epochs:
            if max_epochs_this_run is not None and ran >= max_epochs_this_run:
                break
            t0 = time.perf_counter()
            metrics = self.run_epoch()
            self.epoch += 1
            ran += 1
            metrics = {"epoch": self.epoch, "step": self.step, **metrics, "seconds": time.perf_counter() - t0}
            self.log.write(metrics)
            self._show_epoch(metrics)
            if self.epoch % self.cfg.checkpoint_every == 0 or self.epoch == self.cfg.epochs:
                self.save()
        if ran and self.epoch % self.cfg.checkpoint_every != 0 and self.epoch != self.cfg.epochs:
            self.save()
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        return metrics

    # -- progress: one bar per run (batches of every remaining epoch), the ETA is the run's ----
    _bar = None
    _SHOWN = ("total", "loss", "l_bc", "l_ro", "l_tf")  # the losses the bar shows, where a stage has them

    def progress(self, iterable, total: int, desc: str):
        """Iterate one epoch's batches (``total`` of them) on the run's bar; ``desc`` names the
        stage and epoch (``vae epoch 3/45``)."""
        if not self.show_progress:
            return iterable
        if self._bar is None:
            from tqdm import tqdm  # noqa: PLC0415

            remaining = max(1, self.cfg.epochs - self.epoch)
            self._bar = tqdm(total=total * remaining, desc=f"{self.stage} {self.epoch}/{self.cfg.epochs} epochs",
                             unit="step", dynamic_ncols=True, smoothing=0.05)
        return self._count(iterable, desc)

    def _count(self, iterable, desc: str):
        self._bar.set_description_str(desc, refresh=False)
        for item in iterable:
            yield item
            self._bar.update(1)

    def _show_epoch(self, metrics: dict) -> None:
        if self._bar is not None:
            self._bar.set_postfix({k: f"{metrics[k]:.4g}" for k in self._SHOWN if k in metrics}, refresh=True)

