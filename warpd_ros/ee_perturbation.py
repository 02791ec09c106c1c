"""End-effector perturbation node: the paper's robomimic adversary as a swappable node.

On every observation it decides, with probability ``probability``, to displace the end
effector by a translation of ``translation`` m in a random direction and a rotation of
``rotation`` rad about a random axis (:class:`warpd_core.envs.robosuite_env.EEPerturbation`),
and publishes a Perturbation for that observation's ``seq`` with displacement
``[dx, dy, dz, rx, ry, rz]`` (world frame) -- empty when there is none, so a lockstep
simulation can wait for the decision and stay deterministic. The robosuite_sim node applies
it by teleporting the arm (``RobosuiteEnv.displace_ee``). Same contract as the PushT
``perturbation`` node, so either can be replaced by any node that follows it.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.node import Node

from warpd_core.envs.robosuite_env import EEPerturbation
from warpd_ros import qos
from warpd_ros.msg import Observation, Perturbation
from warpd_ros.params import declare


class EEPerturbationNode(Node):
    def __init__(self, **kwargs):
        super().__init__("ee_perturbation", **kwargs)
        p = lambda *a: declare(self, *a)  # noqa: E731
        prob = p("probability", 0.1, "Probability of a displacement per control step, in [0, 1].")
        trans = p("translation", 0.05, "Translation length of a displacement, m.")
        rot = p("rotation", 0.0, "Rotation angle of a displacement, rad, in [0, pi].")
        seed = p("seed", 0, "Seed of the perturbation's random generator.")
        obs_qos = p("obs_qos", "reliable", "QoS of the observation topic: reliable or sensor.")
        self.adversary = EEPerturbation(prob, trans, rot, seed)
        self.pub = self.create_publisher(Perturbation, "perturbation", qos.stream("reliable"))
        self.create_subscription(Observation, "observation", self.on_observation, qos.stream(obs_qos))
        self.events = 0
        self._seen: tuple | None = None
        self._last: Perturbation | None = None
        self.get_logger().info(f"ee_perturbation ready: probability {prob} translation {trans} m rotation {rot} rad")

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
        node = EEPerturbationNode()
    except ValueError as e:
        print(f"ee_perturbation: configuration error: {e}", file=sys.stderr)
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
