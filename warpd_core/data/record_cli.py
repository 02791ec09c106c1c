"""``warpd record``: record the controller's topics to an MCAP bag (wheels-only machines).

The recorder is a ROS node (:mod:`warpd_ros.recorder`); it is imported only when the command
runs, so ``warpd_core`` stays importable without ROS.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("record", help="record the params file's input and command topics to an MCAP rosbag2 bag "
                                             "(for 'warpd data from-bag'; no ros2 bag needed)")
    try:
        from warpd_ros.recorder import add_arguments
    except ImportError:  # no ROS: the command still shows, and says what is missing when run
        p.add_argument("rest", nargs=argparse.REMAINDER)
    else:
        add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from warpd_ros.recorder import record
    except ImportError as exc:
        raise ValueError(f"needs rclpy and warpd_ros (source .venv/warpd-env.sh): {exc}") from None
    return record(args.params, args.out, args.duration, args.marker_topic, ready_file=args.ready_file)
