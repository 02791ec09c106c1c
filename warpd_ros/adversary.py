"""Shared part of the perturbation nodes: answering each observation with an adversary's decision."""

from __future__ import annotations

from rclpy.node import Node

from warpd_ros import qos
from warpd_ros.msg import Observation, Perturbation


class AdversaryNode(Node):
    """Answers every observation with the adversary's decision for its ``seq``.

    Subclasses declare their parameters, then call :meth:`start` with an adversary object
    whose ``sample()`` returns a displacement array or None. A re-sent observation (same
    sim epoch, episode and seq) gets the decision already made for it, not a new draw.
    """

    def start(self, adversary, obs_qos: str) -> None:
        self.adversary = adversary
        self.pub = self.create_publisher(Perturbation, "perturbation", qos.stream("reliable"))
        self.create_subscription(Observation, "observation", self.on_observation, qos.stream(obs_qos),
                                 event_callbacks=qos.IncompatibleQosWatch(self).subscription("observation"))
        self.events = 0
        self._seen: tuple | None = None
        self._last: Perturbation | None = None

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
