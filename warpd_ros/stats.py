"""Node statistics: a fixed-size latency recorder (preallocated; no per-sample allocation) and
garbage-collector pauses."""

from __future__ import annotations

import gc
import time

import numpy as np


class LatencyWindow:
    """Ring buffer of the last ``n`` samples (seconds) with percentile summaries in microseconds."""

    def __init__(self, n: int = 20000):
        self._buf = np.zeros(n, dtype=np.float64)
        self._n = 0
        self._i = 0

    def add(self, seconds: float) -> None:
        self._buf[self._i] = seconds
        self._i = (self._i + 1) % self._buf.shape[0]
        self._n = min(self._n + 1, self._buf.shape[0])

    def __len__(self) -> int:
        return self._n

    def summary_us(self) -> dict[str, float]:
        if self._n == 0:
            return {"p50_us": float("nan"), "p99_us": float("nan"), "max_us": float("nan"), "n": 0}
        x = self._buf[: self._n] * 1e6
        p50, p99 = np.percentile(x, [50, 99])
        return {"p50_us": float(p50), "p99_us": float(p99), "max_us": float(x.max()), "n": int(self._n)}


class GcPauses:
    """Counts the interpreter's garbage collections and their longest pause while installed.

    A full collection walks every tracked object (about 7 ms in the controller process with
    rclpy and numpy loaded, measured here), so one of them is several missed 1 kHz deadlines;
    :func:`freeze_heap` after start-up makes them cheap. The counts go into diagnostics.
    """

    def __init__(self):
        self._gc, self._clock = gc, time.perf_counter
        self.collections = [0, 0, 0]
        self.max_pause_s = 0.0
        self._t0 = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = self._clock()
            return
        self.collections[info["generation"]] += 1
        self.max_pause_s = max(self.max_pause_s, self._clock() - self._t0)

    def remove(self) -> None:
        if self._callback in self._gc.callbacks:
            self._gc.callbacks.remove(self._callback)


def freeze_heap() -> None:
    """Collect once, then move every object alive now to the permanent generation: later
    collections only walk what was allocated after start-up (microseconds instead of ms)."""
    gc.collect()
    gc.freeze()
