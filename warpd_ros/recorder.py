"""Record the controller's topics to an MCAP rosbag2 bag, for machines without ``ros2 bag``.

    python -m warpd_ros.recorder --params robot.yaml --out bags/episode_000 [--duration 30] [--marker-topic /episode]
    warpd record --params robot.yaml --out bags/episode_000          # the same

The topics are the ones ``warpd data from-bag`` reads with the same params file: every
``input.<name>.topic`` and ``output.topic`` of the ``warpd_controller`` section (plus an
optional marker topic, ``std_msgs/Bool``). Messages are taken serialised, exactly as they
arrived (rclpy ``raw=True``), stamped with their receive time on the node's clock, and written
with ``rosbags`` -- the library the reader uses -- as a rosbag2 directory (``metadata.yaml`` +
``<name>_0.mcap``), the layout ``ros2 bag record -s mcap`` writes. Subscriptions are best
effort, which matches reliable and best-effort publishers alike. Stop with Ctrl-C (or
``--duration``); the bag is closed properly either way.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

MARKER_TYPE = "std_msgs/Bool"


def _bag_type(ros_type: str) -> str:
    pkg, _, name = ros_type.partition("/")
    return f"{pkg}/msg/{name}"


def record(params: str, out: str, duration: float = 0.0, marker_topic: str | None = None,
           status_period: float = 5.0, ready_file: str | None = None) -> int:
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from warpd_ros.adapters import message_class
    from warpd_ros.bag import BagError, robot_io

    try:
        io = robot_io(params)
    except BagError as exc:
        print(f"warpd record: error: {exc}", file=sys.stderr)
        return 2
    topics = [(s.topic, s.type) for s in io.inputs] + [(io.output.topic, io.output.type)]
    if marker_topic:
        topics.append((marker_topic, MARKER_TYPE))
    out_path = Path(out)
    if out_path.exists():
        print(f"warpd record: error: {out}: already exists (a bag is never overwritten)", file=sys.stderr)
        return 2
    out_path.parent.mkdir(parents=True, exist_ok=True)
    store = get_typestore(Stores.ROS2_KILTED)  # the wheels' distribution: same message definitions
    writer = Writer(out_path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    rclpy.init()
    node = rclpy.create_node("warpd_recorder")
    qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
    counts = {t: 0 for t, _ in topics}
    clock = node.get_clock()
    for topic, ros_type in topics:
        conn = writer.add_connection(topic, _bag_type(ros_type), typestore=store)

        def cb(raw: bytes, conn=conn, topic=topic) -> None:
            writer.write(conn, clock.now().nanoseconds, raw)
            counts[topic] += 1

        node.create_subscription(message_class(ros_type), topic, cb, qos, raw=True)
    stop = {"now": False}

    def on_signal(signum, frame):  # noqa: ARG001
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"warpd record: {out} <- " + ", ".join(f"{t} ({ty})" for t, ty in topics), flush=True)
    if ready_file:
        Path(ready_file).write_text("ready\n")
    t0 = last = time.monotonic()
    try:
        while not stop["now"] and (duration <= 0 or time.monotonic() - t0 < duration):
            rclpy.spin_once(node, timeout_sec=0.05)
            if time.monotonic() - last >= status_period:
                last = time.monotonic()
                print(f"warpd record: {last - t0:.0f} s, " + ", ".join(f"{t} {n}" for t, n in counts.items()), flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        writer.close()
    print(f"warpd record: wrote {out} ({time.monotonic() - t0:.1f} s): "
          + ", ".join(f"{t} {n} messages" for t, n in counts.items()), flush=True)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", required=True, help="the controller's params file (warpd_controller section)")
    p.add_argument("--out", required=True, help="bag directory to create (never overwritten)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds to record (0 = until Ctrl-C)")
    p.add_argument("--marker-topic", default=None, help="also record this std_msgs/Bool episode marker topic")
    p.add_argument("--ready-file", default=None, help=argparse.SUPPRESS)  # tests: written once subscribed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="warpd_recorder", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    a = p.parse_args(argv)
    return record(a.params, a.out, a.duration, a.marker_topic, ready_file=a.ready_file)


if __name__ == "__main__":
    sys.exit(main())
