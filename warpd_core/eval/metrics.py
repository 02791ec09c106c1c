"""Per-episode metrics and their aggregation into evaluation cells.

An evaluation *cell* is one (method, action horizon, perturbation magnitude) setting; it
holds ``n_seeds x repeats`` episodes. The headline metric is the PushT *score* of an episode,
``clip(max_t coverage / 0.95, 0, 1)`` (Diffusion Policy, WARPD; see DESIGN.md "Environments"),
reported as mean +- standard error over the cell's episodes. Binary success (coverage > 0.95
at any step) comes second: it is near zero even for the human demonstrations.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from warpd_core.envs.pusht import SUCCESS_COVERAGE, score_of


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluated episode (one row of ``episodes.csv``).

    Attributes:
        method: name of the evaluated method (``warpd``, ``random``, ...).
        horizon: action horizon in control steps (steps a generated policy runs).
        magnitude: perturbation displacement length in pixels.
        probability: perturbation probability per control step.
        env_index: index ``i`` of the env instance (env seed ``base_seed + i``).
        repeat: repeat index ``r``.
        env_seed: seed passed to ``PushTEnv.reset``.
        perturbation_seed: seed of this episode's ``BlockPerturbation``.
        method_seed: seed the method was reset with for this repeat (generator noise).
        steps: control steps taken (<= max_steps; fewer when the env ends on success).
        max_coverage: largest coverage seen in the episode, in [0, 1].
        final_coverage: coverage when the episode ended.
        score: ``score_of(max_coverage)``.
        success: coverage > 0.95 at some step.
        steps_to_best: control step at which ``max_coverage`` was first reached (0 = at reset).
        generation_calls: model invocations for this episode (WARPD: generated policies).
        perturbation_events: block displacements applied.
        safe_steps: control steps on which the controller sent its safe action.
    """

    method: str
    horizon: int
    magnitude: float
    probability: float
    env_index: int
    repeat: int
    env_seed: int
    perturbation_seed: int
    method_seed: int
    steps: int
    max_coverage: float
    final_coverage: float
    score: float
    success: bool
    steps_to_best: int
    generation_calls: int
    perturbation_events: int
    safe_steps: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def episode_score(max_coverage: float) -> float:
    """Score of one episode (the same function the env and the ROS sim report)."""
    return float(score_of(max_coverage))


def is_success(max_coverage: float) -> bool:
    """Success as the env defines it: coverage strictly above 0.95 at some step."""
    return bool(max_coverage > SUCCESS_COVERAGE)


@dataclass(frozen=True)
class CellSummary:
    """Aggregate over the episodes of one cell.

    ``score_std`` is the sample standard deviation (ddof=1, 0 for one episode) and
    ``score_se = score_std / sqrt(n)``. Means of counts are per episode. ``final_coverage_*``
    is the coverage at the episode's last step: under large perturbations the max-based score
    is inflated by lucky displacements (random actions score ~0.38 at 100 px), the final
    coverage is not.
    """

    method: str
    horizon: int
    magnitude: float
    probability: float
    n_episodes: int
    score_mean: float
    score_std: float
    score_se: float
    success_rate: float
    max_coverage_mean: float
    steps_mean: float
    steps_to_best_mean: float
    generation_calls_mean: float
    perturbation_events_mean: float
    safe_steps_mean: float
    final_coverage_mean: float = 0.0
    final_coverage_se: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def mean_std_se(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation (ddof=1; 0 for fewer than two values) and standard
    error of ``values``. Raises ValueError on an empty sequence."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_std_se: no values")
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return float(x.mean()), std, std / math.sqrt(x.size)


def summarize_cell(rows: Sequence[EpisodeResult]) -> CellSummary:
    """Aggregate the episodes of one cell (all rows must share method, horizon, magnitude)."""
    if not rows:
        raise ValueError("summarize_cell: no episodes")
    keys = {(r.method, r.horizon, r.magnitude, r.probability) for r in rows}
    if len(keys) != 1:
        raise ValueError(f"summarize_cell: rows span several cells {sorted(keys)}")
    method, horizon, magnitude, probability = keys.pop()
    mean, std, se = mean_std_se([r.score for r in rows])
    final_mean, _, final_se = mean_std_se([r.final_coverage for r in rows])

    def avg(name: str) -> float:
        return float(np.mean([getattr(r, name) for r in rows]))

    return CellSummary(
        method=method, horizon=int(horizon), magnitude=float(magnitude), probability=float(probability),
        n_episodes=len(rows), score_mean=mean, score_std=std, score_se=se,
        success_rate=avg("success"), max_coverage_mean=avg("max_coverage"), steps_mean=avg("steps"),
        steps_to_best_mean=avg("steps_to_best"), generation_calls_mean=avg("generation_calls"),
        perturbation_events_mean=avg("perturbation_events"), safe_steps_mean=avg("safe_steps"),
        final_coverage_mean=final_mean, final_coverage_se=final_se,
    )


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over the episodes both methods ran with the same env seed and repeat (so the
    same start state, perturbation seed and method seed: common random numbers). ``se`` is
    the standard error of the per-pair differences -- far smaller than either method's own
    SE when the seeds, not the methods, explain most of the spread."""

    a: str
    b: str
    horizon: int
    magnitude: float
    metric: str  # "score" or "final_coverage"
    n_pairs: int
    mean: float
    se: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def paired_differences(rows_a: Sequence[EpisodeResult], rows_b: Sequence[EpisodeResult],
                       metric: str = "score") -> list[PairedDifference]:
    """One :class:`PairedDifference` per (horizon, magnitude) cell the two methods share.

    Episodes pair on ``(env_seed, repeat)``; several episodes under one key (training seeds of
    one method, pooled) are averaged first. Cells with no common key are left out."""
    if metric not in ("score", "final_coverage"):
        raise ValueError(f"metric must be 'score' or 'final_coverage', got {metric!r}")

    def by_cell(rows):
        out: dict[tuple, dict[tuple, list[float]]] = {}
        for r in rows:
            out.setdefault((r.horizon, r.magnitude), {}).setdefault((r.env_seed, r.repeat), []).append(
                float(getattr(r, metric)))
        return out

    ca, cb = by_cell(rows_a), by_cell(rows_b)
    if not rows_a or not rows_b:
        return []
    name_a, name_b = rows_a[0].method, rows_b[0].method
    result = []
    for cell in sorted(set(ca) & set(cb)):
        keys = sorted(set(ca[cell]) & set(cb[cell]))
        if not keys:
            continue
        d = [np.mean(ca[cell][k]) - np.mean(cb[cell][k]) for k in keys]
        mean, _, se = mean_std_se(d)
        result.append(PairedDifference(name_a, name_b, int(cell[0]), float(cell[1]), metric, len(keys), mean, se))
    return result


def summarize(rows: Iterable[EpisodeResult]) -> list[CellSummary]:
    """One :class:`CellSummary` per (method, horizon, magnitude, probability), sorted by them."""
    cells: dict[tuple, list[EpisodeResult]] = {}
    for r in rows:
        cells.setdefault((r.method, r.horizon, r.magnitude, r.probability), []).append(r)
    return [summarize_cell(cells[k]) for k in sorted(cells)]
