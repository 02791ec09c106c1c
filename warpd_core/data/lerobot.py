"""LeRobotDataset folders (local, no hub download) -> :class:`EpisodeDataset`.

Layout read (LeRobot codebase v2.1 and v3.0; only the tabular part, videos are not opened)::

    <root>/meta/info.json          fps, features {name: {dtype, shape, names}}, codebase_version
    <root>/data/**/*.parquet       one row per frame: <state column>, <action column>,
                                   episode_index, frame_index, ...

State and action columns are chosen by name (default ``observation.state`` and ``action``);
episodes come from ``episode_index`` (rows ordered by episode, then ``frame_index``), the
control rate from ``fps``. Every problem is a one-line :class:`DatasetError` naming the file
and the column.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

import numpy as np

from warpd_core.data.episodes import DatasetError, EpisodeDataset

PathLike = Union[str, "os.PathLike[str]"]
INFO = Path("meta") / "info.json"


def is_lerobot(path: PathLike) -> bool:
    return (Path(path) / INFO).is_file()


def lerobot_info(path: PathLike) -> dict:
    path = Path(path)
    info_path = path / INFO
    if not info_path.is_file():
        raise DatasetError(f"{path}: meta/info.json: missing (not a LeRobotDataset folder)")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{info_path}: cannot read ({type(exc).__name__}: {exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        raise DatasetError(f"{info_path}: features: missing or not a mapping")
    fps = info.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise DatasetError(f"{info_path}: fps: expected a positive number, got {fps!r}")
    return info


def _column(table, name: str, source: str, dim: int) -> np.ndarray:
    if name not in table.column_names:
        raise DatasetError(f"{source}: column {name!r}: missing (columns: {', '.join(table.column_names)})")
    col = table.column(name).combine_chunks()
    try:
        if dim == 0:
            arr = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1, 1)
        else:
            flat = col.flatten() if hasattr(col, "flatten") else col.values
            arr = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64)
            if arr.size != len(col) * dim:
                raise ValueError(f"{arr.size} values for {len(col)} rows of {dim}")
            arr = arr.reshape(len(col), dim)
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{source}: column {name!r}: not a numeric vector of {dim} ({exc})") from None
    return arr


def read_lerobot(path: PathLike, state_key: str = "observation.state", action_key: str = "action") -> EpisodeDataset:
    """Read a local LeRobotDataset folder. See :func:`lerobot_info` for the rate (``fps``)."""
    import pyarrow.parquet as pq

    path = Path(path)
    info = lerobot_info(path)
    feats = info["features"]
    dims = {}
    for key in (state_key, action_key):
        if key not in feats:
            raise DatasetError(f"{path / INFO}: features: no {key!r} (has {', '.join(sorted(feats))})")
        shape = feats[key].get("shape", [])
        if len(shape) > 1:
            raise DatasetError(f"{path / INFO}: features.{key}: shape {shape} is not a vector")
        dims[key] = int(shape[0]) if shape else 0
    files = sorted((path / "data").rglob("*.parquet"))
    if not files:
        raise DatasetError(f"{path}: data/: no parquet files")
    s_parts, a_parts, ep_parts, fr_parts = [], [], [], []
    for f in files:
        try:
            table = pq.read_table(f, columns=None)
        except Exception as exc:  # noqa: BLE001 - truncated / not parquet
            raise DatasetError(f"{f}: cannot read parquet ({type(exc).__name__}: {' '.join(str(exc).split())})") from None
        s_parts.append(_column(table, state_key, str(f), dims[state_key]))
        a_parts.append(_column(table, action_key, str(f), dims[action_key]))
        ep_parts.append(_column(table, "episode_index", str(f), 0)[:, 0].astype(np.int64))
        fr_parts.append(_column(table, "frame_index", str(f), 0)[:, 0].astype(np.int64))
    states, actions = np.concatenate(s_parts), np.concatenate(a_parts)
    ep, fr = np.concatenate(ep_parts), np.concatenate(fr_parts)
    order = np.lexsort((fr, ep))
    states, actions, ep, fr = states[order], actions[order], ep[order], fr[order]
    episodes, starts, counts = np.unique(ep, return_index=True, return_counts=True)
    for e, s0, c in zip(episodes, starts, counts):
        frames = fr[s0: s0 + c]
        if not np.array_equal(frames, np.arange(c)):
            raise DatasetError(f"{path}: episode {int(e)}: frame_index is not 0..{c - 1} "
                               f"(first bad at row {int(np.argmax(frames != np.arange(c)))})")
    ends = np.cumsum(counts)
    return EpisodeDataset(states.astype(np.float32), actions.astype(np.float32), ends, source=str(path))
