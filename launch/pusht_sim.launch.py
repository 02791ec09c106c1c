"""PushT simulation graph: generator + controller + gym-pusht sim (+ perturbation node).

    ros2 launch warpd_ros pusht_sim.launch.py horizon:=32 magnitude:=60.0
    ros2 launch warpd_ros pusht_sim.launch.py perturbation:=false mode:=realtime

Wheels-only installs (no launch_ros) start the same graph with
``python -m warpd_ros.graph pusht_sim <same arguments>``; both build their nodes from
warpd_ros.graph_spec, so the two cannot drift apart.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from warpd_ros.graph_spec import PUSHT_SIM_ARGS, pusht_sim_graph


def _nodes(context, *args, **kwargs):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in PUSHT_SIM_ARGS}
    actions = []
    for spec in pusht_sim_graph(values):
        params = []
        if spec.params_file:
            params.append(os.path.join(get_package_share_directory(spec.package), spec.params_file))
        params.append(dict(spec.parameters))
        params.extend(spec.extra_params_files)
        actions.append(Node(package=spec.package, executable=spec.executable, name=spec.name,
                            parameters=params, output="screen"))
    return actions


def generate_launch_description():
    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
                for a in PUSHT_SIM_ARGS]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])
