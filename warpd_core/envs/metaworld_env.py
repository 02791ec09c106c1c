"""Metaworld (metaworld 3.1.1, MuJoCo) single-task environments for the paper's Table 4 tasks.

Task set and order (the task id of the data, the models and the results is the index in
:data:`TASKS`; the order is the paper's Table 4)::

    0 window-open   1 door-open   2 drawer-open   3 dial-turn    4 faucet-close
    5 button-press  6 door-unlock 7 handle-press  8 plate-slide  9 reach

Each is metaworld's v3 environment of that name (``window-open-v3``, ...) in the MT1 setting:
the goal is part of the observation (``partially_observable=False``, what ``metaworld.MT1``
and ``make_mt_envs`` configure). Observation ``(39,)`` float32: hand position (3), gripper
opening (1), up to two object poses (2 x 7, zeros where a task has one object), the same 18
values of the previous step, goal position (3). Action ``(4,)`` in [-1, 1]: end-effector
position delta (x, y, z, scaled by 1/100 m by the env) and gripper effort; actions are
clipped to [-1, 1] here before the env sees them (the env clips the xyz part itself but
not the gripper).

Seeded resets (our choice; metaworld fixes a task's goal by ``set_task`` with a
``rand_vec``, and ``MT1(name, seed)`` draws 50 of them from the *global* numpy RNG): reset
``seed`` draws the ``rand_vec`` (object and goal positions) as ``MT1`` does -- one reset with
the rand_vec unfrozen, so the env's own rejection loops apply (reach redraws goals too close
to its object) -- but from ``numpy.random.default_rng(SeedSequence([seed, task_id]))``
(the env's ``seeded_rand_vec`` mode), then installs it with the public
``set_task(Task(...))``, the same task data ``MT1`` builds, and resets again.
The rest of a reset and every step are deterministic MuJoCo, so the same (task, seed)
gives the same episode for the same actions, in any process, with no global RNG touched.

Episode length: metaworld's ``max_path_length`` (500, the paper's Table 12 trajectory
length); ``max_steps`` may shorten it (at most 500). Success is the env's
``info['success']`` at any step of the episode (the metaworld convention).

This module must stay importable without torch and without ROS (metaworld is imported when
an environment is built).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

TASKS: tuple[str, ...] = (
    "window-open", "door-open", "drawer-open", "dial-turn", "faucet-close",
    "button-press", "door-unlock", "handle-press", "plate-slide", "reach",
)
"""The ten tasks of the paper's Table 4; a task's id is its index here."""
N_TASKS = len(TASKS)
OBS_DIM = 39
ACT_DIM = 4
ACTION_LOW, ACTION_HIGH = -1.0, 1.0
MAX_PATH_LENGTH = 500
"""metaworld's episode length (``SawyerXYZEnv.max_path_length``) = the paper's trajectory length."""
DEFAULT_MAX_STEPS = MAX_PATH_LENGTH


def env_name(task: str) -> str:
    """``"window-open"`` -> ``"window-open-v3"`` (the metaworld 3 name)."""
    return f"{check_task(task)}-v3"


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    return task


def task_id(task: str) -> int:
    """Index of ``task`` in :data:`TASKS`."""
    return TASKS.index(check_task(task))


def parse_tasks(tasks: Optional[Sequence[str]]) -> list[str]:
    """``None`` or ``["all"]`` -> every task in :data:`TASKS` order; otherwise checked names
    (short ``window-open`` or metaworld ``window-open-v3`` spellings), duplicates rejected."""
    if not tasks or list(tasks) == ["all"]:
        return list(TASKS)
    out = []
    for t in tasks:
        t = t[:-3] if t.endswith("-v3") else t
        check_task(t)
        if t in out:
            raise ValueError(f"task: {t!r} given twice")
        out.append(t)
    return out


def goal_rng(seed: int, task: str) -> np.random.Generator:
    """The RNG that draws the (object, goal) configuration of reset ``seed`` of ``task``."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), task_id(task)]))


@dataclass
class StepResult:
    obs: np.ndarray  # (39,) float32
    reward: float
    success: bool  # info['success'] of this step
    done: bool  # the episode reached max_steps
    info: dict = field(default_factory=dict)


class MetaworldEnv:
    """One metaworld v3 task, goal observable, seeded resets, ``max_steps`` per episode.

    Args:
        task: a name of :data:`TASKS`.
        max_steps: episode length, 1..500 (default 500, the paper's).

    After :meth:`reset`, :attr:`success` tells whether any step so far succeeded and
    :attr:`first_success` the 1-based step of the first success (None before).
    """

    def __init__(self, task: str, max_steps: int = DEFAULT_MAX_STEPS):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS  # noqa: PLC0415 - heavy import on use

        self.task = check_task(task)
        self.task_id = task_id(task)
        if not 1 <= int(max_steps) <= MAX_PATH_LENGTH:
            raise ValueError(f"max_steps: expected 1..{MAX_PATH_LENGTH} (metaworld's max_path_length), got {max_steps}")
        self.max_steps = int(max_steps)
        self.name = env_name(task)
        self._cls = ALL_V3_ENVIRONMENTS[self.name]
        self._env = self._cls()
        self.steps = 0
        self.seed: Optional[int] = None
        self.success = False
        self.first_success: Optional[int] = None

    @property
    def raw(self) -> Any:
        """The metaworld ``SawyerXYZEnv`` (for the scripted expert and inspection)."""
        return self._env

    def task_data(self, seed: int):
        """The ``metaworld.types.Task`` of reset ``seed`` (what ``MT1`` would build)."""
        from metaworld.types import Task  # noqa: PLC0415

        env = self._env
        # Draw the configuration the way MT1 does (an unfrozen reset), but from our own RNG:
        # several tasks (reach, ...) reject goals too close to the object by redrawing inside
        # reset_model, so the accepted rand_vec is the one the env keeps, not the first draw.
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.np_random = goal_rng(seed, self.task)
        env.reset()
        rand_vec = np.array(env._last_rand_vec, dtype=np.float64, copy=True)
        data = {"rand_vec": rand_vec, "env_cls": self._cls, "partially_observable": False}
        return Task(env_name=self.name, data=pickle.dumps(data))

    def reset(self, seed: int) -> np.ndarray:
        """Start an episode with the configuration of ``seed``; returns the first observation (39,)."""
        self._env.set_task(self.task_data(seed))
        obs, _ = self._env.reset()
        self.seed = int(seed)
        self.steps = 0
        self.success = False
        self.first_success = None
        return self._obs(obs)

    def step(self, action: np.ndarray) -> StepResult:
        if self.seed is None:
            raise RuntimeError("MetaworldEnv.step before reset")
        if self.steps >= self.max_steps:
            raise RuntimeError(f"MetaworldEnv.step after the episode ended ({self.max_steps} steps): reset first")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (ACT_DIM,):
            raise ValueError(f"action: expected shape ({ACT_DIM},), got {np.shape(action)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action: non-finite values {a.tolist()}")
        a = np.clip(a, ACTION_LOW, ACTION_HIGH).astype(np.float32)
        obs, reward, _, _, info = self._env.step(a)
        self.steps += 1
        ok = bool(info.get("success", False))
        if ok and not self.success:
            self.success, self.first_success = True, self.steps
        return StepResult(self._obs(obs), float(reward), ok, self.steps >= self.max_steps, dict(info))

    @staticmethod
    def _obs(obs: np.ndarray) -> np.ndarray:
        out = np.asarray(obs, dtype=np.float32).reshape(-1)
        if out.shape != (OBS_DIM,):
            raise RuntimeError(f"metaworld returned an observation of shape {out.shape}, expected ({OBS_DIM},)")
        return out

    def close(self) -> None:
        try:
            self._env.close()
        except Exception:  # noqa: BLE001 - closing a never-rendered env must not fail a run
            pass
