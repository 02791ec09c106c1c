"""warpd_ros: rclpy nodes over warpd_core (generator, controller, simulations, perturbation).

The generated interfaces (``warpd_ros.msg``) live in the colcon install prefix. Run from a
source checkout, this package and the installed one are merged so both resolve.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
