"""The recorder (``python -m warpd_ros.recorder`` / ``warpd record``) writes MCAP bags of the
params file's topics from real rclpy traffic, and ``warpd data from-bag`` converts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import yaml

from conftest import REPO, requires_ros
from warpd_core.cli import main as warpd
from warpd_core.data.io import load_dataset

pytestmark = requires_ros
JOINTS = [f"panda_joint{i}" for i in range(1, 8)]


def arm_params(tmp_path):
    """The shipped arm params file with max_age 0.25 s: a 100 Hz publisher on 2 loaded cores
    misses 50 ms now and then, and the converter (like the controller) cuts the episode there."""
    params = yaml.safe_load((REPO / "config" / "robot_arm_example.yaml").read_text())
    params["/**/warpd_controller"]["ros__parameters"]["input"]["arm"]["max_age"] = 0.25
    path = tmp_path / "arm.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_recorded_bag_converts_to_what_was_published(tmp_path, capsys):
    PARAMS = arm_params(tmp_path)
    import rclpy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from warpd_ros import qos

    bag, ready = tmp_path / "bag", tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "warpd_ros.recorder", "--params", str(PARAMS), "--out", str(bag),
                             "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO, start_new_session=True)
    rclpy.init()
    try:
        node = rclpy.create_node("fake_teleop")
        js_pub = node.create_publisher(JointState, "/joint_states", qos.stream("sensor"))
        cmd_pub = node.create_publisher(Float64MultiArray, "/forward_command_controller/commands", qos.COMMANDS)
        t0 = time.monotonic()
        while not ready.exists() and time.monotonic() - t0 < 20 and proc.poll() is None:
            time.sleep(0.05)
        assert ready.exists(), proc.stdout.read() if proc.poll() is not None else "recorder not ready in 20 s"
        t0 = time.monotonic()
        while (js_pub.get_subscription_count() == 0 or cmd_pub.get_subscription_count() == 0) and time.monotonic() - t0 < 10:
            rclpy.spin_once(node, timeout_sec=0.05)
        time.sleep(0.5)  # discovery settles
        js, cmd = JointState(), Float64MultiArray()
        js.name = list(reversed(JOINTS))  # order differs from the params file
        nxt, i = time.monotonic(), 0
        while i < 250:  # 2.5 s at 100 Hz
            if time.monotonic() >= nxt:
                x = 0.01 * i
                js.header.stamp = node.get_clock().now().to_msg()
                js.position = [x + k for k in range(7, 0, -1)]  # joint k has position x + k
                js.velocity = [-x] * 7
                js.effort = [0.0] * 7
                js_pub.publish(js)
                cmd.data = [x + 0.5] * 7
                cmd_pub.publish(cmd)
                i += 1
                nxt += 0.01
            time.sleep(0.001)
        time.sleep(0.3)
    finally:
        rclpy.try_shutdown()
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "wrote" in out and "/joint_states" in out
    assert (bag / "metadata.yaml").is_file() and list(bag.glob("*.mcap"))

    zarr = tmp_path / "demos.zarr"
    assert warpd(["data", "from-bag", str(bag), "--params", str(PARAMS), "--rate", "10", "--out", str(zarr),
                  "--no-progress"]) == 0, capsys.readouterr().err
    ds = load_dataset(zarr)
    assert ds.n_episodes == 1 and ds.state_dim == 14 and ds.action_dim == 7
    assert 18 <= ds.n_steps <= 26, ds.n_steps  # 2.5 s at 10 Hz, less what discovery / best effort lose
    s, a = ds.states, ds.actions
    x = s[:, 0] - 1.0
    # every row is one published message, joints picked by name: position k = x + k, velocity -x
    np.testing.assert_allclose(s[:, :7], x[:, None] + np.arange(1, 8)[None, :], atol=1e-6)
    np.testing.assert_allclose(s[:, 7:], -x[:, None] * np.ones((1, 7)), atol=1e-6)
    assert np.all(np.diff(x) > 0.05) and np.all(np.diff(x) < 0.15), np.diff(x)  # ticks 0.1 s apart
    # the action is the command in effect by the next tick: sent after the observation, about one
    # tick (0.1 s) later -- message arrival jitters on the loaded machine, hence the margin
    lead = a[:, 0] - 0.5 - x
    assert np.all(lead >= -1e-6) and np.all(lead <= 0.2) and abs(np.median(lead) - 0.1) < 0.03, lead
