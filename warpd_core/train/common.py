"""Pieces both training stages share: device and DistributedDataParallel set-up, seeding, RNG
state capture, CSV metrics."""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_device_and_dist(device: str) -> tuple[torch.device, DistInfo]:
    """Device from the config/CLI; under torchrun (WORLD_SIZE > 1) joins the process group
    (gloo on CPU, nccl on CUDA) and picks ``cuda:LOCAL_RANK``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but CUDA is not available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    dev = torch.device(device)
    if info.enabled:
        import torch.distributed as dist

        if dev.type == "cuda":
            dev = torch.device("cuda", info.local_rank)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return dev, info



def seed_everything(seed: int, rank: int = 0) -> tuple[np.random.Generator, torch.Generator]:
    """Seeds torch's global RNG (weight init) and returns the two RNGs the loop draws from:
    a numpy Generator (batch order; the same on every DDP rank, each rank takes its own slice)
    and a CPU torch Generator (noise, timesteps; different per rank)."""
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed + 7919 * rank)


def rng_state(np_rng: np.random.Generator, torch_gen: torch.Generator) -> tuple[dict, torch.Tensor]:
    return np_rng.bit_generator.state, torch_gen.get_state()


def restore_rng(np_rng: np.random.Generator, torch_gen: torch.Generator, np_state: dict, torch_state: torch.Tensor) -> None:
    np_rng.bit_generator.state = np_state
    torch_gen.set_state(torch_state.to(torch.uint8))


class CsvLog:
    """Appends one row per epoch to ``metrics.csv`` (header written once); also TensorBoard
    scalars when ``torch.utils.tensorboard`` is importable."""

    def __init__(self, directory: str, enabled: bool = True):
        self.path = os.path.join(directory, "metrics.csv")
        self.enabled = enabled
        self._tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(os.path.join(directory, "tb"))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self._tb = None

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        new = not os.path.exists(self.path)
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("epoch", "step") and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, row.get("step", 0))
            self._tb.flush()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model
