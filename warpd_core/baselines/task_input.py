"""Task conditioning for the baselines: the task id as a one-hot appended to the observation.

Multi-task baselines (MLP, Diffusion Policy on Metaworld) see ``[obs, onehot(task_id)]``
instead of ``obs``. Done on the data, not in the networks: the trainers replace the
dataset's states with the augmented ones (:func:`with_task_onehot`), so the network, its
min-max normalisation (a one-hot column spans [0, 1] -> [-1, 1]), the checkpoint format and
the numpy policy are unchanged, only ``obs_dim`` grows by ``n_tasks``. At evaluation
:class:`TaskInputMethod` appends the same one-hot before the wrapped method acts.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from warpd_core.data import EpisodeDataset

TASK_INPUTS = ("none", "onehot")


def onehot(task_ids: np.ndarray, n_tasks: int) -> np.ndarray:
    """(B,) int task ids -> (B, n_tasks) float32 one-hot rows."""
    ids = np.asarray(task_ids, dtype=np.int64).reshape(-1)
    if n_tasks <= 0:
        raise ValueError(f"n_tasks must be positive, got {n_tasks}")
    if np.any(ids < 0) or np.any(ids >= n_tasks):
        raise ValueError(f"task ids must be in [0, {n_tasks}), got {sorted(set(ids.tolist()))}")
    out = np.zeros((ids.size, int(n_tasks)), np.float32)
    out[np.arange(ids.size), ids] = 1.0
    return out


def with_task_onehot(ds: EpisodeDataset, n_tasks: int = 0) -> tuple[EpisodeDataset, int]:
    """A copy of ``ds`` whose states are ``[state, onehot(task of the step's episode)]``.

    ``n_tasks`` 0 infers it as ``max(task_ids) + 1``. Returns (dataset, n_tasks). Raises
    ValueError naming the dataset when it has no task ids (read it with ``task_key``).
    """
    if ds.task_ids is None:
        raise ValueError(f"{ds.source}: task_ids: the dataset has no task ids, needed for task_input 'onehot' "
                         "(read it with dataset.options.task_key, e.g. task_id)")
    inferred = int(ds.task_ids.max()) + 1
    n = int(n_tasks) or inferred
    if n < inferred:
        raise ValueError(f"{ds.source}: task_ids: n_tasks {n} but the dataset has task id {inferred - 1}")
    per_step = np.repeat(ds.task_ids, np.diff(np.concatenate([[0], ds.episode_ends])))
    states = np.concatenate([ds.states, onehot(per_step, n)], axis=1)
    return EpisodeDataset(states, ds.actions, ds.episode_ends, ds.task_ids, source=ds.source), n


class TaskInputMethod:
    """A harness method that appends ``onehot(task)`` to every observation before ``inner`` acts.

    Call :meth:`set_task` before each batch of episodes (one task per batch). Everything
    else (``reset``, ``episode_stats``, ``cost``, attributes) is the inner method's.
    """

    def __init__(self, inner, n_tasks: int, task: Optional[int] = None):
        if n_tasks <= 0:
            raise ValueError(f"n_tasks must be positive, got {n_tasks}")
        self.inner = inner
        self.name = inner.name
        self.n_tasks = int(n_tasks)
        self._code: Optional[np.ndarray] = None
        if task is not None:
            self.set_task(task)

    def set_task(self, task: int) -> None:
        self._code = onehot(np.array([task]), self.n_tasks)[0]
        self.task = int(task)

    def reset(self, n_envs: int, horizon: int, seed: int) -> None:
        self.inner.reset(n_envs, horizon, seed)

    def act(self, obs: np.ndarray, steps: np.ndarray, active: np.ndarray) -> np.ndarray:
        if self._code is None:
            raise RuntimeError(f"{self.name}: set_task before act (the model takes a task id)")
        obs = np.asarray(obs, dtype=np.float32)
        aug = np.concatenate([obs, np.broadcast_to(self._code, (obs.shape[0], self.n_tasks))], axis=1)
        return self.inner.act(aug, steps, active)

    def episode_stats(self) -> dict:
        return self.inner.episode_stats()

    def __getattr__(self, name: str):  # cost(), generate_seconds, ... of the wrapped method
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
