"""Through real rclpy + Fast DDS, across processes: the PolicyWeights contract."""

import sys
import textwrap

import numpy as np
import pytest

from conftest import requires_ros
from rosutil import processes, spin_until

pytestmark = requires_ros

PUBLISHER = textwrap.dedent(
    """
    import sys, time, numpy as np, rclpy
    from warpd_core.policy.spec import PolicySpec
    from warpd_ros.conversions import float32_array
    from warpd_ros.msg import PolicyWeights
    from warpd_ros import qos
    rclpy.init()
    node = rclpy.create_node("weights_publisher")
    pub = node.create_publisher(PolicyWeights, "policy_weights", qos.WEIGHTS)
    spec = PolicySpec(5, (256, 256), 2, "relu")
    w = np.random.default_rng(1234).standard_normal(spec.n_weights).astype(np.float32)
    w[:8] = [np.float32(1e-38), -0.0, np.float32(3.4e38), 1.0 / 3, np.pi, -1e-7, 7.0, 0.5]
    m = PolicyWeights()
    m.model_id = "test-model"; m.generation = 42; m.generator_epoch = 7; m.obs_seq = 99; m.episode = 3
    m.horizon = 16; m.task_id = -1; m.layer_sizes = list(spec.layer_sizes); m.activation = "relu"
    m.weights = float32_array(w)
    pub.publish(m)  # transient local: a subscriber that joins later still gets it
    end = time.monotonic() + 30
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    """
)


def test_policy_weights_arrive_bit_identical_across_processes():
    import rclpy

    from warpd_core.policy.spec import PolicySpec
    from warpd_ros import qos
    from warpd_ros.conversions import candidate_from_msg
    from warpd_ros.msg import PolicyWeights

    spec = PolicySpec(5, (256, 256), 2, "relu")
    expected = np.random.default_rng(1234).standard_normal(spec.n_weights).astype(np.float32)
    expected[:8] = [np.float32(1e-38), -0.0, np.float32(3.4e38), 1.0 / 3, np.pi, -1e-7, 7.0, 0.5]
    got = []
    with processes([sys.executable, "-c", PUBLISHER]):
        rclpy.init()
        try:
            node = rclpy.create_node("weights_subscriber")
            node.create_subscription(PolicyWeights, "policy_weights", got.append, qos.WEIGHTS)
            assert spin_until(node, lambda: got, timeout=20), "no PolicyWeights arrived within 20 s"
        finally:
            rclpy.try_shutdown()
    cand = candidate_from_msg(got[0])
    assert cand.weights.dtype == np.float32 and cand.weights.shape == (67842,)
    assert cand.weights.tobytes() == expected.tobytes()  # bit-identical, -0.0 and denormals included
    assert (cand.model_id, cand.generation, cand.generator_epoch, cand.obs_seq, cand.episode) == ("test-model", 42, 7, 99, 3)
    assert cand.layer_sizes == (5, 256, 256, 2) and cand.horizon == 16
