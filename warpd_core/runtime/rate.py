"""The control rate the model was trained at against the rate the controller actually runs.

A model trained on 10 Hz demonstrations and driven by a 100 Hz ``joint_states`` runs ten
times too fast. :class:`RateMonitor` measures the trigger input's arrival rate over a sliding
window (a preallocated ring of arrival times: no allocation per message) and
:func:`rate_status` compares the rate the controller steps at (arrival rate / decimation) with
the model's: WARN beyond ``tolerance`` (relative), ERROR beyond ``error_tolerance``.
"""

from __future__ import annotations

import numpy as np

OK, WARN, ERROR = 0, 1, 2


class RateMonitor:
    def __init__(self, window: int = 200):
        self._t = np.zeros(max(int(window), 2))
        self._n = 0

    def tick(self, t: float) -> None:
        self._t[self._n % len(self._t)] = t
        self._n += 1

    def rate_hz(self) -> float:
        """Messages per second over the last ``window`` arrivals (0 until there are two)."""
        n = min(self._n, len(self._t))
        if n < 2:
            return 0.0
        last = self._t[(self._n - 1) % len(self._t)]
        first = self._t[(self._n - n) % len(self._t)]
        return (n - 1) / (last - first) if last > first else 0.0

    @property
    def count(self) -> int:
        return self._n


def rate_status(input_hz: float, decimation: int, model_hz: float, tolerance: float,
                error_tolerance: float) -> tuple[int, str]:
    """``(level, text)``; OK with '' when the model's rate is unknown (0) or nothing is measured yet."""
    if model_hz <= 0 or input_hz <= 0:
        return OK, ""
    step_hz = input_hz / decimation
    dev = step_hz / model_hz - 1.0
    if abs(dev) <= tolerance:
        return OK, ""
    hint = max(1, int(round(input_hz / model_hz)))
    text = (f"control rate {step_hz:.1f} Hz (trigger input {input_hz:.1f} Hz / trigger_decimation {decimation}) "
            f"differs from the model's {model_hz:g} Hz by {dev * 100:+.0f} %"
            + (f": set trigger_decimation {hint}" if hint != decimation else ""))
    return (ERROR if abs(dev) > error_tolerance else WARN), text
