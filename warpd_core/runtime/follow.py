"""Following one run of a publisher at a time (a generator run, a simulation run).

Generator and simulation messages carry the random epoch of the process that sent them. The
controller acts on one run of each: messages of another run are ignored while the followed one
is alive, and a new run (a restarted process) takes over once the followed one has been silent
for ``timeout`` seconds. Without this, a second generator publishing valid policies of the same
model drives the robot, and a second observation publisher ages the running policy.
"""

from __future__ import annotations

import math


class RunFollower:
    """``allows(run, now)``: may a message of ``run`` be used? ``heard(run, now)``: it was.

    ``timeout`` <= 0 follows whichever run spoke last (no protection: the offline harness).
    """

    def __init__(self, timeout: float):
        self.timeout = float(timeout)
        self.run: int | None = None
        self._heard = -math.inf

    def allows(self, run: int, now: float) -> bool:
        return self.run is None or run == self.run or self.timeout <= 0 or now - self._heard > self.timeout

    def heard(self, run: int, now: float) -> bool:
        """Record a used message; True when ``run`` takes over from another run."""
        changed = self.run is not None and run != self.run
        self.run = run
        self._heard = now
        return changed

    def silent_for(self, now: float) -> float:
        return now - self._heard
