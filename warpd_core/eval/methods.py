"""The method layer under every evaluation and comparison: how a method is named on the command
line and how a PushT method is built from a model directory.

* :func:`parse_method`: the one ``--methods`` grammar of ``warpd compare pusht`` and ``warpd
  compare metaworld``: ``LABEL[@H]=DIR[,DIR...]`` or ``random``. ``@H`` binds the models to
  action horizon H; several directories are models of one method from different training seeds
  (PushT pools them; Metaworld takes one).
* :func:`build_pusht`: a harness method (``reset``, ``act``, ``episode_stats``) and the facts to
  store with its results, for ``warpd eval pusht`` and ``warpd compare pusht`` alike. The kind
  of a directory is read by :func:`warpd_core.train.stages.model_kind` (one table for every
  caller).

Metaworld builds its task-conditioned methods in :mod:`warpd_core.eval.metaworld_eval`.
"""

from __future__ import annotations

import os
from typing import Optional

PUSHT_KINDS = ("warpd", "mlp", "dp", "ldp", "random")


def parse_method(text: str) -> tuple[str, Optional[int], list[Optional[str]]]:
    """``LABEL[@H]=DIR[,DIR...]`` or ``random`` -> (label, H or None, directories)."""
    if text == "random":
        return "random", None, [None]
    if "=" not in text:
        raise ValueError(f"--methods {text!r}: expected LABEL[@H]=DIR[,DIR...] or random")
    head, paths = text.split("=", 1)
    label, _, horizon = head.partition("@")
    if not label or any(c in label for c in ",=@ "):
        raise ValueError(f"--methods {text!r}: bad label {label!r}")
    h = None
    if horizon:
        if not horizon.isdigit() or int(horizon) <= 0:
            raise ValueError(f"--methods {text!r}: horizon after '@' must be a positive integer, got {horizon!r}")
        h = int(horizon)
    dirs = [p for p in paths.split(",") if p]
    if not dirs:
        raise ValueError(f"--methods {text!r}: no model directory")
    return label, h, dirs


def build_pusht(kind: str, path: Optional[str], *, sampler: Optional[str] = None, steps: Optional[int] = None,
                seed: int = 0, threads: int = 1, backend: str = "torch", device: str = "cpu",
                max_batch: int = 256):
    """(harness method, metadata) for one PushT model directory of ``kind`` (``PUSHT_KINDS``).

    ``sampler`` / ``steps`` override the model's sampler; ``seed`` roots WARPD's sampling seeds;
    ``threads`` is torch's intra-op thread count; ``backend`` / ``device`` / ``max_batch`` apply
    to a WARPD bundle (the baselines run with torch on the CPU)."""
    from warpd_core.cli_args import set_torch_threads

    if kind not in PUSHT_KINDS:
        raise ValueError(f"eval pusht: unknown method {kind!r} (expected one of {', '.join(PUSHT_KINDS)})")
    if kind == "random":
        from warpd_core.eval.harness import RandomMethod

        return RandomMethod(), {}
    if not path:
        raise ValueError(f"eval pusht: --model is required for --method {kind}")
    if kind == "warpd":
        from warpd_core.eval.harness import WarpdMethod
        from warpd_core.export.bundle import load_generator

        if backend == "torch":
            set_torch_threads(threads)
        gen = load_generator(path, backend=backend, device=device, sampler=sampler, steps=steps, seed=seed)
        _check_pusht_dims(path, gen.obs_dim, gen.act_dim)
        meta = {"model": os.path.abspath(path), "model_id": gen.model_id, "trained_horizon": gen.horizon,
                "backend": backend, "device": device,
                "sampler": {"kind": getattr(gen.sampler, "kind", sampler), "steps": getattr(gen.sampler, "steps", steps)},
                "policy_layers": list(gen.spec.layer_sizes)}
        return WarpdMethod(gen, max_batch=max_batch), meta
    from warpd_core.envs.pusht import ACTION_HIGH, ACTION_LOW

    set_torch_threads(threads)
    if kind == "mlp":
        from warpd_core.baselines.mlp import MLPMethod

        method = MLPMethod.from_checkpoint(path, low=ACTION_LOW, high=ACTION_HIGH)
        _check_pusht_dims(path, method.spec.in_dim, method.spec.out_dim)
        meta = {"policy_layers": list(method.spec.layer_sizes)}
    else:
        from warpd_core.baselines.diffusion_policy import DPMethod
        from warpd_core.baselines.ldp import LDPMethod

        cls = LDPMethod if kind == "ldp" else DPMethod
        method = cls.from_checkpoint(path, sampler=sampler, steps=steps, low=ACTION_LOW, high=ACTION_HIGH)
        _check_pusht_dims(path, method.model.obs_dim, method.model.act_dim)
        meta = {"sampler": {"kind": method.sampler.kind, "steps": method.sampler.steps},
                "chunk_len": method.chunk_len, "trained_horizon": method.max_horizon}
    meta.update({"model": os.path.abspath(path), "method": kind})
    return method, meta


def _check_pusht_dims(path: str, obs_dim: int, act_dim: int) -> None:
    if (obs_dim, act_dim) != (5, 2):
        raise ValueError(f"{path}: obs_dim {obs_dim}, act_dim {act_dim}; PushT needs 5 and 2")
