"""Time-stamped message streams -> fixed-rate episodes (ROS-free; used by the rosbag2 reader).

The rule is the controller's (``warpd_ros.adapters.ObservationAssembler.stale``): at each
control tick ``t`` every input contributes its latest message received at or before ``t``,
and the tick is usable only when that message is at most ``max_age`` seconds old
(``t - t_msg <= max_age``; the controller sends the safe action when ``age > max_age``).

The action paired with the observation at tick ``t`` is the command in effect by the next
tick: the latest command received at or before ``t + period``, at most ``action_max_age``
old at that time. A teleoperator (or the policy) answers an observation with a command, so
the command after an observation is what the observation should predict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Stream:
    """One topic's messages as vectors: ``times (M,)`` seconds, ``values (M, D)``."""

    name: str  # what errors and reports call it (input name and topic)
    times: np.ndarray
    values: np.ndarray
    max_age: float

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64)
        self.values = np.asarray(self.values, dtype=np.float64).reshape(len(self.times), -1)
        if len(self.times) and np.any(np.diff(self.times) < 0):
            i = int(np.argmax(np.diff(self.times) < 0)) + 1
            raise ValueError(f"{self.name}: receive times go backwards at message {i} "
                             f"({self.times[i - 1]:.6f} s -> {self.times[i]:.6f} s)")


def latest_at(stream: Stream, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values (T, D), fresh (T,) bool)``: the latest message at or before each tick and
    whether it is at most ``max_age`` old there (False also where there is none yet)."""
    # "at or before" to the microsecond: tick times are computed in floating point, bag times
    # are integer nanoseconds, and a message stamped exactly on a tick belongs to it
    idx = np.searchsorted(stream.times, ticks + 1e-6, side="right") - 1
    have = idx >= 0
    safe = np.where(have, idx, 0)
    if len(stream.times) == 0:
        return np.zeros((len(ticks), stream.values.shape[1])), np.zeros(len(ticks), bool)
    age = ticks - stream.times[safe]
    fresh = have & (age <= stream.max_age + 1e-6)
    return stream.values[safe], fresh


@dataclass
class Resampled:
    states: np.ndarray  # (T, S)
    actions: np.ndarray  # (T, A)
    ticks: np.ndarray  # (T,) seconds
    first_stale: str  # '' or which input made the first unusable tick unusable


def resample_window(inputs: list[Stream], command: Stream, t_start: float, t_end: float, rate_hz: float,
                    action_max_age: float) -> list[Resampled]:
    """Ticks ``t_start, t_start + 1/rate, ... <= t_end``; returns the runs of consecutive usable
    ticks (every input fresh and a command in effect), in order. A stale stretch in the middle
    (an input that stopped) ends one run and the next usable tick starts another."""
    period = 1.0 / rate_hz
    n = int(np.floor((t_end - t_start) * rate_hz + 1e-9)) + 1
    if n <= 0:
        return []
    ticks = t_start + period * np.arange(n)
    parts, ok = [], np.ones(n, bool)
    first_stale = ""
    for s in inputs:
        v, fresh = latest_at(s, ticks)
        if not first_stale and not fresh.all():
            first_stale = s.name
        parts.append(v)
        ok &= fresh
    cmd_stream = Stream(command.name, command.times, command.values, action_max_age)
    act, fresh = latest_at(cmd_stream, ticks + period)
    if not first_stale and not fresh.all():
        first_stale = command.name
    ok &= fresh
    states = np.concatenate(parts, axis=1)
    runs = []
    # runs of True in ok
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        runs.append(Resampled(states[a:b], act[a:b], ticks[a:b], first_stale))
    return runs


def split_by_gap(times: np.ndarray, gap_s: float, t_start: float, t_end: float) -> list[tuple[float, float]]:
    """Windows separated where ``times`` (the trigger input) pauses longer than ``gap_s``."""
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        return [(t_start, t_end)]
    cut = np.flatnonzero(np.diff(times) > gap_s)
    starts = np.concatenate([[times[0]], times[cut + 1]])
    ends = np.concatenate([times[cut], [times[-1]]])
    return list(zip(starts.tolist(), ends.tolist()))


def split_by_marker(marker_times: np.ndarray, marker_values: np.ndarray | None, t_end: float) -> list[tuple[float, float]]:
    """Windows from a marker topic. With boolean markers (``std_msgs/Bool``) True starts an
    episode and False ends it; any other marker message starts a new episode (the one
    before ends there). Data before the first marker is not part of any episode."""
    marker_times = np.asarray(marker_times, dtype=np.float64)
    windows: list[tuple[float, float]] = []
    if marker_values is None:
        bounds = list(marker_times) + [t_end]
        return [(float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    start = None
    for t, v in zip(marker_times, np.asarray(marker_values).ravel()):
        if v and start is None:
            start = float(t)
        elif not v and start is not None:
            windows.append((start, float(t)))
            start = None
    if start is not None:
        windows.append((start, float(t_end)))
    return windows
