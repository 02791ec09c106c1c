"""Fake hardware through real rclpy: the robot graph (generator + controller from a params file,
as robot.launch.py starts them) against a node publishing JointState and recording the
forward_command_controller commands; and the controller's lifecycle."""

import random
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import REPO, node_executable, requires_ros
from rosutil import call, lifecycle_state, processes, spin_until

pytestmark = requires_ros

JOINTS = [f"panda_joint{i}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def arm_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("arm") / "bundle"
    subprocess.run([sys.executable, "-m", "warpd_core", "export", "init", "--obs-dim", "14", "--act-dim", "7",
                    "--hidden", "64", "64", "--horizon", "10", "--decoder", "xs", "--unet", "xs", "--seed", "1",
                    "--act-range", "-1", "1", "--out", str(out)], check=True, cwd=REPO)
    return out


def arm_params(tmp_path, bundle, **controller):
    params = yaml.safe_load((REPO / "config" / "robot_arm_example.yaml").read_text())
    params["/**/warpd_generator"]["ros__parameters"].update(bundle=str(bundle), device="cpu")
    ctl = params["/**/warpd_controller"]["ros__parameters"]
    ctl["input"]["arm"]["max_age"] = 0.25  # the test's 100 Hz publisher shares 2 loaded cores
    ctl.update(controller)
    path = tmp_path / "arm.yaml"
    path.write_text(yaml.safe_dump(params))
    return path, params["/**/warpd_controller"]["ros__parameters"]


class FakeArm:
    """Publishes JointState (message order shuffled, one extra joint) and records commands."""

    def __init__(self, node):
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        from warpd_ros import qos

        self.node = node
        self.pub = node.create_publisher(JointState, "/joint_states", qos.stream("sensor"))
        self.commands = []  # (monotonic time, values)
        node.create_subscription(Float64MultiArray, "/forward_command_controller/commands",
                                 lambda m: self.commands.append((time.monotonic(), list(m.data))), 100)
        self.q = np.zeros(7)
        self.msg = JointState()
        self.rng = random.Random(0)

    def publish(self):
        names = JOINTS + ["panda_finger_joint1"]
        order = list(range(8))
        self.rng.shuffle(order)
        self.msg.name = [names[i] for i in order]
        pos = list(self.q) + [0.04]
        self.msg.position = [float(pos[i]) for i in order]
        self.msg.velocity = [0.0] * 8
        self.msg.effort = [0.0] * 8
        self.msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(self.msg)


def run_arm(node, arm, seconds, rate=100.0, publish=True):
    import rclpy

    end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < end:
        now = time.monotonic()
        if publish and now >= nxt:
            arm.publish()
            nxt += 1.0 / rate
        rclpy.spin_once(node, timeout_sec=max(0.0, min(0.002, nxt - time.monotonic())))


def test_fake_hardware_commands_at_rate_within_limits_and_safe_when_joint_states_stop(arm_bundle, tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    params_file, ctl = arm_params(tmp_path, arm_bundle)
    low, high = np.array(ctl["action_low"]), np.array(ctl["action_high"])
    max_step = np.array(ctl["command_rate_limit"]) * ctl["control_period"]
    cmd = [sys.executable, "-m", "warpd_ros.graph", "robot", f"params_file:={params_file}", "autostart:=true",
           "--timeout", "40"]
    rclpy.init()
    try:
        node = rclpy.create_node("fake_arm")
        arm = FakeArm(node)
        diags = []
        node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: diags.extend((time.monotonic(), s) for s in m.status if s.name == "warpd_controller"), 50)
        with processes(cmd, log_dir=str(tmp_path)):
            # wait for the first policy-driven command (the generator loads torch first)
            t0 = time.monotonic()
            while not arm.commands and time.monotonic() - t0 < 30:
                run_arm(node, arm, 0.2)
            assert arm.commands, "no command within 30 s of starting the robot graph"
            arm.commands.clear()
            run_arm(node, arm, 3.0)
            moving = list(arm.commands)
            t_stop = time.monotonic()
            run_arm(node, arm, 2.5, publish=False)  # the joint_states stream stops (diagnostics every 1 s)
            after = [c for c in arm.commands if c[0] > t_stop]
    finally:
        rclpy.try_shutdown()
    values = np.array([v for _, v in moving])
    rate = len(moving) / 3.0
    assert 60 <= rate <= 110, f"{rate:.1f} commands/s for 100 Hz joint states"
    assert values.shape[1] == 7 and np.all(np.isfinite(values))
    assert np.all(values >= low - 1e-9) and np.all(values <= high + 1e-9)
    assert np.all(np.abs(np.diff(values, axis=0)) <= max_step + 1e-9), "rate limit violated"
    # stale joint states: safe action (hold = the last command) within max_age + a watchdog tick
    assert after, "no safe action after the joint-state stream stopped"
    first_safe = after[0][0] - t_stop
    assert first_safe <= ctl["input"]["arm"]["max_age"] + 0.1, f"first safe action after {first_safe:.3f} s"
    assert all(v == moving[-1][1] for _, v in after)
    level = lambda s: s.level if isinstance(s.level, int) else int.from_bytes(s.level, "little")  # noqa: E731
    errors = [s for t, s in diags if t > t_stop and level(s) == 2]
    assert errors and "arm" in errors[-1].message, "no ERROR diagnostics naming the stale input"


def test_lifecycle_no_command_while_inactive_then_commands_and_one_safe_on_deactivate(arm_bundle, tmp_path):
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    params_file, _ = arm_params(tmp_path, arm_bundle)
    gen = [node_executable("generator"), "--ros-args", "--params-file", str(params_file), "-p", "autostart:=true"]
    ctl = [node_executable("controller"), "--ros-args", "--params-file", str(params_file)]
    rclpy.init()
    try:
        node = rclpy.create_node("lifecycle_probe")
        arm = FakeArm(node)
        change = node.create_client(ChangeState, "/warpd_controller/change_state")
        get = node.create_client(GetState, "/warpd_controller/get_state")

        def transition(tid):
            req = ChangeState.Request()
            req.transition.id = tid
            answer = call(node, change, req)
            assert answer is not None and answer.success, f"transition {tid}: {answer}"

        with processes(gen, ctl, log_dir=str(tmp_path)):
            assert lifecycle_state(node, "warpd_controller") == "unconfigured"
            run_arm(node, arm, 1.5)
            transition(Transition.TRANSITION_CONFIGURE)
            run_arm(node, arm, 1.5)
            assert not arm.commands, "a command was published before activation"
            transition(Transition.TRANSITION_ACTIVATE)
            t0 = time.monotonic()
            while len(arm.commands) < 20 and time.monotonic() - t0 < 30:
                run_arm(node, arm, 0.2)
            assert len(arm.commands) >= 20
            t_deact = time.monotonic()
            transition(Transition.TRANSITION_DEACTIVATE)
            run_arm(node, arm, 1.5)
            answer = call(node, get, GetState.Request())
            assert answer is not None and answer.current_state.label == "inactive"
    finally:
        rclpy.try_shutdown()
    # deactivation publishes the safe action (hold: a repeat of the last command) once, then nothing
    late = [c for c in arm.commands if c[0] > t_deact + 0.3]
    assert not late, f"{len(late)} commands while inactive"
    assert arm.commands[-1][1] == arm.commands[-2][1]


def test_missing_joint_fails_configure_with_its_name(arm_bundle, tmp_path):
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    joints = JOINTS[:6] + ["elbow_joint_that_does_not_exist"]
    params_file, _ = arm_params(tmp_path, arm_bundle)
    params = yaml.safe_load(params_file.read_text())
    params["/**/warpd_controller"]["ros__parameters"]["input"]["arm"]["joints"] = joints
    params_file.write_text(yaml.safe_dump(params))
    ctl = [node_executable("controller"), "--ros-args", "--params-file", str(params_file)]
    rclpy.init()
    try:
        node = rclpy.create_node("configure_probe")
        arm = FakeArm(node)
        change = node.create_client(ChangeState, "/warpd_controller/change_state")
        get = node.create_client(GetState, "/warpd_controller/get_state")
        with processes(ctl, log_dir=str(tmp_path)):
            assert lifecycle_state(node, "warpd_controller") == "unconfigured"
            req = ChangeState.Request()
            req.transition.id = Transition.TRANSITION_CONFIGURE
            fut = change.call_async(req)
            end = time.monotonic() + 20
            while not fut.done() and time.monotonic() < end:
                run_arm(node, arm, 0.05)  # the robot is streaming while the operator configures
            assert fut.done() and fut.result().success is False
            answer = call(node, get, GetState.Request(), 10)
            assert answer is not None and answer.current_state.label == "unconfigured"
            time.sleep(0.5)
    finally:
        rclpy.try_shutdown()
    log = (tmp_path / "proc0.log").read_text()
    assert "elbow_joint_that_does_not_exist" in log and "configure failed" in log
