"""QoS profiles of the runtime contract (DESIGN.md)."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Policy weights: reliable + transient local, depth 1 -- a late controller gets the last policy.
WEIGHTS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def stream(kind: str, depth: int = 1) -> QoSProfile:
    """``sensor``: best effort depth 1 (hardware streams); ``reliable``: lossless (lockstep sims)."""
    if kind == "sensor":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT)
    if kind == "reliable":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(depth, 10), reliability=ReliabilityPolicy.RELIABLE)
    raise ValueError(f"qos must be 'sensor' or 'reliable', got {kind!r}")


# Episode results: reliable + transient local with history, so a monitor that joins late
# (or is discovered after a short episode ended) still receives every result.
RESULTS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


# Hardware commands: reliable depth 1. ros2_control's forward_command_controller subscribes
# reliable (a best-effort publisher would never reach it); a reliable publisher also serves
# best-effort subscribers, and depth 1 keeps a stale command from being delivered late.
COMMANDS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)


class IncompatibleQosWatch:
    """Makes an incompatible-QoS match an error instead of a silent zero.

    rclpy's default is one WARN line and then nothing: a reliable subscriber never receives from
    a best-effort publisher, so a node on the wrong ``obs_qos`` simply counts zero. Pass
    :meth:`subscription` / :meth:`publisher` as ``event_callbacks`` of the stream topics: each
    incompatible match is logged at ERROR naming the topic and the policy, and kept in
    :attr:`error` for the node's /diagnostics (ERROR level).
    """

    def __init__(self, node):
        self._node = node
        self.error = ""

    def subscription(self, topic: str):
        from rclpy.event_handler import SubscriptionEventCallbacks

        return SubscriptionEventCallbacks(incompatible_qos=lambda info: self._report(topic, "publisher", info))

    def publisher(self, topic: str):
        from rclpy.event_handler import PublisherEventCallbacks

        return PublisherEventCallbacks(incompatible_qos=lambda info: self._report(topic, "subscriber", info))

    def _report(self, topic: str, other: str, info) -> None:
        from rclpy.qos import qos_policy_name_from_kind

        try:
            topic = self._node.resolve_topic_name(topic)  # with namespace and remappings
        except Exception:  # noqa: BLE001 - the name as given is still useful
            pass
        self.error = (f"incompatible QoS on topic '{topic}': a {other} there has a different "
                      f"{qos_policy_name_from_kind(info.last_policy_kind)} policy, so nothing passes between them; "
                      "give every node on the topic the same obs_qos (lockstep: reliable, realtime: sensor)")
        self._node.get_logger().error(self.error)
