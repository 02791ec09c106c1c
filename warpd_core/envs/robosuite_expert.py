"""Scripted experts for robosuite Lift and Can, and demonstration generation.

Both experts are waypoint followers on the true object pose (privileged, like the PushT
expert): a proportional law turns the grip-site pose error into the OSC_POSE delta action,
``a_pos = clip(gain * (p* - p) / 0.05)``, ``a_rot = clip(gain * rotvec(R* R^T) / 0.5)``
(0.05 m and 0.5 rad are what an action of 1 means, see ``robosuite_env``).

Lift: above the cube -> descend -> close -> lift.
Can: above the can -> descend -> close -> lift to travel height -> over the target bin
region -> lower -> open -> retreat upwards (robosuite counts the can as placed only once the
gripper is ~7 cm away from it).

Closed loop: approach and descent re-aim at the object every step, and when the object is
lost while carrying it (no two-pad contact for 3 steps) the expert plans again from the
current state, with fresh random choices.

Multimodality: each episode draws, from the expert's own generator, the approach height,
a grasp offset, the grasp depth, a via point to one side of the straight approach (so paths
from one start state bend left or right), the grasp yaw (Lift: either of the two cube-face
alignments nearest the current yaw, the far one with probability ``far_yaw_prob``; Can: a
random yaw, the can being round), the lift height and (Can) the drop point in the bin.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from warpd_core.envs.robosuite_env import (
    DEFAULT_MAX_STEPS,
    OBS_KEYS,
    EEPerturbation,
    RobosuiteEnv,
    env_args,
    mat_to_rotvec,
    quat_to_mat,
    rotvec_to_mat,
)

# Grip-site orientation with the gripper pointing straight down at yaw 0 (quaternion
# x, y, z, w = (sqrt(1/2), sqrt(1/2), 0, 0): site x -> world y, site z -> world -z); the
# Panda's home pose is within a few degrees of it.
_R_DOWN = quat_to_mat(np.array([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0]))


def _rz(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def gripper_yaw(rot: np.ndarray) -> float:
    """Yaw (rad) of a grip-site rotation matrix relative to :data:`_R_DOWN`."""
    x_axis = rot[:, 0]
    return math.atan2(x_axis[1], x_axis[0]) - math.pi / 2.0


def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@dataclasses.dataclass
class ExpertConfig:
    """Randomisation ranges and gains of the scripted experts (m, rad, steps)."""

    gain: float = 4.0
    """P gain on the pose error, in action units per full-scale delta."""
    hover_height: tuple[float, float] = (0.06, 0.14)
    """Approach height above the object centre, uniform."""
    grasp_offset: float = 0.008
    """Horizontal grasp offset from the object centre, uniform in a square of this half-side."""
    grasp_depth: tuple[float, float] = (-0.012, 0.004)
    """Grasp height relative to the object centre (Lift; Can adds 0.01 more), uniform."""
    via_offset: tuple[float, float] = (0.0, 0.06)
    """Sideways offset of the approach via point (random side), uniform."""
    far_yaw_prob: float = 0.3
    """Lift: chance to grasp with the other cube-face alignment (90 deg away)."""
    lift_height: tuple[float, float] = (0.10, 0.18)
    """Lift: how high to raise the cube above its grasp point, uniform."""
    close_steps: tuple[int, int] = (6, 10)
    """Steps spent closing the gripper before lifting, uniform integer (inclusive)."""
    travel_height: tuple[float, float] = (0.14, 0.2)
    """Can: grip-site height above the bin floors while carrying, uniform."""
    drop_offset: float = 0.025
    """Can: drop point offset, uniform in a square of this half-side (see ScriptedExpert.reset)."""
    pos_tol: float = 0.01
    """Waypoint reached when the position error is below this (m) ..."""
    rot_tol: float = 0.08
    """... and the orientation error below this (rad)."""

    def __post_init__(self) -> None:
        if self.gain <= 0:
            raise ValueError(f"ExpertConfig.gain must be positive, got {self.gain}")
        if not 0.0 <= self.far_yaw_prob <= 1.0:
            raise ValueError(f"ExpertConfig.far_yaw_prob must be in [0, 1], got {self.far_yaw_prob}")
        for name in ("hover_height", "grasp_depth", "via_offset", "lift_height", "close_steps", "travel_height"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"ExpertConfig.{name} must be (low, high) with low <= high, got {(lo, hi)}")


@dataclasses.dataclass
class _Waypoint:
    pos: np.ndarray            # (3,) target grip-site position, m, world frame
    gripper: float             # -1 open, +1 close
    tol: float | None = None   # position tolerance (None: config pos_tol)
    hold: int = 0              # steps to stay once reached (or, with pos=None semantics, to wait)
    frame: str = "world"       # pos is in: "world"; "object" (re-aimed at the moving object every
                               # step: approach, descent); "grasp" (relative to the object where it was
                               # when this waypoint became active: lifting moves the object too)
    max_steps: int = 80        # give up waiting and move on after this many steps
    carrying: bool = False     # the object must be in the gripper; if it is lost, plan again


class ScriptedExpert:
    """Waypoint expert for ``"lift"`` or ``"can"``; call :meth:`reset` after every env reset,
    then :meth:`act` once per step. Actions are ``(7,)`` float64 in [-1, 1].

    Args:
        task: ``"lift"`` or ``"can"``.
        config: randomisation ranges and gains.
        seed: seed of the expert's generator (episode randomisation).
    """

    def __init__(self, task: str, config: ExpertConfig | None = None, seed: int | None = None):
        if task not in ("lift", "can"):
            raise ValueError(f"task must be 'lift' or 'can', got {task!r}")
        self.task = task
        self.config = config or ExpertConfig()
        self.rng = np.random.default_rng(seed)
        self._plan: list[_Waypoint] = []

    # ------------------------------------------------------------------ planning
    def reset(self, env: RobosuiteEnv) -> None:
        """Draw this episode's choices and plan from the env's current state."""
        c, rng = self.config, self.rng
        st = env.robot_state()
        p, r = env.eef_pose
        obj = st.object_pos
        self._offset = np.r_[rng.uniform(-c.grasp_offset, c.grasp_offset, 2), 0.0]
        self._depth = rng.uniform(*c.grasp_depth) + (0.01 if self.task == "can" else 0.0)
        hover = rng.uniform(*c.hover_height)
        yaw_now = gripper_yaw(r)
        if self.task == "lift":
            obj_yaw = 2.0 * math.atan2(st.object_quat[2], st.object_quat[3])  # cube turns about z only
            near = yaw_now + _wrap(4.0 * (obj_yaw - yaw_now)) / 4.0  # nearest face alignment (period pi/2)
            far = near + (math.pi / 2.0 if near <= yaw_now else -math.pi / 2.0)
            self._yaw = far if rng.random() < c.far_yaw_prob else near
        else:
            self._yaw = yaw_now + rng.uniform(-math.pi / 4.0, math.pi / 4.0)
        self._rot = _rz(self._yaw) @ _R_DOWN

        above = obj + self._offset + np.r_[0.0, 0.0, hover]
        # via point halfway, pushed sideways (perpendicular to the approach in the xy plane)
        d = above[:2] - p[:2]
        side = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-6)
        via = np.r_[(p[:2] + above[:2]) / 2.0 + side * rng.choice([-1.0, 1.0]) * rng.uniform(*c.via_offset),
                    max(p[2], above[2])]
        grasp_h = self._depth
        close = int(rng.integers(c.close_steps[0], c.close_steps[1] + 1))
        plan = [
            _Waypoint(via, -1.0, tol=0.03),
            _Waypoint(np.r_[0.0, 0.0, hover], -1.0, frame="object"),
            _Waypoint(np.r_[0.0, 0.0, grasp_h], -1.0, tol=0.006, frame="object", max_steps=60),
            _Waypoint(np.r_[0.0, 0.0, grasp_h], 1.0, tol=1.0, hold=close, frame="grasp"),
        ]
        if self.task == "lift":
            plan.append(_Waypoint(np.r_[0.0, 0.0, grasp_h + rng.uniform(*c.lift_height)], 1.0, tol=0.02,
                                  frame="grasp", max_steps=400, carrying=True))
        else:
            e = env.env
            floor = max(e.bin1_pos[2], e.bin2_pos[2])
            travel = floor + rng.uniform(*c.travel_height)
            # robosuite's target region of the can is the bin quadrant with x > bin2_x and
            # y > bin2_y; its centre (target_bin_placements) is at the edge of the Panda's reach,
            # so drop near the region's inner corner instead.
            corner = np.array([e.bin2_pos[0], e.bin2_pos[1]], dtype=np.float64)
            drop = corner + np.array([0.06, 0.07]) + rng.uniform(-c.drop_offset, c.drop_offset, 2)
            plan += [
                _Waypoint(np.r_[0.0, 0.0, travel - obj[2]], 1.0, tol=0.03, frame="grasp", carrying=True),
                _Waypoint(np.r_[drop, travel], 1.0, tol=0.02, max_steps=120, carrying=True),
                _Waypoint(np.r_[drop, e.bin2_pos[2] + 0.13], 1.0, tol=0.02, max_steps=40, carrying=True),
                _Waypoint(np.r_[drop, e.bin2_pos[2] + 0.13], -1.0, tol=1.0, hold=6),
                _Waypoint(np.r_[drop - np.array([0.08, 0.08]), e.bin2_pos[2] + 0.25], -1.0, tol=0.02, max_steps=400),
            ]
        self._plan = plan
        self._i = 0
        self._count = 0
        self._held = 0
        self._lost = 0
        self._anchor: np.ndarray | None = None

    def _target(self, env: RobosuiteEnv, wp: _Waypoint) -> np.ndarray:
        if wp.frame == "world":
            return wp.pos
        if wp.frame == "object" or self._anchor is None:
            obj = env.robot_state().object_pos
            if wp.frame == "grasp":
                self._anchor = obj
        else:
            obj = self._anchor
        return obj + self._offset + wp.pos

    # ------------------------------------------------------------------ acting
    def act(self, env: RobosuiteEnv) -> np.ndarray:
        """Action ``(7,)`` for the env's current state."""
        c = self.config
        if self._plan[self._i].carrying:
            # a perturbation (or a slip) made the gripper drop the object: start over from here
            self._lost = 0 if env.is_grasping() else self._lost + 1
            if self._lost >= 3:
                self.reset(env)
        p, r = env.eef_pose
        while True:
            wp = self._plan[self._i]
            target = self._target(env, wp)
            err_p = target - p
            err_r = mat_to_rotvec(self._rot @ r.T)
            tol = c.pos_tol if wp.tol is None else wp.tol
            reached = np.linalg.norm(err_p) < tol and np.linalg.norm(err_r) < c.rot_tol
            last = self._i == len(self._plan) - 1
            if (reached and self._held >= wp.hold) or self._count >= wp.max_steps:
                if not last:
                    self._i += 1
                    self._count = self._held = 0
                    self._anchor = None
                    continue
            break
        self._count += 1
        if reached:
            self._held += 1
        a = np.empty(7)
        a[:3] = np.clip(c.gain * err_p / 0.05, -1.0, 1.0)
        a[3:6] = np.clip(c.gain * err_r / 0.5, -1.0, 1.0)
        a[6] = wp.gripper
        return a


@dataclasses.dataclass
class DemoStats:
    """What :func:`generate_demonstrations` reports."""

    attempts: int
    successes: int
    seconds: float
    mean_steps: float
    path: str | None = None

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.attempts, 1)


def rollout_expert(env: RobosuiteEnv, expert: ScriptedExpert, seed: int,
                   perturbation: EEPerturbation | None = None) -> tuple[dict[str, np.ndarray], bool]:
    """One expert episode from ``env.reset(seed)``; returns the robomimic episode dict
    (:data:`OBS_KEYS` ``(T, D)`` float64, ``actions (T, 7)``, ``states (T, S)`` MuJoCo
    flattened states, ``rewards (T,)``, ``dones (T,)``) and whether it succeeded.

    With ``perturbation``, its displacement (if any) is applied before each step's
    observation is recorded, as the ROS simulation applies it before stepping."""
    env.reset(seed=seed)
    expert.reset(env)
    obs = {k: [] for k in OBS_KEYS}
    acts, states, rewards, dones = [], [], [], []
    while True:
        d = perturbation.sample() if perturbation is not None else None
        if d is not None:
            env.displace_ee(d)
        for k, v in env.obs_dict.items():
            obs[k].append(v)
        states.append(np.asarray(env.env.sim.get_state().flatten(), dtype=np.float64))
        a = expert.act(env)
        res = env.step(a)
        acts.append(a)
        rewards.append(res.reward)
        dones.append(res.done)
        if res.done:
            break
    ep = {f"obs/{k}": np.stack(v) for k, v in obs.items()}
    ep.update(actions=np.stack(acts), states=np.stack(states),
              rewards=np.asarray(rewards, dtype=np.float64), dones=np.asarray(dones, dtype=np.int64))
    return ep, bool(res.info["success"])


def generate_demonstrations(task: str, n: int, seed: int = 0, out: str | Path | None = None,
                            max_steps: int = DEFAULT_MAX_STEPS, max_attempts: int | None = None,
                            config: ExpertConfig | None = None, overwrite: bool = False,
                            env: RobosuiteEnv | None = None,
                            perturbation: EEPerturbation | None = None) -> tuple[list[dict], DemoStats]:
    """Run the scripted expert until ``n`` successful episodes are collected (failed ones are
    dropped) or ``max_attempts`` (default ``2 n + 10``) episodes were run.

    Episode ``k`` starts from ``env.reset(seed + k)``; the expert's generator is seeded with
    ``seed``. With ``out`` the successful episodes are written there in robomimic's layout
    (:func:`warpd_core.data.robomimic.write_robomimic`, ``env_args`` from
    :func:`warpd_core.envs.robosuite_env.env_args`, masks ``train``/``valid`` 90/10).
    Pass ``env`` to reuse an already created env of the same task (creation takes seconds).
    ``perturbation`` displaces the end effector during the episodes (see
    :func:`rollout_expert`): a robustness check of the expert, or perturbed demonstrations.
    Raises RuntimeError when fewer than ``n`` episodes succeed.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    max_attempts = 2 * n + 10 if max_attempts is None else int(max_attempts)
    own = env is None
    env = RobosuiteEnv(task, max_steps=max_steps) if own else env
    if env.task != task:
        raise ValueError(f"env is for task {env.task!r}, asked for {task!r}")
    expert = ScriptedExpert(task, config, seed=seed)
    episodes, attempts, steps = [], 0, []
    t0 = time.perf_counter()
    try:
        while len(episodes) < n and attempts < max_attempts:
            ep, ok = rollout_expert(env, expert, seed + attempts, perturbation)
            attempts += 1
            steps.append(len(ep["actions"]))
            if ok:
                episodes.append(ep)
    finally:
        if own:
            env.close()
    stats = DemoStats(attempts, len(episodes), time.perf_counter() - t0, float(np.mean(steps)))
    if len(episodes) < n:
        raise RuntimeError(f"scripted {task} expert: only {len(episodes)} of {attempts} episodes succeeded, {n} wanted")
    if out is not None:
        from warpd_core.data.robomimic import write_robomimic

        names = [f"demo_{i}" for i in range(n)]
        n_valid = n // 10
        masks = {"train": names[: n - n_valid], "valid": names[n - n_valid:]} if n_valid else None
        stats.path = str(write_robomimic(out, episodes, env_args(task, env.max_steps), masks=masks, overwrite=overwrite))
    return episodes, stats


def evaluate_expert(task: str, episodes: int, seed: int = 0, max_steps: int = DEFAULT_MAX_STEPS,
                    perturbation: EEPerturbation | None = None, config: ExpertConfig | None = None,
                    env: RobosuiteEnv | None = None) -> DemoStats:
    """Success rate and wall time of the scripted expert over exactly ``episodes`` episodes
    (seeds ``seed .. seed + episodes - 1``), optionally under ``perturbation``."""
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    own = env is None
    env = RobosuiteEnv(task, max_steps=max_steps) if own else env
    expert = ScriptedExpert(task, config, seed=seed)
    ok, steps = 0, []
    t0 = time.perf_counter()
    try:
        for k in range(episodes):
            ep, success = rollout_expert(env, expert, seed + k, perturbation)
            ok += success
            steps.append(len(ep["actions"]))
    finally:
        if own:
            env.close()
    return DemoStats(episodes, ok, time.perf_counter() - t0, float(np.mean(steps)))
