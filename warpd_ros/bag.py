"""rosbag2 recordings (MCAP or SQLite3) -> demonstrations, without a ROS distribution.

The observation is assembled by the controller's own input adapters
(:class:`warpd_ros.adapters.InputAdapter`) from the ``warpd_controller`` section of the same
params file the controller runs with, so the training observation is, by construction, the
vector the controller builds on the robot (order, fields, joints by name). The action is read
from the command topic (``output.topic`` / ``output.type``) through
:func:`warpd_ros.adapters.action_from_command`, the inverse of what the controller publishes.

Bags are read with ``rosbags`` (pure Python, no ROS install); messages are deserialised by its
type store, whose message objects have the ROS field names the adapters read. Every input is
resampled onto ticks at the declared rate with the controller's max-age rule
(:mod:`warpd_core.data.resample`). Episodes: one per bag, split at pauses of the trigger input
(``gap``), or delimited by a marker topic (``marker``).

Any problem is a :class:`BagError` with one line naming the bag and the topic / joint.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warpd_core.data.episodes import EpisodeDataset
from warpd_core.data.resample import Stream, resample_window, split_by_gap, split_by_marker
from warpd_ros.adapters import AdapterError, InputAdapter, InputSpec, OutputSpec, action_from_command

SPLITS = ("bag", "gap", "marker")
NODE = "warpd_controller"


class BagError(ValueError):
    """A bag (or the params file) does not fit; the text names the bag, topic or joint."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def ros_type(msgtype: str) -> str:
    """``sensor_msgs/msg/JointState`` (bag) -> ``sensor_msgs/JointState`` (params file)."""
    parts = msgtype.split("/")
    return f"{parts[0]}/{parts[-1]}" if len(parts) == 3 else msgtype


# -- the params file --------------------------------------------------------------------------


@dataclass
class RobotIO:
    """What the controller reads and writes, from its params file."""

    inputs: list[InputSpec]
    output: OutputSpec
    obs_dim: int
    act_dim: int
    control_period: float
    source: str = ""
    names: list[str] = field(default_factory=list)  # one label per observation dimension

    @property
    def trigger(self) -> InputSpec:
        return self.inputs[0]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def controller_params(path: str | Path) -> dict:
    """The ``ros__parameters`` that apply to the controller in a params file -- keys ``/**``,
    ``warpd_controller``, ``/warpd_controller``, ``/**/warpd_controller`` or
    ``/<namespace>/warpd_controller``, later ones overriding -- flattened the way ROS flattens
    them (``input.arm.topic``)."""
    from warpd_core.config import ConfigError, read_yaml_mapping

    path = Path(path)
    try:
        data = read_yaml_mapping(path)  # one-line errors naming the file: unreadable, bad YAML, not a mapping
    except ConfigError as exc:
        raise BagError(str(exc)) from None
    merged: dict = {}
    keys = ["/**"] + [k for k in data if isinstance(k, str) and (k == NODE or k.endswith("/" + NODE))]
    for node in keys:
        sec = data.get(node)
        if isinstance(sec, dict) and isinstance(sec.get("ros__parameters"), dict):
            merged.update(_flatten(sec["ros__parameters"]))
    if not merged:
        raise BagError(f"{path}: no '{NODE}: ros__parameters:' section")
    return merged


def robot_io(path: str | Path) -> RobotIO:
    """Input and output specs exactly as the controller node builds them from ``path``."""
    p = controller_params(path)
    src = str(path)
    inputs = [n for n in p.get("inputs", []) or [] if n]
    if not inputs:
        raise BagError(f"{src}: parameter 'inputs' is empty: from-bag needs the hardware inputs (input.<name>.*)")
    specs = []
    try:
        for n in inputs:
            pre = f"input.{n}."
            specs.append(InputSpec(n, p.get(pre + "topic", ""), p.get(pre + "type", ""),
                                   [j for j in p.get(pre + "joints", []) or [] if j],
                                   list(p.get(pre + "fields", ["position"])), int(p.get(pre + "size", 0)),
                                   float(p.get(pre + "max_age", 0.1))))
        out = OutputSpec(p.get("output.topic", ""), p.get("output.type", "std_msgs/Float64MultiArray"),
                         [j for j in p.get("output.joints", []) or [] if j], p.get("output.frame_id", ""))
        act_dim = int(p.get("act_dim", 2))
        out.check_dim(act_dim)
    except (AdapterError, TypeError, ValueError) as exc:
        raise BagError(f"{src}: {exc}") from None
    obs_dim = sum(s.dim for s in specs)
    if "obs_dim" in p and int(p["obs_dim"]) != obs_dim:
        raise BagError(f"{src}: inputs {inputs} give {obs_dim} values, obs_dim is {p['obs_dim']}")
    names = []
    for s in specs:
        if s.type == "sensor_msgs/JointState":
            names += [f"{s.name}.{j}.{f}" for f in s.fields for j in s.joints]
        elif s.type == "geometry_msgs/PoseStamped":
            names += [f"{s.name}.{k}" for k in ("x", "y", "z", "qx", "qy", "qz", "qw")]
        elif s.type == "nav_msgs/Odometry":
            names += [f"{s.name}.{k}" for k in ("x", "y", "z", "qx", "qy", "qz", "qw", "vx", "vy", "vz", "wx", "wy", "wz")]
        else:
            names += [f"{s.name}[{i}]" for i in range(s.dim)]
    return RobotIO(specs, out, obs_dim, act_dim, float(p.get("control_period", 0.01)), src, names)


# -- reading one bag ----------------------------------------------------------------------------


@dataclass
class BagStreams:
    path: str
    inputs: list[Stream]
    command: Stream
    marker_times: np.ndarray | None
    marker_values: np.ndarray | None
    t_end: float


def _header_stamp(msg) -> float | None:
    h = getattr(msg, "header", None)
    if h is None:
        return None
    s = h.stamp
    t = float(s.sec) + 1e-9 * float(s.nanosec)
    return t if t > 0 else None


def read_bag(path: str | Path, io: RobotIO, marker_topic: str | None = None, progress: bool = True) -> BagStreams:
    """Every configured topic of one bag (a rosbag2 directory, or a bare .mcap / .db3 file) as
    time-stamped vectors. Times are the bag's receive times in seconds: what the controller's
    max-age rule sees on the robot."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    path = Path(path)
    src = str(path)
    if not path.exists():
        raise BagError(f"{src}: bag does not exist")
    store = get_typestore(Stores.LATEST)
    want = {s.topic: ("input", s) for s in io.inputs}
    if io.output.topic in want:
        raise BagError(f"{io.source}: output.topic {io.output.topic} is also an input topic")
    want[io.output.topic] = ("output", io.output)
    if marker_topic:
        want[marker_topic] = ("marker", None)
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds for broken files
        raise BagError(f"{src}: cannot open as a rosbag2 bag: truncated, corrupt or not a bag ({_one_line(exc)})") from None
    try:
        topics = {c.topic: c for c in reader.connections}
        for topic, (role, spec) in want.items():
            what = f"input {spec.name}" if role == "input" else role
            if topic not in topics:
                raise BagError(f"{src}: topic {topic} ({what}{', ' + spec.type if spec else ''}) is not in the bag "
                               f"(topics: {', '.join(sorted(topics)) or 'none'})")
            have = ros_type(topics[topic].msgtype)
            if spec is not None and have != spec.type:
                raise BagError(f"{src}: topic {topic} has type {have}, the params file declares {what} as {spec.type}")
            if topics[topic].msgtype not in store.fielddefs:  # a type the store lacks: learn it from the bag
                try:
                    store.register(get_types_from_msg(topics[topic].msgdef.data, topics[topic].msgtype))
                except Exception as exc:  # noqa: BLE001
                    raise BagError(f"{src}: topic {topic}: cannot decode type {have} ({_one_line(exc)})") from None
        conns = [topics[t] for t in want]
        adapters = {}
        for s in io.inputs:
            adapters[s.topic] = InputAdapter(s, np.zeros(s.dim), 0)
        times = {t: [] for t in want}
        values = {t: [] for t in want}
        last_stamp: dict[str, float] = {}
        total = sum(c.msgcount for c in conns)
        it = reader.messages(connections=conns)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=path.name, unit="msg", file=sys.stderr, leave=False)
        count = {t: 0 for t in want}
        t_end = 0.0
        try:
            for conn, stamp_ns, raw in it:
                topic = conn.topic
                role, spec = want[topic]
                i = count[topic]
                count[topic] += 1
                t = stamp_ns * 1e-9
                t_end = max(t_end, t)
                try:
                    msg = store.deserialize_cdr(raw, conn.msgtype)
                except Exception as exc:  # noqa: BLE001
                    raise BagError(f"{src}: topic {topic}: message {i} does not decode as {ros_type(conn.msgtype)} "
                                   f"({_one_line(exc)})") from None
                hs = _header_stamp(msg)
                if hs is not None:
                    prev = last_stamp.get(topic)
                    if prev is not None and hs < prev:
                        raise BagError(f"{src}: topic {topic}: header stamps go backwards at message {i} "
                                       f"({prev:.6f} s -> {hs:.6f} s): time jumped while recording")
                    last_stamp[topic] = hs
                try:
                    if role == "input":
                        a = adapters[topic]
                        a.update(msg)
                        values[topic].append(a.view.copy())
                    elif role == "output":
                        values[topic].append(action_from_command(msg, spec, io.act_dim))
                    else:
                        data = getattr(msg, "data", None)
                        values[topic].append(bool(data) if isinstance(data, (bool, np.bool_)) else None)
                except AdapterError as exc:
                    raise BagError(f"{src}: message {i} at {t:.3f} s: {exc}") from None
                times[topic].append(t)
                if bar is not None:
                    bar.update(1)
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated chunk, bad index, ...
            raise BagError(f"{src}: cannot read messages, the bag is truncated or corrupt ({_one_line(exc)})") from None
        finally:
            if bar is not None:
                bar.close()
    finally:
        try:
            reader.close()
        except Exception:  # noqa: BLE001
            pass
    for topic, (role, spec) in want.items():
        if role != "marker" and not times[topic]:
            raise BagError(f"{src}: topic {topic} has no messages")
    try:
        inputs = [Stream(f"input {s.name} ({s.topic})", times[s.topic], np.array(values[s.topic]), s.max_age)
                  for s in io.inputs]
        cmd = Stream(f"output ({io.output.topic})", times[io.output.topic], np.array(values[io.output.topic]), math.inf)
    except ValueError as exc:
        raise BagError(f"{src}: {exc}") from None
    mt = mv = None
    if marker_topic:
        mt = np.asarray(times[marker_topic])
        vals = values[marker_topic]
        mv = np.asarray(vals, bool) if vals and all(v is not None for v in vals) else None
    return BagStreams(src, inputs, cmd, mt, mv, t_end)


# -- bags -> episodes ---------------------------------------------------------------------------


@dataclass
class Conversion:
    dataset: EpisodeDataset
    rate_hz: float
    report: list[str]  # one line per bag / noteworthy event


def episodes_from_bags(bags: list[str | Path], io: RobotIO, rate_hz: float, split: str = "bag", gap_s: float = 1.0,
                       marker_topic: str | None = None, action_max_age: float | None = None, min_steps: int = 2,
                       progress: bool = True) -> Conversion:
    """Read, resample and split; returns the dataset (observation = the controller's vector,
    action = the command) and a report. ``action_max_age`` defaults to two control periods."""
    if not rate_hz > 0 or not math.isfinite(rate_hz):
        raise BagError(f"rate: must be a positive number of Hz, got {rate_hz}")
    if split not in SPLITS:
        raise BagError(f"split: expected one of {SPLITS}, got {split!r}")
    if split == "marker" and not marker_topic:
        raise BagError("split marker needs a marker topic")
    if split == "gap" and not gap_s > 0:
        raise BagError(f"gap: must be positive seconds, got {gap_s}")
    if not bags:
        raise BagError("no bags given")
    period = 1.0 / rate_hz
    cmd_age = 2.0 * period if action_max_age is None else float(action_max_age)
    states, actions, ends, report = [], [], [], []
    n = 0
    for bag in bags:
        bs = read_bag(bag, io, marker_topic if split == "marker" else None, progress)
        trig = bs.inputs[0].times
        t0, t1 = float(trig[0]), float(trig[-1])
        if len(trig) > 1:
            trig_rate = (len(trig) - 1) / max(t1 - t0, 1e-9)
            if trig_rate < 0.9 * rate_hz:
                report.append(f"{bs.path}: warning: trigger input {io.trigger.topic} arrives at {trig_rate:.1f} Hz, "
                              f"below the declared {rate_hz:g} Hz: ticks repeat messages")
        if split == "bag":
            windows = [(t0, max(t1, bs.t_end))]
        elif split == "gap":
            windows = split_by_gap(trig, gap_s, t0, t1)
        else:
            windows = split_by_marker(bs.marker_times, bs.marker_values, bs.t_end)
            if not windows:
                raise BagError(f"{bs.path}: marker topic {marker_topic}: no episode marked "
                               f"({len(bs.marker_times)} marker messages)")
        n_bag = 0
        for k, (a, b) in enumerate(windows):
            runs = resample_window(bs.inputs, bs.command, a, b, rate_hz, cmd_age)
            runs = [r for r in runs if len(r.ticks) >= min_steps]
            if not runs:
                why = resample_window(bs.inputs, bs.command, a, b, rate_hz, cmd_age)
                stale = why[0].first_stale if why else ""
                if not stale:  # no run at all: find which stream is never fresh
                    from warpd_core.data.resample import latest_at

                    ticks = a + period * np.arange(max(int((b - a) * rate_hz) + 1, 1))
                    for s in bs.inputs:
                        if not latest_at(s, ticks)[1].any():
                            stale = s.name
                            break
                    else:
                        stale = bs.command.name
                raise BagError(f"{bs.path}: episode {k} ({a:.3f}-{b:.3f} s) is empty: no {min_steps} consecutive ticks "
                               f"at {rate_hz:g} Hz with every input fresh ({stale} stale or missing; check max_age)")
            if len(runs) > 1:
                report.append(f"{bs.path}: episode {k} ({a:.3f}-{b:.3f} s) cut into {len(runs)} at stale stretches "
                              f"({runs[0].first_stale})")
            for r in runs:
                states.append(r.states)
                actions.append(r.actions)
                n += len(r.ticks)
                ends.append(n)
                n_bag += 1
        report.append(f"{bs.path}: {n_bag} episode(s), {sum(len(s) for s in states[len(states) - n_bag:])} steps")
    ds = EpisodeDataset(np.concatenate(states), np.concatenate(actions), np.asarray(ends),
                        source=", ".join(str(b) for b in bags))
    return Conversion(ds, rate_hz, report)
