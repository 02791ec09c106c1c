"""Write export bundles: from trained checkpoints, or freshly initialised (``export init``).

The directory is assembled under a temporary name and moved into place, so a reader never
sees half a bundle. See :mod:`warpd_core.export.bundle_format` for the layout.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file

from warpd_core.config import DECODER_SIZES, DiffusionTrainConfig
from warpd_core.export.bundle_format import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    BUNDLE_JSON,
    bundle_provenance,
    compute_model_id,
    normalization_arrays,
    sha256_file,
    write_json_atomic,
)
from warpd_core.models.denoiser import LatentDenoiser
from warpd_core.models.hypernet import HyperDecoder
from warpd_core.policy import PolicySpec
from warpd_core.train.checkpoint import library_versions, unique_state_dict
from warpd_core.version import git_revision

DTYPES = {"float32": torch.float32, "float16": torch.float16}
ONNX_OPSET = 18


def _norm_entry(scale, offset) -> dict:
    return {"scale": [float(v) for v in np.asarray(scale).ravel()], "offset": [float(v) for v in np.asarray(offset).ravel()]}


def write_bundle(out_dir: str, spec: PolicySpec, horizon: int, hypernet: HyperDecoder, denoiser: LatentDenoiser,
                 obs_norm: tuple, action_norm: tuple, diffusion_cfg: DiffusionTrainConfig,
                 onnx: bool = False, dtype: str = "float32", provenance: dict | None = None,
                 trajectory_length: int | None = None, control_rate_hz: float | None = None) -> dict:
    """Write a bundle; returns its bundle.json dict.

    ``horizon`` is the default action horizon (the runtime regenerates every ``horizon``
    steps); ``trajectory_length`` the length of the windows the VAE was trained on (how long
    one generated policy was taught to act; None: unknown, e.g. a bundle without training).
    ``control_rate_hz``: the rate the training data was sampled at (None: unknown, not written).
    ``provenance``: what made the bundle (see bundle_format; None: kind "init" without a seed);
    its ``git`` is filled in here with the revision of the code that writes the bundle.

    obs_norm / action_norm: (scale, offset) with x_n = scale * x + offset. ``dtype`` float16
    halves the safetensors files (loaders compute in float32); ONNX graphs are float32.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {list(DTYPES)}, got {dtype!r}")
    out_dir = os.fspath(out_dir).rstrip("/")
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    hypernet = hypernet.cpu().eval()
    denoiser = denoiser.cpu().eval()
    files = {}
    for name, module in (("hypernet.safetensors", hypernet), ("denoiser.safetensors", denoiser)):
        sd = {k: (v.to(DTYPES[dtype]) if v.is_floating_point() else v).contiguous() for k, v in unique_state_dict(module).items()}
        save_file(sd, os.path.join(tmp, name))
    lat_scale, lat_offset = denoiser.latent_norm.numpy()
    meta = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "policy_spec": spec.to_dict(),
        "obs_dim": spec.in_dim,
        "act_dim": spec.out_dim,
        "n_tasks": denoiser.n_tasks,
        "horizon": int(horizon),
        "trajectory_length": None if trajectory_length is None else int(trajectory_length),
        "condition": denoiser.condition,
        "latent_dim": denoiser.latent_dim,
        "latent_shape": list(denoiser.latent_shape),
        "decoder": {"layers": list(hypernet.layers)},
        "denoiser": {"unet_size": diffusion_cfg.unet_size, "kernel_size": diffusion_cfg.kernel_size,
                     "n_groups": diffusion_cfg.n_groups, "task_embed_dim": diffusion_cfg.task_embed_dim},
        "scheduler": {"num_train_timesteps": diffusion_cfg.num_train_timesteps, "beta_schedule": diffusion_cfg.beta_schedule,
                      "clip_sample": True, "prediction_type": "epsilon"},
        "sampler": {"kind": diffusion_cfg.sampler, "steps": diffusion_cfg.sampler_steps},
        "normalization": {"convention": "x_n = scale * x + offset", "obs": _norm_entry(*obs_norm),
                          "action": _norm_entry(*action_norm), "latent": _norm_entry(lat_scale, lat_offset)},
        "dtype": dtype,
        "onnx": None,
        "versions": library_versions(),
        "provenance": {"kind": "init", **(provenance or {}), "git": git_revision()},
    }
    if control_rate_hz is not None:
        if not (np.isfinite(control_rate_hz) and control_rate_hz > 0):
            raise ValueError(f"control_rate_hz: expected a positive number of Hz, got {control_rate_hz}")
        meta["control_rate_hz"] = float(control_rate_hz)
    if onnx:
        from warpd_core.export.onnx_export import export_denoiser, export_hypernet

        os.makedirs(os.path.join(tmp, "onnx"))
        export_denoiser(denoiser, os.path.join(tmp, "onnx", "denoiser.onnx"), ONNX_OPSET)
        export_hypernet(hypernet, os.path.join(tmp, "onnx", "hypernet.onnx"), ONNX_OPSET)
        meta["onnx"] = {"denoiser": "onnx/denoiser.onnx", "hypernet": "onnx/hypernet.onnx", "opset": ONNX_OPSET}
    for rel in ["hypernet.safetensors", "denoiser.safetensors"] + (
            ["onnx/denoiser.onnx", "onnx/hypernet.onnx"] if onnx else []):
        p = os.path.join(tmp, rel)
        files[rel] = {"sha256": sha256_file(p), "bytes": os.path.getsize(p)}
    meta["files"] = files
    meta["model_id"] = compute_model_id(meta)
    write_json_atomic(os.path.join(tmp, BUNDLE_JSON), meta)
    old = None
    if os.path.exists(out_dir):
        old = f"{out_dir}.old-{os.getpid()}"
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return meta


@torch.no_grad()
def fold_projection(hypernet: HyperDecoder, projection) -> HyperDecoder:
    """A hypernetwork on the k principal-component coordinates ``c`` computing exactly what
    ``hypernet`` computes on ``z = mean + c @ basis``: its first layer ``W z + b`` becomes
    ``(W basis.T) c + (b + W mean)``; the other layers are copied."""
    folded = HyperDecoder(hypernet.spec, projection.k, hypernet.layers)
    src, dst = hypernet.hnet, folded.hnet
    for a, b in zip(src.internal_params, dst.internal_params):
        if a.shape == b.shape:
            b.copy_(a)
    w0, b0 = src.layer_weight_tensors[0], src.layer_bias_vectors[0]
    dst.layer_weight_tensors[0].copy_(w0 @ projection.basis.T)
    dst.layer_bias_vectors[0].copy_(b0 + w0 @ projection.mean)
    return folded.eval()


def _dataset_rate(cfg) -> float | None:
    """The training data's recorded control rate (zarr attribute / LeRobot fps), if it has one."""
    from warpd_core.data.episodes import DatasetError
    from warpd_core.data.io import dataset_rate_hz

    if cfg.format == "synthetic" or not cfg.path or not os.path.exists(cfg.path):
        return None
    try:
        return dataset_rate_hz(cfg.path, cfg.format)
    except (DatasetError, ValueError):
        return None


def _run_record(ckpt_meta: dict) -> dict:
    """One training run in bundle.json's provenance: its resolved config and where it stopped;
    ``git`` is the training code's revision (Trainer.save; null for older checkpoints)."""
    return {"config": ckpt_meta["config"], "epoch": ckpt_meta.get("epoch"), "step": ckpt_meta.get("step"),
            "git": ckpt_meta.get("git")}


def export_from_checkpoints(vae_dir: str, diffusion_dir: str, out_dir: str, onnx: bool = False,
                            dtype: str = "float32", control_rate_hz: float | None = None) -> dict:
    """Trained VAE + diffusion checkpoints -> bundle (EMA weights of the denoiser).
    ``control_rate_hz`` None: the rate recorded in the VAE's training data, if any."""
    from warpd_core.train.denoiser_checkpoint import load_diffusion
    from warpd_core.train.vae_trainer import load_vae

    vae, _, vae_cfg, vae_meta = load_vae(vae_dir)
    denoiser, dcfg, dmeta = load_diffusion(diffusion_dir)
    hypernet = vae.decoder
    source_dim = denoiser.projection.mean.numel() if denoiser.projection is not None else denoiser.latent_dim
    if source_dim != vae.latent_dim:
        raise ValueError(f"{diffusion_dir}: latent_dim {source_dim} != VAE latent_dim {vae.latent_dim} ({vae_dir})")
    if denoiser.projection is not None:
        hypernet = fold_projection(hypernet, denoiser.projection)
        denoiser.projection = None  # folded: the bundle's latent is the k coordinates
    return write_bundle(out_dir, vae.spec, vae_cfg.horizon, hypernet, denoiser, vae.state_norm.numpy(),
                        vae.action_norm.numpy(), dcfg, onnx, dtype,
                        {"kind": "checkpoints", "training": {"vae": _run_record(vae_meta), "diffusion": _run_record(dmeta)}},
                        vae_cfg.trajectory_length,
                        control_rate_hz if control_rate_hz is not None else _dataset_rate(vae_cfg.dataset))


def export_from_bundle(bundle_dir: str, out_dir: str, onnx: bool = False, dtype: str | None = None,
                       control_rate_hz: float | None = None) -> dict:
    """Rewrite a bundle from its own files, e.g. to add the ONNX graphs to a bundle shipped
    without them: same weights, same bundle.json fields, same ``model_id`` (``dtype`` None keeps
    the stored one). ``out_dir`` may be ``bundle_dir``: everything is read before the atomic
    replace."""
    from warpd_core.export.bundle import load_generator

    gen = load_generator(bundle_dir, backend="torch")
    meta = gen.meta
    den, sch, smp = meta["denoiser"], meta["scheduler"], meta["sampler"]
    dcfg = DiffusionTrainConfig(unet_size=den["unet_size"], kernel_size=den["kernel_size"], n_groups=den["n_groups"],
                                task_embed_dim=den["task_embed_dim"], latent_shape=list(meta["latent_shape"]),
                                condition=meta["condition"], n_tasks=meta["n_tasks"],
                                num_train_timesteps=sch["num_train_timesteps"], beta_schedule=sch["beta_schedule"],
                                sampler=smp["kind"], sampler_steps=smp["steps"])
    norm = normalization_arrays(meta)
    provenance = {"kind": "rewritten", "model_id": meta["model_id"], "original": bundle_provenance(meta)}
    return write_bundle(out_dir, gen.spec, meta["horizon"], gen._impl.hypernet, gen._impl.denoiser,
                        norm["obs"], norm["action"], dcfg, onnx, dtype or meta.get("dtype", "float32"),
                        provenance, meta.get("trajectory_length"),
                        control_rate_hz if control_rate_hz is not None else meta.get("control_rate_hz"))


def _range_affine(low: float | None, high: float | None, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if low is None or high is None:
        return np.ones(dim, np.float32), np.zeros(dim, np.float32)
    if not high > low:
        raise ValueError(f"range: expected low < high, got [{low}, {high}]")
    scale = 2.0 / (high - low)
    return np.full(dim, scale, np.float32), np.full(dim, -1.0 - low * scale, np.float32)


def export_init(out_dir: str, obs_dim: int, act_dim: int, hidden: list[int], horizon: int = 16,
                decoder: str = "xs", unet: str = "s", latent_dim: int = 256, latent_shape: tuple[int, int] = (16, 16),
                condition: str = "state", n_tasks: int = 0, seed: int = 0, onnx: bool = False, dtype: str = "float32",
                obs_range: tuple[float, float] | None = None, act_range: tuple[float, float] | None = None,
                activation: str = "relu", sampler: str = "ddim", sampler_steps: int = 10,
                control_rate_hz: float | None = None) -> dict:
    """A bundle with freshly initialised weights from the project's model classes (what the
    runtime runs before a trained model exists). Deterministic in ``seed``. ``obs_range`` /
    ``act_range`` (low, high) set a min-max normalisation so raw values in that range map to
    [-1, 1]; without them the normalisation is the identity. Latent normalisation is the
    identity."""
    if decoder not in DECODER_SIZES:
        raise ValueError(f"decoder: expected one of {list(DECODER_SIZES)}, got {decoder!r}")
    dcfg = DiffusionTrainConfig(unet_size=unet, latent_shape=list(latent_shape), condition=condition,
                                n_tasks=n_tasks, sampler=sampler, sampler_steps=sampler_steps)
    spec = PolicySpec(int(obs_dim), tuple(int(h) for h in hidden), int(act_dim), activation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hypernet = HyperDecoder(spec, latent_dim, DECODER_SIZES[decoder])
        denoiser = LatentDenoiser(latent_dim, tuple(latent_shape), condition, spec.in_dim, n_tasks,
                                  dcfg.task_embed_dim, unet, dcfg.kernel_size, dcfg.n_groups)
    obs_norm = _range_affine(*(obs_range or (None, None)), spec.in_dim)
    act_norm = _range_affine(*(act_range or (None, None)), spec.out_dim)
    return write_bundle(out_dir, spec, horizon, hypernet, denoiser, obs_norm, act_norm, dcfg, onnx, dtype,
                        {"kind": "init", "seed": seed}, control_rate_hz=control_rate_hz)
