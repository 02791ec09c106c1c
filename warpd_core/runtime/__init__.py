"""Runtime logic shared by the ROS nodes and the in-process evaluation harness.

Nothing here imports torch or ROS: the controller process imports this package.
"""

from warpd_core.runtime.controller import ControllerConfig, ControllerCore, PolicyCandidate, Rejection, StepOutput
from warpd_core.runtime.generator import GenerationSchedule

__all__ = ["ControllerConfig", "ControllerCore", "GenerationSchedule", "PolicyCandidate", "Rejection", "StepOutput"]
