"""Command shaping for hardware: per-dimension limits and a rate limit.

The controller core already clamps to ``[action_low, action_high]``; on a robot the command
also must not jump: ``CommandLimiter`` bounds the change per control step to
``max_rate * dt`` (units per second times the control period). Preallocated, no allocation
per call.
"""

from __future__ import annotations

import numpy as np


class CommandLimiter:
    def __init__(self, low, high, max_rate=None, dim: int | None = None):
        low = np.asarray(low, np.float64).ravel()
        high = np.asarray(high, np.float64).ravel()
        n = dim or max(low.size, high.size)
        self.low = np.broadcast_to(low, (n,)).copy()
        self.high = np.broadcast_to(high, (n,)).copy()
        if np.any(self.low > self.high):
            raise ValueError(f"command limits: low {self.low.tolist()} exceeds high {self.high.tolist()}")
        if max_rate is None or (np.ndim(max_rate) == 1 and len(max_rate) == 0):
            self.rate = None
        else:
            r = np.broadcast_to(np.asarray(max_rate, np.float64).ravel(), (n,)).copy()
            if np.any(r <= 0):
                raise ValueError(f"command rate limit must be positive, got {r.tolist()}")
            self.rate = r
        self._prev: np.ndarray | None = None
        self._step = np.zeros(n)
        self._out = np.zeros(n)

    def reset(self, current=None) -> None:
        """Forget the previous command (or start the rate limit from ``current``)."""
        self._prev = None if current is None else np.array(current, np.float64)

    def __call__(self, command: np.ndarray, dt: float) -> np.ndarray:
        """Limited command (an internal buffer) for a step of ``dt`` seconds."""
        out = self._out
        np.maximum(command, self.low, out=out)
        np.minimum(out, self.high, out=out)
        if self.rate is not None and self._prev is not None:
            np.multiply(self.rate, max(dt, 0.0), out=self._step)
            np.subtract(out, self._prev, out=out)
            np.clip(out, -self._step, self._step, out=out)
            out += self._prev
        if self._prev is None:
            self._prev = out.copy()
        else:
            np.copyto(self._prev, out)
        return out
