"""Write rosbag2 test recordings with the ``rosbags`` library's own writer and type store
(a different serialiser than the recorder's, which uses rclpy's): standard message types only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ARM = [f"panda_joint{i}" for i in range(1, 8)]
PARAMS = Path(__file__).resolve().parents[1] / "config" / "robot_arm_example.yaml"


def store():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.LATEST)


def _time(ts, t: float):
    sec = int(np.floor(t))
    return ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=int(round((t - sec) * 1e9)) % 1_000_000_000)


def joint_state(ts, t: float, names: list[str], stamp: float | None = None):
    """Position of joint ``panda_jointK`` = sin(t + K), velocity cos(t + K); other names 99."""
    T = ts.types
    k = np.array([int(n[-1]) if n in ARM else -1 for n in names], dtype=np.float64)
    pos = np.where(k > 0, np.sin(t + k), 99.0)
    vel = np.where(k > 0, np.cos(t + k), 99.0)
    header = T["std_msgs/msg/Header"](stamp=_time(ts, t if stamp is None else stamp), frame_id="")
    return T["sensor_msgs/msg/JointState"](header=header, name=list(names), position=pos, velocity=vel,
                                           effort=np.zeros(len(names)))


def command(ts, t: float, dim: int = 7):
    """Command dimension d at time t = t + 0.1 d."""
    T = ts.types
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return T["std_msgs/msg/Float64MultiArray"](layout=layout, data=t + 0.1 * np.arange(dim))


def write_bag(path: Path, storage: str = "mcap", t0: float = 100.0, duration: float = 2.0, state_hz: float = 100.0,
              cmd_hz: float = 100.0, names: list[str] | None = None, state_topic: str = "/joint_states",
              cmd_topic: str = "/forward_command_controller/commands", pauses: list[tuple[float, float]] = (),
              markers: list[tuple[float, bool]] = (), cmd_dim: int = 7, state_type: str = "sensor_msgs/msg/JointState",
              backwards_at: float | None = None) -> Path:
    """A bag of joint states + commands. ``pauses``: (start, end) offsets with no messages at all.
    ``markers``: (offset, value) std_msgs/Bool on /episode. ``backwards_at``: from that offset on
    the joint-state header stamps jump 1 s back (a clock reset while recording)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = store()
    names = names or list(reversed(ARM)) + ["gripper"]  # message order differs from the params file
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        c_state = w.add_connection(state_topic, state_type, typestore=ts)
        c_cmd = w.add_connection(cmd_topic, "std_msgs/msg/Float64MultiArray", typestore=ts)
        c_mark = w.add_connection("/episode", "std_msgs/msg/Bool", typestore=ts) if markers else None
        events = []
        for hz, kind in ((state_hz, "s"), (cmd_hz, "c")):
            for i in range(int(round(duration * hz))):
                events.append((i / hz + (0.0005 if kind == "c" else 0.0), kind))
        events += [(off, ("m", v)) for off, v in markers]
        for off, kind in sorted(events, key=lambda e: e[0]):
            if any(a <= off < b for a, b in pauses):
                continue
            t = t0 + off
            ns = int(round(t * 1e9))
            if kind == "s":
                if state_type == "sensor_msgs/msg/JointState":
                    stamp = t - 1.0 if backwards_at is not None and off >= backwards_at else t
                    msg = joint_state(ts, t, names, stamp)
                else:
                    msg = command(ts, t, 7)
                w.write(c_state, ns, ts.serialize_cdr(msg, state_type))
            elif kind == "c":
                w.write(c_cmd, ns, ts.serialize_cdr(command(ts, t, cmd_dim), "std_msgs/msg/Float64MultiArray"))
            else:
                w.write(c_mark, ns, ts.serialize_cdr(ts.types["std_msgs/msg/Bool"](data=kind[1]), "std_msgs/msg/Bool"))
    return path
