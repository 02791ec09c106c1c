"""Inference API used by the generator: bundle -> :class:`PolicyGenerator`.

``generate(obs)`` runs the reverse diffusion over the latent (conditioned on the normalised
observation and/or task id), decodes the latent with the hypernetwork and folds the
normalisation into the generated MLP, so the returned flat vector maps raw observations to
raw actions (:class:`warpd_core.policy.MLPPolicy` runs it as is).

Two backends: ``torch`` (the project's modules, CPU or CUDA) and ``onnx`` (onnxruntime,
CUDAExecutionProvider when available, else CPU; no torch call in the sampling loop). Both
use the same numpy scheduler math and draw the same noise from a ``numpy.random.Generator``
seeded by ``seed``, so for the same bundle, seed and call sequence they agree to float
precision.
"""

from __future__ import annotations

import os

import numpy as np

from warpd_core.export.bundle_format import BundleError, normalization_arrays, read_bundle
from warpd_core.models.schedulers import NumpySampler
from warpd_core.policy import PolicySpec

BACKENDS = ("torch", "onnx")


class _TorchBackend:
    def __init__(self, meta: dict, device: str):
        import torch

        from warpd_core.models.denoiser import LatentDenoiser
        from warpd_core.models.hypernet import HyperDecoder
        from warpd_core.train.checkpoint import load_unique_state_dict
        from safetensors.torch import load_file

        self.torch = torch
        d = meta["_dir"]
        spec = PolicySpec.from_dict(meta["policy_spec"])
        den = meta["denoiser"]
        with torch.random.fork_rng(devices=[]):  # construction initialises weights; keep the caller's RNG
            self.hypernet = HyperDecoder(spec, meta["latent_dim"], tuple(meta["decoder"]["layers"]))
            self.denoiser = LatentDenoiser(meta["latent_dim"], tuple(meta["latent_shape"]), meta["condition"],
                                           meta["obs_dim"], meta["n_tasks"], den["task_embed_dim"], den["unet_size"],
                                           den["kernel_size"], den["n_groups"])
        for module, name in ((self.hypernet, "hypernet.safetensors"), (self.denoiser, "denoiser.safetensors")):
            path = os.path.join(d, name)
            try:
                sd = {k: v.float() for k, v in load_file(path).items()}
                load_unique_state_dict(module, sd, path)
            except BundleError:
                raise
            except Exception as exc:  # noqa: BLE001 - safetensors / shape errors
                raise BundleError(f"{path}: cannot load weights ({exc})") from None
        self.device = torch.device(device)
        self.hypernet.to(self.device).eval()
        self.denoiser.to(self.device).eval()

    def denoise(self, x, t, state_n, task):
        torch = self.torch
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(self.device)
            tt = torch.full((x.shape[0],), float(t), device=self.device)
            s = torch.from_numpy(state_n).to(self.device) if state_n is not None else None
            k = torch.from_numpy(task).to(self.device) if task is not None else None
            return self.denoiser(xt, tt, s, k).float().cpu().numpy()

    def decode(self, z):
        torch = self.torch
        with torch.inference_mode():
            return self.hypernet(torch.from_numpy(z).to(self.device)).float().cpu().numpy()


class _OnnxBackend:
    def __init__(self, meta: dict, device: str):
        import onnxruntime as ort

        onnx_meta = meta.get("onnx")
        jpath = os.path.join(meta["_dir"], "bundle.json")
        if not isinstance(onnx_meta, dict) or "denoiser" not in onnx_meta or "hypernet" not in onnx_meta:
            raise BundleError(f"{jpath}: field 'onnx' missing: export with --onnx to use backend 'onnx'")
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # One intra-op thread and no spin-waiting: on the 2-core target a batch-1 generation
        # took 40 ms this way and 187 ms with ORT's default all-core spinning pool, which also
        # steals the core the controller runs on (warpd bench generator).
        opts.intra_op_num_threads = int(os.environ.get("WARPD_ORT_THREADS", "1"))
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {}
        for key in ("denoiser", "hypernet"):
            path = os.path.join(meta["_dir"], onnx_meta[key])
            try:
                self.sessions[key] = ort.InferenceSession(path, sess_options=opts, providers=providers)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
                raise BundleError(f"{path}: cannot load ONNX model ({exc})") from None
        self.den_inputs = [i.name for i in self.sessions["denoiser"].get_inputs()]

    def denoise(self, x, t, state_n, task):
        feed = {"sample": x, "timestep": np.full((x.shape[0],), float(t), np.float32)}
        if "state" in self.den_inputs:
            feed["state"] = state_n
        if "task" in self.den_inputs:
            feed["task"] = task
        return self.sessions["denoiser"].run(None, feed)[0]

    def decode(self, z):
        return self.sessions["hypernet"].run(None, {"z": z})[0]


class PolicyGenerator:
    """Samples policy weights from a bundle. Attributes: ``spec`` (generated MLP, raw obs -> raw
    action after folding), ``model_id``, ``horizon``, ``obs_dim``, ``act_dim``, ``n_tasks``
    (0 = not task conditioned), ``condition``, ``sampler`` (kind, steps), ``backend``."""

    def __init__(self, meta: dict, backend: str, device: str, sampler: str | None, steps: int | None, seed: int):
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        self.meta = meta
        self.spec = PolicySpec.from_dict(meta["policy_spec"])
        self.model_id = meta["model_id"]
        self.horizon = int(meta["horizon"])
        self.obs_dim, self.act_dim = int(meta["obs_dim"]), int(meta["act_dim"])
        self.n_tasks = int(meta["n_tasks"])
        self.condition = meta["condition"]
        self.latent_shape = tuple(meta["latent_shape"])
        self.backend = backend
        sch = meta["scheduler"]
        self.sampler = NumpySampler(int(sch["num_train_timesteps"]), sch["beta_schedule"],
                                    sampler or meta["sampler"]["kind"], int(steps or meta["sampler"]["steps"]),
                                    bool(sch.get("clip_sample", True)))
        norm = normalization_arrays(meta)
        self._obs_scale, self._obs_offset = norm["obs"]
        self._lat_scale, self._lat_offset = norm["latent"]
        a_scale, a_offset = norm["action"]
        # policy emits a_n = scale * a + offset  =>  a = a_n / scale - offset / scale
        self._fold = (self._obs_scale, self._obs_offset, 1.0 / a_scale, -a_offset / a_scale)
        self._rng = np.random.default_rng(seed)
        self._impl = _TorchBackend(meta, device) if backend == "torch" else _OnnxBackend(meta, device)

    def _check(self, obs: np.ndarray, task_id) -> tuple[np.ndarray, np.ndarray | None]:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[None]
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs: expected shape (B, {self.obs_dim}), got {obs.shape}")
        if not np.all(np.isfinite(obs)):
            raise ValueError("obs: contains non-finite values")
        task = None
        if "task" in self.condition:
            if task_id is None:
                raise ValueError(f"task_id: required, this model is task conditioned ({self.n_tasks} tasks)")
            task = np.broadcast_to(np.asarray(task_id, dtype=np.int64).reshape(-1), (obs.shape[0],)).copy()
            if np.any(task < 0) or np.any(task >= self.n_tasks):
                raise ValueError(f"task_id: expected values in [0, {self.n_tasks}), got {task.tolist()}")
        return obs, task

    def sample_latents(self, obs: np.ndarray, task_id: np.ndarray | None = None) -> np.ndarray:
        """obs (B, obs_dim) raw -> latents z (B, latent_dim) (un-normalised, what the hypernet takes)."""
        obs, task = self._check(obs, task_id)
        B = obs.shape[0]
        state_n = (obs * self._obs_scale + self._obs_offset).astype(np.float32) if "state" in self.condition else None
        x = self._rng.standard_normal((B, *self.latent_shape)).astype(np.float32)
        for t in self.sampler.timesteps:
            eps = self._impl.denoise(x, int(t), state_n, task)
            x = self.sampler.step(eps, int(t), x, self._rng)
        return ((x.reshape(B, -1) - self._lat_offset) / self._lat_scale).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """z (B, latent_dim) -> flat weights (B, n_weights), raw obs -> raw action (folded)."""
        theta_n = self._impl.decode(np.ascontiguousarray(z, dtype=np.float32))
        out = np.stack([self.spec.fold_affine(w, *self._fold) for w in theta_n])
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"model {self.model_id}: generated non-finite policy weights")
        return out

    def reseed(self, seed: int) -> None:
        """Restart the sampling noise from ``seed`` (evaluation repeats)."""
        self._rng = np.random.default_rng(int(seed))

    def step_cost(self, horizon: int):
        """Inference FLOPs per control step at ``horizon`` (:class:`warpd_core.models.flops.StepCost`):
        ``sampler.steps`` denoiser forwards + one hypernetwork decode per generation, the generated
        MLP on every step, counted on this generator's torch modules (torch backend only)."""
        if self.backend != "torch":
            raise ValueError(f"model {self.model_id}: FLOPs are counted on the torch modules; load it with backend 'torch'")
        from warpd_core.models.flops import warpd_step_cost

        return warpd_step_cost(self._impl.denoiser, self._impl.hypernet, self.spec, self.sampler.steps, horizon)

    def generate(self, obs: np.ndarray, task_id: np.ndarray | None = None) -> np.ndarray:
        """obs (B, obs_dim) float32 raw -> flat weights (B, spec.n_weights) float32, normalisation folded in, finite."""
        return self.decode(self.sample_latents(obs, task_id))


def load_generator(path: str | os.PathLike, backend: str = "torch", device: str = "cpu", sampler: str | None = None,
                   steps: int | None = None, seed: int = 0) -> PolicyGenerator:
    """Load a bundle directory. Raises :class:`BundleError` (a ValueError) naming the file and
    field when the bundle is missing, corrupt, truncated or inconsistent."""
    meta = read_bundle(path)
    return PolicyGenerator(meta, backend, device, sampler, steps, seed)


__all__ = ["BundleError", "PolicyGenerator", "load_generator"]
