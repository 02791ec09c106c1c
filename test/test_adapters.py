"""Standard-message adapters: message <-> vector for every supported type, joint selection by
name, clear configuration errors; command limits."""

import numpy as np
import pytest

from conftest import requires_ros
from warpd_core.runtime.command_limits import CommandLimiter

pytestmark = requires_ros


def joint_state(names, pos, vel=None, eff=None):
    from sensor_msgs.msg import JointState

    m = JointState()
    m.name = list(names)
    m.position = list(pos)
    m.velocity = list(vel if vel is not None else [0.0] * len(names))
    m.effort = list(eff if eff is not None else [0.0] * len(names))
    return m


def test_joint_state_selection_by_name_is_independent_of_message_order():
    from warpd_ros.adapters import InputSpec, to_vector

    spec = InputSpec("arm", "/joint_states", "sensor_msgs/JointState", joints=["j2", "j1"], fields=["position", "velocity"])
    a = to_vector(joint_state(["j1", "j2", "j3"], [1, 2, 3], [10, 20, 30]), spec)
    b = to_vector(joint_state(["j3", "j2", "j1"], [3, 2, 1], [30, 20, 10]), spec)
    assert a.tolist() == b.tolist() == [2, 1, 20, 10]


def test_missing_joint_fails_with_its_name():
    from warpd_ros.adapters import AdapterError, InputSpec, to_vector

    spec = InputSpec("arm", "/joint_states", "sensor_msgs/JointState", joints=["j1", "elbow"])
    with pytest.raises(AdapterError, match="elbow"):
        to_vector(joint_state(["j1", "j2"], [0, 0]), spec)


@pytest.mark.parametrize("kw, match", [
    (dict(type="sensor_msgs/Imu"), "not one of"),
    (dict(type="sensor_msgs/JointState"), "joints"),
    (dict(type="sensor_msgs/JointState", joints=["a"], fields=["torque"]), "fields"),
    (dict(type="std_msgs/Float64MultiArray"), "size"),
    (dict(type="geometry_msgs/PoseStamped", max_age=0.0), "max_age"),
])
def test_bad_input_configuration_names_the_problem(kw, match):
    from warpd_ros.adapters import AdapterError, InputSpec

    with pytest.raises(AdapterError, match=match):
        InputSpec("x", "/t", **kw)


def test_pose_odometry_and_array_inputs_and_concatenation_order():
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry
    from std_msgs.msg import Float64MultiArray

    from warpd_ros.adapters import InputSpec, ObservationAssembler

    pose = PoseStamped()
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = 1.0, 2.0, 3.0
    pose.pose.orientation.w = 1.0
    odom = Odometry()
    odom.pose.pose.position.x = 5.0
    odom.pose.pose.orientation.z, odom.pose.pose.orientation.w = 1.0, 0.0
    odom.twist.twist.linear.x, odom.twist.twist.angular.z = 0.5, -0.25
    arr = Float64MultiArray(data=[7.0, 8.0])
    specs = [InputSpec("pose", "/p", "geometry_msgs/PoseStamped"), InputSpec("odom", "/o", "nav_msgs/Odometry"),
             InputSpec("arr", "/a", "std_msgs/Float64MultiArray", size=2)]
    asm = ObservationAssembler(specs)
    assert asm.dim == 7 + 13 + 2
    assert "never received" in asm.stale()
    for a, m in zip(asm.adapters, (pose, odom, arr)):
        a.update(m)
    assert asm.stale() == ""
    assert asm.obs[:7].tolist() == [1, 2, 3, 0, 0, 0, 1]
    assert asm.obs[7:20].tolist() == [5, 0, 0, 0, 0, 1, 0, 0.5, 0, 0, 0, 0, -0.25]
    assert asm.obs[20:].tolist() == [7, 8]
    asm.adapters[0].stamp -= 1.0
    assert "pose" in asm.stale()


@pytest.mark.parametrize("otype, act_dim, joints", [
    ("std_msgs/Float64MultiArray", 7, []),
    ("geometry_msgs/Twist", 6, []),
    ("trajectory_msgs/JointTrajectory", 3, ["a", "b", "c"]),
    ("geometry_msgs/PoseStamped", 7, []),
])
def test_output_round_trip(otype, act_dim, joints):
    from warpd_ros.adapters import InputSpec, OutputAdapter, OutputSpec, to_vector

    action = np.arange(1, act_dim + 1, dtype=np.float64) / 10
    out = OutputAdapter(OutputSpec("/cmd", otype, joints=joints), act_dim, period=0.002)
    m = out.fill(action)
    if otype == "std_msgs/Float64MultiArray":
        back = np.array(m.data)
    elif otype == "geometry_msgs/Twist":
        back = np.array([m.linear.x, m.linear.y, m.linear.z, m.angular.x, m.angular.y, m.angular.z])
    elif otype == "trajectory_msgs/JointTrajectory":
        assert list(m.joint_names) == joints and len(m.points) == 1
        assert m.points[0].time_from_start.nanosec == 2_000_000
        back = np.array(m.points[0].positions)
    else:
        back = to_vector(m, InputSpec("p", "/p", "geometry_msgs/PoseStamped"))
    np.testing.assert_array_equal(back, action)


def test_output_dimension_mismatch_is_an_error():
    from warpd_ros.adapters import AdapterError, OutputAdapter, OutputSpec

    with pytest.raises(AdapterError, match="act_dim 6"):
        OutputAdapter(OutputSpec("/cmd", "geometry_msgs/Twist"), 7, 0.01)
    with pytest.raises(AdapterError, match="joint names"):
        OutputAdapter(OutputSpec("/cmd", "trajectory_msgs/JointTrajectory", joints=["a"]), 2, 0.01)


def test_command_limiter_clamps_and_rate_limits():
    lim = CommandLimiter(low=[-1, -1], high=[1, 1], max_rate=[2.0, 2.0])
    assert lim(np.array([5.0, -0.5]), dt=0.1).tolist() == [1.0, -0.5]
    out = lim(np.array([-1.0, 0.5]), dt=0.1)  # at most 0.2 per step
    np.testing.assert_allclose(out, [0.8, -0.3])
    lim.reset()
    assert lim(np.array([-1.0, 0.5]), dt=0.1).tolist() == [-1.0, 0.5]
    with pytest.raises(ValueError):
        CommandLimiter(low=[1], high=[0])
