"""Evaluation outputs: a results folder a reader (or a script) can use without the code.

``write_report(results, out_dir)`` writes

- ``results.json``: ``{"method", "config", "meta", "cells": [CellSummary...], "episodes": [EpisodeResult...]}``;
- ``episodes.csv``: one row per episode (the :class:`~warpd_core.eval.metrics.EpisodeResult` fields);
- ``summary.md``: mean score +- SE, final coverage +- SE and success rate as grids (rows:
  action horizon, columns: perturbation magnitude in pixels);
- ``score_vs_horizon.png``: mean score (SE bars) against the action horizon (log2 axis), one
  line per perturbation magnitude, as the paper's Figure 3, beside the same for the final
  coverage (coverage at the last step, which lucky displacements do not inflate);
- ``rollout.gif`` when the results hold a recording.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Optional

import numpy as np

from warpd_core.eval.harness import EvalResults, Recording
from warpd_core.eval.metrics import CellSummary, EpisodeResult

RESULTS_JSON = "results.json"
EPISODES_CSV = "episodes.csv"
SUMMARY_MD = "summary.md"
SCORE_PNG = "score_vs_horizon.png"
ROLLOUT_GIF = "rollout.gif"


def results_to_dict(results: EvalResults) -> dict:
    return {
        "method": results.method,
        "config": results.config.to_dict(),
        "meta": results.meta,
        "cells": [c.to_dict() for c in results.cells],
        "episodes": [r.to_dict() for r in results.rows],
    }


def write_results_json(results: EvalResults, path: str) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(results_to_dict(results), fh, indent=1, default=_json_default)
        fh.write("\n")
    return path


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def write_episodes_csv(rows: list[EpisodeResult], path: str) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=EpisodeResult.fields())
        w.writeheader()
        for r in rows:
            w.writerow(r.to_dict())
    return path


def _grid(cells: list[CellSummary], fmt) -> tuple[list[int], list[float], list[list[str]]]:
    horizons = sorted({c.horizon for c in cells})
    mags = sorted({c.magnitude for c in cells})
    by = {(c.horizon, c.magnitude): c for c in cells}
    table = [[fmt(by[(h, m)]) if (h, m) in by else "" for m in mags] for h in horizons]
    return horizons, mags, table


def markdown_grid(cells: list[CellSummary], fmt, corner: str = "horizon \\ magnitude (px)") -> str:
    """A markdown table: rows = action horizons, columns = perturbation magnitudes."""
    horizons, mags, table = _grid(cells, fmt)
    lines = ["| " + corner + " | " + " | ".join(f"{m:g}" for m in mags) + " |",
             "|---" * (len(mags) + 1) + "|"]
    for h, row in zip(horizons, table):
        lines.append(f"| {h} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def summary_markdown(results: EvalResults) -> str:
    cfg = results.config
    n_eps = cfg.n_seeds * cfg.repeats
    model = results.meta.get("model_id")
    head = [
        f"# PushT evaluation: {results.method}" + (f" (model {model})" if model else ""),
        "",
        f"{cfg.n_seeds} env seeds ({cfg.base_seed}..{cfg.base_seed + cfg.n_seeds - 1}) x {cfg.repeats} repeats "
        f"= {n_eps} episodes per cell; perturbation probability {cfg.probability:g} per step; "
        f"at most {cfg.max_steps} steps.",
        "Score = mean over episodes of clip(max coverage / 0.95, 0, 1); +- is the standard error.",
        "",
        "## Mean score",
        "",
        markdown_grid(results.cells, lambda c: f"{c.score_mean:.3f} ± {c.score_se:.3f}"),
        "",
        "## Final coverage (at the episode's last step)",
        "",
        markdown_grid(results.cells, lambda c: f"{c.final_coverage_mean:.3f} ± {c.final_coverage_se:.3f}"),
        "",
        "## Success rate (coverage > 0.95 at some step)",
        "",
        markdown_grid(results.cells, lambda c: f"{c.success_rate:.3f}"),
        "",
    ]
    if "wall_seconds" in results.meta:
        head.append(f"Wall time {results.meta['wall_seconds']:.1f} s.")
        head.append("")
    if results.recording is not None and results.recording.frames:
        head.append(f"`{ROLLOUT_GIF}`: {rollout_cell(results.recording)}.")
        head.append("")
    return "\n".join(head)


def write_summary_md(results: EvalResults, path: str) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(summary_markdown(results))
    return path


def plot_score_vs_horizon(cells: list[CellSummary], path: str, title: Optional[str] = None) -> str:
    """Two panels against the action horizon (log2 x axis), one line per perturbation
    magnitude, SE bars: the mean score (paper, Figure 3) and the mean final coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mags = sorted({c.magnitude for c in cells})
    horizons = sorted({c.horizon for c in cells})
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(len(mags), 1)))
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.0), dpi=120, sharey=True)
    panels = (("score", "score (max coverage / 0.95)"), ("final_coverage", "final coverage"))
    for ax, (metric, label) in zip(axes, panels):
        for color, m in zip(colors, mags):
            pts = sorted((c.horizon, getattr(c, f"{metric}_mean"), getattr(c, f"{metric}_se"))
                         for c in cells if c.magnitude == m)
            h, y, se = (np.array(v) for v in zip(*pts))
            ax.errorbar(h, y, yerr=se, marker="o", ms=4, capsize=3, lw=1.5, color=color, label=f"{m:g} px")
        ax.set_xscale("log", base=2)
        ax.set_xticks(horizons)
        ax.set_xticklabels([str(h) for h in horizons])
        ax.minorticks_off()
        if len(horizons) == 1:
            ax.set_xlim(horizons[0] / 1.5, horizons[0] * 1.5)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel("action horizon (steps)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(title="perturbation", fontsize=8, title_fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_rollout_gif(recording: Recording, path: str, fps: int = 10) -> str:
    """GIF of a recorded rollout with perturbation and policy-swap overlays
    (``warpd_core.envs.render.write_rollout``)."""
    from warpd_core.envs.render import write_rollout

    return write_rollout(path, recording.frames, recording.marks, fps=fps, title=rollout_cell(recording, short=True))


def rollout_cell(recording: Recording, short: bool = False) -> str:
    """Which cell the rollout shows (GIF caption and summary.md)."""
    if short:
        return f"H{recording.horizon} {recording.magnitude:g}px seed {recording.env_seed}"
    return (f"action horizon {recording.horizon}, perturbation {recording.magnitude:g} px, env seed "
            f"{recording.env_seed} (the cell's first episode)")


def write_report(results: EvalResults, out_dir: str) -> dict[str, str]:
    """Write every output into ``out_dir`` (created); returns ``{kind: path}``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "json": write_results_json(results, os.path.join(out_dir, RESULTS_JSON)),
        "csv": write_episodes_csv(results.rows, os.path.join(out_dir, EPISODES_CSV)),
        "summary": write_summary_md(results, os.path.join(out_dir, SUMMARY_MD)),
    }
    title = f"PushT, {results.method}, p = {results.config.probability:g}"
    paths["plot"] = plot_score_vs_horizon(results.cells, os.path.join(out_dir, SCORE_PNG), title)
    if results.recording is not None and results.recording.frames:
        paths["gif"] = write_rollout_gif(results.recording, os.path.join(out_dir, ROLLOUT_GIF))
    return paths
