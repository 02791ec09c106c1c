"""Evaluation outputs: every file is written and parses back to what was evaluated."""

from __future__ import annotations

import csv
import json

import pytest

from warpd_core.eval.harness import EvalConfig, RandomMethod, evaluate
from warpd_core.eval.metrics import EpisodeResult
from warpd_core.eval.report import summary_markdown, write_report


@pytest.fixture(scope="module")
def results():
    cfg = EvalConfig(n_seeds=2, repeats=2, horizons=(8, 32), magnitudes=(0.0, 50.0), max_steps=12)
    return evaluate(RandomMethod(), cfg, progress=False, record=(32, 50.0), meta={"model_id": "abc"})


def test_report_files(results, tmp_path):
    paths = write_report(results, str(tmp_path))
    assert set(paths) == {"json", "csv", "summary", "plot", "gif"}

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["method"] == "random" and data["config"]["horizons"] == [8, 32]
    assert data["meta"]["model_id"] == "abc" and "wall_seconds" in data["meta"]
    assert len(data["cells"]) == 4 and len(data["episodes"]) == 16
    assert data["episodes"][0] == results.rows[0].to_dict()
    cell = next(c for c in data["cells"] if c["horizon"] == 32 and c["magnitude"] == 50.0)
    assert cell["score_mean"] == pytest.approx(results.cell(32, 50.0).score_mean)

    with open(tmp_path / "episodes.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == EpisodeResult.fields() and len(rows) == 16
    assert float(rows[3]["max_coverage"]) == pytest.approx(results.rows[3].max_coverage)

    md = (tmp_path / "summary.md").read_text()
    assert "| horizon \\ magnitude (px) | 0 | 50 |" in md
    c = results.cell(8, 0.0)
    assert f"| 8 | {c.score_mean:.3f} ± {c.score_se:.3f} |" in md
    assert md.count("| 32 |") == 3  # score, final coverage and success grids
    import numpy as np

    final = np.mean([r.final_coverage for r in results.rows if r.horizon == 8 and r.magnitude == 0.0])
    assert c.final_coverage_mean == pytest.approx(final) and f"| 8 | {final:.3f} ± {c.final_coverage_se:.3f} |" in md

    png = (tmp_path / "score_vs_horizon.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    gif = (tmp_path / "rollout.gif").read_bytes()
    assert gif[:6] == b"GIF89a"
    rec = results.recording
    assert (rec.horizon, rec.magnitude, rec.env_seed) == (32, 50.0, 100_000)
    n_pert = results.rows[[r.repeat == 0 and r.horizon == 32 and r.magnitude == 50.0 for r in results.rows].index(True)]
    assert len(rec.frames) == len(rec.marks) == 1 + n_pert.steps + n_pert.perturbation_events
    assert "`rollout.gif`: action horizon 32, perturbation 50 px, env seed 100000" in md  # which cell the GIF shows


def test_summary_is_deterministic_apart_from_timing(results):
    again = evaluate(RandomMethod(), results.config, progress=False, record=(32, 50.0))
    strip = lambda s: "\n".join(l for l in s.splitlines() if not l.startswith("Wall time"))  # noqa: E731
    assert strip(summary_markdown(again)) == strip(summary_markdown(results)).replace(" (model abc)", "")
