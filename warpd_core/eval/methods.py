"""The method layer under every evaluation and comparison, for every environment.

* :func:`parse_method`: the one ``--methods`` grammar of ``warpd compare pusht`` and ``warpd
  compare metaworld``: ``LABEL[@H]=DIR[,DIR...]`` or ``random``. ``@H`` binds the models to
  action horizon H; several directories are models of one method from different training seeds
  (PushT pools them; Metaworld takes one).
* :func:`model_kind`: what a model directory holds (an export bundle or a baseline checkpoint,
  read by the one stage table :mod:`warpd_core.train.stages`) and, for action-chunk methods,
  the horizon they were trained at.
* :class:`EnvSpec`: the few facts about an environment a method needs (observation and action
  sizes, action limits, the controller the runtime would run, the number of tasks);
  :func:`pusht_env` here, ``metaworld_env`` and ``robosuite_env`` beside their runners.
* :func:`build_method`: a harness method (``reset``, ``act``, ``episode_stats``) for any model
  directory in any of those environments, with its cost per control step, how to tell it the
  task, and the facts to store with its results. The per-environment runners
  (:mod:`~warpd_core.eval.harness` for PushT, :mod:`~warpd_core.eval.metaworld_eval`,
  :mod:`~warpd_core.eval.robosuite_eval`) only run episodes.

Checks name the model directory and what does not fit: a model for another environment (its
observation or action size), a task-conditioned model where the environment has no tasks and
the reverse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from warpd_core.train import stages

KINDS = (stages.BUNDLE, *stages.BASELINES, "random")  # what build_method builds


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


def model_kind(path: str, accept=(stages.BUNDLE, *stages.BASELINES)) -> tuple[str, Optional[int]]:
    """(kind, trained horizon) of a model directory: kind ``warpd`` for an export bundle, else
    the ``stage`` of its checkpoint (:func:`warpd_core.train.stages.model_kind`, which raises
    ValueError naming the file); the horizon only for action-chunk methods (``config.horizon``)."""
    kind, meta = stages.model_kind(path, accept)
    if kind not in stages.CHUNK_STAGES:
        return kind, None
    horizon = (meta.get("config") or {}).get("horizon")
    if not isinstance(horizon, int):
        raise ValueError(f"{os.path.join(path, 'last.json')}: field 'config.horizon' missing or not an integer")
    return kind, horizon


# ----------------------------------------------------------------------------------------
# Environments
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvSpec:
    """What building a method needs to know about an environment.

    Attributes:
        name: in error messages (``PushT``, ``Metaworld``, ``robosuite lift``).
        obs_dim, act_dim: observation and action sizes a model must have (a task-conditioned
            baseline's input is ``obs_dim + n_tasks``: the one-hot is appended).
        low, high: action limits; the baselines clip to them as the controller does.
        controller: action horizon -> the :class:`~warpd_core.runtime.ControllerConfig` WARPD's
            policies run under (the environment's controller params file).
        n_tasks: > 0 for a multi-task environment: models must take the task id.
        random_action: the ``random`` baseline's (low, high, act_dim), None when the
            environment has none.
    """

    name: str
    obs_dim: int
    act_dim: int
    low: float
    high: float
    controller: Callable[[int], Any]
    n_tasks: int = 0
    random_action: Optional[tuple[float, float, int]] = None


def pusht_env() -> EnvSpec:
    """PushT (gym-pusht, state observations): 5 -> 2, actions in [0, 512] px."""
    from warpd_core.envs.pusht import ACTION_HIGH, ACTION_LOW
    from warpd_core.eval.harness import pusht_controller_config

    return EnvSpec("PushT", 5, 2, ACTION_LOW, ACTION_HIGH, pusht_controller_config,
                   random_action=(ACTION_LOW, ACTION_HIGH, 2))


# ----------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------
@dataclass
class BuiltMethod:
    """A harness method ready to run.

    Attributes:
        kind: ``warpd``, ``mlp``, ``dp``, ``ldp`` or ``random``.
        method: the harness method (``reset``, ``act``, ``episode_stats``; ``name`` is the label).
        info: model facts for the results (directory, sizes, sampler, ...).
        set_task: called with the task id before a task's episodes (a no-op without tasks).
    """

    kind: str
    method: Any
    info: dict = field(default_factory=dict)
    set_task: Callable[[int], None] = lambda t: None

    def cost(self, horizon: int):
        """FLOPs per control step at action horizon ``horizon``
        (:class:`~warpd_core.models.flops.StepCost`)."""
        from warpd_core.models.flops import StepCost

        if self.kind == stages.BUNDLE:
            return self.method.generator.step_cost(int(horizon))
        if self.kind == "random":
            return StepCost(0, 0, int(horizon))
        return self.method.cost(int(horizon))


def build_method(kind: Optional[str], path: Optional[str], env: EnvSpec, *, label: Optional[str] = None,
                 sampler: Optional[str] = None, steps: Optional[int] = None, seed: int = 0, threads: int = 1,
                 backend: str = "torch", device: str = "cpu", max_batch: int = 256) -> BuiltMethod:
    """The method of model directory ``path`` in ``env``.

    ``kind`` None reads it from the directory (:func:`model_kind`); given, it must match.
    ``sampler`` / ``steps`` override a diffusion model's sampler; ``seed`` roots WARPD's
    sampling seeds; ``threads`` is torch's intra-op thread count; ``backend`` / ``device`` /
    ``max_batch`` apply to a WARPD bundle (the baselines run with torch on the CPU)."""
    from warpd_core.cli_args import set_torch_threads

    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown method {kind!r} (expected one of {', '.join(KINDS)})")
    if kind == "random":
        return _random(env, label)
    if not path:
        raise ValueError(f"a model directory is required for method {kind}")
    if kind == stages.BUNDLE and not os.path.isfile(os.path.join(path, "last.json")):
        found = stages.BUNDLE  # load_generator names what is missing or broken in the bundle
    else:
        found, _ = model_kind(path)
    if kind is not None and found != kind:
        raise ValueError(f"{path}: holds a {found} model, not {kind}")
    label = label or found
    if found != stages.BUNDLE or backend == "torch":  # the ONNX backend runs without torch
        set_torch_threads(threads)
    if found == stages.BUNDLE:
        built = _warpd(path, env, label, sampler, steps, seed, backend, device, max_batch)
    elif found == "mlp":
        built = _mlp(path, env, label)
    else:
        built = _chunk(found, path, env, label, sampler, steps)
    built.info.update({"model": os.path.abspath(path), "method": found})
    return built


def _random(env: EnvSpec, label: Optional[str]) -> BuiltMethod:
    from warpd_core.eval.harness import RandomMethod

    if env.random_action is None:
        raise ValueError(f"no random baseline on {env.name}")
    method = RandomMethod(*env.random_action)
    method.name = label or "random"
    return BuiltMethod("random", method, {"method": "random"})


def _check_dims(path: str, env: EnvSpec, obs_dim: int, act_dim: int, n_tasks: int = 0) -> None:
    want = env.obs_dim + n_tasks
    if (obs_dim, act_dim) != (want, env.act_dim):
        extra = f" (observation {env.obs_dim} + task one-hot {n_tasks})" if n_tasks else ""
        raise ValueError(f"{path}: obs_dim {obs_dim}, act_dim {act_dim}; {env.name} needs {want}{extra} and "
                         f"{env.act_dim}: a model for another environment")


def _warpd(path, env, label, sampler, steps, seed, backend, device, max_batch) -> BuiltMethod:
    from warpd_core.eval.harness import WarpdMethod
    from warpd_core.export.bundle import load_generator

    gen = load_generator(path, backend=backend, device=device, sampler=sampler, steps=steps, seed=seed)
    _check_dims(path, env, gen.obs_dim, gen.act_dim)
    tasked = gen.n_tasks > 0 and "task" in gen.condition
    if env.n_tasks and not tasked:
        raise ValueError(f"{path}: field 'condition' is {gen.condition!r}; {env.name} needs a task-conditioned bundle "
                         "('task' or 'state+task')")
    if not env.n_tasks and gen.n_tasks > 0:
        raise ValueError(f"{path}: a task-conditioned bundle ({gen.n_tasks} tasks); {env.name} has no tasks")
    method = WarpdMethod(gen, controller=env.controller, task_id=0 if tasked else None, max_batch=max_batch,
                         name=label)

    def set_task(t: int) -> None:
        if not 0 <= int(t) < gen.n_tasks:
            raise ValueError(f"{path}: task id {t} outside the bundle's {gen.n_tasks} tasks")
        method.task_id = int(t)

    info = {"model_id": gen.model_id, "trained_horizon": gen.horizon, "condition": gen.condition,
            "n_tasks": gen.n_tasks, "backend": backend, "device": device,
            "sampler": {"kind": getattr(gen.sampler, "kind", sampler), "steps": getattr(gen.sampler, "steps", steps)},
            "policy_layers": list(gen.spec.layer_sizes),
            "policy_width": int(gen.spec.hidden[0]) if gen.spec.hidden else 0,
            "unet_size": gen.meta["denoiser"]["unet_size"], "decoder_layers": list(gen.meta["decoder"]["layers"])}
    return BuiltMethod(stages.BUNDLE, method, info, set_task if tasked else (lambda t: None))


def _task_input(path: str, env: EnvSpec, cfg, meta: dict) -> int:
    """The baseline's task one-hot width (0 without one); ValueError when it does not fit ``env``."""
    n = int(meta.get("n_tasks", 0)) if getattr(cfg, "task_input", "none") == "onehot" else 0
    if env.n_tasks and n == 0:
        raise ValueError(f"{path}: field 'config.task_input' is 'none'; {env.name} needs a model trained with "
                         "task_input: onehot")
    if not env.n_tasks and n:
        raise ValueError(f"{path}: trained with a task one-hot ({n} tasks); {env.name} has no tasks")
    return n


def _wrap_tasks(built: BuiltMethod, n_tasks: int) -> BuiltMethod:
    from warpd_core.baselines.task_input import TaskInputMethod

    built.info.update({"task_input": "onehot" if n_tasks else "none", "n_tasks": n_tasks})
    if n_tasks:
        built.method = TaskInputMethod(built.method, n_tasks)
        built.set_task = built.method.set_task
    return built


def _mlp(path: str, env: EnvSpec, label: str) -> BuiltMethod:
    from warpd_core.baselines.mlp import MLPMethod, load_mlp

    model, cfg, meta = load_mlp(path)
    n_tasks = _task_input(path, env, cfg, meta)
    _check_dims(path, env, model.spec.in_dim, model.spec.out_dim, n_tasks)
    method = MLPMethod(model.spec, model.flat_weights(), name=label, low=env.low, high=env.high)
    info = {"policy_layers": list(model.spec.layer_sizes), "policy_width": int(model.spec.hidden[0])}
    return _wrap_tasks(BuiltMethod("mlp", method, info), n_tasks)


def _chunk(kind: str, path: str, env: EnvSpec, label: str, sampler, steps) -> BuiltMethod:
    from warpd_core.baselines.diffusion_policy import DPMethod, eval_sampler, load_dp

    if kind == "ldp":
        from warpd_core.baselines.ldp import LDPMethod

        method = LDPMethod.from_checkpoint(path, sampler=sampler, steps=steps, name=label, low=env.low, high=env.high)
        _check_dims(path, env, method.model.obs_dim, method.model.act_dim, _task_input(path, env, None, {}))
        n_tasks, extra = 0, {}
    else:
        model, cfg, meta = load_dp(path)
        n_tasks = _task_input(path, env, cfg, meta)
        _check_dims(path, env, model.obs_dim, model.act_dim, n_tasks)
        method = DPMethod(model, int(meta["chunk_len"]), cfg.horizon, eval_sampler(cfg, sampler, steps), name=label,
                          low=env.low, high=env.high)
        extra = {"unet_size": cfg.unet_size}
    info = {"sampler": {"kind": method.sampler.kind, "steps": int(method.sampler.steps)},
            "chunk_len": int(method.chunk_len), "trained_horizon": int(method.max_horizon), **extra}
    return _wrap_tasks(BuiltMethod(kind, method, info), n_tasks)

