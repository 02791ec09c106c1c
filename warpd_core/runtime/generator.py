"""Generator scheduling: which observation triggers the next generation.

Policy ``i`` of an episode covers control steps ``[i*H, (i+1)*H)`` (``seq`` counts steps
from the episode's first observation, ``seq == 0``). Generation for policy ``i >= 1`` is
triggered by the first observation with ``seq >= i*H - lead``: starting ``lead`` steps
early hides the generator's latency in real-time mode. Lockstep runs use ``lead = 0`` so
the policy is conditioned on the boundary observation itself, exactly as the in-process
evaluation harness does. Policy 0 is generated from the episode's first observation.

A new episode (``reset``, a new episode index or a new simulation epoch) restarts the grid;
an observation far past the next trigger (a restarted generator, dropped messages)
triggers at once and realigns the grid to the episode's multiples of ``H``.

This is pure bookkeeping: the generator node runs the model in a worker thread and feeds
this schedule from its observation callback, so it never blocks on the model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Trigger:
    seq: int
    episode: int
    boundary: int  # first control step the policy is for


class GenerationSchedule:
    def __init__(self, horizon: int, lead: int = 0):
        if horizon <= 0:
            raise ValueError(f"horizon must be positive, got {horizon}")
        if not 0 <= lead < horizon:
            raise ValueError(f"lead must be in [0, horizon), got {lead} for horizon {horizon}")
        self.horizon = int(horizon)
        self.lead = int(lead)
        self._key: tuple | None = None  # (sim_epoch, episode)
        self._next_boundary = 0

    def set_lead(self, lead: int) -> None:
        self.lead = max(0, min(int(lead), self.horizon - 1))

    def observe(self, seq: int, episode: int, sim_epoch: int = 0, reset: bool = False) -> Trigger | None:
        """Feed one observation; returns a Trigger when a generation should start from it."""
        key = (int(sim_epoch), int(episode))
        seq = int(seq)
        # `reset` is informative only: a re-sent first observation has the same key and
        # must not trigger a second generation.
        if key != self._key:
            self._key = key
            # First policy of this episode (or first observation this generator sees):
            # generate now, for the grid cell that contains seq.
            boundary = (seq // self.horizon) * self.horizon
            self._next_boundary = boundary + self.horizon
            return Trigger(seq, int(episode), boundary)
        if seq >= self._next_boundary - self.lead:
            boundary = self._next_boundary
            if seq >= boundary + self.horizon:
                # fell behind by more than a horizon: realign to the cell containing seq
                boundary = (seq // self.horizon) * self.horizon
            self._next_boundary = boundary + self.horizon
            return Trigger(seq, int(episode), boundary)
        return None
