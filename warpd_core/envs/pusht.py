"""PushT: a thin wrapper over ``gym_pusht/PushT-v0`` (gym-pusht 0.1.8, pymunk < 7).

Conventions (all in the env's pixel frame, y down as rendered, origin top-left):

- observation ``(5,) float32``: ``[agent_x, agent_y, block_x, block_y, block_angle]``;
  positions in pixels in [0, 512], the block position is the T's body origin (centre of
  the top edge of the cross bar, *not* its centre of mass), angle in radians in [0, 2*pi).
- action ``(2,)``: the target agent position in pixels, clipped to [0, 512]^2. The agent
  follows it with the env's critically damped PD law; one ``step`` is 0.1 s (10 physics
  substeps of 0.01 s), i.e. 10 Hz control.
- coverage: area(goal ∩ block) / area(goal), computed by the env itself (shapely).
  Success is coverage > 0.95. The reported metric is the *score* of an episode,
  ``score_of(max_t coverage) = clip(max_cov / 0.95, 0, 1)`` (Diffusion Policy, WARPD).

Physics facts this module relies on (read from gym_pusht/envs/pusht.py):

- the space has damping 0.0, i.e. every body loses all its velocity every substep; the
  block moves only while the agent pushes it (quasi-static), and contacts are frictionless
  (shape friction 0; ``body.friction = 1`` there sets an unused Python attribute);
- the agent is a kinematic circle of radius 15 px; the goal pose is ``env.goal_pose =
  [256, 256, pi/4]``;
- walls are segments from 5 to 506 px with radius 2.

This module must stay importable without torch: the ROS simulation node imports it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

import numpy as np

with warnings.catch_warnings():
    # pygame (imported by gym_pusht) emits pkg_resources deprecation warnings on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    import gymnasium as gym
    import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
    import pymunk

ENV_ID = "gym_pusht/PushT-v0"
WORKSPACE_SIZE = 512.0
"""Actions and positions live in [0, WORKSPACE_SIZE]^2 pixels."""
ACTION_LOW, ACTION_HIGH = 0.0, WORKSPACE_SIZE
"""The action limits a PushT controller clamps to (config/pusht_controller.yaml)."""
WALL_MIN, WALL_MAX = 7.0, 504.0
"""Inner faces of the walls (segments at 5 and 506 px with radius 2)."""
AGENT_RADIUS = 15.0
SUCCESS_COVERAGE = 0.95
CONTROL_HZ = 10
DEFAULT_MAX_STEPS = 300

# T block geometry in its body frame (gym_pusht add_tee with scale=30, length=4):
# two rectangles, the cross bar and the stem, pixels. Corner order as pymunk stores them
# (what env.get_keypoints returns).
TEE_BAR = np.array([[-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [-60.0, 30.0]])
TEE_STEM = np.array([[-15.0, 30.0], [15.0, 30.0], [15.0, 120.0], [-15.0, 120.0]])
TEE_KEYPOINTS = np.concatenate([TEE_BAR, TEE_STEM])  # (8, 2)


def score_of(max_coverage: float | np.ndarray) -> float | np.ndarray:
    """Episode score from its maximum coverage: ``clip(max_cov / 0.95, 0, 1)``."""
    out = np.clip(np.asarray(max_coverage, dtype=np.float64) / SUCCESS_COVERAGE, 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def tee_keypoints(pose: np.ndarray) -> np.ndarray:
    """World coordinates ``(8, 2)`` of the T corners for a pose ``[x, y, angle]``
    (x, y = body origin in pixels, angle in radians)."""
    c, s = math.cos(pose[2]), math.sin(pose[2])
    rot = np.array([[c, -s], [s, c]])
    return TEE_KEYPOINTS @ rot.T + np.asarray(pose[:2], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What ``PushTEnv.step`` returns.

    obs: (5,) float32 observation after the step.
    coverage: coverage after the step, in [0, 1].
    done: True when the episode is over (success, coverage > 0.95, or ``max_steps`` reached).
    info: ``success`` (bool), ``truncated`` (bool, step limit), ``step`` (int, steps taken),
        ``max_coverage`` (float, over the episode so far), ``n_contacts`` (from the env).
    """

    obs: np.ndarray
    coverage: float
    done: bool
    info: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class PhysicsState:
    """Everything needed to put a PushT env back into a given dynamic state.

    Positions/velocities in pixels and pixels/s, angles in radians (unwrapped, as pymunk
    holds them). ``block_position`` is the body origin (what ``body.position`` returns).
    """

    agent_position: tuple[float, float]
    agent_velocity: tuple[float, float]
    block_position: tuple[float, float]
    block_angle: float
    block_velocity: tuple[float, float]
    block_angular_velocity: float


class PushTEnv:
    """PushT with state observations, a step counter, coverage tracking, exact physics
    state capture/restore, block displacement (perturbations) and RGB rendering.

    Args:
        seed: seed used by the first ``reset()`` when it is called without one.
        max_steps: episode length limit (control steps at 10 Hz).
        render_size: side in pixels of frames returned by ``render_frame``.
    """

    def __init__(self, seed: int | None = None, max_steps: int = DEFAULT_MAX_STEPS,
                 render_size: int = 384):
        if max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        self.max_steps = int(max_steps)
        self._default_seed = seed
        # The step limit is also counted here (gymnasium's TimeLimit only truncates) so that
        # ``done`` is reported in one place.
        self._gym = gym.make(ENV_ID, obs_type="state", render_mode="rgb_array",
                             max_episode_steps=self.max_steps, disable_env_checker=True,
                             visualization_width=render_size, visualization_height=render_size)
        self.env = self._gym.unwrapped  # gym_pusht.envs.PushTEnv: pymunk space, bodies
        self._steps = 0
        self._max_coverage = 0.0
        self._coverage = 0.0
        self._needs_reset = True

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; returns the observation ``(5,) float32``.

        The initial agent position, block position and angle are drawn from the env's
        ``np_random`` (gym-pusht 0.1.8: agent in [50, 450)^2, block in [100, 400)^2, angle
        uniform in [-pi, pi)), so a seed fixes the start state.
        """
        if seed is None:
            seed, self._default_seed = self._default_seed, None
        self._gym.reset(seed=seed)
        self._steps = 0
        self._coverage = float(self.env._get_coverage())
        self._max_coverage = self._coverage
        self._needs_reset = False
        return self.obs

    def reset_to(self, obs: np.ndarray) -> np.ndarray:
        """Start an episode in the state an observation ``[agent_x, agent_y, block_x, block_y,
        block_angle]`` describes (e.g. a demonstration's first step), at rest: velocities zero,
        step counter and ``max_coverage`` restarted. Returns the observation."""
        s = np.asarray(obs, dtype=np.float64).reshape(-1)
        if s.shape != (5,) or not np.all(np.isfinite(s)):
            raise ValueError(f"reset_to: expected 5 finite numbers [agent x, y, block x, y, angle], got {obs!r}")
        self.reset(seed=0)
        self.set_physics_state(PhysicsState(agent_position=(s[0], s[1]), agent_velocity=(0.0, 0.0),
                                            block_position=(s[2], s[3]), block_angle=float(s[4]),
                                            block_velocity=(0.0, 0.0), block_angular_velocity=0.0))
        self._max_coverage = self._coverage
        return self.obs

    def step(self, action: np.ndarray) -> StepResult:
        """Advance one control step (0.1 s) towards the target agent position ``action``
        ``(2,)`` in pixels (clipped to [0, 512]^2)."""
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (episode over or not started)")
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(2), 0.0, WORKSPACE_SIZE)
        _, _, terminated, _, info = self._gym.step(action)
        self._steps += 1
        self._coverage = float(info["coverage"])
        self._max_coverage = max(self._max_coverage, self._coverage)
        truncated = self._steps >= self.max_steps
        done = bool(terminated or truncated)
        self._needs_reset = done
        return StepResult(
            obs=self.obs,
            coverage=self._coverage,
            done=done,
            info={
                "success": bool(terminated),
                "truncated": bool(truncated and not terminated),
                "step": self._steps,
                "max_coverage": self._max_coverage,
                "n_contacts": int(info.get("n_contacts", 0)),
            },
        )

    @property
    def obs(self) -> np.ndarray:
        """Current observation ``(5,) float32`` (angle wrapped to [0, 2*pi))."""
        return self.env.get_obs().astype(np.float32)

    @property
    def coverage(self) -> float:
        """Coverage of the goal by the block now, in [0, 1] (updated by reset, step and
        displace_block)."""
        return self._coverage

    @property
    def max_coverage(self) -> float:
        """Largest coverage seen since the last reset."""
        return self._max_coverage

    @property
    def score(self) -> float:
        """Score of the episode so far: ``score_of(max_coverage)``."""
        return score_of(self._max_coverage)

    @property
    def success(self) -> bool:
        """Whether the current coverage exceeds 0.95."""
        return self._coverage > SUCCESS_COVERAGE

    @property
    def steps(self) -> int:
        """Control steps taken since the last reset."""
        return self._steps

    @property
    def goal_pose(self) -> np.ndarray:
        """Goal pose ``[x, y, angle]`` of the block's body origin (pixels, radians)."""
        return np.asarray(self.env.goal_pose, dtype=np.float64).copy()

    @property
    def block_pose(self) -> np.ndarray:
        """Block pose ``[x, y, angle]`` (body origin in pixels, unwrapped angle, radians)."""
        b = self.env.block
        return np.array([b.position.x, b.position.y, b.angle], dtype=np.float64)

    # ------------------------------------------------------------------ physics state
    def get_physics_state(self) -> PhysicsState:
        """Capture the dynamic state of agent and block (see ``set_physics_state``)."""
        a, b = self.env.agent, self.env.block
        return PhysicsState(
            agent_position=tuple(a.position), agent_velocity=tuple(a.velocity),
            block_position=tuple(b.position), block_angle=float(b.angle),
            block_velocity=tuple(b.velocity), block_angular_velocity=float(b.angular_velocity),
        )

    def set_physics_state(self, state: PhysicsState) -> None:
        """Put agent and block exactly into ``state``.

        Why not ``env._set_state``: it sets the block position *before* the angle (legacy
        order). pymunk rotates a body about its centre of gravity, which for the T is 45 px
        from the body origin, so setting the angle second moves the origin and the restored
        block sits tens of pixels away. Here the angle is set first, then the position, and
        no physics step is taken. Contact impulses cached by the solver are not part of the
        state: restored before a contact, a second env tracks the original to ~0 px;
        restored mid-contact, the 10-step deviation measured over expert rollouts had
        median 0.004 px, 92 % under 0.1 px, max 1.9 px (at contact changes).
        The step counter and ``max_coverage`` are kept, the current coverage is recomputed,
        and the env may be stepped again even if its episode had ended (look-ahead use).
        """
        a, b = self.env.agent, self.env.block
        a.position = state.agent_position
        a.velocity = state.agent_velocity
        b.angle = state.block_angle
        b.position = state.block_position
        b.velocity = state.block_velocity
        b.angular_velocity = state.block_angular_velocity
        self.env.space.reindex_shapes_for_body(a)
        self.env.space.reindex_shapes_for_body(b)
        self._coverage = float(self.env._get_coverage())
        self._needs_reset = False

    # ------------------------------------------------------------------ perturbation
    def displace_block(self, vec: np.ndarray) -> np.ndarray:
        """Translate the T block by ``vec`` ``(2,)`` pixels (angle unchanged); returns the
        displacement actually applied ``(2,)``.

        Border rule: each axis of the displacement is clipped independently so that the
        whole T (all 8 corners) stays inside the walls' inner faces [7, 504] px, i.e. the
        block stops at a wall as if it had slid against it. Away from the walls the applied
        displacement equals ``vec`` exactly. If the block lands on the agent, the physics
        solver separates them on the next step (the agent is kinematic, so the block is
        pushed out). Velocities are left as they are (the space's damping of 0 zeroes them
        every substep anyway). Coverage is recomputed; ``max_coverage`` is updated too.
        """
        vec = np.asarray(vec, dtype=np.float64).reshape(2)
        pose = self.block_pose
        corners = tee_keypoints(pose)
        lo = WALL_MIN - corners.min(axis=0)  # most negative shift allowed per axis
        hi = WALL_MAX - corners.max(axis=0)  # most positive shift allowed per axis
        # If the block already pokes through a wall (it cannot, but be safe), allow no shift
        # further into it: lo <= 0 <= hi after the clamps below.
        applied = np.clip(vec, np.minimum(lo, 0.0), np.maximum(hi, 0.0))
        b = self.env.block
        b.position = (pose[0] + applied[0], pose[1] + applied[1])
        self.env.space.reindex_shapes_for_body(b)
        self._coverage = float(self.env._get_coverage())
        self._max_coverage = max(self._max_coverage, self._coverage)
        return applied

    # ------------------------------------------------------------------ rendering
    def render_frame(self) -> np.ndarray:
        """RGB image ``(S, S, 3) uint8`` of the scene (goal in green, block grey, agent
        blue, last action as a red cross); S = ``render_size``. Works headless: gym-pusht
        draws on an off-screen pygame Surface."""
        return np.ascontiguousarray(self._gym.render())

    def close(self) -> None:
        self._gym.close()


class BlockPerturbation:
    """The paper's PushT adversary: at each control step, with probability ``probability``,
    displace the T block by ``magnitude`` pixels in a uniformly random direction.

    Pure and ROS-free; used by the ROS perturbation node and by the in-process harness.
    Every ``sample()`` draws the same two random numbers (the Bernoulli trial and the
    direction) whatever the probability, so for one seed the event directions do not
    depend on ``probability``.

    Args:
        probability: chance of a displacement per step, in [0, 1] (paper: 0.1).
        magnitude: displacement length in pixels, >= 0 (paper: 0 to 100).
        seed: seed of the private random generator.
    """

    def __init__(self, probability: float, magnitude: float, seed: int | None = None):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        if magnitude < 0.0:
            raise ValueError(f"magnitude must be >= 0 pixels, got {magnitude}")
        self.probability = float(probability)
        self.magnitude = float(magnitude)
        self._rng = np.random.default_rng(seed)

    def sample(self) -> np.ndarray | None:
        """Displacement ``(2,) float64`` of length ``magnitude`` px, or None (no event)."""
        u, direction = self._rng.random(), self._rng.uniform(0.0, 2.0 * math.pi)
        if u >= self.probability:
            return None
        return self.magnitude * np.array([math.cos(direction), math.sin(direction)])


def physics_step(env: Any, action: np.ndarray) -> None:
    """One control step of raw gym-pusht physics on the unwrapped env (``PushTEnv.env``):
    the env's PD law and 10 substeps, without computing coverage, observation or info.
    About 3x faster than ``env.step``; used for look-ahead. ``action`` (2,) pixels."""
    target = pymunk.Vec2d(float(action[0]), float(action[1]))
    agent, space = env.agent, env.space
    k_p, k_v, dt = env.k_p, env.k_v, env.dt
    for _ in range(int(1 / (dt * env.control_hz))):
        agent.velocity += (k_p * (target - agent.position) - k_v * agent.velocity) * dt
        space.step(dt)
