"""PushT simulation graph: generator + controller + gym-pusht sim (+ perturbation node).

    ros2 launch warpd_ros pusht_sim.launch.py horizon:=32 magnitude:=60.0
    ros2 launch warpd_ros pusht_sim.launch.py perturbation:=false mode:=realtime
    ros2 launch warpd_ros pusht_sim.launch.py perturbation_package:=my_pkg perturbation_executable:=my_adversary

Wheels-only installs (no launch_ros) start the same graph with
``python -m warpd_ros.graph pusht_sim <same arguments>``; both build their nodes from
warpd_ros.graph_spec, so the two cannot drift apart.
"""

from warpd_ros.graph_spec import PUSHT_SIM_ARGS, pusht_sim_graph
from warpd_ros.launch_util import describe


def generate_launch_description():
    return describe(PUSHT_SIM_ARGS, pusht_sim_graph)
