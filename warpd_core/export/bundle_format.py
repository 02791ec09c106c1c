"""The export bundle on disk, without torch.

A bundle is a directory::

    bundle.json            everything needed to rebuild and run the model (see below)
    hypernet.safetensors   hypernetwork decoder weights (keys of HyperDecoder, aliases removed)
    denoiser.safetensors   EMA weights of the latent denoiser (LatentDenoiser)
    onnx/denoiser.onnx     optional: (sample, timestep[, state][, task]) -> eps
    onnx/hypernet.onnx     optional: z -> weights (normalised space)

``bundle.json`` fields: ``format`` ("warpd-bundle"), ``format_version``, ``model_id``,
``policy_spec`` (PolicySpec.to_dict), ``obs_dim``, ``act_dim``, ``n_tasks`` (0 = not task
conditioned), ``horizon`` (default action horizon), ``trajectory_length`` (length of the
VAE's training windows; null or absent when unknown), ``condition`` (state | task | state+task | none), ``latent_dim``,
``latent_shape`` [T, C], ``decoder`` {layers}, ``denoiser`` {unet_size, kernel_size, n_groups,
task_embed_dim}, ``scheduler`` {num_train_timesteps, beta_schedule, clip_sample,
prediction_type}, ``sampler`` {kind, steps} (defaults), ``normalization`` {obs, action,
latent: {scale, offset}} with the convention ``x_n = scale * x + offset``, ``dtype`` of the
stored weights, ``files`` {relative path: {sha256, bytes}}, ``onnx`` (null or {denoiser,
hypernet, opset}), ``versions``, ``provenance`` (below); optional ``control_rate_hz`` (the
rate the training data was sampled at; bundles written before it existed lack it).

``provenance`` says what made the bundle without naming the machine it was made on:
``kind`` ("checkpoints" | "init" | "rewritten"), ``git`` (the exporting code's
:func:`warpd_core.version.git_revision`: {commit, dirty}, or null outside a git checkout);
for "checkpoints" ``training`` {vae, diffusion}, each {config (the resolved training config
as a dict), epoch, step, git (the training code's revision; null when the checkpoint
predates the field)}; for "init" ``seed``; for "rewritten" ``model_id`` and ``original``
(the provenance of the bundle it was rewritten from). Bundles written before the field
existed have ``source`` instead, with the absolute run folders of the training machine;
they load as before, and :func:`bundle_provenance` reads either.

:func:`read_bundle` validates all of it and the file hashes; any problem raises
:class:`BundleError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

BUNDLE_FORMAT = "warpd-bundle"
BUNDLE_FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
CONDITIONS = ("state", "task", "state+task", "none")
PROVENANCE_KINDS = ("checkpoints", "init", "rewritten")  # "legacy": only what bundle_provenance reads from `source`


class BundleError(ValueError):
    """A bundle is missing, truncated, corrupted or inconsistent; names the file and field."""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compute_model_id(meta: dict) -> str:
    """Content hash over the weight files and everything in bundle.json that changes outputs."""
    h = hashlib.sha256()
    for name in sorted(meta["files"]):
        if name.endswith(".safetensors"):
            h.update(name.encode() + meta["files"][name]["sha256"].encode())
    keys = ("policy_spec", "horizon", "condition", "latent_shape", "decoder", "denoiser", "scheduler", "normalization")
    h.update(json.dumps({k: meta.get(k) for k in keys}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _require(meta: dict, path: str, field: str, kind: type | tuple, check=None, what: str = "") -> Any:
    if field not in meta:
        raise BundleError(f"{path}: field {field!r} missing")
    value = meta[field]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BundleError(f"{path}: field {field!r} must be {what or kind}, got {value!r}")
    if check is not None and not check(value):
        raise BundleError(f"{path}: field {field!r} must be {what}, got {value!r}")
    return value


def read_bundle(path: str | os.PathLike, verify_hashes: bool = True) -> dict:
    """Read and validate ``<path>/bundle.json`` (``path`` may also be the json file itself)."""
    path = os.fspath(path)
    directory = os.path.dirname(path) if path.endswith(".json") else path
    jpath = os.path.join(directory, BUNDLE_JSON)
    if not os.path.isdir(directory):
        raise BundleError(f"{directory}: bundle directory not found")
    try:
        with open(jpath, "r", encoding="utf-8") as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise BundleError(f"{jpath}: bundle.json not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{jpath}: corrupted or truncated JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{jpath}: expected a JSON object")
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{jpath}: field 'format' must be {BUNDLE_FORMAT!r}, got {meta.get('format')!r}")
    _require(meta, jpath, "format_version", int, lambda v: v == BUNDLE_FORMAT_VERSION, f"{BUNDLE_FORMAT_VERSION}")
    _require(meta, jpath, "model_id", str, lambda v: len(v) > 0, "a non-empty string")
    pos = lambda v: v > 0  # noqa: E731
    for field in ("obs_dim", "act_dim", "horizon", "latent_dim"):
        _require(meta, jpath, field, int, pos, "a positive int")
    if meta.get("trajectory_length") is not None:
        _require(meta, jpath, "trajectory_length", int, pos, "a positive int or null")
    _require(meta, jpath, "n_tasks", int, lambda v: v >= 0, "an int >= 0")
    _require(meta, jpath, "condition", str, lambda v: v in CONDITIONS, f"one of {CONDITIONS}")
    if "task" in meta["condition"] and meta["n_tasks"] <= 0:
        raise BundleError(f"{jpath}: field 'n_tasks' must be > 0 for condition {meta['condition']!r}")
    _require(meta, jpath, "latent_shape", list, lambda v: len(v) == 2 and v[0] * v[1] == meta["latent_dim"],
             "[T, C] with T*C == latent_dim")
    spec_d = _require(meta, jpath, "policy_spec", dict)
    try:
        from warpd_core.policy import PolicySpec

        spec = PolicySpec.from_dict(spec_d)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{jpath}: field 'policy_spec' invalid ({exc})") from None
    if spec.in_dim != meta["obs_dim"] or spec.out_dim != meta["act_dim"]:
        raise BundleError(f"{jpath}: field 'policy_spec' dims {spec.in_dim}->{spec.out_dim} != obs_dim/act_dim")
    rate = meta.get("control_rate_hz")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not np.isfinite(rate)
                             or rate <= 0):
        raise BundleError(f"{jpath}: field 'control_rate_hz' must be a positive number of Hz, got {rate!r}")
    for field in ("decoder", "denoiser", "scheduler", "sampler", "normalization", "files"):
        _require(meta, jpath, field, dict)
    if "provenance" in meta:
        prov = _require(meta, jpath, "provenance", dict)
        _require(prov, f"{jpath}: provenance", "kind", str, lambda v: v in PROVENANCE_KINDS, f"one of {PROVENANCE_KINDS}")
    norm = meta["normalization"]
    for key, dim in (("obs", meta["obs_dim"]), ("action", meta["act_dim"]), ("latent", meta["latent_dim"])):
        entry = norm.get(key)
        if not isinstance(entry, dict):
            raise BundleError(f"{jpath}: field 'normalization.{key}' missing")
        for part in ("scale", "offset"):
            arr = np.asarray(entry.get(part, []), dtype=np.float64)
            if arr.shape != (dim,) or not np.all(np.isfinite(arr)) or (part == "scale" and np.any(arr == 0)):
                raise BundleError(f"{jpath}: field 'normalization.{key}.{part}' must be {dim} finite numbers"
                                  f"{' (non-zero)' if part == 'scale' else ''}")
    for name in ("hypernet.safetensors", "denoiser.safetensors"):
        if name not in meta["files"]:
            raise BundleError(f"{jpath}: field 'files' lacks {name!r}")
    for name, info in meta["files"].items():
        fpath = os.path.join(directory, name)
        if not os.path.isfile(fpath):
            raise BundleError(f"{fpath}: file listed in bundle.json is missing")
        if not isinstance(info, dict) or "sha256" not in info or "bytes" not in info:
            raise BundleError(f"{jpath}: field 'files.{name}' needs sha256 and bytes")
        size = os.path.getsize(fpath)
        if size != info["bytes"]:
            raise BundleError(f"{fpath}: truncated or modified ({size} bytes, bundle.json says {info['bytes']})")
        if verify_hashes and sha256_file(fpath) != info["sha256"]:
            raise BundleError(f"{fpath}: corrupted (sha256 does not match bundle.json)")
    meta["_dir"] = directory
    return meta


def bundle_provenance(meta: dict) -> dict:
    """``meta["provenance"]``; for a bundle written before that field, the same shape from its
    ``source``: kind "legacy" with the run folders' names only (``runs`` {vae, diffusion}, the
    last path component), or kind "init" with the seed. No absolute path survives either way."""
    if isinstance(meta.get("provenance"), dict):
        return meta["provenance"]
    source = meta.get("source")
    source = source if isinstance(source, dict) else {}
    if source.get("init"):
        return {"kind": "init", "git": None, "seed": source.get("seed")}
    runs = {k: os.path.basename(os.path.normpath(v)) for k, v in source.items()
            if k in ("vae", "diffusion") and isinstance(v, str) and v}
    return {"kind": "legacy", "git": None, "runs": runs}


def normalization_arrays(meta: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    n = meta["normalization"]
    return {k: (np.asarray(n[k]["scale"], np.float32), np.asarray(n[k]["offset"], np.float32)) for k in ("obs", "action", "latent")}


def write_json_atomic(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
