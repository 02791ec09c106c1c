"""Generator + controller on a real robot; everything robot-specific comes from a params file.

    ros2 launch warpd_ros robot.launch.py params_file:=/path/to/my_arm.yaml
    ros2 lifecycle set /warpd_generator configure && ros2 lifecycle set /warpd_generator activate
    ros2 lifecycle set /warpd_controller configure && ros2 lifecycle set /warpd_controller activate

Split across machines (same ROS_DOMAIN_ID): ``controller:=false`` on the GPU host,
``generator:=false`` on the robot computer. See DEPLOYING.md.
Wheels-only installs: ``python -m warpd_ros.graph robot params_file:=...``.
"""

from warpd_ros.graph_spec import ROBOT_ARGS, robot_graph
from warpd_ros.launch_util import describe


def generate_launch_description():
    return describe(ROBOT_ARGS, robot_graph)
