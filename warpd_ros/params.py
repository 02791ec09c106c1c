"""Parameter declaration with descriptions (every node parameter goes through here)."""

from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor


def declare(node, name: str, default, description: str, read_only: bool = False, dynamic_typing: bool = False):
    """Declare ``name`` with a description and return its value. ``dynamic_typing``: accept any
    type (e.g. a CPU list given as ``cpu_affinity:=1``, which ROS parses as an integer)."""
    desc = ParameterDescriptor(description=description, read_only=read_only, dynamic_typing=dynamic_typing)
    if isinstance(default, list) and len(default) == 0:
        # typed empty list: ROS needs a type for an empty array default
        from rclpy.exceptions import ParameterUninitializedException
        from rclpy.parameter import Parameter

        node.declare_parameter(name, Parameter.Type.DOUBLE_ARRAY, desc)
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            return []
        return [] if value is None else list(value)
    value = node.declare_parameter(name, default, desc).value
    return list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value


def declare_cpu_list(node, name: str, description: str) -> str:
    """Declare a CPU-list parameter ('' = off) and return it as text. ROS parses ``name:=1`` as
    an integer, so any type is accepted; a malformed list raises ValueError naming ``name``."""
    from warpd_ros.sched import parse_cpus

    text = str(declare(node, name, "", description, dynamic_typing=True))
    parse_cpus(text, name)
    return text
