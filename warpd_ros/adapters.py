"""Standard-message adapters: robot topics -> observation vector -> robot command.

Observation inputs are declared as parameters, ros2_control style::

    warpd_controller:
      ros__parameters:
        inputs: [arm, tool]               # concatenated in this order
        input:
          arm:  {topic: /joint_states, type: sensor_msgs/JointState,
                 joints: [j1, j2], fields: [position, velocity], max_age: 0.05}
          tool: {topic: /tool_pose, type: geometry_msgs/PoseStamped, max_age: 0.1}
        output:
          topic: /forward_command_controller/commands
          type: std_msgs/Float64MultiArray

Each adapter copies fields into its slice of a preallocated observation vector; it does no
arithmetic beyond selecting and ordering fields. Joint selection is by name, independent of
the order in the message; a joint missing from a message is an error naming the joint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

INPUT_TYPES = ("sensor_msgs/JointState", "geometry_msgs/PoseStamped", "nav_msgs/Odometry", "std_msgs/Float64MultiArray")
OUTPUT_TYPES = ("std_msgs/Float64MultiArray", "geometry_msgs/Twist", "trajectory_msgs/JointTrajectory", "geometry_msgs/PoseStamped")
JOINT_FIELDS = ("position", "velocity", "effort")


class AdapterError(ValueError):
    """A bad adapter configuration or message; the text names the input and the problem."""


def message_class(type_name: str):
    pkg, _, name = type_name.partition("/")
    if not name:
        raise AdapterError(f"message type {type_name!r} must look like package/Type")
    import importlib

    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError) as e:
        raise AdapterError(f"message type {type_name!r} is not available: {e}") from e


@dataclass
class InputSpec:
    name: str
    topic: str
    type: str
    joints: list = field(default_factory=list)
    fields: list = field(default_factory=lambda: ["position"])
    size: int = 0  # Float64MultiArray: expected length
    max_age: float = 0.1  # seconds; older input -> safe action

    def __post_init__(self) -> None:
        if self.type not in INPUT_TYPES:
            raise AdapterError(f"input {self.name}: type {self.type!r} not one of {INPUT_TYPES}")
        if not self.topic:
            raise AdapterError(f"input {self.name}: topic is empty")
        if self.max_age <= 0:
            raise AdapterError(f"input {self.name}: max_age must be positive, got {self.max_age}")
        if self.type == "sensor_msgs/JointState":
            if not self.joints:
                raise AdapterError(f"input {self.name}: JointState needs a 'joints' list")
            bad = [f for f in self.fields if f not in JOINT_FIELDS]
            if bad or not self.fields:
                raise AdapterError(f"input {self.name}: fields must be a non-empty subset of {JOINT_FIELDS}, got {self.fields}")
        if self.type == "std_msgs/Float64MultiArray" and self.size <= 0:
            raise AdapterError(f"input {self.name}: Float64MultiArray needs size > 0")

    @property
    def dim(self) -> int:
        if self.type == "sensor_msgs/JointState":
            return len(self.joints) * len(self.fields)
        if self.type == "geometry_msgs/PoseStamped":
            return 7  # x y z qx qy qz qw
        if self.type == "nav_msgs/Odometry":
            return 13  # pose (7) + twist linear (3) + angular (3)
        return self.size


class InputAdapter:
    """Writes one input's fields into ``obs[offset:offset+dim]`` and records its arrival time."""

    def __init__(self, spec: InputSpec, obs: np.ndarray, offset: int):
        self.spec = spec
        self.view = obs[offset: offset + spec.dim]
        self.stamp = -np.inf  # monotonic receipt time of the last valid message
        self._index: list[int] | None = None  # joint indices in the message order
        self._names_seen: tuple | None = None

    def update(self, msg) -> None:
        """Copy ``msg`` into the observation slice; raises AdapterError on a bad message."""
        t = self.spec.type
        v = self.view
        if t == "sensor_msgs/JointState":
            names = tuple(msg.name)
            if names != self._names_seen:  # joint order changes rarely; cache the lookup
                lookup = {n: i for i, n in enumerate(names)}
                missing = [j for j in self.spec.joints if j not in lookup]
                if missing:
                    raise AdapterError(f"input {self.spec.name}: joint(s) {missing} not in JointState on {self.spec.topic} (has {list(names)})")
                self._index = [lookup[j] for j in self.spec.joints]
                self._names_seen = names
            k = 0
            for f in self.spec.fields:
                arr = getattr(msg, f)
                if len(arr) != len(names):
                    raise AdapterError(f"input {self.spec.name}: JointState.{f} has {len(arr)} entries for {len(names)} names")
                for i in self._index:
                    v[k] = arr[i]
                    k += 1
        elif t == "geometry_msgs/PoseStamped":
            _pose_into(msg.pose, v)
        elif t == "nav_msgs/Odometry":
            _pose_into(msg.pose.pose, v)
            tw = msg.twist.twist
            v[7:13] = (tw.linear.x, tw.linear.y, tw.linear.z, tw.angular.x, tw.angular.y, tw.angular.z)
        else:
            if len(msg.data) != self.spec.size:
                raise AdapterError(f"input {self.spec.name}: Float64MultiArray has {len(msg.data)} values, expected {self.spec.size}")
            v[:] = msg.data
        self.stamp = time.monotonic()

    def age(self, now: float) -> float:
        return now - self.stamp


def _pose_into(pose, v) -> None:
    p, q = pose.position, pose.orientation
    v[0:7] = (p.x, p.y, p.z, q.x, q.y, q.z, q.w)


class ObservationAssembler:
    """All inputs concatenated in the declared order into one preallocated vector."""

    def __init__(self, specs: list[InputSpec]):
        if not specs:
            raise AdapterError("no inputs declared")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise AdapterError(f"input names must be unique, got {names}")
        self.obs = np.zeros(sum(s.dim for s in specs))
        self.adapters = []
        off = 0
        for s in specs:
            self.adapters.append(InputAdapter(s, self.obs, off))
            off += s.dim

    @property
    def dim(self) -> int:
        return int(self.obs.shape[0])

    def stale(self, now: float | None = None) -> str:
        """'' when every input is fresh, else which input is too old (or missing)."""
        now = time.monotonic() if now is None else now
        for a in self.adapters:
            age = a.age(now)
            if age > a.spec.max_age:
                return f"input {a.spec.name} ({a.spec.topic}) " + ("never received" if np.isinf(age) else f"is {age * 1e3:.0f} ms old > max_age {a.spec.max_age * 1e3:.0f} ms")
        return ""


@dataclass
class OutputSpec:
    topic: str
    type: str = "std_msgs/Float64MultiArray"
    joints: list = field(default_factory=list)  # JointTrajectory joint names
    frame_id: str = ""  # PoseStamped / header frame

    def __post_init__(self) -> None:
        if self.type not in OUTPUT_TYPES:
            raise AdapterError(f"output: type {self.type!r} not one of {OUTPUT_TYPES}")
        if not self.topic:
            raise AdapterError("output: topic is empty")

    def check_dim(self, act_dim: int) -> None:
        need = {"geometry_msgs/Twist": 6, "geometry_msgs/PoseStamped": 7}.get(self.type)
        if need is not None and act_dim != need:
            raise AdapterError(f"output {self.type} needs act_dim {need}, controller has {act_dim}")
        if self.type == "trajectory_msgs/JointTrajectory" and len(self.joints) != act_dim:
            raise AdapterError(f"output JointTrajectory: {len(self.joints)} joint names for act_dim {act_dim}")


class OutputAdapter:
    """Action vector -> the configured command message (one preallocated message)."""

    def __init__(self, spec: OutputSpec, act_dim: int, period: float):
        spec.check_dim(act_dim)
        self.spec = spec
        self.msg_type = message_class(spec.type)
        self.msg = self.msg_type()
        self.period = float(period)
        if spec.type == "trajectory_msgs/JointTrajectory":
            from trajectory_msgs.msg import JointTrajectoryPoint

            self.msg.joint_names = list(spec.joints)
            pt = JointTrajectoryPoint()
            sec = int(self.period)
            pt.time_from_start.sec = sec
            pt.time_from_start.nanosec = int(round((self.period - sec) * 1e9))
            self.msg.points = [pt]
        if hasattr(self.msg, "header"):
            self.msg.header.frame_id = spec.frame_id

    def fill(self, action: np.ndarray, stamp=None):
        t = self.spec.type
        m = self.msg
        if stamp is not None and hasattr(m, "header"):
            m.header.stamp = stamp
        if t == "std_msgs/Float64MultiArray":
            m.data = action.tolist()
        elif t == "geometry_msgs/Twist":
            m.linear.x, m.linear.y, m.linear.z, m.angular.x, m.angular.y, m.angular.z = (float(x) for x in action)
        elif t == "trajectory_msgs/JointTrajectory":
            m.points[0].positions = action.tolist()
        else:
            p, q = m.pose.position, m.pose.orientation
            p.x, p.y, p.z, q.x, q.y, q.z, q.w = (float(x) for x in action)
        return m


def to_vector(msg, spec: InputSpec) -> np.ndarray:
    """One message -> its observation slice (for tests and tools; allocates)."""
    obs = np.zeros(spec.dim)
    InputAdapter(spec, obs, 0).update(msg)
    return obs


def action_from_command(msg, spec: OutputSpec, act_dim: int) -> np.ndarray:
    """The inverse of :meth:`OutputAdapter.fill`: a command message (recorded from the command
    topic) -> the action vector the controller would have published it from. JointTrajectory
    positions are taken by ``spec.joints`` name from the first point. Raises AdapterError."""
    t = spec.type
    if t == "std_msgs/Float64MultiArray":
        if len(msg.data) != act_dim:
            raise AdapterError(f"output {spec.topic}: Float64MultiArray has {len(msg.data)} values, act_dim is {act_dim}")
        return np.asarray(msg.data, dtype=np.float64)
    if t == "geometry_msgs/Twist":
        return np.array([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z])
    if t == "geometry_msgs/PoseStamped":
        out = np.zeros(7)
        _pose_into(msg.pose, out)
        return out
    names = list(msg.joint_names)
    missing = [j for j in spec.joints if j not in names]
    if missing:
        raise AdapterError(f"output {spec.topic}: joint(s) {missing} not in JointTrajectory (has {names})")
    if not len(msg.points):
        raise AdapterError(f"output {spec.topic}: JointTrajectory has no points")
    pos = msg.points[0].positions
    if len(pos) != len(names):
        raise AdapterError(f"output {spec.topic}: JointTrajectory point has {len(pos)} positions for {len(names)} joints")
    return np.array([pos[names.index(j)] for j in spec.joints], dtype=np.float64)
