"""Fixed-size latency recorder for node statistics (preallocated; no per-sample allocation)."""

from __future__ import annotations

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
