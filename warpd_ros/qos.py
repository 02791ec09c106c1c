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
