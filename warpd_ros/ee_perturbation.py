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

from warpd_core.envs.robosuite_env import EEPerturbation
from warpd_ros.params import declare
from warpd_ros import process
from warpd_ros.adversary import AdversaryNode


class EEPerturbationNode(AdversaryNode):
    def __init__(self, **kwargs):
        super().__init__("ee_perturbation", **kwargs)
        p = lambda *a: declare(self, *a)  # noqa: E731
        prob = p("probability", 0.1, "Probability of a displacement per control step, in [0, 1].")
        trans = p("translation", 0.05, "Translation length of a displacement, m.")
        rot = p("rotation", 0.0, "Rotation angle of a displacement, rad, in [0, pi].")
        seed = p("seed", 0, "Seed of the perturbation's random generator.")
        obs_qos = p("obs_qos", "reliable", "QoS of the observation topic: reliable or sensor.")
        self.start(EEPerturbation(prob, trans, rot, seed), obs_qos)
        self.get_logger().info(f"ee_perturbation ready: probability {prob} translation {trans} m rotation {rot} rad")


def main(args=None) -> int:
    return process.run_node(EEPerturbationNode, "ee_perturbation", args)


if __name__ == "__main__":
    sys.exit(main())
