"""Demonstration data: episodes in memory, snippet sampling, and readers/writers for the
community's file layouts (Diffusion Policy zarr, robomimic hdf5)."""

from warpd_core.data.episodes import DatasetError, EpisodeDataset

__all__ = ["DatasetError", "EpisodeDataset"]
