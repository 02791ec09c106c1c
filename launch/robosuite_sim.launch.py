"""robosuite Lift/Can graph: generator + controller + robosuite_sim (+ end-effector perturbation).

    ros2 launch warpd_ros robosuite_sim.launch.py model:=/path/to/bundle task:=lift translation:=0.05

Wheels-only installs: ``python -m warpd_ros.graph robosuite_sim <same arguments>``.
"""

from warpd_ros.graph_spec import ROBOSUITE_SIM_ARGS, robosuite_sim_graph
from warpd_ros.launch_util import describe


def generate_launch_description():
    return describe(ROBOSUITE_SIM_ARGS, robosuite_sim_graph)
