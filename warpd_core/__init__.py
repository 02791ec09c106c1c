"""warpd_core: the ROS-free half of warpd.

Data, models, training, sampling, runtime logic (controller / generator cores),
environments, evaluation and export. Nothing in this package imports ROS; the
``warpd_ros`` package wraps these pieces in rclpy nodes.
"""


def __getattr__(name: str):
    # ``warpd_core.__version__`` from the distribution metadata (warpd_core.version), looked up
    # on first use rather than on every import of the package (the controller process imports it).
    if name == "__version__":
        from warpd_core.version import package_version

        globals()["__version__"] = version = package_version()
        return version
    raise AttributeError(f"module 'warpd_core' has no attribute {name!r}")
