"""Demonstration data: episodes in memory, snippet sampling, and readers/writers for the
community's file layouts (Diffusion Policy zarr, robomimic hdf5)."""

from warpd_core.data.episodes import DatasetError, EpisodeDataset
from warpd_core.data.io import load_dataset, split_episodes

__all__ = ["DatasetError", "EpisodeDataset", "load_dataset", "split_episodes"]
