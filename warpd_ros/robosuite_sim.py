"""robosuite simulation node: Lift / Can with a Panda behind the topics a real arm has.

Publishes, after every reset and step:

* ``joint_states`` (sensor_msgs/JointState): ``panda_joint1..7`` (rad, rad/s) and
  ``panda_finger_joint1/2`` (m, m/s, both positive when open);
* ``ee_pose`` and ``object_pose`` (geometry_msgs/PoseStamped, frame ``frame_id``): the grip
  site and the task object (cube / can);
* ``observation`` (warpd_ros/Observation): the low-dim vector of
  :mod:`warpd_core.envs.robosuite_env` (eef pos, eef quat, gripper qpos, object; 19 / 23);
* ``episode_result`` (warpd_ros/EpisodeResult): score 1.0 / 0.0 for success, max_coverage 0.

Actions ``(7,)`` in [-1, 1] (OSC_POSE deltas + gripper) come from ``action_source``:

* ``warpd``: warpd_ros/Action on ``action``, matched to observations by ``seq`` (as pusht_sim);
* ``commands``: std_msgs/Float64MultiArray on ``command_topic`` (a ros2_control
  forward_command_controller's topic). These carry no sequence number: in lockstep the first
  command received after an observation was published answers it.

Perturbations: warpd_ros/Perturbation on ``perturbation`` with ``[dx, dy, dz, rx, ry, rz]``
(m, rad; world frame) or ``[dx, dy, dz]``, applied by teleporting the end effector
(:meth:`RobosuiteEnv.displace_ee`) before the step they are addressed to.

Modes as pusht_sim: ``lockstep`` waits for the answer to every observation (and, with
``wait_for_perturbation``, the Perturbation decision); ``realtime`` steps at ``rate_hz``.
In realtime an action is used for one step only: OSC actions are *deltas*, so repeating a
stale one would keep moving the arm. A step without a fresh action holds the arm (zero
delta) and repeats the last gripper command (open before the first action).
"""

from __future__ import annotations

import json
import secrets
import sys
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from warpd_core.envs.robosuite_env import ACTION_DIM, JOINT_NAMES, TASKS, RobosuiteEnv
from warpd_ros import qos
from warpd_ros.msg import Action, EpisodeResult, Observation, Perturbation
from warpd_ros.params import check_all, choice, declare
from warpd_ros.sim_main import run_simulation


class RobosuiteSimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("robosuite_sim", **kwargs)
        # every parameter is read here, once: read-only afterwards (a SetParameters would change nothing)
        p = lambda *a, **kw: declare(self, *a, read_only=True, **kw)  # noqa: E731
        self.task = p("task", "lift", "robosuite task: lift or can.", check=choice(*sorted(TASKS)))
        self.mode = p("mode", "lockstep", "lockstep or realtime.", check=choice("lockstep", "realtime"))
        self.rate_hz = p("rate_hz", 20.0, "Realtime mode: steps per second (the env's control rate is 20 Hz).",
                         range=(0.01, 10_000.0))
        self.episodes = p("episodes", 3, "Episodes to run before exiting (0 = forever).", range=(0, 2**31 - 1))
        self.seed = p("seed", 0, "Seed of the first episode; episode k uses seed + k.", range=(0, 2**31 - 1))
        self.max_steps = p("max_steps", 400, "Maximum steps per episode (robomimic: 400).", range=(1, 2**31 - 1))
        self.source = p("action_source", "warpd", "Where actions come from: warpd (Action on 'action') or commands "
                        "(Float64MultiArray on command_topic).", check=choice("warpd", "commands"))
        command_topic = p("command_topic", "/forward_command_controller/commands", "Float64MultiArray action topic for action_source=commands.")
        self.frame_id = p("frame_id", "world", "frame_id of ee_pose / object_pose.")
        self.wait_pert = p("wait_for_perturbation", False, "Lockstep: also wait for the Perturbation of each step.")
        self.action_timeout = p("action_timeout", 2.0, "Lockstep: seconds before an unanswered observation is re-sent.",
                                range=(0.001, 3600.0))
        self.summary_path = p("summary", "", "Append one JSON line per episode to this file ('' = none).")
        obs_qos = p("obs_qos", "reliable", "QoS of observation/action/command topics: reliable or sensor.",
                    check=choice("reliable", "sensor"))
        check_all(self)  # ValueError naming the parameter: run_simulation prints it and exits 2

        self.env = RobosuiteEnv(self.task, max_steps=self.max_steps)
        self.sim_epoch = secrets.randbits(63)
        # Robot-style topics are reliable: reliable publishers serve both reliable and
        # best-effort subscribers (ros2_control's broadcasters do the same).
        robot_qos = qos.stream("reliable")
        self.pub_joints = self.create_publisher(JointState, "joint_states", robot_qos)
        self.pub_ee = self.create_publisher(PoseStamped, "ee_pose", robot_qos)
        self.pub_object = self.create_publisher(PoseStamped, "object_pose", robot_qos)
        watch = qos.IncompatibleQosWatch(self)
        self.pub_obs = self.create_publisher(Observation, "observation", qos.stream(obs_qos),
                                             event_callbacks=watch.publisher("observation"))
        self.pub_result = self.create_publisher(EpisodeResult, "episode_result", qos.RESULTS)
        if self.source == "warpd":
            self.create_subscription(Action, "action", self.on_action, qos.stream(obs_qos),
                                     event_callbacks=watch.subscription("action"))
        else:
            self.create_subscription(Float64MultiArray, command_topic, self.on_command, qos.stream(obs_qos),
                                     event_callbacks=watch.subscription(command_topic))
        self.create_subscription(Perturbation, "perturbation", self.on_perturbation, qos.stream("reliable"))
        self.episode = -1
        self.finished = False
        self._pending_pert: dict[int, np.ndarray] = {}
        self._fresh: np.ndarray | None = None  # realtime: newest unused action
        self._answer: np.ndarray | None = None  # lockstep: the answer to the current seq
        self._gripper = -1.0
        self._sent_at = 0.0
        self._joints = JointState(name=list(JOINT_NAMES))
        self._ee, self._object, self._obs_msg = PoseStamped(), PoseStamped(), Observation()
        self._ee.header.frame_id = self._object.header.frame_id = self.frame_id
        self._start_episode()
        if self.mode == "realtime":
            self.create_timer(1.0 / self.rate_hz, self._realtime_tick)
        else:
            self.create_timer(0.05, self._lockstep_watchdog)
        self.get_logger().info(f"robosuite {self.task} ready: mode {self.mode}, actions from {self.source}"
                               + (f" ({command_topic})" if self.source == "commands" else ""))

    # -- episodes ------------------------------------------------------------------------
    def _start_episode(self) -> None:
        self.episode += 1
        self.ep_seed = int(self.seed) + self.episode
        self.env.reset(seed=self.ep_seed)
        self.seq = 0
        self.n_pert = 0
        self._pending_pert.clear()
        self._answer = self._fresh = None
        self._gripper = -1.0
        self._publish(reset=True)

    def _end_episode(self, success: bool) -> None:
        r = EpisodeResult()
        r.header.stamp = self.get_clock().now().to_msg()
        r.episode = self.episode
        r.sim_epoch = self.sim_epoch
        r.seed = self.ep_seed
        r.steps = self.env.steps
        r.max_coverage = 0.0  # PushT's field; unused here
        r.score = 1.0 if success else 0.0
        r.success = success
        r.perturbations = self.n_pert
        self.pub_result.publish(r)
        self.get_logger().info(f"episode {self.episode} seed {self.ep_seed}: success {success} steps {r.steps} "
                               f"perturbations {r.perturbations}")
        if self.summary_path:
            with open(self.summary_path, "a") as f:
                f.write(json.dumps({"task": self.task, "episode": r.episode, "seed": r.seed, "score": r.score,
                                    "success": success, "steps": r.steps, "perturbations": r.perturbations}) + "\n")
        if self.episodes and self.episode + 1 >= self.episodes:
            self.finished = True
            self.get_logger().info("all episodes done")
            return
        self._start_episode()

    # -- messages ------------------------------------------------------------------------
    def _publish(self, reset: bool = False) -> None:
        """Robot topics first (a hardware-style controller reads them), then the Observation."""
        stamp = self.get_clock().now().to_msg()
        st = self.env.robot_state()
        js = self._joints
        js.header.stamp = stamp
        js.position = st.joint_pos.tolist()
        js.velocity = st.joint_vel.tolist()
        self.pub_joints.publish(js)
        for msg, pos, quat, pub in ((self._ee, st.eef_pos, st.eef_quat, self.pub_ee),
                                    (self._object, st.object_pos, st.object_quat, self.pub_object)):
            msg.header.stamp = stamp
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
            o = msg.pose.orientation
            o.x, o.y, o.z, o.w = (float(v) for v in quat)
            pub.publish(msg)
        m = self._obs_msg
        m.header.stamp = stamp
        m.seq = self.seq
        m.episode = self.episode
        m.sim_epoch = self.sim_epoch
        m.data = self.env.obs.tolist()
        m.task_id = -1
        m.reset = reset
        self._sent_at = time.perf_counter()
        self.pub_obs.publish(m)

    def _accept(self, a: np.ndarray, what: str) -> None:
        if a.shape != (ACTION_DIM,) or not np.all(np.isfinite(a)):
            self.get_logger().warning(f"ignoring malformed {what}: shape {a.shape} (expected {ACTION_DIM} finite values)")
            return
        if self.mode == "realtime":
            self._fresh = a.copy()
        elif self._answer is None:
            self._answer = a.copy()
            self._try_lockstep_step()

    def on_action(self, msg: Action) -> None:
        if msg.sim_epoch != self.sim_epoch or msg.episode != self.episode or self.finished:
            return  # an answer to an earlier run or episode
        if self.mode == "lockstep" and msg.seq != self.seq:
            return
        self._accept(np.frombuffer(msg.data, dtype=np.float64), f"action for seq {msg.seq}")

    def on_command(self, msg: Float64MultiArray) -> None:
        if not self.finished:
            self._accept(np.asarray(msg.data, dtype=np.float64), "command")

    def on_perturbation(self, msg: Perturbation) -> None:
        d = np.frombuffer(msg.displacement, dtype=np.float64)
        if d.shape not in ((0,), (3,), (6,)) or not np.all(np.isfinite(d)):
            self.get_logger().warning(f"ignoring malformed perturbation (shape {d.shape}; expected 0, 3 or 6 values)")
            return
        d = np.r_[d, np.zeros(3)] if d.size == 3 else d
        if self.mode == "realtime":
            if d.size:
                self._apply_perturbation(d)
            return
        # only the current step and a few ahead are kept: a misbehaving publisher cannot grow this
        if self.seq <= msg.seq < self.seq + 8:
            self._pending_pert[int(msg.seq)] = d.copy()
            self._try_lockstep_step()

    def _apply_perturbation(self, d: np.ndarray) -> None:
        self.env.displace_ee(d)
        self.n_pert += 1

    # -- stepping ------------------------------------------------------------------------
    def _try_lockstep_step(self) -> None:
        if self._answer is None or (self.wait_pert and self.seq not in self._pending_pert):
            return
        a, self._answer = self._answer, None
        d = self._pending_pert.pop(self.seq, None)
        if d is not None and d.size:
            self._apply_perturbation(d)
        self._step(a)

    def _step(self, action: np.ndarray) -> None:
        self._gripper = float(action[6])
        res = self.env.step(action)
        self.seq += 1
        if res.done:
            # Nothing is published for the final state: with action_source=commands an answer
            # to it could not be told apart from an answer to the next episode's first step.
            self._end_episode(bool(res.info["success"]))
        else:
            self._publish()

    def _lockstep_watchdog(self) -> None:
        if not self.finished and time.perf_counter() - self._sent_at > self.action_timeout:
            self.get_logger().warning(f"no action for seq {self.seq} within {self.action_timeout} s; re-sending")
            self._publish(reset=self.seq == 0)

    def _realtime_tick(self) -> None:
        if self.finished:
            return
        a, self._fresh = self._fresh, None
        if a is None:
            a = np.zeros(ACTION_DIM)
            a[6] = self._gripper
        self._step(a)


def main(args=None) -> int:
    return run_simulation(RobosuiteSimNode, "robosuite_sim", args)


if __name__ == "__main__":
    sys.exit(main())
