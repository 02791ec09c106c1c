"""robosuite Lift and Can (PickPlaceCan) with a Panda: the stand-in robot for hardware.

Set-up (robosuite 1.5.2, MuJoCo 3.3): Panda arm, robosuite's default Panda composite
controller (``BASIC`` with an ``OSC_POSE`` arm part and a ``GRIP`` gripper part), 20 Hz
control (25 physics substeps of 2 ms), no rendering at all (no renderer, no off-screen
renderer, no cameras), ``hard_reset=False`` (resets take ms instead of a second of model
reloading; placements are reseeded explicitly, see :meth:`RobosuiteEnv.reset`).

Action ``(7,)`` in [-1, 1] (clipped): ``[dx, dy, dz, dax, day, daz, gripper]``.
``dx..dz`` scale to a position delta of at most 0.05 m and ``dax..daz`` to an axis-angle
delta of at most 0.5 rad, both in the robot base frame (which is aligned with the world
frame in both tasks); the OSC goal is the *achieved* pose plus that delta, recomputed every
step. ``gripper`` +1 closes, -1 opens.

Observation vector (float64), :data:`OBS_KEYS` concatenated in this order::

    robot0_eef_pos       (3)  grip site position, world frame, m
    robot0_eef_quat      (4)  hand orientation, quaternion (x, y, z, w)
    robot0_gripper_qpos  (2)  finger joint positions as robosuite reports them, m
    object               (D)  task object state, see OBJECT_LAYOUT (Lift D=10, Can D=14)

These are the names and the object layout of robomimic's low-dim datasets (robomimic keeps
``object`` for robosuite's ``object-state``; the order of its parts is fixed here rather
than taken from robosuite 1.5's ``object-state``, which puts Can's relative pose first).
Note that :func:`warpd_core.data.robomimic.low_dim_obs_keys` sorts keys by name (``object``
first): always pass ``obs_keys=OBS_KEYS`` when reading files made here.

Success is the env's own ``_check_success()`` (Lift: cube 4 cm above the table; Can: the
can inside its target bin region and the gripper more than ~7 cm away from it). An episode
ends on success or after ``max_steps`` steps.

End-effector perturbation (paper: "we add random translation and rotation vectors to the
end effector, applied 10% of the time"; the paper does not say how): :class:`EEPerturbation`
draws a displacement ``[dx, dy, dz, rx, ry, rz]`` (m, rotation vector in rad, world frame)
and :meth:`RobosuiteEnv.displace_ee` *teleports* the arm there -- the robot analogue of the
PushT adversary teleporting the block. See ``displace_ee`` for why not an OSC goal offset.

This module must stay importable without torch and without ROS.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

TASKS = {"lift": "Lift", "can": "PickPlaceCan"}
"""Task name (CLI, configs) -> robosuite environment name."""
ROBOT = "Panda"
CONTROL_HZ = 20
DEFAULT_MAX_STEPS = 400
"""robomimic's rollout horizon for Lift and Can."""
ACTION_DIM = 7
OBS_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
"""Low-dim obs keys in the order they are concatenated into the observation vector."""
OBJECT_LAYOUT = {
    "lift": (("cube_pos", 3), ("cube_quat", 4), ("gripper_to_cube_pos", 3)),
    "can": (("Can_pos", 3), ("Can_quat", 4), ("Can_to_robot0_eef_pos", 3), ("Can_to_robot0_eef_quat", 4)),
}
"""Parts of the ``object`` vector per task: (robosuite observable, width), in order.
Positions in m (world frame), quaternions (x, y, z, w); ``gripper_to_cube_pos`` is
cube - grip site in the world frame, ``Can_to_robot0_eef_*`` the can pose in the hand frame."""
JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8)) + ("panda_finger_joint1", "panda_finger_joint2")
"""Joint names of :meth:`RobosuiteEnv.robot_state` (franka_description names)."""
FLOOR_MARGIN = 0.01
"""``displace_ee`` keeps the grip site at least this high (m) above the table / bin floor."""
PENETRATION_TOL = 0.004
"""``displace_ee`` shortens a displacement that would make contacts deeper than this (m)."""


def obs_dim(task: str) -> int:
    """Length of the observation vector of ``task``."""
    return 3 + 4 + 2 + sum(w for _, w in OBJECT_LAYOUT[_check_task(task)])


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    return task


def controller_config() -> dict:
    """robosuite 1.5 composite controller config for the Panda: ``BASIC`` with the arm
    part ``OSC_POSE`` (delta input, base frame, kp 150, critically damped) and ``GRIP``."""
    from robosuite.controllers import load_composite_controller_config

    cfg = load_composite_controller_config(robot=ROBOT)
    arm = cfg["body_parts"]["right"]
    if arm["type"] != "OSC_POSE" or arm["input_type"] != "delta":  # robosuite's default changed
        raise RuntimeError(f"robosuite's default {ROBOT} controller is {arm['type']}/{arm['input_type']}, expected OSC_POSE/delta")
    return cfg


def env_kwargs(max_steps: int = DEFAULT_MAX_STEPS) -> dict:
    """Keyword arguments of ``robosuite.make`` (besides the env name) used here."""
    return dict(
        robots=ROBOT,
        controller_configs=controller_config(),
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        use_object_obs=True,
        control_freq=CONTROL_HZ,
        horizon=int(max_steps),  # robosuite's name for the episode length
        ignore_done=True,  # episode ends are decided here (success or max_steps)
        hard_reset=False,
        reward_shaping=False,
    )


def env_args(task: str, max_steps: int = DEFAULT_MAX_STEPS) -> dict:
    """robomimic's ``data.attrs["env_args"]``: env_name, type (1 = robosuite), env_kwargs."""
    import robosuite

    return {"env_name": TASKS[_check_task(task)], "type": 1, "env_version": robosuite.__version__,
            "env_kwargs": env_kwargs(max_steps), "warpd_task": task, "obs_keys": list(OBS_KEYS)}


# -- rotations (quaternions x, y, z, w; rotation vectors in rad) -------------------------


def rotvec_to_mat(rv: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a rotation vector ``(3,)`` (Rodrigues)."""
    rv = np.asarray(rv, dtype=np.float64)
    angle = float(np.linalg.norm(rv))
    if angle < 1e-12:
        return np.eye(3)
    k = rv / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)


def mat_to_rotvec(m: np.ndarray) -> np.ndarray:
    """Rotation vector ``(3,)`` (angle in [0, pi]) of a rotation matrix ``(3, 3)``."""
    m = np.asarray(m, dtype=np.float64)
    cos = float(np.clip((np.trace(m) - 1.0) / 2.0, -1.0, 1.0))
    angle = math.acos(cos)
    if angle < 1e-9:
        return np.zeros(3)
    if angle > math.pi - 1e-6:  # near pi: axis from the symmetric part
        b = (m + np.eye(3)) / 2.0
        axis = np.sqrt(np.clip(np.diag(b), 0.0, None))
        i = int(np.argmax(axis))
        axis = b[i] / axis[i]
        return angle * axis / np.linalg.norm(axis)
    w = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])
    return angle * w / (2.0 * math.sin(angle))


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a quaternion ``(x, y, z, w)``."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` with w >= 0 of a rotation matrix."""
    import mujoco

    wxyz = np.zeros(4)
    mujoco.mju_mat2Quat(wxyz, np.asarray(m, dtype=np.float64).reshape(9))
    q = np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]])
    return q if q[3] >= 0 else -q


# -- the environment ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RobotState:
    """What a real robot driver would publish.

    joint_pos, joint_vel: ``(9,)`` rad, rad/s for the 7 arm joints; the two fingers in m and
        m/s, both positive when open (franka_description convention: robosuite's second
        finger joint is negated). Names: :data:`JOINT_NAMES`.
    eef_pos ``(3,)`` m, eef_quat ``(4,)`` (x, y, z, w): grip site pose in the world frame.
    object_pos ``(3,)`` m, object_quat ``(4,)`` (x, y, z, w): the task object's body pose.
    """

    joint_pos: np.ndarray
    joint_vel: np.ndarray
    eef_pos: np.ndarray
    eef_quat: np.ndarray
    object_pos: np.ndarray
    object_quat: np.ndarray


@dataclasses.dataclass(frozen=True)
class StepResult:
    """What :meth:`RobosuiteEnv.step` returns.

    obs: ``(obs_dim,)`` float64 observation vector after the step (see module docstring).
    reward: the env's sparse reward (1.0 on success, else 0.0).
    done: success or ``max_steps`` reached.
    info: ``success`` (bool), ``truncated`` (bool, max_steps reached without success),
        ``step`` (int, steps taken this episode).
    """

    obs: np.ndarray
    reward: float
    done: bool
    info: dict[str, Any]


class RobosuiteEnv:
    """robosuite Lift / Can with a Panda (OSC_POSE, 20 Hz, no rendering).

    Args:
        task: ``"lift"`` or ``"can"``.
        max_steps: episode length limit in control steps (robomimic: 400).
        seed: seed of the first ``reset()`` called without one.

    Creating the env takes 1-3 s (MuJoCo model compilation; the first process on a machine
    also compiles robosuite's numba kernels, ~10 s, cached afterwards); a step takes ~3 ms.
    """

    def __init__(self, task: str = "lift", max_steps: int = DEFAULT_MAX_STEPS, seed: int | None = None):
        _check_task(task)
        if max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        import robosuite
        from robosuite.utils.log_utils import ROBOSUITE_DEFAULT_LOGGER

        ROBOSUITE_DEFAULT_LOGGER.setLevel(logging.WARNING)  # one INFO line per controller load otherwise
        self.task = task
        self.max_steps = int(max_steps)
        self.env = robosuite.make(TASKS[task], **env_kwargs(max_steps))
        self.robot = self.env.robots[0]
        self._arm_q = np.asarray(self.robot._ref_joint_pos_indexes)  # qpos addresses of the 7 arm joints
        self._arm_dq = np.asarray(self.robot._ref_joint_vel_indexes)
        self._finger_q = np.asarray(self.robot._ref_gripper_joint_pos_indexes["right"])
        self._finger_dq = np.asarray(self.robot._ref_gripper_joint_vel_indexes["right"])
        self._site = int(self.robot.eef_site_id["right"])
        self._default_seed = seed
        self._steps = 0
        self._success = False
        self._needs_reset = True
        self._obs: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ task objects
    @property
    def _object(self):
        """The manipulated MujocoObject (Lift's cube, Can's can)."""
        e = self.env
        return e.cube if self.task == "lift" else e.objects[e.object_id]

    @property
    def floor_z(self) -> float:
        """Height (m) of the surface the object starts on: table top (Lift), bin floor (Can)."""
        e = self.env
        return float(e.model.mujoco_arena.table_offset[2]) if self.task == "lift" else float(e.bin1_pos[2])

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; returns the observation vector.

        The seed fixes the object placement (Lift: cube within +-3 cm of the table centre,
        random yaw; Can: anywhere in the left bin, random yaw) and the robot's initial joint
        noise (Gaussian, 0.02 rad). ``hard_reset=False`` keeps one placement sampler alive,
        so its generator is replaced here rather than by robosuite's reload.
        """
        if seed is None:
            seed, self._default_seed = self._default_seed, None
        rng = np.random.default_rng(seed)
        e = self.env
        e.rng = rng
        sampler = getattr(e, "placement_initializer", None)
        if sampler is not None:
            sampler.rng = rng
            for sub in getattr(sampler, "samplers", {}).values():
                sub.rng = rng
        e.reset()
        self._steps = 0
        self._success = bool(e._check_success())
        self._needs_reset = False
        # robosuite's reset leaves cached observables that depend on others (Can's relative
        # pose) at zero; recompute everything once.
        self._obs = e._get_observations(force_update=True)
        return self.obs

    def step(self, action: np.ndarray) -> StepResult:
        """Advance one control step (0.05 s) with ``action`` ``(7,)``, clipped to [-1, 1]."""
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (episode over or not started)")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"action must have {ACTION_DIM} entries, got {a.shape[0]}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action contains NaN or inf")
        _, reward, _, _ = self.env.step(np.clip(a, -1.0, 1.0))
        # robosuite samples observables inside its last physics substep, from kinematics one
        # substep (2 ms) older than the joint positions; recompute both at the step's end so
        # that the observation, robot_state() and displace_ee() all describe the same state.
        self.env.sim.forward()
        self._obs = self.env._get_observations(force_update=True)
        self._steps += 1
        self._success = bool(self.env._check_success())
        truncated = self._steps >= self.max_steps and not self._success
        done = self._success or self._steps >= self.max_steps
        self._needs_reset = done
        return StepResult(self.obs, float(reward), done,
                          {"success": self._success, "truncated": truncated, "step": self._steps})

    @property
    def obs_dict(self) -> dict[str, np.ndarray]:
        """The :data:`OBS_KEYS` arrays (float64 copies), robomimic names."""
        o = self._obs
        obj = np.concatenate([np.asarray(o[k], dtype=np.float64).reshape(w) for k, w in OBJECT_LAYOUT[self.task]])
        return {"robot0_eef_pos": np.array(o["robot0_eef_pos"], dtype=np.float64),
                "robot0_eef_quat": np.array(o["robot0_eef_quat"], dtype=np.float64),
                "robot0_gripper_qpos": np.array(o["robot0_gripper_qpos"], dtype=np.float64),
                "object": obj}

    @property
    def obs(self) -> np.ndarray:
        """Observation vector ``(obs_dim(task),)`` float64: :data:`OBS_KEYS` concatenated."""
        d = self.obs_dict
        return np.concatenate([d[k] for k in OBS_KEYS])

    @property
    def raw_obs(self) -> dict[str, np.ndarray]:
        """robosuite's full observation dict of the last step (read-only use)."""
        return self._obs

    def robot_state(self) -> RobotState:
        """Joint state, grip-site pose and object pose now (see :class:`RobotState`)."""
        d = self.env.sim.data
        fq = np.array(d.qpos[self._finger_q], dtype=np.float64) * (1.0, -1.0)
        fv = np.array(d.qvel[self._finger_dq], dtype=np.float64) * (1.0, -1.0)
        body = self.env.sim.model.body_name2id(self._object.root_body)
        wxyz = np.array(d.body_xquat[body], dtype=np.float64)
        return RobotState(
            joint_pos=np.concatenate([d.qpos[self._arm_q], fq]),
            joint_vel=np.concatenate([d.qvel[self._arm_dq], fv]),
            eef_pos=np.array(d.site_xpos[self._site], dtype=np.float64),
            eef_quat=mat_to_quat(d.site_xmat[self._site].reshape(3, 3)),
            object_pos=np.array(d.body_xpos[body], dtype=np.float64),
            object_quat=np.array([wxyz[1], wxyz[2], wxyz[3], wxyz[0]]),
        )

    @property
    def eef_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Grip site position ``(3,)`` m and rotation matrix ``(3, 3)``, world frame."""
        d = self.env.sim.data
        return np.array(d.site_xpos[self._site], dtype=np.float64), np.array(d.site_xmat[self._site], dtype=np.float64).reshape(3, 3)

    @property
    def success(self) -> bool:
        """The env's ``_check_success()`` after the last reset / step / displacement."""
        return self._success

    @property
    def steps(self) -> int:
        """Control steps taken since the last reset."""
        return self._steps

    def is_grasping(self) -> bool:
        """Both finger pads touch the task object (robosuite's ``_check_grasp``)."""
        return bool(self.env._check_grasp(gripper=self.robot.gripper, object_geoms=self._object))

    # ------------------------------------------------------------------ perturbation
    def _penetration(self) -> float:
        """Deepest contact penetration now, m (>= 0), from the last collision pass."""
        data = self.env.sim.data._data
        return float(max(0.0, -np.min(data.contact.dist[: data.ncon]))) if data.ncon else 0.0

    def displace_ee(self, displacement: np.ndarray, iters: int = 30) -> np.ndarray:
        """Teleport the end effector by ``[dx, dy, dz, rx, ry, rz]`` (m; rotation vector in
        rad about the grip site), world frame; returns the displacement actually applied
        ``(6,)``, in the same form.

        How: damped least-squares inverse kinematics on the grip site's Jacobian (MuJoCo
        ``mj_jacSite``) moves the 7 arm joints, within their limits, until the site reaches
        the displaced pose (or ``iters`` iterations); arm joint velocities are zeroed. If the
        gripper holds the object (both finger pads in contact), the object is carried along
        by the same rigid motion so that a grasp survives the push; otherwise it stays where
        it is. The OSC goal is then re-anchored at the new pose.

        Clipping, the robot analogue of PushT's walls: the target height is clipped so that
        the grip site stays ``FLOOR_MARGIN`` above the table / bin floor (or where it is, if
        already lower), and when the displaced arm (or carried object) would sink more than
        ``PENETRATION_TOL`` into anything deeper than it already was -- the cube, a bin wall
        -- the displacement is scaled down (bisection on its fraction, 1/32 resolution) to the
        largest one that does not. Without this a teleport into the cube makes the contact
        solver launch it. Away from obstacles and joint limits the applied displacement
        equals the request up to IK accuracy (~1e-6 m).

        Why a teleport and not an offset of the OSC goal for one step: with kp = 150 and
        critical damping the arm covers only ~12% of a goal step in one 50 ms control step,
        and the next (policy) action replaces the goal, so a goal offset of m metres would
        move the hand by a fraction of m that depends on the arm's state. The teleport
        moves it by m, which is what a perturbation "magnitude" should mean, as PushT's block
        teleport does.
        """
        d6 = np.asarray(displacement, dtype=np.float64).reshape(6)
        if not np.all(np.isfinite(d6)):
            raise ValueError("displacement contains NaN or inf")
        sim = self.env.sim
        data = sim.data._data
        grasping = self.is_grasping()
        p0, r0 = self.eef_pose
        q0, v0 = np.array(data.qpos), np.array(data.qvel)
        allowed = max(self._penetration(), PENETRATION_TOL)

        def attempt(frac: float) -> bool:
            data.qpos[:], data.qvel[:] = q0, v0
            self._teleport_ee(frac * d6, p0, r0, grasping, iters)
            return self._penetration() <= allowed

        if not attempt(1.0):
            lo, hi = 0.0, 1.0  # lo: known to fit
            for _ in range(5):
                mid = (lo + hi) / 2.0
                if attempt(mid):
                    lo = mid
                else:
                    hi = mid
            attempt(lo)
        p1, r1 = self.eef_pose
        ctrl = self.robot.part_controllers["right"]
        ctrl.update(force=True)
        ctrl.reset_goal()
        self._obs = self.env._get_observations(force_update=True)
        self._success = bool(self.env._check_success())
        return np.concatenate([p1 - p0, mat_to_rotvec(r1 @ r0.T)])

    def _teleport_ee(self, d6: np.ndarray, p0: np.ndarray, r0: np.ndarray, grasping: bool, iters: int) -> None:
        """IK move of the grip site from (p0, r0) by d6 (see ``displace_ee``), carrying the
        object when ``grasping``; ends with ``sim.forward()`` (contacts up to date)."""
        import mujoco

        sim = self.env.sim
        m, data = sim.model._model, sim.data._data
        obj_joint = self._object.joints[0]
        obj_qpos = np.array(sim.data.get_joint_qpos(obj_joint))  # (7,) pos + quat (w, x, y, z)
        target_p = p0 + d6[:3]
        target_p[2] = max(target_p[2], min(p0[2], self.floor_z + FLOOR_MARGIN))
        target_r = rotvec_to_mat(d6[3:]) @ r0

        lo, hi = m.jnt_range[self.robot._ref_joint_indexes].T
        q = np.array(data.qpos[self._arm_q])
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_kinematics(m, data)
        for _ in range(iters):
            p, r = self.eef_pose
            err = np.concatenate([target_p - p, mat_to_rotvec(target_r @ r.T)])
            if np.linalg.norm(err[:3]) < 1e-6 and np.linalg.norm(err[3:]) < 1e-5:
                break
            mujoco.mj_comPos(m, data)
            mujoco.mj_jacSite(m, data, jacp, jacr, self._site)
            jac = np.vstack([jacp[:, self._arm_dq], jacr[:, self._arm_dq]])  # (6, 7)
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)  # damped least squares
            q = np.clip(q + dq, lo, hi)
            data.qpos[self._arm_q] = q
            mujoco.mj_kinematics(m, data)
        data.qvel[self._arm_dq] = 0.0
        if grasping:
            p1, r1 = self.eef_pose
            rel = r1 @ r0.T  # world-frame rotation actually applied
            o_rot = quat_to_mat(np.r_[obj_qpos[4:7], obj_qpos[3]])
            q_xyzw = mat_to_quat(rel @ o_rot)
            sim.data.set_joint_qpos(obj_joint, np.r_[p1 + rel @ (obj_qpos[:3] - p0), q_xyzw[3], q_xyzw[:3]])
            sim.data.set_joint_qvel(obj_joint, np.zeros(6))
        sim.forward()

    def close(self) -> None:
        self.env.close()


class EEPerturbation:
    """The paper's robomimic adversary: at each control step, with probability
    ``probability``, displace the end effector by a translation of length ``translation``
    (m) in a uniformly random 3-D direction and a rotation of angle ``rotation`` (rad)
    about a uniformly random axis.

    Pure and ROS-free; used by the ROS ``ee_perturbation`` node and in-process evaluation
    (apply with :meth:`RobosuiteEnv.displace_ee`). Every ``sample()`` draws the same random
    numbers (one uniform and two Gaussian 3-vectors) whatever the probability, so for one
    seed the event directions do not depend on ``probability``.

    Args:
        probability: chance of a displacement per step, in [0, 1] (paper: 0.1).
        translation: translation length in m, >= 0.
        rotation: rotation angle in rad, in [0, pi].
        seed: seed of the private random generator.
    """

    def __init__(self, probability: float = 0.1, translation: float = 0.05, rotation: float = 0.0,
                 seed: int | None = None):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        if translation < 0.0:
            raise ValueError(f"translation must be >= 0 m, got {translation}")
        if not 0.0 <= rotation <= math.pi:
            raise ValueError(f"rotation must be in [0, pi] rad, got {rotation}")
        self.probability = float(probability)
        self.translation = float(translation)
        self.rotation = float(rotation)
        self._rng = np.random.default_rng(seed)

    @staticmethod
    def _unit(v: np.ndarray) -> np.ndarray:
        n = np.linalg.norm(v)
        return v / n if n > 1e-12 else np.array([1.0, 0.0, 0.0])

    def sample(self) -> np.ndarray | None:
        """``[dx, dy, dz, rx, ry, rz]`` ``(6,) float64`` (|d| = translation m, |r| = rotation
        rad), or None (no event this step)."""
        u = self._rng.random()
        t_dir, r_axis = self._rng.standard_normal(3), self._rng.standard_normal(3)
        if u >= self.probability:
            return None
        return np.concatenate([self.translation * self._unit(t_dir), self.rotation * self._unit(r_axis)])
