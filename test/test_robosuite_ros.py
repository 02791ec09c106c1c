"""robosuite_sim (+ ee_perturbation) through real rclpy + Fast DDS, in separate processes."""

import os
import random
import sys

import numpy as np
import pytest

from conftest import REPO, requires_ros
from rosutil import processes, spin_until

pytestmark = requires_ros
pytest.importorskip("robosuite")

# A domain of our own: other suites on this machine use 100-199 (conftest) or their own.
DOMAIN = random.randint(50, 99)


def _env():
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(DOMAIN)
    # the nodes of this checkout, also before colcon has installed new files
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _sim(*params):
    cmd = [sys.executable, "-m", "warpd_ros.robosuite_sim", "--ros-args"]
    for p in ("task:=lift", "mode:=lockstep", "episodes:=1", "seed:=3", "action_timeout:=1.0") + params:
        cmd += ["-p", p]
    return cmd


def test_commands_drive_the_arm_and_robot_topics_arrive(tmp_path):
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from warpd_ros import qos
    from warpd_ros.msg import EpisodeResult, Observation

    steps = 12
    joints, ee, objects, obs, results = [], [], [], [], []
    with processes(_sim(f"max_steps:={steps}", "action_source:=commands",
                        "command_topic:=/arm_controller/commands"), log_dir=str(tmp_path), env=_env()):
        rclpy.init(domain_id=DOMAIN)
        try:
            node = rclpy.create_node("robosuite_commander")
            pub = node.create_publisher(Float64MultiArray, "/arm_controller/commands", qos.stream("reliable"))
            up = Float64MultiArray(data=[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0])  # 5 cm up per step, gripper open

            def on_joints(msg):
                joints.append(msg)
                pub.publish(up)  # a controller answering every state update, as over ros2_control

            node.create_subscription(JointState, "joint_states", on_joints, qos.stream("reliable"))
            node.create_subscription(PoseStamped, "ee_pose", ee.append, qos.stream("reliable"))
            node.create_subscription(PoseStamped, "object_pose", objects.append, qos.stream("reliable"))
            node.create_subscription(Observation, "observation", obs.append, qos.stream("reliable"))
            node.create_subscription(EpisodeResult, "episode_result", results.append, qos.stream("reliable"))
            assert spin_until(node, lambda: results, timeout=60), \
                f"no EpisodeResult within 60 s ({len(joints)} joint states); log: {(tmp_path / 'proc0.log').read_text()[-2000:]}"
        finally:
            rclpy.try_shutdown()

    r = results[0]
    assert (r.steps, r.success, r.score, r.max_coverage, r.seed) == (steps, False, 0.0, 0.0, 3)
    # one state per step before the last (the final state is not published); more when the
    # sim re-sent a state that reached us before discovery completed
    assert min(len(joints), len(ee), len(objects), len(obs)) >= steps
    assert sorted({m.seq for m in obs}) == list(range(steps))
    js = joints[0]
    assert list(js.name) == [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]
    assert len(js.position) == len(js.velocity) == 9
    assert ee[0].header.frame_id == objects[0].header.frame_id == "world"
    z = np.array([m.pose.position.z for m in ee])
    assert z[-1] - z[0] > 0.1  # the commands moved the hand up
    q = ee[-1].pose.orientation
    assert abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1.0) < 1e-6
    # the Observation carries the same end-effector position
    np.testing.assert_allclose(obs[-1].data[:3], [ee[-1].pose.position.x, ee[-1].pose.position.y, z[-1]])
    assert len(obs[0].data) == 19 and obs[0].reset and not obs[1].reset
    assert objects[0].pose.position.z == pytest.approx(0.82, abs=0.02)  # the cube on the table


def test_lockstep_warpd_actions_with_ee_perturbation_node(tmp_path):
    import rclpy

    from warpd_ros import qos
    from warpd_ros.msg import Action, EpisodeResult, Observation, Perturbation

    steps = 8
    perts, results, seqs = [], [], []
    pert_cmd = [sys.executable, "-m", "warpd_ros.ee_perturbation", "--ros-args",
                "-p", "probability:=1.0", "-p", "translation:=0.02", "-p", "rotation:=0.1", "-p", "seed:=1"]
    with processes(_sim(f"max_steps:={steps}", "action_source:=warpd", "wait_for_perturbation:=true"), pert_cmd,
                   log_dir=str(tmp_path), env=_env()):
        rclpy.init(domain_id=DOMAIN)
        try:
            node = rclpy.create_node("robosuite_agent")
            pub = node.create_publisher(Action, "action", qos.stream("reliable"))

            def on_obs(msg):
                seqs.append(msg.seq)
                a = Action(seq=msg.seq, episode=msg.episode, sim_epoch=msg.sim_epoch)
                a.data = [0.0] * 6 + [-1.0]
                pub.publish(a)

            node.create_subscription(Observation, "observation", on_obs, qos.stream("reliable"))
            node.create_subscription(Perturbation, "perturbation", perts.append, qos.stream("reliable"))
            node.create_subscription(EpisodeResult, "episode_result", results.append, qos.stream("reliable"))
            assert spin_until(node, lambda: results, timeout=60), \
                f"no EpisodeResult within 60 s; logs: {[p.read_text()[-1500:] for p in tmp_path.glob('*.log')]}"
        finally:
            rclpy.try_shutdown()
    r = results[0]
    assert r.steps == steps and r.perturbations == steps  # probability 1: every step displaced
    assert sorted(set(seqs)) == list(range(steps))
    by_seq = {p.seq: p for p in perts}  # a re-sent observation gets the same decision again
    assert sorted(by_seq) == list(range(steps))
    d = np.array([by_seq[i].displacement for i in range(steps)])
    np.testing.assert_allclose(np.linalg.norm(d[:, :3], axis=1), 0.02, rtol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(d[:, 3:], axis=1), 0.1, rtol=1e-9)
