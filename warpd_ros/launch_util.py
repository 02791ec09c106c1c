"""launch_ros glue shared by the launch files (needs a ROS 2 distribution's launch_ros).

Each launch file names its argument list and graph builder from :mod:`warpd_ros.graph_spec`;
this turns them into DeclareLaunchArgument actions and launch_ros Nodes, exactly as
``python -m warpd_ros.graph`` turns them into processes, and follows the same exit rules
(``graph_spec.ENDS_GRAPH`` / ``REQUIRED``): the launch ends when the simulation exits, a node
that exits early stops it, and a failure is reported last, with the node's own error line,
and makes ``ros2 launch`` exit non-zero.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit, OnProcessIO
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from warpd_ros import graph_spec


class GraphFailed(RuntimeError):
    """Raised once every process has exited after a failure: launch logs it as its last line
    (``Caught exception in launch ...: <node> exited with code N: <its error>``) and returns 1."""


class _ExitRules:
    """Applies graph_spec's exit rules to the launched processes of one graph."""

    def __init__(self, specs):
        self.running = {s.name for s in specs}
        self.last_error = {}  # node name -> last line it wrote to stderr
        self.failure = ""

    def on_stderr(self, spec, event) -> None:
        lines = [ln for ln in event.text.decode(errors="replace").splitlines() if graph_spec.error_line(ln)]
        if lines:
            self.last_error[spec.name] = lines[-1].strip()

    def on_exit(self, spec, event, context):
        self.running.discard(spec.name)
        code = event.returncode
        if code != 0 and not self.failure:
            self.failure = graph_spec.exit_failure(spec.name, code, self.last_error.get(spec.name, ""))
        actions = []
        if not context.is_shutdown:
            why = f"{spec.name} finished" if spec.on_exit == graph_spec.ENDS_GRAPH else f"{spec.name} exited"
            actions.append(Shutdown(reason=why))
        if not self.running and self.failure:
            raise GraphFailed(self.failure)
        return actions


def describe(arguments, build_graph) -> LaunchDescription:
    def nodes(context, *args, **kwargs):
        values = {a.name: LaunchConfiguration(a.name).perform(context) for a in arguments}
        specs = build_graph(values)
        rules = _ExitRules(specs)
        actions = []
        for spec in specs:
            params = []
            if spec.params_file:
                params.append(os.path.join(get_package_share_directory(spec.package), spec.params_file))
            params.append(dict(spec.parameters))
            params.extend(spec.extra_params_files)
            node = Node(package=spec.package, executable=spec.executable, name=spec.name,
                        namespace=spec.namespace or None, remappings=spec.remappings,
                        parameters=params, output="screen")
            actions += [
                node,
                RegisterEventHandler(OnProcessIO(target_action=node,
                                                 on_stderr=lambda ev, s=spec: rules.on_stderr(s, ev))),
                RegisterEventHandler(OnProcessExit(target_action=node,
                                                   on_exit=lambda ev, ctx, s=spec: rules.on_exit(s, ev, ctx))),
            ]
        return actions

    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in arguments]
    return LaunchDescription(declared + [OpaqueFunction(function=nodes)])
