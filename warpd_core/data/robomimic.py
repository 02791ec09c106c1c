"""robomimic's hdf5 layout: reader and atomic writer.

Layout (robomimic docs, "Dataset Structure")::

    data                      group; attrs: total (int, steps in all demos), env_args (JSON string:
                              env_name, type / env_type, env_kwargs)
      demo_<i>                group; attrs: num_samples (int), model_file (robosuite only)
        actions               (T, A)
        obs/<key>             (T, ...) e.g. robot0_eef_pos (T,3), robot0_eef_quat (T,4),
                              robot0_gripper_qpos (T,2), object (T,D), agentview_image (T,84,84,3)
        next_obs/<key>        optional, not read here
        states, rewards, dones  optional
    mask/<filter_key>         optional; 1-D array of demo names (bytes), e.g. mask/train, mask/valid

Demos are ordered by their numeric index (``demo_2`` before ``demo_10``), as robomimic
orders them. The state vector is the chosen low-dimensional obs keys concatenated in the
order given; (T,) keys count as one column. Every problem surfaces as a one-line
:class:`DatasetError` ``"<file>: <field>: <problem>"``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from warpd_core.data.episodes import DatasetError, EpisodeDataset

PathLike = Union[str, "os.PathLike[str]"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DEMO_RE = re.compile(r"^demo_(\d+)$")
# Keys of an episode dict given to write_robomimic that are demo-level datasets, not obs.
DEMO_DATASETS = ("actions", "states", "rewards", "dones")
TASK_ID_ATTR = "task_id"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fail(source: str, field: str, problem: str) -> DatasetError:
    return DatasetError(f"{source}: {field}: {problem}")


def _decode(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, (bytes, np.bytes_)) else str(name)


# -- reading ----------------------------------------------------------------------------


def _open_file(path: Path, source: str) -> h5py.File:
    if not path.exists():
        raise _fail(source, "path", "does not exist")
    if not path.is_file():
        raise _fail(source, "path", "is not a file (expected an HDF5 file)")
    with open(path, "rb") as fh:
        if fh.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            raise _fail(source, "path", "not an HDF5 file (bad signature)")
    try:
        return h5py.File(path, "r")
    except Exception as exc:  # truncated or corrupt superblock
        raise _fail(source, "path", f"cannot open HDF5 file ({_one_line(exc)})") from exc


def _dataset(group: h5py.Group, name: str, field: str, source: str, what: str) -> h5py.Dataset:
    try:
        obj = group.get(name)
    except Exception as exc:
        raise _fail(source, field, f"cannot open ({_one_line(exc)})") from exc
    if obj is None:
        available = ", ".join(sorted(group.keys())) or "none"
        raise _fail(source, field, f"missing {what} (available: {available})")
    if not isinstance(obj, h5py.Dataset):
        raise _fail(source, field, "is a group, expected a dataset")
    if obj.dtype.kind not in "biuf":
        raise _fail(source, field, f"expected a numeric array, got dtype {obj.dtype}")
    return obj


def _read(dset: h5py.Dataset, field: str, source: str) -> np.ndarray:
    try:
        return dset[()]
    except Exception as exc:  # truncated file, corrupt chunk, failed filter
        raise _fail(source, field, f"cannot read data ({_one_line(exc)})") from exc


def _demo_names(f: h5py.File, source: str, filter_key: Optional[str]) -> list[str]:
    data = f.get("data")
    if not isinstance(data, h5py.Group):
        raise _fail(source, "data", "missing group 'data' (not a robomimic file?)")
    demos = [k for k in data.keys() if _DEMO_RE.match(k)]
    if filter_key is not None:
        mask = f.get("mask")
        available = sorted(mask.keys()) if isinstance(mask, h5py.Group) else []
        if filter_key not in available:
            raise _fail(source, f"mask/{filter_key}",
                        f"missing filter key (available: {', '.join(available) or 'none'})")
        listed = [_decode(n) for n in np.asarray(_read(mask[filter_key], f"mask/{filter_key}", source)).ravel()]
        unknown = sorted(set(listed) - set(demos))
        if unknown:
            raise _fail(source, f"mask/{filter_key}", f"lists demos not in 'data': {', '.join(unknown[:5])}")
        demos = sorted(set(listed))
    if not demos:
        raise _fail(source, "data" if filter_key is None else f"mask/{filter_key}", "no demo_<i> groups")
    return sorted(demos, key=lambda k: int(_DEMO_RE.match(k).group(1)))


def low_dim_obs_keys(path: PathLike) -> list[str]:
    """Obs keys of the first demo whose arrays are (T,) or (T, D), sorted by name.

    robomimic's own low-dim configs list ``object, robot0_eef_pos, robot0_eef_quat,
    robot0_gripper_qpos``, which is this order; images (T, H, W, C) are left out.
    """
    path = Path(path)
    source = str(path)
    with _open_file(path, source) as f:
        first = _demo_names(f, source, None)[0]
        obs = f["data"][first].get("obs")
        if not isinstance(obs, h5py.Group):
            raise _fail(source, f"data/{first}/obs", "missing obs group")
        return sorted(k for k, v in obs.items() if isinstance(v, h5py.Dataset) and v.ndim in (1, 2))


def _task_id(demo: h5py.Group, task_key: str, field: str, source: str) -> int:
    """A demo's task id: attribute ``<task_key>`` or a scalar / constant (T,) dataset."""
    if task_key in demo.attrs:
        value = np.asarray(demo.attrs[task_key])
    elif task_key in demo:
        value = np.asarray(_read(_dataset(demo, task_key, f"{field}/{task_key}", source, "task id"),
                                 f"{field}/{task_key}", source))
    else:
        raise _fail(source, f"{field}/{task_key}", "missing task id (neither an attribute nor a dataset)")
    flat = value.ravel()
    if flat.size == 0 or np.any(flat != flat[0]) or flat.dtype.kind not in "iuf" or flat[0] != np.round(flat[0]):
        raise _fail(source, f"{field}/{task_key}", f"expected one integer task id, got {value!r}")
    return int(flat[0])


def read_robomimic(
    path: PathLike,
    obs_keys: Optional[Sequence[str]] = None,
    task_key: Optional[str] = None,
    filter_key: Optional[str] = None,
) -> EpisodeDataset:
    """Read a robomimic hdf5 file into an :class:`EpisodeDataset`.

    Args:
        path: the ``.hdf5`` file.
        obs_keys: obs keys concatenated (in this order) into the state vector ``(T, S)``;
            each key is ``(T,)`` or ``(T, D)``. ``None``: :func:`low_dim_obs_keys`.
        task_key: optional per-demo task id, an attribute of ``demo_<i>`` (or a dataset there).
        filter_key: read only the demos listed in ``mask/<filter_key>`` (e.g. ``"train"``).

    Actions are ``data/demo_<i>/actions (T, A)``. Demos are taken in numeric order.
    Raises :class:`DatasetError`.
    """
    path = Path(path)
    source = str(path)
    if obs_keys is None:
        obs_keys = low_dim_obs_keys(path)
    obs_keys = list(obs_keys)
    if not obs_keys:
        raise _fail(source, "obs_keys", "no obs keys given")
    if len(set(obs_keys)) != len(obs_keys):
        raise _fail(source, "obs_keys", f"duplicate keys in {obs_keys}")

    states, actions, lengths, tasks = [], [], [], []
    widths: dict[str, int] = {}
    action_dim: Optional[int] = None
    with _open_file(path, source) as f:
        for name in _demo_names(f, source, filter_key):
            field = f"data/{name}"
            demo = f["data"][name]
            if not isinstance(demo, h5py.Group):
                raise _fail(source, field, "is a dataset, expected a demo group")
            act = _read(_dataset(demo, "actions", f"{field}/actions", source, "actions"), f"{field}/actions", source)
            if act.ndim != 2:
                raise _fail(source, f"{field}/actions", f"expected (T, A), got shape {act.shape}")
            if action_dim is not None and act.shape[1] != action_dim:
                raise _fail(source, f"{field}/actions", f"action dim {act.shape[1]} != {action_dim} in earlier demos")
            action_dim = act.shape[1]
            n = act.shape[0]
            if n == 0:
                raise _fail(source, f"{field}/actions", "empty demo (0 steps)")
            if "num_samples" in demo.attrs and int(demo.attrs["num_samples"]) != n:
                raise _fail(source, f"{field}.num_samples",
                            f"attribute says {int(demo.attrs['num_samples'])} steps, actions have {n}")
            obs = demo.get("obs")
            if not isinstance(obs, h5py.Group):
                raise _fail(source, f"{field}/obs", f"missing obs group (demo has: {', '.join(sorted(demo.keys()))})")
            cols = []
            for key in obs_keys:
                kfield = f"{field}/obs/{key}"
                x = _read(_dataset(obs, key, kfield, source, f"obs key '{key}'"), kfield, source)
                if x.ndim == 1:
                    x = x[:, None]
                if x.ndim != 2:
                    raise _fail(source, kfield, f"expected (T,) or (T, D) low-dim obs, got shape {x.shape}")
                if x.shape[0] != n:
                    raise _fail(source, kfield, f"length {x.shape[0]} != actions length {n}")
                if widths.setdefault(key, x.shape[1]) != x.shape[1]:
                    raise _fail(source, kfield, f"width {x.shape[1]} != {widths[key]} in earlier demos")
                if not np.all(np.isfinite(x)):
                    raise _fail(source, kfield, f"non-finite value at step {int(np.argwhere(~np.isfinite(x))[0][0])}")
                cols.append(x.astype(np.float32))
            if not np.all(np.isfinite(act)):
                raise _fail(source, f"{field}/actions",
                            f"non-finite value at step {int(np.argwhere(~np.isfinite(act))[0][0])}")
            states.append(np.concatenate(cols, axis=1))
            actions.append(act.astype(np.float32))
            lengths.append(n)
            if task_key is not None:
                tasks.append(_task_id(demo, task_key, field, source))

    return EpisodeDataset(
        np.concatenate(states),
        np.concatenate(actions),
        np.cumsum(lengths),
        np.asarray(tasks, np.int64) if task_key is not None else None,
        source=source,
    )


def read_env_args(path: PathLike) -> dict:
    """``data.attrs["env_args"]`` parsed from JSON (``{}`` when absent)."""
    path = Path(path)
    source = str(path)
    with _open_file(path, source) as f:
        if "data" not in f or "env_args" not in f["data"].attrs:
            return {}
        raw = f["data"].attrs["env_args"]
        try:
            return json.loads(_decode(raw))
        except json.JSONDecodeError as exc:
            raise _fail(source, "data.env_args", f"not valid JSON ({_one_line(exc)})") from exc


# -- writing ----------------------------------------------------------------------------


def write_robomimic(
    path: PathLike,
    episodes: Sequence[Mapping[str, np.ndarray]],
    env_args: Mapping[str, Any],
    masks: Optional[Mapping[str, Sequence[str]]] = None,
    overwrite: bool = False,
) -> Path:
    """Write episodes in robomimic's hdf5 layout, atomically.

    Args:
        path: destination ``.hdf5`` file.
        episodes: one dict per demo (written as ``demo_0, demo_1, ...``):
            ``"actions" (T, A)`` required; ``"states"``, ``"rewards" (T,)``, ``"dones" (T,)``
            optional demo-level datasets; ``"task_id"`` optional int, stored as a demo
            attribute; every other key ``k`` (or ``"obs/k"``) is an obs array ``(T, ...)``
            stored at ``obs/k``. Arrays are stored with their dtype.
        env_args: stored as JSON in ``data.attrs["env_args"]`` (robomimic: env_name,
            type, env_kwargs).
        masks: optional filter keys, ``{"train": ["demo_0", ...], "valid": [...]}``.
        overwrite: replace an existing file (otherwise ``FileExistsError``).

    The file is written beside ``path`` under a temporary name and renamed into place.
    """
    final = Path(path)
    if not episodes:
        raise ValueError("write_robomimic: no episodes")
    if (final.exists() or final.is_symlink()) and not overwrite:
        raise FileExistsError(f"{final}: already exists (pass overwrite=True to replace it)")

    prepared = []
    for i, ep in enumerate(episodes):
        if "actions" not in ep:
            raise ValueError(f"episode {i}: missing 'actions'")
        act = np.asarray(ep["actions"])
        if act.ndim != 2 or act.shape[0] == 0:
            raise ValueError(f"episode {i}: actions must be (T, A) with T > 0, got shape {act.shape}")
        demo_sets, obs, attrs = {"actions": act}, {}, {"num_samples": int(act.shape[0])}
        for key, value in ep.items():
            if key == "actions":
                continue
            if key == TASK_ID_ATTR:
                attrs[TASK_ID_ATTR] = int(value)
                continue
            arr = np.asarray(value)
            target = demo_sets if key in DEMO_DATASETS else obs
            key = key[len("obs/"):] if key.startswith("obs/") else key
            if arr.ndim < 1 or arr.shape[0] != act.shape[0]:
                raise ValueError(f"episode {i}: '{key}' has length {arr.shape[:1]}, actions have {act.shape[0]}")
            target[key] = arr
        prepared.append((demo_sets, obs, attrs))
    names = {f"demo_{i}" for i in range(len(prepared))}
    for mkey, listed in (masks or {}).items():
        unknown = set(listed) - names
        if unknown:
            raise ValueError(f"mask '{mkey}' lists unknown demos {sorted(unknown)[:5]}")

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            total = 0
            for i, (demo_sets, obs, attrs) in enumerate(prepared):
                demo = data.create_group(f"demo_{i}")
                for key, arr in demo_sets.items():
                    demo.create_dataset(key, data=arr)
                og = demo.create_group("obs")
                for key, arr in obs.items():
                    og.create_dataset(key, data=arr)
                for key, value in attrs.items():
                    demo.attrs[key] = value
                total += attrs["num_samples"]
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps(dict(env_args))
            if masks:
                mg = f.create_group("mask")
                for mkey, listed in masks.items():
                    mg.create_dataset(mkey, data=np.array([n.encode("utf-8") for n in listed], dtype="S"))
        os.replace(tmp, final)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return final


def episodes_from_dataset(ds: EpisodeDataset, obs_key: str = "state") -> list[dict[str, np.ndarray]]:
    """Split an :class:`EpisodeDataset` into :func:`write_robomimic` episode dicts.

    The whole state vector becomes one obs key ``obs_key``; task ids become demo attributes.
    """
    out = []
    for i in range(ds.n_episodes):
        s, a = ds.episode(i)
        ep: dict[str, Any] = {f"obs/{obs_key}": s, "actions": a}
        if ds.task_ids is not None:
            ep[TASK_ID_ATTR] = int(ds.task_ids[i])
        out.append(ep)
    return out
