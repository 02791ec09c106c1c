"""The simulation nodes' ``main``: :func:`warpd_ros.process.run_node` until the last episode,
then its results are delivered before the process ends."""

from __future__ import annotations

import rclpy
import rclpy.duration

from warpd_ros import process


def _deliver_results(node) -> None:
    if rclpy.ok():  # a signal may have come while lingering
        node.pub_result.wait_for_all_acked(rclpy.duration.Duration(seconds=3.0))


def run_simulation(node_class, name: str, args=None) -> int:
    """Run ``node_class()`` (a node with ``finished``, ``pub_result`` and ``env``).

    Exits 2 with one line on a configuration error; otherwise spins until the node reports
    ``finished``, lets the episode results reach their subscribers (0.5 s, then up to 3 s for
    acknowledgements) and exits 0. SIGINT / SIGTERM stop it at once, also with 0.
    """
    return process.run_node(node_class, name, args, stop=lambda node: node.finished, timeout=0.1, linger_s=0.5,
                            finish=_deliver_results, release=lambda node: node.env.close())
