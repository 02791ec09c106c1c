"""Record -> train -> deploy through ROS, on a tiny scale.

A fake arm (7 joints, JointState at 50 Hz, tracking its latest position command at 1 rad/s)
is driven by a scripted teleoperator (10 Hz commands toward a goal posture) for a few
episodes delimited by a std_msgs/Bool marker; ``warpd record`` records in its own process;
``warpd data from-bag --rate 10 --split marker`` converts; a few epochs of ``warpd train vae``
/ ``diffusion``; ``warpd export`` (the bundle takes the 10 Hz from the data); then the robot
graph (generator + controller processes, ``trigger_decimation 5`` on the 50 Hz joint states)
drives the same fake arm with the learned policy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import REPO, requires_ros
from rosutil import processes

pytestmark = requires_ros
JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
GOAL = np.array([0.0, 0.3, 0.0, -1.5, 0.0, 1.5, 0.5])
CMD_TOPIC = "/forward_command_controller/commands"


class Arm:
    """Fake hardware: publishes JointState, moves toward the latest command at <= 1 rad/s."""

    def __init__(self, node):
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        from warpd_ros import qos

        self.node = node
        self.pub = node.create_publisher(JointState, "/joint_states", qos.stream("sensor"))
        node.create_subscription(Float64MultiArray, CMD_TOPIC, self._on_cmd, 10)
        self.msg = JointState()
        self.msg.name = list(reversed(JOINTS)) + ["panda_finger_joint1"]
        self.q = GOAL.copy()
        self.v = np.zeros(7)
        self.cmd = None
        self.n_cmds = 0

    def _on_cmd(self, m) -> None:
        self.cmd = np.array(m.data)
        self.n_cmds += 1

    def reset(self, q0) -> None:
        self.q, self.v, self.cmd = np.array(q0, float), np.zeros(7), None

    def step(self, dt: float) -> None:
        if self.cmd is not None:
            dq = np.clip(self.cmd - self.q, -1.0 * dt, 1.0 * dt)
            self.q = self.q + dq
            self.v = dq / dt
        self.msg.header.stamp = self.node.get_clock().now().to_msg()
        self.msg.position = [float(x) for x in self.q[::-1]] + [0.04]
        self.msg.velocity = [float(x) for x in self.v[::-1]] + [0.0]
        self.msg.effort = [0.0] * 8
        self.pub.publish(self.msg)


def teleop_command(q: np.ndarray) -> np.ndarray:
    """The scripted expert: a bounded step toward the goal posture."""
    return q + np.clip(0.3 * (GOAL - q), -0.08, 0.08)


def drive(node, arm, seconds, teleop_pub=None):
    import rclpy
    from std_msgs.msg import Float64MultiArray

    end = time.monotonic() + seconds
    nxt_arm = nxt_op = time.monotonic()
    msg = Float64MultiArray()
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= nxt_arm:
            arm.step(0.02)
            nxt_arm += 0.02
        if teleop_pub is not None and now >= nxt_op:
            msg.data = [float(x) for x in teleop_command(arm.q)]
            teleop_pub.publish(msg)
            arm.cmd = np.array(msg.data)  # the arm's own subscription also gets it; no wait
            nxt_op += 0.1
        rclpy.spin_once(node, timeout_sec=max(0.0, min(0.002, nxt_arm - time.monotonic())))


def params(tmp_path, bundle="/nonexistent", **controller):
    p = yaml.safe_load((REPO / "config" / "robot_arm_example.yaml").read_text())
    p["/**/warpd_generator"]["ros__parameters"].update(bundle=str(bundle), device="cpu")
    ctl = p["/**/warpd_controller"]["ros__parameters"]
    ctl["input"]["arm"]["max_age"] = 0.25  # the 50 Hz publisher shares 2 loaded cores
    ctl.update(controller)
    path = tmp_path / "arm.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def warpd(*args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "warpd_core", *map(str, args)], capture_output=True, text=True,
                       cwd=REPO, timeout=timeout)
    assert r.returncode == 0, f"warpd {' '.join(map(str, args[:3]))} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def test_record_train_deploy_through_ros(tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import Bool, Float64MultiArray

    from warpd_ros import qos

    rng = np.random.default_rng(0)
    rec_params = params(tmp_path)
    bag, ready = tmp_path / "demos_bag", tmp_path / "ready"
    rec = subprocess.Popen([sys.executable, "-m", "warpd_core", "record", "--params", str(rec_params), "--out", str(bag),
                            "--marker-topic", "/episode", "--ready-file", str(ready)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=REPO, start_new_session=True)
    n_episodes = 6
    rclpy.init()
    try:
        node = rclpy.create_node("fake_arm_teleop")
        arm = Arm(node)
        teleop = node.create_publisher(Float64MultiArray, CMD_TOPIC, qos.COMMANDS)
        marker = node.create_publisher(Bool, "/episode", 10)
        t0 = time.monotonic()
        while not ready.exists() and time.monotonic() - t0 < 30 and rec.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), "recorder did not start"
        while teleop.get_subscription_count() < 2 and time.monotonic() - t0 < 40:  # the arm and the recorder
            rclpy.spin_once(node, timeout_sec=0.05)
        time.sleep(0.5)
        for e in range(n_episodes):
            arm.reset(GOAL + rng.uniform(-0.5, 0.5, 7))
            drive(node, arm, 0.3)  # the new posture is published before the episode starts
            for _ in range(3):  # the recorder subscribes best effort: say it more than once
                marker.publish(Bool(data=True))
            drive(node, arm, 2.5, teleop)
            for _ in range(3):
                marker.publish(Bool(data=False))
            drive(node, arm, 0.2)
    finally:
        rclpy.try_shutdown()
        os.killpg(rec.pid, signal.SIGINT)
        rec_out, _ = rec.communicate(timeout=20)
    assert rec.returncode == 0, rec_out

    demos = tmp_path / "demos.zarr"
    out = warpd("data", "from-bag", bag, "--params", rec_params, "--rate", "10", "--split", "marker",
                "--marker-topic", "/episode", "--out", demos, "--no-progress")
    from warpd_core.data.io import load_dataset

    ds = load_dataset(demos)
    # 6 marked episodes of 2.5 s at 10 Hz; a stretch where the loaded machine delayed the joint
    # states past max_age is cut out (as the controller would send the safe action there)
    assert n_episodes <= ds.n_episodes <= n_episodes + 2 and ds.n_steps >= n_episodes * 20, out
    assert ds.state_dim == 14 and ds.action_dim == 7
    assert "control rate: 10 Hz" in warpd("data", "inspect", demos)
    vae, diff, bundle = tmp_path / "vae", tmp_path / "diffusion", tmp_path / "bundle"
    t_train = time.monotonic()
    warpd("train", "vae", "--config", REPO / "config/train/synthetic_vae.yaml", "--out", vae, "--threads", "1",
          "--set", "dataset.format=zarr", "--set", f"dataset.path={demos}", "--set", "horizon=10",
          "--set", "snippet_stride=1", "--set", "epochs=25", "--set", "batch_size=32")
    warpd("train", "diffusion", "--config", REPO / "config/train/synthetic_diffusion.yaml", "--vae", vae, "--out", diff,
          "--threads", "1", "--set", "epochs=15", "--set", "batch_size=32")
    out = warpd("export", "--vae", vae, "--diffusion", diff, "--out", bundle)
    print(f"training + export: {time.monotonic() - t_train:.1f} s")
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["control_rate_hz"] == 10.0 and "control rate 10 Hz" in out
    assert meta["obs_dim"] == 14 and meta["act_dim"] == 7 and meta["horizon"] == 10

    # deploy: the same fake arm, joint states at 50 Hz, the controller acting on every 5th
    (tmp_path / "run").mkdir()
    run_params = params(tmp_path / "run", bundle, trigger_decimation=5, control_period=0.1, max_policy_age=100)
    cmd = [sys.executable, "-m", "warpd_ros.graph", "robot", f"params_file:={run_params}", "autostart:=true",
           "--timeout", "180"]
    q0 = GOAL + np.array([0.4, -0.4, 0.4, -0.4, 0.4, -0.4, 0.4])
    rclpy.init()
    try:
        node = rclpy.create_node("fake_arm_deploy")
        arm = Arm(node)
        diags = []
        node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: diags.extend(s for s in m.status if s.name == "warpd_controller"), 50)
        with processes(cmd, log_dir=str(tmp_path)):
            arm.reset(q0)
            t0 = time.monotonic()
            while arm.n_cmds == 0 and time.monotonic() - t0 < 90:  # the generator imports torch first
                drive(node, arm, 0.2)
                arm.q = q0.copy()  # hold the start posture until the policy acts
            assert arm.n_cmds, "no command from the learned policy within 90 s"
            n0, t_start = arm.n_cmds, time.monotonic()
            drive(node, arm, 4.0)
            rate = (arm.n_cmds - n0) / (time.monotonic() - t_start)
            q_end = arm.q.copy()
            diags_run = list(diags)
    finally:
        rclpy.try_shutdown()
    assert 6 <= rate <= 11, f"{rate:.1f} commands/s: trigger_decimation 5 on 50 Hz joint states should give 10"
    err0, err1 = np.abs(q0 - GOAL).mean(), np.abs(q_end - GOAL).mean()
    print(f"learned policy: mean joint error to the goal {err0:.3f} -> {err1:.3f} rad in 4 s")
    assert err1 < 0.5 * err0, f"the learned policy did not drive the arm toward the goal ({err0:.3f} -> {err1:.3f})"
    last = diags_run[-1]
    values = {kv.key: kv.value for kv in last.values}
    level = last.level if isinstance(last.level, int) else int.from_bytes(last.level, "little")
    assert float(values["model_rate_hz"]) == 10.0 and not (level == 2 and "differs" in last.message), last.message
