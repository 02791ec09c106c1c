"""The simulation nodes' shared ``main``: spin until the last episode, deliver its results, exit."""

from __future__ import annotations

import sys
import time

import rclpy
import rclpy.duration
import rclpy.exceptions
import rclpy.executors

from warpd_ros import process


def run_simulation(node_class, name: str, args=None) -> int:
    """Build ``node_class()`` (a node with ``finished``, ``pub_result`` and ``env``) and run it.

    Exits 2 with one line on a configuration error; otherwise spins until the node reports
    ``finished``, waits for the episode results to be acknowledged, and returns 0. SIGINT /
    SIGTERM stop it at once, also with 0. The process ends in :func:`process.exit_now`.
    """
    process.init(args)
    try:
        node = node_class()
    except (ValueError, rclpy.exceptions.ParameterException) as e:  # a bad parameter: one line naming it
        print(f"{name}: configuration error: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    spin_once = lambda t: rclpy.spin_once(node, timeout_sec=t)  # noqa: E731
    try:
        process.spin(spin_once, lambda: node.finished, timeout=0.1)
        if node.finished:
            # let the episode results reach their subscribers before exiting
            process.linger(spin_once, 0.5)
            if rclpy.ok():
                node.pub_result.wait_for_all_acked(rclpy.duration.Duration(seconds=3.0))
    finally:
        node.env.close()
        node.destroy_node()
        rclpy.try_shutdown()
    process.exit_now(0)
