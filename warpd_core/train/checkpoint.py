"""Checkpoints: one safetensors file (tensors) + one JSON file (everything else).

``<dir>/<name>.safetensors`` holds model weights, flattened optimiser state, EMA weights and
RNG states; ``<dir>/<name>.json`` holds the config, epoch, step, the numpy RNG state, library
versions, and the sha256 and size of the safetensors file. Both are written to a temporary
name and moved into place with ``os.replace`` (safetensors first, the JSON last, so the JSON is
the commit record). Until the new JSON is in place the previous tensors stay on disk as
``<name>.prev.safetensors``, so a process killed between the two replacements leaves the last
committed checkpoint loadable (test_reliability_training.py). Loading checks the hash: a
truncated or corrupted checkpoint raises :class:`CheckpointError` naming the file. No pickles.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from warpd_core.export.bundle_format import sha256_file, write_json_atomic  # torch-free helpers


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated or corrupted; the message names the file."""


def library_versions() -> dict[str, str]:
    import numpy

    out = {"torch": torch.__version__, "numpy": numpy.__version__}
    from importlib.metadata import PackageNotFoundError, version

    # onnxruntime: the CPU distribution the extras declare, or the GPU build installed instead
    for name, dists in (("diffusers", ["diffusers"]), ("hypnettorch", ["hypnettorch"]), ("safetensors", ["safetensors"]),
                        ("onnx", ["onnx"]), ("onnxruntime", ["onnxruntime", "onnxruntime-gpu"])):
        for dist in dists:
            try:
                out[name] = version(dist)
                break
            except PackageNotFoundError:  # optional packages
                continue
    import warpd_core

    out["warpd"] = warpd_core.__version__
    return out


# -- optimiser state <-> flat tensors -----------------------------------------------------
def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    plen = len(prefix) + 1
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            pid, key = name[plen:].split(".", 1)
            state.setdefault(int(pid), {})[key] = value
    for pid, extra in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def unique_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` without aliases: hypnettorch's HMLP registers each weight twice
    (``_internal_params.i`` and ``_layer_weight_tensors.j``); safetensors refuses shared
    storage, and one copy is enough because loading it fills the shared Parameter."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple] = set()
    for key, value in module.state_dict().items():
        ident = (value.data_ptr(), value.dtype, tuple(value.shape), tuple(value.stride())) if value.numel() else None
        if ident is not None and ident in seen:
            continue
        if ident is not None:
            seen.add(ident)
        out[key] = value
    return out


def load_unique_state_dict(module: torch.nn.Module, sd: dict[str, torch.Tensor], source: str = "<tensors>") -> None:
    """Inverse of :func:`unique_state_dict`: every key of the module must be in ``sd`` or be an
    alias of one that is; unexpected keys are errors."""
    expected = unique_state_dict(module)
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(module.state_dict()))
    if missing or unexpected:
        raise CheckpointError(f"{source}: tensors do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    for key, value in sd.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{source}: tensor {key!r} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
    module.load_state_dict(sd, strict=False)


def prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in sd.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


# -- files ----------------------------------------------------------------------------------
def save_checkpoint(directory: str, name: str, tensors: dict[str, torch.Tensor], meta: dict) -> str:
    os.makedirs(directory, exist_ok=True)
    st_path = os.path.join(directory, f"{name}.safetensors")
    prev_path = os.path.join(directory, f"{name}.prev.safetensors")
    tmp = f"{st_path}.tmp.{os.getpid()}"
    save_file(tensors, tmp)
    meta = dict(meta)
    meta["tensors_file"] = os.path.basename(st_path)
    meta["tensors_sha256"] = sha256_file(tmp)
    meta["tensors_bytes"] = os.path.getsize(tmp)
    meta.setdefault("versions", library_versions())
    # The JSON on disk still describes the old tensors: keep them reachable until the new JSON
    # commits, or a kill between the two replacements would leave no loadable checkpoint.
    if os.path.exists(st_path):
        os.replace(st_path, prev_path)
    os.replace(tmp, st_path)
    write_json_atomic(os.path.join(directory, f"{name}.json"), meta)
    if os.path.exists(prev_path):
        os.remove(prev_path)
    return st_path


def _matches(path: str, meta: dict) -> bool:
    return (os.path.isfile(path) and os.path.getsize(path) == meta.get("tensors_bytes")
            and sha256_file(path) == meta["tensors_sha256"])


def load_checkpoint(directory: str, name: str = "last") -> tuple[dict[str, torch.Tensor], dict]:
    json_path = os.path.join(os.fspath(directory), f"{name}.json")
    try:
        with open(json_path, "r", encoding="utf-8") as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise CheckpointError(f"{json_path}: checkpoint metadata not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{json_path}: corrupted checkpoint metadata ({exc})") from None
    if not isinstance(meta, dict) or "tensors_sha256" not in meta:
        raise CheckpointError(f"{json_path}: field 'tensors_sha256' missing")
    st_path = os.path.join(os.fspath(directory), meta.get("tensors_file", f"{name}.safetensors"))
    prev_path = os.path.join(os.fspath(directory), f"{name}.prev.safetensors")
    if os.path.exists(prev_path) and _matches(prev_path, meta) and not _matches(st_path, meta):
        st_path = prev_path  # killed inside save_checkpoint: the committed tensors are the previous ones
    if not os.path.exists(st_path):
        raise CheckpointError(f"{st_path}: checkpoint tensors not found")
    size = os.path.getsize(st_path)
    if size != meta.get("tensors_bytes"):
        raise CheckpointError(f"{st_path}: truncated or modified checkpoint ({size} bytes, expected {meta.get('tensors_bytes')})")
    if sha256_file(st_path) != meta["tensors_sha256"]:
        raise CheckpointError(f"{st_path}: corrupted checkpoint (sha256 mismatch)")
    try:
        tensors = load_file(st_path)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{st_path}: unreadable safetensors ({exc})") from None
    return tensors, meta
