"""One entry point for reading demonstrations, and the train/validation split.

``load_dataset(path)`` picks the reader from the file's content (a zarr group or an HDF5
signature), falling back to the extension; ``format=`` forces one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from warpd_core.data.episodes import DatasetError, EpisodeDataset
from warpd_core.data.lerobot import is_lerobot, lerobot_info, read_lerobot
from warpd_core.data.robomimic import HDF5_SIGNATURE, read_robomimic, write_robomimic
from warpd_core.data.zarr_store import read_zarr, write_zarr

PathLike = Union[str, "os.PathLike[str]"]

FORMATS = ("auto", "zarr", "hdf5", "robomimic", "lerobot")
ZARR_SUFFIXES = (".zarr", ".zip")
HDF5_SUFFIXES = (".hdf5", ".h5")

__all__ = [
    "FORMATS",
    "detect_format",
    "load_dataset",
    "read_robomimic",
    "read_zarr",
    "split_episode_indices",
    "split_episodes",
    "write_robomimic",
    "write_zarr",
]


def detect_format(path: PathLike) -> str:
    """``"zarr"``, ``"hdf5"`` or ``"lerobot"`` for an existing path, by content first, then extension."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: path: does not exist")
    if path.is_dir():
        if is_lerobot(path):
            return "lerobot"
        if (path / ".zgroup").is_file() or path.suffix == ".zarr":
            return "zarr"
    else:
        with open(path, "rb") as fh:
            head = fh.read(len(HDF5_SIGNATURE))
        if head == HDF5_SIGNATURE:
            return "hdf5"
        if head.startswith(b"PK") and path.suffix == ".zip":
            return "zarr"
        if path.suffix.lower() in HDF5_SUFFIXES:
            return "hdf5"  # the hdf5 reader then names what is wrong with it
    raise DatasetError(f"{path}: path: neither a zarr store (directory with .zgroup), a LeRobotDataset folder "
                       f"(meta/info.json) nor an HDF5 file")


def load_dataset(path: PathLike, format: str = "auto", **kw) -> EpisodeDataset:
    """Read demonstrations from a Diffusion Policy zarr store or a robomimic hdf5 file.

    Args:
        path: ``.zarr`` directory / ``.zip`` store, or ``.hdf5`` / ``.h5`` file.
        format: ``"auto"`` (detect), ``"zarr"``, ``"hdf5"`` or ``"robomimic"`` (the same), ``"lerobot"``.
        **kw: passed to the reader -- zarr: ``state_key, action_key, task_key``; lerobot:
            ``state_key, action_key`` (column names);
            hdf5: ``obs_keys, task_key, filter_key`` (see :func:`read_zarr`, :func:`read_robomimic`).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "zarr":
        return read_zarr(path, **kw)
    if fmt == "lerobot":
        return read_lerobot(path, **kw)
    return read_robomimic(path, **kw)


def dataset_rate_hz(path: PathLike, format: str = "auto") -> float | None:
    """The control rate the steps were sampled at, when the file records it: a zarr store's
    ``control_rate_hz`` attribute (``warpd data from-bag``), a LeRobotDataset's ``fps``."""
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "lerobot":
        return float(lerobot_info(path)["fps"])
    if fmt == "zarr":
        from warpd_core.data.zarr_store import read_zarr_attrs

        rate = read_zarr_attrs(path).get("control_rate_hz")
        return float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0 else None
    return None


def split_episode_indices(n_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Episode indices ``(train, val)``, each sorted; the same for the same arguments.

    ``round(val_fraction * n_episodes)`` episodes go to validation, at least one and at
    most ``n_episodes - 1``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if n_episodes < 2:
        raise ValueError(f"need at least 2 episodes to split, got {n_episodes}")
    n_val = int(np.clip(round(val_fraction * n_episodes), 1, n_episodes - 1))
    perm = np.random.default_rng(seed).permutation(n_episodes)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def split_episodes(ds: EpisodeDataset, val_fraction: float, seed: int) -> tuple[EpisodeDataset, EpisodeDataset]:
    """Split whole episodes into train and validation datasets (episodes keep their order).

    Splitting by episode, not by step, keeps validation snippets from overlapping training
    ones.
    """
    train_idx, val_idx = split_episode_indices(ds.n_episodes, val_fraction, seed)
    return ds.subset(train_idx), ds.subset(val_idx)
