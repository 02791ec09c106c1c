"""Synthetic demonstrations from a known family of policies on a 2-D point mass.

Dynamics: ``x_{t+1} = x_t + dt * a_t + w_t`` (dt = 0.1, w_t ~ N(0, state_noise^2), a random
push that makes a snippet visit a neighbourhood of its path rather than a line, so that the
law is identifiable from one snippet), state = position (2,), action = velocity (2,).
Each episode is driven by one linear feedback law ``a = K (g - x)`` (+ small Gaussian action
noise) whose parameters are the "policy" a WARPD model should recover from the trajectory:

* ``gains``: K ~ U[1, 3] (scalar gain), goal g ~ U[-1, 1]^2 per episode;
* ``two_mode``: K = 2, goal g = (+0.7, +0.7) for mode 0 (70 % of episodes) or (-0.7, -0.7)
  for mode 1 (30 %); the mode is the episode's task id.

Start positions ~ U[-1, 1]^2. Numpy only; deterministic in ``seed``.
"""

from __future__ import annotations

import numpy as np

from warpd_core.data import EpisodeDataset

DT = 0.1
TWO_MODE_GOALS = np.array([[0.7, 0.7], [-0.7, -0.7]], dtype=np.float32)
TWO_MODE_P0 = 0.7


def feedback_action(gain: np.ndarray, goal: np.ndarray, x: np.ndarray) -> np.ndarray:
    """a = K (g - x); gain (...,1) or scalar, goal (..., 2), x (..., 2)."""
    return gain * (goal - x)


def make_pointmass(kind: str = "gains", n_episodes: int = 64, episode_len: int = 32, seed: int = 0,
                   action_noise: float = 0.01, state_noise: float = 0.05) -> tuple[EpisodeDataset, dict]:
    """Returns (dataset, params) with params = {"gain": (E, 1), "goal": (E, 2), "task_ids": (E,)}."""
    rng = np.random.default_rng(seed)
    if kind == "gains":
        gain = rng.uniform(1.0, 3.0, size=(n_episodes, 1)).astype(np.float32)
        goal = rng.uniform(-1.0, 1.0, size=(n_episodes, 2)).astype(np.float32)
        tasks = np.zeros(n_episodes, np.int64)
    elif kind == "two_mode":
        tasks = (rng.random(n_episodes) >= TWO_MODE_P0).astype(np.int64)
        gain = np.full((n_episodes, 1), 2.0, np.float32)
        goal = TWO_MODE_GOALS[tasks]
    else:
        raise ValueError(f"synthetic kind: expected 'gains' or 'two_mode', got {kind!r}")
    states = np.zeros((n_episodes, episode_len, 2), np.float32)
    actions = np.zeros((n_episodes, episode_len, 2), np.float32)
    x = rng.uniform(-1.0, 1.0, size=(n_episodes, 2)).astype(np.float32)
    for t in range(episode_len):
        a = feedback_action(gain, goal, x) + action_noise * rng.standard_normal((n_episodes, 2)).astype(np.float32)
        states[:, t], actions[:, t] = x, a
        x = x + DT * a + state_noise * rng.standard_normal((n_episodes, 2)).astype(np.float32)
    ends = np.arange(1, n_episodes + 1) * episode_len
    ds = EpisodeDataset(states.reshape(-1, 2), actions.reshape(-1, 2), ends,
                        tasks if kind == "two_mode" else None, source=f"<synthetic:{kind}>")
    return ds, {"gain": gain, "goal": goal, "task_ids": tasks}
