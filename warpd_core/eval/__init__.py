"""In-process evaluation with the runtime's controller logic (what runs on the robot).

- ``harness``: the :class:`~warpd_core.eval.harness.Method` protocol, the WARPD method
  (ControllerCore + GenerationSchedule over a policy generator), the protocol config and the
  lock-step episode runner.
- ``metrics``: per-episode rows and per-cell aggregates (score, success, counts).
- ``report``: results.json, episodes.csv, summary.md, score_vs_horizon.png, rollout.gif.
- ``cli``: ``warpd eval pusht``.
"""
