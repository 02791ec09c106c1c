"""``warpd compare``: every method on the same protocol, one results folder (paper section 4.1).

``warpd compare pusht --methods warpd=BUNDLE mlp=DIR dp=DIR ldp=DIR random --profile quick --out DIR``
evaluates each method with the in-process harness (:func:`~warpd_core.eval.harness.evaluate`)
under one :class:`~warpd_core.eval.harness.EvalConfig`: the same env seeds, method seeds and
perturbation seeds for every method (common random numbers), and writes

- ``results.json``: config, methods (models, FLOPs per horizon), cells, missing cells, timing;
- ``results.csv``: one row per method x horizon x magnitude (score mean / std / SE, spread over
  training seeds, success rate, FLOPs per control step, parameters);
- ``summary.md``: a combined table and one table per method (no timings, so a rerun with the
  same seeds gives the same file, as does ``results.csv``: see :data:`CSV_DECIMALS`);
- ``score_vs_magnitude.png`` (one panel per horizon) and ``score_vs_horizon.png`` (one panel per
  magnitude): one line per method with SE bars, as the paper's Figure 3; the same two for the
  final coverage (``final_coverage_vs_*.png``), which lucky displacements do not inflate;
- paired differences (in ``summary.md`` and ``results.json``): the reference method (the first
  WARPD bundle given) minus every other method, episode by episode on the same env seed and
  repeat, with the standard error of the differences.

Method specs (``--methods``), ``LABEL[@H]=DIR[,DIR...]`` or ``random``:

* The kind is read from the directory: ``bundle.json`` -> ``warpd`` (any ``warpd export`` bundle,
  so WARPD w/o WM is ``warpd_nowm=BUNDLE``); ``last.json`` with stage ``mlp`` / ``dp`` / ``ldp``
  -> that baseline. The label names the method in every output.
* ``DIR1,DIR2,DIR3``: models of the same method from different training seeds. Each is evaluated
  with the same config; a cell pools their episodes (mean, std, SE over all of them) and reports
  the standard deviation of the per-seed means as the training-seed spread.
* Horizons (our choice): closed-loop methods (``warpd``, ``mlp``, ``random``) serve every horizon.
  Chunk methods (``dp``, ``ldp``) execute their chunk open loop, the paper's "action chunk =
  horizon", so a model serves only the horizon it was trained at (read from its checkpoint);
  give one spec per horizon under the same label (``dp=runs/dp_h16 dp=runs/dp_h64``).
  ``LABEL@H=DIR`` binds a model to horizon H explicitly (e.g. a chunk model at a shorter
  horizon). Cells no model serves are listed as missing (summary.md, results.json) and left
  blank; two models for one (label, horizon) are an error.

FLOPs per control step (:mod:`warpd_core.models.flops`) are counted on the modules each
method runs; random costs 0.

The Metaworld comparison registers itself as ``warpd compare metaworld`` through
``warpd_core.eval.metaworld_compare.register_compare(subparsers)`` when that module imports.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

from warpd_core.eval.methods import build_method, model_kind, parse_method, pusht_env
from warpd_core.train import stages

if TYPE_CHECKING:  # heavy imports (numpy, gym) stay inside the functions: `warpd --help` must be fast
    from warpd_core.eval.harness import EvalConfig

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
SUMMARY_MD = "summary.md"
MAGNITUDE_PNG = "score_vs_magnitude.png"
HORIZON_PNG = "score_vs_horizon.png"
FINAL_MAGNITUDE_PNG = "final_coverage_vs_magnitude.png"
FINAL_HORIZON_PNG = "final_coverage_vs_horizon.png"

# results.csv rounds floats: the same seeds give the same episodes, but a step's coverage can differ
# in its last bit between runs in one process (pymunk's contact order follows memory addresses),
# so full-precision means (results.json) agree to ~1e-15 while the tables are identical.
CSV_DECIMALS = 9


# ----------------------------------------------------------------------------------------
# Method specs
# ----------------------------------------------------------------------------------------
@dataclass
class MethodSpec:
    """One compared method: ``models[h]`` = the model directories (training seeds) serving horizon h
    (``[None]`` for random)."""

    label: str
    kind: str
    models: dict[int, list[Optional[str]]] = field(default_factory=dict)

    def directories(self) -> list[Optional[str]]:
        """Every distinct model directory, in order of first use."""
        return list(dict.fromkeys(d for dirs in self.models.values() for d in dirs))


def resolve_methods(texts: Sequence[str], horizons: Sequence[int]) -> tuple[list[MethodSpec], list[dict]]:
    """Method specs -> the models serving each horizon of ``horizons``, and the missing cells
    (``{"method", "horizon"}``) no model serves. Raises ValueError naming the spec on conflicts."""
    specs: dict[str, MethodSpec] = {}
    for text in texts:
        label, h, dirs = parse_method(text)
        kinds = {model_kind(d) if d is not None else ("random", None) for d in dirs}
        if len({k for k, _ in kinds}) != 1:
            raise ValueError(f"--methods {text!r}: the directories hold different kinds {sorted(k for k, _ in kinds)}")
        kind = next(iter(kinds))[0]
        spec = specs.setdefault(label, MethodSpec(label, kind))
        if spec.kind != kind:
            raise ValueError(f"--methods {text!r}: label {label!r} is already a {spec.kind} method, this is {kind}")
        if h is not None:
            served = [h] if h in horizons else []
        elif kind in stages.CHUNK_STAGES:
            trained = {t for _, t in kinds}
            if len(trained) != 1:
                raise ValueError(f"--methods {text!r}: training seeds trained at different horizons {sorted(trained)}")
            served = [t for t in trained if t in horizons]
        else:
            served = list(horizons)
        for hh in served:
            if hh in spec.models:
                raise ValueError(f"--methods {text!r}: {label!r} already has a model for horizon {hh}")
            spec.models[hh] = list(dirs)
    missing = [{"method": s.label, "horizon": int(h)} for s in specs.values() for h in horizons if h not in s.models]
    return list(specs.values()), missing


# ----------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareCell:
    """One (method, horizon, magnitude) cell, pooled over the method's training seeds.

    ``score_*`` and ``success_rate`` are over all episodes of the cell (every training seed);
    ``train_seed_scores`` are the per-seed mean scores and ``train_seed_std`` their sample standard
    deviation (0 for one seed). FLOPs and parameters are the mean over the seeds' models
    (identical when they share a config).
    """

    method: str
    kind: str
    horizon: int
    magnitude: float
    n_train_seeds: int
    n_episodes: int
    score_mean: float
    score_std: float
    score_se: float
    train_seed_std: float
    success_rate: float
    flops_per_step: float
    generation_flops: float
    step_flops: float
    generation_params: float
    step_params: float
    train_seed_scores: tuple = ()
    final_coverage_mean: float = 0.0
    final_coverage_se: float = 0.0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train_seed_scores"] = list(self.train_seed_scores)
        return d

    @classmethod
    def csv_fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "train_seed_scores"]


@dataclass
class CompareResults:
    """Everything a comparison produced (:func:`write_compare` turns it into files)."""

    profile: str
    config: EvalConfig
    methods: list[dict]
    cells: list[CompareCell]
    missing: list[dict]
    timing: dict
    # reference method minus each other method on the same (env seed, repeat), score and final
    # coverage (warpd_core.eval.metrics.paired_differences)
    paired: list = field(default_factory=list)
    reference: Optional[str] = None


def run_compare(specs: Sequence[MethodSpec], cfg: EvalConfig, missing: Sequence[dict] = (), profile: str = "custom",
                sampler: Optional[str] = None, steps: Optional[int] = None, progress: bool = True,
                threads: int = 1) -> CompareResults:
    """Evaluate every model of every spec with ``cfg`` (restricted to the horizons it serves) and
    pool the results per (method, horizon, magnitude)."""
    import time

    import numpy as np
    from tqdm.auto import tqdm

    from warpd_core.eval.harness import evaluate
    from warpd_core.eval.metrics import mean_std_se, paired_differences, summarize

    t_start = time.perf_counter()
    # every model is loaded before the first episode, so a broken directory fails in seconds
    env = pusht_env()
    jobs = [(s, d, build_method(s.kind, d, env, label=s.label, sampler=sampler, steps=steps, seed=cfg.seed,
                                threads=threads))
            for s in specs for d in s.directories()]
    rows: dict[tuple[str, int], list] = {}  # (label, horizon) -> episodes of every seed
    seed_cells: dict[tuple[str, int, float], dict[int, float]] = {}  # training seed -> mean score
    costs: dict[tuple[str, int], list[dict]] = {}
    methods: list[dict] = []
    timing: dict[str, float] = {}  # evaluation seconds per model, then the whole run's
    bar = tqdm(jobs, desc="compare pusht", unit="model", disable=not progress)
    for spec, path, built in bar:
        bar.set_postfix(method=spec.label)
        horizons = tuple(h for h in cfg.horizons if path in spec.models.get(h, ()))
        res = evaluate(built.method, dataclasses.replace(cfg, horizons=horizons), progress=progress, meta=built.info)
        info = {"path": None if path is None else os.path.abspath(path), "horizons": list(horizons), "cost": {}}
        for h in horizons:
            seed = spec.models[h].index(path)
            rows.setdefault((spec.label, h), []).extend(r for r in res.rows if r.horizon == h)
            for c in res.cells:
                if c.horizon == h:
                    seed_cells.setdefault((spec.label, h, c.magnitude), {})[seed] = c.score_mean
            cost = built.cost(h).to_dict()
            costs.setdefault((spec.label, h), []).append(cost)
            info["cost"][str(h)] = cost
        info["meta"] = {k: v for k, v in res.meta.items() if k not in ("wall_seconds", "cell_seconds")}
        timing[f"{spec.label}:{path}"] = res.meta["wall_seconds"]
        methods.append({"method": spec.label, "kind": spec.kind, **info})
    bar.close()
    kinds = {s.label: s.kind for s in specs}
    cells = []
    for (label, h), eps in rows.items():
        for c in summarize(eps):
            per_seed = [score for _, score in sorted(seed_cells[(label, h, c.magnitude)].items())]
            cost = {k: float(np.mean([x[k] for x in costs[(label, h)]])) for k in costs[(label, h)][0]}
            cells.append(CompareCell(
                method=label, kind=kinds[label], horizon=h, magnitude=c.magnitude, n_train_seeds=len(per_seed),
                n_episodes=c.n_episodes, score_mean=c.score_mean, score_std=c.score_std, score_se=c.score_se,
                train_seed_std=mean_std_se(per_seed)[1], success_rate=c.success_rate,
                flops_per_step=cost["flops_per_step"], generation_flops=cost["generation_flops"],
                step_flops=cost["step_flops"], generation_params=cost["generation_params"],
                step_params=cost["step_params"], train_seed_scores=tuple(per_seed),
                final_coverage_mean=c.final_coverage_mean, final_coverage_se=c.final_coverage_se))
    order = {s.label: i for i, s in enumerate(specs)}
    cells.sort(key=lambda c: (order[c.method], c.horizon, c.magnitude))
    reference = reference_label(specs)
    paired = []
    by_label: dict[str, list] = {}
    for (label, _), eps in rows.items():
        by_label.setdefault(label, []).extend(eps)
    for spec in specs:
        if spec.label != reference:
            for metric in ("score", "final_coverage"):
                paired += paired_differences(by_label.get(reference, []), by_label.get(spec.label, []), metric)
    timing["total_seconds"] = round(time.perf_counter() - t_start, 3)
    return CompareResults(profile, cfg, methods, cells, list(missing), timing, paired, reference)


def reference_label(specs: Sequence[MethodSpec]) -> str:
    """The method every other is compared with, pair by pair: the first WARPD bundle given,
    else the first method."""
    return next((s.label for s in specs if s.kind == "warpd"), specs[0].label)


# ----------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------
def _mflops(x: float) -> str:
    return f"{x / 1e6:.4g}"


def summary_markdown(res: CompareResults) -> str:
    from warpd_core.eval.report import markdown_grid

    cfg = res.config
    labels = list(dict.fromkeys(c.method for c in res.cells))
    mags = sorted({c.magnitude for c in res.cells})
    by = {(c.method, c.horizon, c.magnitude): c for c in res.cells}
    lines = [
        f"# PushT comparison ({res.profile} profile)",
        "",
        f"Every method: {cfg.n_seeds} env seeds ({cfg.base_seed}..{cfg.base_seed + cfg.n_seeds - 1}) x "
        f"{cfg.repeats} repeat(s) per training seed and cell, the same env, method and perturbation seeds "
        f"(root seed {cfg.seed}); perturbation probability {cfg.probability:g} per step; at most {cfg.max_steps} steps.",
        "Score = mean over episodes of clip(max coverage / 0.95, 0, 1); ± = standard error over the cell's episodes "
        "(all training seeds pooled); 'seed sd' = standard deviation of the training seeds' mean scores.",
        "FLOPs per control step = generation FLOPs / horizon + per-step FLOPs (FlopCounterMode on the modules "
        "that run, 2 per multiply-add, batch 1).",
        "",
        "## All methods: mean score",
        "",
        "| horizon | method | MFLOPs/step | " + " | ".join(f"{m:g} px" for m in mags) + " |",
        "|---" * (len(mags) + 3) + "|",
    ]
    for h in sorted({c.horizon for c in res.cells}):
        for label in labels:
            row = [by.get((label, h, m)) for m in mags]
            if not any(row):
                continue
            flops = next(c.flops_per_step for c in row if c)
            lines.append(f"| {h} | {label} | {_mflops(flops)} | "
                         + " | ".join(f"{c.score_mean:.3f} ± {c.score_se:.3f}" if c else "" for c in row) + " |")
    lines += ["", "## All methods: final coverage (at the episode's last step)", "",
              "| horizon | method | " + " | ".join(f"{m:g} px" for m in mags) + " |",
              "|---" * (len(mags) + 2) + "|"]
    for h in sorted({c.horizon for c in res.cells}):
        for label in labels:
            row = [by.get((label, h, m)) for m in mags]
            if any(row):
                lines.append(f"| {h} | {label} | " + " | ".join(
                    f"{c.final_coverage_mean:.3f} ± {c.final_coverage_se:.3f}" if c else "" for c in row) + " |")
    if res.paired:
        lines += ["", f"## Paired differences: {res.reference} minus each method", "",
                  "Same env seed and repeat for both (common random numbers); ± = standard error of the per-pair "
                  "differences; * = more than two standard errors from zero.", ""]
        pairs = {(d.b, d.metric, d.horizon, d.magnitude): d for d in res.paired}
        for metric in ("score", "final_coverage"):
            lines += [f"{metric.replace('_', ' ')}:", "",
                      "| horizon | vs | " + " | ".join(f"{m:g} px" for m in mags) + " |",
                      "|---" * (len(mags) + 2) + "|"]
            for h in sorted({c.horizon for c in res.cells}):
                for label in labels:
                    row = [pairs.get((label, metric, h, m)) for m in mags]
                    if any(row):
                        lines.append(f"| {h} | {label} | " + " | ".join(
                            (f"{d.mean:+.3f} ± {d.se:.3f}" + ("*" if abs(d.mean) > 2 * d.se else "")) if d else ""
                            for d in row) + " |")
            lines.append("")
    for label in labels:
        cells = [c for c in res.cells if c.method == label]
        info = [m for m in res.methods if m["method"] == label]
        seeds = max(c.n_train_seeds for c in cells)

        def fmt(c: CompareCell) -> str:
            return f"{c.score_mean:.3f} ± {c.score_se:.3f}" + (f" (seed sd {c.train_seed_std:.3f})" if seeds > 1 else "")

        lines += ["", f"## {label} ({cells[0].kind})", ""]
        lines += [f"- `{m['path']}`: horizons {', '.join(map(str, m['horizons']))}" for m in info if m["path"]]
        lines += ["", f"Mean score ({seeds} training seed{'s' if seeds > 1 else ''}):", "", markdown_grid(cells, fmt),
                  "", "Success rate (coverage > 0.95 at some step):", "",
                  markdown_grid(cells, lambda c: f"{c.success_rate:.3f}"), "",
                  "| horizon | MFLOPs/step | generation MFLOPs | per-step MFLOPs | generation params | per-step params |",
                  "|---|---|---|---|---|---|"]
        for c in cells:
            if c.magnitude == cells[0].magnitude:
                lines.append(f"| {c.horizon} | {_mflops(c.flops_per_step)} | {_mflops(c.generation_flops)} | "
                             f"{_mflops(c.step_flops)} | {c.generation_params:.0f} | {c.step_params:.0f} |")
    if res.missing:
        lines += ["", "## Not evaluated", "",
                  "No model for these cells (chunk methods need one model per horizon):", ""]
        lines += [f"- {m['method']} at horizon {m['horizon']}" for m in res.missing]
    return "\n".join(lines) + "\n"


def plot_panels(cells: Sequence[CompareCell], x: str, panel: str, path: str, title: str,
                metric: str = "score") -> str:
    """Mean ``metric`` (score or final_coverage) with SE bars against ``x`` ('magnitude' or
    'horizon', the latter on a log2 axis), one panel per value of ``panel``, one line per method
    (paper, Figure 3)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(c.method for c in cells))
    panels = sorted({getattr(c, panel) for c in cells})
    xs = sorted({getattr(c, x) for c in cells})
    colors = dict(zip(labels, plt.get_cmap("tab10")(np.arange(len(labels)) % 10)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.0, 3.4), dpi=120, squeeze=False,
                             sharey=True)
    handles: dict = {}
    for ax, pv in zip(axes[0], panels):
        for label in labels:
            pts = sorted((getattr(c, x), getattr(c, f"{metric}_mean"), getattr(c, f"{metric}_se")) for c in cells
                         if c.method == label and getattr(c, panel) == pv)
            if pts:
                xv, y, se = (np.array(v) for v in zip(*pts))
                handles[label] = ax.errorbar(xv, y, yerr=se, marker="o", ms=3.5, capsize=2.5, lw=1.4,
                                             color=colors[label], label=label)
        if x == "horizon":
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs)
            ax.set_xticklabels([str(v) for v in xs])
            ax.minorticks_off()
            ax.set_xlabel("action horizon (steps)")
        else:
            ax.set_xlabel("perturbation magnitude (px)")
        if len(xs) == 1:
            ax.set_xlim(xs[0] / 1.5, xs[0] * 1.5) if x == "horizon" else ax.set_xlim(xs[0] - 10, xs[0] + 10)
        ax.set_title(f"horizon {pv}" if panel == "horizon" else f"{pv:g} px", fontsize=9)
        ax.set_ylim(0.0, 1.05)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(metric.replace("_", " "))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0.0, 0.0, 1.0 - 0.9 / fig.get_figwidth(), 1.0))
    fig.legend([handles[k] for k in labels if k in handles], [k for k in labels if k in handles], fontsize=7,
               loc="center right")
    fig.savefig(path)
    plt.close(fig)
    return path


def write_compare(res: CompareResults, out_dir: str) -> dict[str, str]:
    """Write every output into ``out_dir`` (created); returns ``{kind: path}``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, n) for k, n in (("json", RESULTS_JSON), ("csv", RESULTS_CSV),
                                                      ("summary", SUMMARY_MD), ("magnitude_plot", MAGNITUDE_PNG),
                                                      ("horizon_plot", HORIZON_PNG),
                                                      ("final_magnitude_plot", FINAL_MAGNITUDE_PNG),
                                                      ("final_horizon_plot", FINAL_HORIZON_PNG))}
    with open(paths["json"], "w", encoding="utf-8") as fh:
        json.dump({"profile": res.profile, "config": res.config.to_dict(), "methods": res.methods,
                   "cells": [c.to_dict() for c in res.cells], "missing": res.missing, "timing": res.timing,
                   "reference": res.reference, "paired": [d.to_dict() for d in res.paired]},
                  fh, indent=1)
        fh.write("\n")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CompareCell.csv_fields(), extrasaction="ignore")
        w.writeheader()
        for c in res.cells:
            w.writerow({k: round(v, CSV_DECIMALS) if isinstance(v, float) else v for k, v in c.to_dict().items()})
    with open(paths["summary"], "w", encoding="utf-8") as fh:
        fh.write(summary_markdown(res))
    p = res.config.probability
    plot_panels(res.cells, "magnitude", "horizon", paths["magnitude_plot"], f"PushT: score vs perturbation (p = {p:g})")
    plot_panels(res.cells, "horizon", "magnitude", paths["horizon_plot"], f"PushT: score vs action horizon (p = {p:g})")
    plot_panels(res.cells, "magnitude", "horizon", paths["final_magnitude_plot"],
                f"PushT: final coverage vs perturbation (p = {p:g})", "final_coverage")
    plot_panels(res.cells, "horizon", "magnitude", paths["final_horizon_plot"],
                f"PushT: final coverage vs action horizon (p = {p:g})", "final_coverage")
    return paths


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------
def register(subparsers) -> None:
    """``warpd compare pusht`` (+ ``warpd compare metaworld`` when its module imports)."""
    from warpd_core.cli_args import add_progress_flag, add_threads_flag
    from warpd_core.eval.cli import add_protocol_arguments
    from warpd_core.eval.profiles import DEFAULT_PROFILE, PROFILES, profile_help

    p = subparsers.add_parser("compare", help="evaluate several methods on one protocol -> JSON, CSV, markdown, PNG",
                              description="warpd compare pusht --methods warpd=BUNDLE mlp=DIR dp=DIR ldp=DIR random")
    sub = p.add_subparsers(dest="env", metavar="ENV", required=True)
    q = sub.add_parser("pusht", help="PushT: every method, horizons x perturbation magnitudes, same seeds",
                       description="Evaluate every method with the same PushT protocol (env, method and perturbation "
                                   "seeds) and write results.json, results.csv, summary.md and the Figure-3 plots. "
                                   "Flags override the profile.")
    q.add_argument("--methods", nargs="+", required=True, metavar="SPEC",
                   help="LABEL[@H]=DIR[,DIR...] or random. The kind comes from DIR (bundle.json: warpd; last.json "
                        "stage mlp/dp/ldp); commas separate training seeds (averaged, spread reported); dp/ldp serve "
                        "the horizon they were trained at (repeat the label per horizon), LABEL@H=DIR binds a model "
                        "to horizon H")
    q.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES),
                   help=profile_help() + " (paper: per training seed)")
    add_protocol_arguments(q)
    q.add_argument("--sampler", choices=["ddim", "ddpm"], help="override every diffusion method's sampler")
    q.add_argument("--steps", type=int, help="override every diffusion method's number of sampler steps")
    q.add_argument("--out", default="results/compare_pusht", help="results folder (default results/compare_pusht)")
    add_threads_flag(q)
    add_progress_flag(q)
    q.set_defaults(func=run_pusht)
    try:
        from warpd_core.eval.metaworld_compare import register_compare

        register_compare(sub)
    except Exception as exc:  # noqa: BLE001 - Metaworld is optional; PushT must keep working
        p.epilog = f"warpd compare metaworld unavailable ({type(exc).__name__}: {exc})"


def run_pusht(args: argparse.Namespace) -> int:
    from warpd_core.eval.cli import protocol_overrides
    from warpd_core.eval.harness import EvalConfig

    cfg = EvalConfig.from_profile(args.profile, **protocol_overrides(args))
    specs, missing = resolve_methods(args.methods, cfg.horizons)
    print(f"compare pusht ({args.profile} profile): {cfg.describe(len(specs))}", flush=True)
    res = run_compare(specs, cfg, missing, args.profile, args.sampler, args.steps, progress=not args.no_progress,
                      threads=args.threads)
    paths = write_compare(res, args.out)
    print(open(paths["summary"], encoding="utf-8").read())
    print(f"wall time {res.timing['total_seconds']:.1f} s; wrote {os.path.abspath(args.out)}: "
          + ", ".join(sorted(os.path.basename(p) for p in paths.values())))
    return 0
