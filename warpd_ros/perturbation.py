"""PushT perturbation node: the paper's adversary as a swappable node.

On every observation it decides, with probability ``probability``, to displace the T block
by ``magnitude`` pixels in a random direction (:class:`warpd_core.envs.pusht.BlockPerturbation`),
and publishes a Perturbation for that observation's ``seq`` -- with an empty displacement
when there is none, so a lockstep simulation can wait for the decision and stay
deterministic. Any node that follows this contract can replace it (launch arguments
``perturbation_package`` / ``perturbation_executable``).
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.node import Node

from warpd_core.envs.pusht import BlockPerturbation
from warpd_ros import qos
from warpd_ros.msg import Observation, Perturbation
from warpd_ros.params import declare


class PerturbationNode(Node):
    def __init__(self, **kwargs):
        super().__init__("perturbation", **kwargs)
        p = lambda *a: declare(self, *a)  # noqa: E731
        prob = p("probability", 0.1, "Probability of a displacement per control step, in [0, 1].")
        mag = p("magnitude", 40.0, "Displacement length in pixels.")
        seed = p("seed", 0, "Seed of the perturbation's random generator.")
        obs_qos = p("obs_qos", "reliable", "QoS of the observation topic: reliable or sensor.")
        self.adversary = BlockPerturbation(prob, mag, seed)
        self.pub = self.create_publisher(Perturbation, "perturbation", qos.stream("reliable"))
        self.create_subscription(Observation, "observation", self.on_observation, qos.stream(obs_qos))
        self.events = 0
        self._seen: tuple | None = None
        self._last: Perturbation | None = None
        self.get_logger().info(f"perturbation ready: probability {prob} magnitude {mag} px")

    def on_observation(self, msg: Observation) -> None:
        key = (msg.sim_epoch, msg.episode, msg.seq)
        if key == self._seen and self._last is not None:
            # a re-sent observation: repeat the decision already made for this step
            self.pub.publish(self._last)
            return
        self._seen = key
        out = Perturbation()
        out.header.stamp = msg.header.stamp
        out.seq = msg.seq
        d = self.adversary.sample()
        if d is not None:
            out.displacement = d.tolist()
            self.events += 1
        self._last = out
        self.pub.publish(out)


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = PerturbationNode()
    except ValueError as e:
        print(f"perturbation: configuration error: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
