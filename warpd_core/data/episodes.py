"""Episodes in memory and fixed-length snippet sampling.

An :class:`EpisodeDataset` is the flat layout Diffusion Policy's replay buffer uses:
``states (N, S)``, ``actions (N, A)`` concatenated over episodes and ``episode_ends (E,)``
(exclusive end index of each episode, strictly increasing, last == N). Optionally
``task_ids (E,)`` for multi-task data.

Two ways of cutting windows, neither of which ever crosses an episode end:

* :meth:`EpisodeDataset.snippet_starts` -- fixed-length snippets (action chunks for the
  baselines): every window of length ``H`` that fits inside an episode; an episode shorter
  than ``H`` yields one window.
* :meth:`EpisodeDataset.trajectory_windows` -- WARPD's training trajectories (paper Table 11:
  length 256, longer than any PushT demonstration). A window starts at every ``stride``-th
  step of an episode, so a policy generated from a mid-episode state is in distribution,
  and runs for ``length`` steps or until its episode ends, whichever comes first: the rest
  of the window is truncated (masked), not filled with made-up behaviour. Our choice; the
  paper does not say how it cuts its trajectories.

:meth:`gather_snippets` fills every step past the episode end by repeating the episode's
last (state, action) pair -- Diffusion Policy's edge padding -- and returns ``mask`` False
there; the losses and the encoder ignore masked steps (:mod:`warpd_core.train.vae_trainer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


class DatasetError(ValueError):
    """A dataset is malformed; the message names the file (when known), the field and the problem."""


@dataclass
class EpisodeDataset:
    states: np.ndarray  # (N, S) float32
    actions: np.ndarray  # (N, A) float32
    episode_ends: np.ndarray  # (E,) int64, exclusive ends
    task_ids: Optional[np.ndarray] = None  # (E,) int64 or None
    source: str = "<memory>"  # file name used in error messages

    def __post_init__(self) -> None:
        self.states = np.asarray(self.states, dtype=np.float32)
        self.actions = np.asarray(self.actions, dtype=np.float32)
        self.episode_ends = np.asarray(self.episode_ends, dtype=np.int64)
        self.validate()

    # -- validation -------------------------------------------------------------------
    def _fail(self, field: str, problem: str) -> None:
        raise DatasetError(f"{self.source}: {field}: {problem}")

    def validate(self) -> None:
        s, a, ends = self.states, self.actions, self.episode_ends
        if s.ndim != 2:
            self._fail("state", f"expected a 2-D array (N, S), got shape {s.shape}")
        if a.ndim != 2:
            self._fail("action", f"expected a 2-D array (N, A), got shape {a.shape}")
        if s.shape[0] != a.shape[0]:
            self._fail("action", f"length {a.shape[0]} does not match state length {s.shape[0]}")
        if ends.ndim != 1 or ends.size == 0:
            self._fail("episode_ends", f"expected a non-empty 1-D array, got shape {ends.shape}")
        if np.any(ends <= 0) or np.any(np.diff(ends) <= 0):
            bad = int(np.argmax(np.diff(np.concatenate([[0], ends])) <= 0))
            self._fail("episode_ends", f"must be strictly increasing and positive (entry {bad} = {int(ends[bad])})")
        if int(ends[-1]) != s.shape[0]:
            self._fail("episode_ends", f"last end {int(ends[-1])} != number of steps {s.shape[0]}")
        for name, arr in (("state", s), ("action", a)):
            if not np.all(np.isfinite(arr)):
                row = int(np.argwhere(~np.isfinite(arr))[0][0])
                self._fail(name, f"non-finite value at step {row} (episode {self.episode_of(row)})")
        if self.task_ids is not None:
            self.task_ids = np.asarray(self.task_ids, dtype=np.int64)
            if self.task_ids.shape != ends.shape:
                self._fail("task_ids", f"shape {self.task_ids.shape} != episode_ends shape {ends.shape}")
            if np.any(self.task_ids < 0):
                self._fail("task_ids", "must be non-negative")

    # -- structure --------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        return int(self.states.shape[0])

    @property
    def n_episodes(self) -> int:
        return int(self.episode_ends.shape[0])

    @property
    def state_dim(self) -> int:
        return int(self.states.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def episode_starts(self) -> np.ndarray:
        return np.concatenate([[0], self.episode_ends[:-1]]).astype(np.int64)

    def episode_of(self, step: int) -> int:
        return int(np.searchsorted(self.episode_ends, step, side="right"))

    def episode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start = int(self.episode_starts[i])
        end = int(self.episode_ends[i])
        return self.states[start:end], self.actions[start:end]

    def subset(self, episodes: np.ndarray) -> "EpisodeDataset":
        """A new dataset holding only the given episode indices (in that order)."""
        parts_s, parts_a, ends = [], [], []
        n = 0
        for i in np.asarray(episodes, dtype=np.int64):
            s, a = self.episode(int(i))
            parts_s.append(s)
            parts_a.append(a)
            n += s.shape[0]
            ends.append(n)
        tasks = None if self.task_ids is None else self.task_ids[np.asarray(episodes, dtype=np.int64)]
        return EpisodeDataset(np.concatenate(parts_s), np.concatenate(parts_a), np.asarray(ends), tasks, self.source)

    # -- snippets ---------------------------------------------------------------------
    def snippet_starts(self, horizon: int, stride: int = 1) -> np.ndarray:
        """Start indices (into the flat arrays) of every snippet of length ``horizon``.

        Returns ``(K, 2)`` int64 rows ``(start, episode)``. Every window lies inside one
        episode; an episode shorter than ``horizon`` contributes a single (padded) window.
        """
        if horizon <= 0 or stride <= 0:
            raise ValueError(f"horizon and stride must be positive, got {horizon}, {stride}")
        rows = []
        for e, (start, end) in enumerate(zip(self.episode_starts, self.episode_ends)):
            last = max(int(start), int(end) - horizon)
            starts = list(range(int(start), last + 1, stride))
            if starts[-1] != last:  # with stride > 1, keep the episode's final window too
                starts.append(last)
            rows.extend((st, e) for st in starts)
        return np.asarray(rows, dtype=np.int64).reshape(-1, 2)

    def trajectory_windows(self, length: int, stride: int = 1) -> np.ndarray:
        """Rows ``(start, episode)`` of WARPD's training windows (see the module docstring):
        one window starting at every ``stride``-th step of each episode (its first step
        included), each truncated at its episode's end. ``length`` only validates here; the
        truncation happens in :meth:`gather_snippets` through ``mask``."""
        if length <= 0 or stride <= 0:
            raise ValueError(f"length and stride must be positive, got {length}, {stride}")
        rows = [(st, e) for e, (start, end) in enumerate(zip(self.episode_starts, self.episode_ends))
                for st in range(int(start), int(end), stride)]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 2)

    def gather_snippets(self, index: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
        """Snippets for rows of :meth:`snippet_starts`.

        Returns a dict of arrays:
            ``states (B, H, S)``, ``actions (B, H, A)``, ``mask (B, H)`` bool (False on padding),
            ``task_ids (B,)`` int64 (zeros when the dataset has no tasks), ``episode (B,)``.
        """
        index = np.asarray(index, dtype=np.int64).reshape(-1, 2)
        starts, eps = index[:, 0], index[:, 1]
        ends = self.episode_ends[eps]
        t = starts[:, None] + np.arange(horizon)[None, :]  # (B, H)
        mask = t < ends[:, None]
        t = np.minimum(t, ends[:, None] - 1)  # edge padding with the last real step
        tasks = np.zeros(len(eps), np.int64) if self.task_ids is None else self.task_ids[eps]
        return {
            "states": self.states[t],
            "actions": self.actions[t],
            "mask": mask,
            "task_ids": tasks,
            "episode": eps,
        }
