"""Diffusion Policy's zarr layout: reader and atomic writer.

Layout (zarr format 2, every array Blosc/zstd compressed, chunked along time)::

    <root>/
      data/state          (N, S) f4    concatenated over episodes
      data/action         (N, A) f4
      data/<other>        (N, ...)     optional per-step arrays (keypoint, n_contacts, img, ...)
      meta/episode_ends   (E,)   i8    exclusive end index of each episode, last == N
      meta/task_id        (E,)   i8    optional, written by :func:`write_zarr` when given task ids

The reader touches only the arrays it is asked for, so a dataset with a large ``img``
array reads its low-dimensional part in milliseconds. Every problem surfaces as a
one-line :class:`DatasetError` ``"<file>: <field>: <problem>"``.

Written against zarr 2 (pinned in requirements: ``zarr==2.18.7``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from pathlib import Path
from typing import Mapping, Optional, Union

import numcodecs
import numpy as np
import zarr

from warpd_core.data.episodes import DatasetError, EpisodeDataset

PathLike = Union[str, "os.PathLike[str]"]

# Diffusion Policy's files use Blosc(zstd, clevel 5, bit-shuffle); writing the same keeps
# our files byte-compatible in spirit and readable by DP's ReplayBuffer.
COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)

# Chunks span whole rows (all trailing dims) and enough time steps for about this many
# bytes -- small enough that reading a slice stays cheap, large enough that a low-dim array
# is a handful of files rather than thousands.
TARGET_CHUNK_BYTES = 1 << 20

TASK_ID_KEY = "task_id"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fail(source: str, field: str, problem: str) -> DatasetError:
    return DatasetError(f"{source}: {field}: {problem}")


# -- reading ----------------------------------------------------------------------------


def _open_store(path: Path, source: str) -> zarr.hierarchy.Group:
    if not path.exists():
        raise _fail(source, "path", "does not exist")
    try:
        if path.is_file():
            if path.suffix != ".zip":
                raise _fail(source, "path", "is a file, not a zarr store (expected a directory or a .zip store)")
            store = zarr.ZipStore(str(path), mode="r")
        else:
            if not (path / ".zgroup").is_file():
                raise _fail(source, "path", "not a zarr group (no .zgroup; zarr format 2 expected)")
            store = zarr.DirectoryStore(str(path))
        return zarr.open_group(store, mode="r")
    except DatasetError:
        raise
    except Exception as exc:  # bad zip, unreadable JSON metadata, ...
        raise _fail(source, "path", f"cannot open as a zarr group ({_one_line(exc)})") from exc


def _get_array(root: zarr.hierarchy.Group, key: str, source: str) -> zarr.core.Array:
    group_name, _, name = key.rpartition("/")
    try:
        group = root[group_name] if group_name else root
    except KeyError:
        raise _fail(source, key, f"missing (the store has no '{group_name}' group)") from None
    except Exception as exc:
        raise _fail(source, key, f"cannot open ({_one_line(exc)})") from exc
    if not isinstance(group, zarr.hierarchy.Group):
        raise _fail(source, key, f"'{group_name}' is not a group")
    try:
        names = sorted(group.array_keys())
    except Exception as exc:
        raise _fail(source, key, f"cannot list '{group_name or '/'}' ({_one_line(exc)})") from exc
    if name not in names:
        raise _fail(source, key, f"missing (available in '{group_name or '/'}': {', '.join(names) or 'none'})")
    try:
        arr = group[name]
    except Exception as exc:  # corrupt .zarray metadata
        raise _fail(source, key, f"cannot open array metadata ({_one_line(exc)})") from exc
    if arr.dtype.kind not in "biuf":
        raise _fail(source, key, f"expected a numeric array, got dtype {arr.dtype}")
    return arr


def _read_array(arr: zarr.core.Array, key: str, source: str, ndim: int) -> np.ndarray:
    if arr.ndim != ndim:
        want = {1: "a 1-D array", 2: "a 2-D array (N, D)"}[ndim]
        raise _fail(source, key, f"expected {want}, got shape {arr.shape}")
    # A missing chunk file would silently read back as fill_value; a truncated store must not.
    try:
        have, want_chunks = arr.nchunks_initialized, arr.nchunks
    except Exception as exc:
        raise _fail(source, key, f"cannot list chunks ({_one_line(exc)})") from exc
    if have < want_chunks:
        raise _fail(source, key, f"{want_chunks - have} of {want_chunks} chunks missing (truncated store)")
    if isinstance(arr.compressor, numcodecs.Blosc):
        _check_blosc_chunks(arr, key, source)
    try:
        return arr[...]
    except Exception as exc:  # Blosc RuntimeError on garbage, ValueError on a short chunk, ...
        raise _fail(source, key, f"corrupt chunk data ({_one_line(exc)})") from exc


def _check_blosc_chunks(arr: zarr.core.Array, key: str, source: str) -> None:
    """Check every chunk's Blosc header against the chunk's length.

    Blosc decodes a chunk cut short at the end without complaint (it trusts the sizes in
    its 16-byte header), so a truncated chunk file would read back as garbage. The header
    holds ``nbytes`` (uncompressed, little-endian u32 at byte 4) and ``cbytes`` (compressed,
    at byte 12); a sound chunk has ``cbytes == len(chunk)`` and ``nbytes == chunk size``.
    """
    sep = getattr(arr, "_dimension_separator", None) or "."
    prefix = f"{arr.path}/" if arr.path else ""
    want_nbytes = int(np.prod(arr.chunks, dtype=np.int64)) * arr.dtype.itemsize
    for coords in itertools.product(*(range(n) for n in arr.cdata_shape)):
        chunk_key = prefix + sep.join(map(str, coords))
        try:
            raw = arr.chunk_store[chunk_key]
        except Exception as exc:
            raise _fail(source, key, f"cannot read chunk {sep.join(map(str, coords))} ({_one_line(exc)})") from exc
        raw = memoryview(raw).cast("B")
        nbytes = int.from_bytes(raw[4:8], "little") if len(raw) >= 16 else -1
        cbytes = int.from_bytes(raw[12:16], "little") if len(raw) >= 16 else -1
        if cbytes != len(raw) or nbytes != want_nbytes:
            raise _fail(source, key, f"corrupt chunk {sep.join(map(str, coords))} (Blosc header says "
                                     f"{cbytes} compressed / {nbytes} raw bytes, chunk file has {len(raw)} "
                                     f"bytes, expected {want_nbytes} raw)")


def _read_task_ids(root, task_key: str, ends: np.ndarray, n_steps: int, source: str) -> np.ndarray:
    """Task ids from ``meta/<task_key>`` (E,) or, failing that, per-step ``data/<task_key>`` (N,)."""
    meta, data = root.get("meta"), root.get("data")
    if not (meta is not None and task_key in meta) and not (data is not None and task_key in data):
        raise _fail(source, f"meta/{task_key}", f"missing task ids (neither meta/{task_key} nor data/{task_key} exists)")
    if meta is not None and task_key in meta:
        key = f"meta/{task_key}"
        tasks = _read_array(_get_array(root, key, source), key, source, ndim=1)
        if tasks.shape != ends.shape:
            raise _fail(source, key, f"shape {tasks.shape} != episode_ends shape {ends.shape}")
    else:
        key = f"data/{task_key}"
        arr = _get_array(root, key, source)
        if arr.ndim == 2 and arr.shape[1] == 1:
            per_step = _read_array(arr, key, source, ndim=2)[:, 0]
        else:
            per_step = _read_array(arr, key, source, ndim=1)
        if per_step.shape[0] != n_steps:
            raise _fail(source, key, f"length {per_step.shape[0]} != number of steps {n_steps}")
        starts = np.concatenate([[0], ends[:-1]])
        tasks = per_step[starts]
        changes = np.flatnonzero(per_step != np.repeat(tasks, np.diff(np.concatenate([[0], ends]))))
        if changes.size:
            raise _fail(source, key, f"task id changes inside an episode (step {int(changes[0])})")
    if tasks.dtype.kind == "f":
        if not np.all(np.isfinite(tasks)) or np.any(tasks != np.round(tasks)):
            raise _fail(source, key, "task ids must be integers")
    return tasks.astype(np.int64)


def read_zarr(
    path: PathLike,
    state_key: str = "state",
    action_key: str = "action",
    task_key: Optional[str] = None,
) -> EpisodeDataset:
    """Read a Diffusion Policy zarr store into an :class:`EpisodeDataset`.

    Args:
        path: the ``.zarr`` directory (or a ``.zarr.zip`` zip store).
        state_key: array under ``data/`` used as the state, shape ``(N, S)``.
        action_key: array under ``data/`` used as the action, shape ``(N, A)``.
        task_key: optional task id array, ``meta/<task_key> (E,)`` or per-step
            ``data/<task_key> (N,)`` (constant within each episode).

    Only these arrays and ``meta/episode_ends`` are read. Raises :class:`DatasetError`.
    """
    path = Path(path)
    source = str(path)
    root = _open_store(path, source)
    try:
        skey, akey, ekey = f"data/{state_key}", f"data/{action_key}", "meta/episode_ends"
        s_arr = _get_array(root, skey, source)
        a_arr = _get_array(root, akey, source)
        e_arr = _get_array(root, ekey, source)
        # Check shapes on metadata before decompressing anything.
        if s_arr.ndim == 2 and a_arr.ndim == 2 and s_arr.shape[0] != a_arr.shape[0]:
            raise _fail(source, akey, f"length {a_arr.shape[0]} does not match {skey} length {s_arr.shape[0]}")
        states = _read_array(s_arr, skey, source, ndim=2)
        actions = _read_array(a_arr, akey, source, ndim=2)
        ends = _read_array(e_arr, ekey, source, ndim=1)
        if ends.dtype.kind not in "iu":
            raise _fail(source, ekey, f"expected an integer array, got dtype {ends.dtype}")
        tasks = None
        if task_key is not None:
            tasks = _read_task_ids(root, task_key, ends.astype(np.int64), states.shape[0], source)
    finally:
        store = root.store
        if isinstance(store, zarr.ZipStore):
            store.close()
    return EpisodeDataset(states, actions, ends, tasks, source=source)


def read_zarr_attrs(path: PathLike) -> dict:
    """The store's root attributes (``{}`` when it has none)."""
    path = Path(path)
    root = _open_store(path, str(path))
    try:
        return dict(root.attrs)
    except Exception as exc:  # corrupt .zattrs
        raise _fail(str(path), ".zattrs", f"cannot read ({_one_line(exc)})") from exc


def list_zarr_arrays(path: PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{"data/state": ((N, S), "float32"), ...}`` for every array in a store (metadata only)."""
    path = Path(path)
    root = _open_store(path, str(path))
    out: dict[str, tuple[tuple[int, ...], str]] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, zarr.core.Array):
            out[name] = (tuple(obj.shape), str(obj.dtype))

    root.visititems(visit)
    return out


# -- writing ----------------------------------------------------------------------------


def _time_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    row_bytes = itemsize * int(np.prod(shape[1:], dtype=np.int64))
    steps = int(np.clip(TARGET_CHUNK_BYTES // max(row_bytes, 1), 1, max(shape[0], 1)))
    return (steps,) + tuple(shape[1:])


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` store to ``final``; an old store there is removed after the swap."""
    if final.exists() or final.is_symlink():
        trash = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, trash)
        try:
            os.rename(tmp, final)
        except BaseException:
            os.rename(trash, final)
            raise
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink()
    else:
        os.rename(tmp, final)


def write_zarr(
    path: PathLike,
    states: np.ndarray,
    actions: np.ndarray,
    episode_ends: np.ndarray,
    extra: Optional[Mapping[str, np.ndarray]] = None,
    task_ids: Optional[np.ndarray] = None,
    overwrite: bool = False,
    attrs: Optional[Mapping] = None,
) -> Path:
    """Write episodes in Diffusion Policy's zarr layout, atomically.

    Args:
        path: destination ``.zarr`` directory.
        states: ``(N, S)`` stored as ``data/state`` (float32).
        actions: ``(N, A)`` stored as ``data/action`` (float32).
        episode_ends: ``(E,)`` exclusive ends, stored as ``meta/episode_ends`` (int64).
        extra: more per-step arrays ``name -> (N, ...)`` stored as ``data/<name>``, dtype kept.
        task_ids: optional ``(E,)`` stored as ``meta/task_id`` (read back with ``task_key="task_id"``).
        overwrite: replace an existing store at ``path`` (otherwise ``FileExistsError``).
        attrs: JSON-serialisable root attributes, e.g. ``{"control_rate_hz": 10.0}`` (the rate
            the steps were sampled at; ``warpd export`` copies it into bundle.json).

    The store is built in a temporary directory beside ``path`` and renamed into place when
    complete, so ``path`` never holds a half-written store. Returns ``path``.
    """
    final = Path(path)
    ds = EpisodeDataset(states, actions, episode_ends, task_ids, source=str(final))  # validates
    extra = dict(extra or {})
    for name, arr in extra.items():
        arr = np.asarray(arr)
        if name in ("state", "action") or "/" in name or not name:
            raise ValueError(f"extra array name {name!r} is reserved or invalid")
        if arr.ndim < 1 or arr.shape[0] != ds.n_steps:
            raise ValueError(f"extra array {name!r}: leading dimension {arr.shape[:1]} != number of steps {ds.n_steps}")
        extra[name] = arr
    if (final.exists() or final.is_symlink()) and not overwrite:
        raise FileExistsError(f"{final}: already exists (pass overwrite=True to replace it)")
    final.parent.mkdir(parents=True, exist_ok=True)

    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        root = zarr.open_group(zarr.DirectoryStore(str(tmp)), mode="w")
        if attrs:
            root.attrs.update(dict(attrs))
        data = root.create_group("data")
        meta = root.create_group("meta")
        arrays = {"state": ds.states, "action": ds.actions, **extra}
        for name, arr in arrays.items():
            data.create_dataset(name, data=arr, chunks=_time_chunks(arr.shape, arr.dtype.itemsize),
                                compressor=COMPRESSOR)
        meta.create_dataset("episode_ends", data=ds.episode_ends, chunks=ds.episode_ends.shape,
                            compressor=COMPRESSOR)
        if ds.task_ids is not None:
            meta.create_dataset(TASK_ID_KEY, data=ds.task_ids, chunks=ds.task_ids.shape, compressor=COMPRESSOR)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
