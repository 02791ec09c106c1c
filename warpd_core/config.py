"""Typed training configurations loaded from YAML and validated.

Every config is a tree of dataclasses. :func:`load_config` reads a YAML file, applies
``--set a.b=value`` overrides, and builds the tree field by field; an unknown key, a value
of the wrong type or a value outside the allowed set raises :class:`ConfigError` (a
``ValueError``) naming the file, the dotted field and what was expected.

Two top-level configs:

* :class:`VAETrainConfig`   -- stage 1: encoder + hypernetwork decoder + world model (eq. 5).
* :class:`DiffusionTrainConfig` -- stage 2: latent diffusion on the trained VAE's latents.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

import yaml


class ConfigError(ValueError):
    """Invalid configuration; the message names the file, the field and what was expected."""


# ---------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------

DECODER_SIZES: dict[str, tuple[int, ...]] = {
    # Paper Table 8 (HMLP ``layers``).
    "xs": (50, 50),
    "s": (100, 100),
    "m": (200, 200),
    "l": (400, 400),
}

UNET_SIZES: dict[str, tuple[int, tuple[int, ...]]] = {
    # Paper Table 6: diffusion step embedding dim, down_dims.
    "xs": (64, (16, 32, 64)),
    "s": (256, (32, 64, 128)),
    "m": (256, (128, 256, 256)),
    "l": (256, (256, 512, 1024)),
    "xl": (512, (512, 1024, 2048)),
}


@dataclass
class DatasetConfig:
    """Where the demonstrations come from.

    ``format``: ``zarr`` / ``hdf5`` read a file with ``warpd_core.data.load_dataset(path, format,
    **options)``; ``synthetic`` generates a point-mass family (see
    :mod:`warpd_core.train.synthetic`) from ``synthetic_kind``, ``n_episodes``, ``episode_len``.
    """

    format: Literal["zarr", "hdf5", "synthetic"] = "synthetic"
    path: Optional[str] = None  # file path; relative paths resolve against the working directory
    options: dict = field(default_factory=dict)  # passed to load_dataset as keyword arguments
    synthetic_kind: Literal["gains", "two_mode"] = "gains"
    n_episodes: int = 64
    episode_len: int = 32
    seed: int = 0  # seed of the synthetic generator (independent of the training seed)

    def __post_init__(self) -> None:
        if self.format in ("zarr", "hdf5") and not self.path:
            raise ConfigError(f"dataset.path: required for format {self.format!r}")
        if self.n_episodes <= 0 or self.episode_len <= 1:
            raise ConfigError("dataset.n_episodes must be > 0 and dataset.episode_len > 1")


@dataclass
class PolicyConfig:
    """The generated MLP (paper: 2 x 256, ReLU)."""

    hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: Literal["relu", "tanh", "elu", "gelu_tanh", "identity"] = "relu"

    def __post_init__(self) -> None:
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ConfigError(f"policy.hidden: expected positive widths, got {self.hidden!r}")


@dataclass
class VAEModelConfig:
    latent_dim: int = 256
    encoder_hidden: list[int] = field(default_factory=lambda: [512, 512, 512])
    decoder_size: Literal["xs", "s", "m", "l"] = "xs"
    world_model_hidden: list[int] = field(default_factory=lambda: [1024, 1024])
    world_model_history: int = 1  # number of (s, a) pairs the world model sees
    # Lower bound of the world model's log-variance (normalised units). L_RO divides by this
    # variance; on near-deterministic dynamics an unbounded NLL drives it to ~0 and L_RO would
    # dwarf L_BC. -6 is a std of 0.05 on the [-1, 1] scale (our choice; paper silent).
    world_model_min_logvar: float = -6.0
    bias_init_scale: float = 0.1  # see warpd_core.models.hypernet

    def __post_init__(self) -> None:
        if self.latent_dim <= 0:
            raise ConfigError(f"model.latent_dim: expected > 0, got {self.latent_dim}")
        if self.world_model_history < 1:
            raise ConfigError(f"model.world_model_history: expected >= 1, got {self.world_model_history}")


@dataclass
class VAETrainConfig:
    """Stage 1 (paper eq. 5). Defaults follow Tables 9/11 where the paper gives them."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    model: VAEModelConfig = field(default_factory=VAEModelConfig)
    # Length of the training windows (paper Table 11: 256 for PushT, longer than any
    # demonstration; windows are truncated at episode ends). null: equal to ``horizon``.
    trajectory_length: Optional[int] = None
    horizon: int = 16  # default action horizon written into the bundle (regenerate every H steps)
    snippet_stride: int = 1  # a training window starts at every stride-th step of an episode
    batch_size: int = 32
    epochs: int = 100
    lr: float = 1e-4  # Adam, encoder + decoder
    world_model_lr: float = 1e-4  # Adam, world model
    beta_kl: float = 1e-10
    ro_warmup_epochs: int = 10  # L_RO switched on from this epoch (0-based) on
    use_world_model: bool = True  # False: "WARPD w/o WM" ablation, L_BC + L_KL only
    tf_loss: Literal["nll", "mse"] = "nll"
    grad_clip: Optional[float] = None
    # Std of Gaussian noise added (in normalised state units, [-1, 1] over the data's range) to
    # the states the generated policy acts on in L_BC / L_RO; the encoder, the targets and the
    # world model's inputs stay clean. 0: off (the paper's loss). Not in the paper: a lever
    # against closed-loop drift off the demonstrated states (RESULTS.md).
    policy_state_noise: float = 0.0
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 1  # epochs

    def __post_init__(self) -> None:
        if self.trajectory_length is None:
            self.trajectory_length = self.horizon
        for name in ("trajectory_length", "horizon", "batch_size", "epochs", "snippet_stride", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected > 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.world_model_lr <= 0:
            raise ConfigError("lr / world_model_lr: expected > 0")
        if self.beta_kl < 0 or self.ro_warmup_epochs < 0:
            raise ConfigError("beta_kl / ro_warmup_epochs: expected >= 0")
        if not math.isfinite(self.policy_state_noise) or self.policy_state_noise < 0:
            raise ConfigError(f"policy_state_noise: expected a finite value >= 0, got {self.policy_state_noise}")


@dataclass
class DiffusionTrainConfig:
    """Stage 2: ConditionalUnet1D over the VAE latent (viewed as ``latent_shape`` = (T, C))."""

    dataset: Optional[DatasetConfig] = None  # None: the VAE's dataset
    # a latent per window starting at every window_stride-th step (null: the VAE's snippet_stride);
    # encoding is cheap, and stride 1 gives the denoiser every state of the demonstrations
    window_stride: Optional[int] = None
    unet_size: Literal["xs", "s", "m", "l", "xl"] = "s"
    latent_shape: list[int] = field(default_factory=lambda: [16, 16])
    # 0: diffuse over the whole VAE latent; k > 0: over its coordinates in the top-k principal
    # directions of the training latents (latent_shape must hold k; see LatentProjection)
    latent_pca: int = 0
    condition: Literal["state", "task", "state+task", "none"] = "state"
    task_embed_dim: int = 32
    n_tasks: int = 0  # 0: infer from the dataset's task ids when the condition uses tasks
    kernel_size: int = 5
    n_groups: int = 8
    num_train_timesteps: int = 100
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"
    sampler: Literal["ddpm", "ddim"] = "ddim"  # default written into the export bundle
    sampler_steps: int = 10
    batch_size: int = 256
    epochs: int = 100
    lr: float = 1e-4  # AdamW as in Diffusion Policy
    weight_decay: float = 1e-6
    lr_warmup_steps: int = 500
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        if len(self.latent_shape) != 2 or any(d <= 0 for d in self.latent_shape):
            raise ConfigError(f"latent_shape: expected [T, C] positive, got {self.latent_shape!r}")
        levels = len(UNET_SIZES[self.unet_size][1]) - 1
        if self.latent_shape[0] % (2**levels):
            raise ConfigError(
                f"latent_shape: T={self.latent_shape[0]} must be divisible by 2^{levels} for unet_size {self.unet_size!r}"
            )
        for name in ("batch_size", "epochs", "num_train_timesteps", "sampler_steps", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected > 0, got {getattr(self, name)}")
        if self.latent_pca < 0:
            raise ConfigError(f"latent_pca: expected >= 0, got {self.latent_pca}")
        if self.window_stride is not None and self.window_stride <= 0:
            raise ConfigError(f"window_stride: expected > 0 or null, got {self.window_stride}")
        if self.latent_pca and self.latent_shape[0] * self.latent_shape[1] != self.latent_pca:
            raise ConfigError(f"latent_shape: {self.latent_shape} must hold latent_pca = {self.latent_pca} values "
                              f"(e.g. [{self.latent_pca}, 1])")
        if self.sampler_steps > self.num_train_timesteps:
            raise ConfigError("sampler_steps: expected <= num_train_timesteps")


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(inner)}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp``; returns the converted value or raises ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _convert(value, option, where)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for section {tp.__name__}, got {value!r}")
        return _build(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict:
        if isinstance(value, dict):
            return dict(value)
    else:  # pragma: no cover - only the annotations above are used
        raise ConfigError(f"{where}: unsupported annotation {tp!r}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{prefix + '.' if prefix else ''}{key}: unknown key (expected one of {sorted(names)})"
            )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            where = f"{prefix}.{f.name}" if prefix else f.name
            kwargs[f.name] = _convert(data[f.name], hints[f.name], where)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if prefix and not str(exc).startswith(prefix):
            raise ConfigError(f"{prefix}.{exc}") from None
        raise


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> (["a", "b"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.sub=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {text!r}: empty key")
    return parts, yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides or []:
        parts, value = parse_override(text)
        node = data
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            node = node[p]
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {p} is not a section")
        node[parts[-1]] = value
    return data


def config_from_dict(cls: type, data: dict, source: str = "<dict>") -> Any:
    try:
        return _build(cls, data or {})
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's message spans several lines (context, marks, a caret); errors here are one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


def read_yaml_mapping(path: str | os.PathLike) -> dict:
    """A YAML file whose top level is a mapping; ConfigError naming the file otherwise."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


BASE_KEY = "base"


def _merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_config_mapping(path: str | os.PathLike, _chain: tuple = ()) -> dict:
    """A training config file with its ``base:`` chain resolved.

    ``base: other.yaml`` (a path relative to the including file) makes the file hold only what
    differs: the base is read first (it may have a base of its own), then this file's keys
    replace its values, sections merging key by key. The result has no ``base`` key.
    """
    path = os.fspath(path)
    data = read_yaml_mapping(path)
    if BASE_KEY not in data:
        return data
    ref = data.pop(BASE_KEY)
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{path}: field 'base': expected the path of another config file, got {ref!r}")
    base_path = os.path.normpath(os.path.join(os.path.dirname(path), ref))
    chain = (*_chain, os.path.abspath(path))
    if os.path.abspath(base_path) in chain:
        raise ConfigError(f"{path}: field 'base': {ref} includes itself (through {' -> '.join(chain)})")
    if not os.path.exists(base_path):
        raise ConfigError(f"{path}: field 'base': {base_path} does not exist")
    return _merge(read_config_mapping(base_path, chain), data)


def load_config(cls: type, path: str | os.PathLike, overrides: list[str] | None = None) -> Any:
    """Read YAML ``path`` (its ``base:`` chain resolved, :func:`read_config_mapping`) into
    dataclass ``cls`` after applying ``key.sub=value`` overrides."""
    path = os.fspath(path)
    data = read_config_mapping(path)
    try:
        apply_overrides(data, overrides or [])
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config_from_dict(cls, data, path)


def config_to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)
