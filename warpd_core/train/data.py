"""Dataset from a :class:`~warpd_core.config.DatasetConfig`."""

from __future__ import annotations

from warpd_core.config import DatasetConfig
from warpd_core.data import EpisodeDataset


def build_dataset(cfg: DatasetConfig) -> EpisodeDataset:
    if cfg.format == "synthetic":
        from warpd_core.train.synthetic import make_pointmass

        return make_pointmass(cfg.synthetic_kind, cfg.n_episodes, cfg.episode_len, cfg.seed)[0]
    # Imported lazily: the readers pull in zarr / h5py.
    from warpd_core.data.io import load_dataset

    return load_dataset(cfg.path, format=cfg.format, **cfg.options)
