"""launch_ros glue shared by the launch files (needs a ROS 2 distribution's launch_ros).

Each launch file names its argument list and graph builder from :mod:`warpd_ros.graph_spec`;
this turns them into DeclareLaunchArgument actions and launch_ros Nodes, exactly as
``python -m warpd_ros.graph`` turns them into processes.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def describe(arguments, build_graph) -> LaunchDescription:
    def nodes(context, *args, **kwargs):
        values = {a.name: LaunchConfiguration(a.name).perform(context) for a in arguments}
        actions = []
        for spec in build_graph(values):
            params = []
            if spec.params_file:
                params.append(os.path.join(get_package_share_directory(spec.package), spec.params_file))
            params.append(dict(spec.parameters))
            params.extend(spec.extra_params_files)
            actions.append(Node(package=spec.package, executable=spec.executable, name=spec.name,
                                parameters=params, output="screen"))
        return actions

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in arguments]
    return LaunchDescription(declared + [OpaqueFunction(function=nodes)])
