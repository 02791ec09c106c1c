"""The simulation nodes' shared ``main``: spin until the last episode, deliver its results, exit."""

from __future__ import annotations

import sys
import time

import rclpy
import rclpy.duration
import rclpy.exceptions
import rclpy.executors


def run_simulation(node_class, name: str, args=None) -> int:
    """Build ``node_class()`` (a node with ``finished``, ``pub_result`` and ``env``) and run it.

    Exits 2 with one line on a configuration error; otherwise spins until the node reports
    ``finished``, waits for the episode results to be acknowledged, and returns 0.
    """
    rclpy.init(args=args)
    try:
        node = node_class()
    except (ValueError, rclpy.exceptions.ParameterException) as e:  # a bad parameter: one line naming it
        print(f"{name}: configuration error: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
        # let the episode results reach their subscribers before exiting
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        node.pub_result.wait_for_all_acked(rclpy.duration.Duration(seconds=3.0))
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.env.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
