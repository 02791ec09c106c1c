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

from warpd_core.envs.pusht import BlockPerturbation
from warpd_ros import process
from warpd_ros.adversary import AdversaryNode
from warpd_ros.params import declare


class PerturbationNode(AdversaryNode):
    def __init__(self, **kwargs):
        super().__init__("perturbation", **kwargs)
        p = lambda *a: declare(self, *a)  # noqa: E731
        prob = p("probability", 0.1, "Probability of a displacement per control step, in [0, 1].")
        mag = p("magnitude", 40.0, "Displacement length in pixels.")
        seed = p("seed", 0, "Seed of the perturbation's random generator.")
        obs_qos = p("obs_qos", "reliable", "QoS of the observation topic: reliable or sensor.")
        self.start(BlockPerturbation(prob, mag, seed), obs_qos)
        self.get_logger().info(f"perturbation ready: probability {prob} magnitude {mag} px")


def main(args=None) -> int:
    return process.run_node(PerturbationNode, "perturbation", args)


if __name__ == "__main__":
    sys.exit(main())
