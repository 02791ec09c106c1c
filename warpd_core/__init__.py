"""warpd_core: the ROS-free half of warpd.

Data, models, training, sampling, runtime logic (controller / generator cores),
environments, evaluation and export. Nothing in this package imports ROS; the
``warpd_ros`` package wraps these pieces in rclpy nodes.
"""

__version__ = "0.1.0"
