"""``warpd compare metaworld``: success rate vs inference FLOPs per step on the ten Metaworld tasks.

    warpd compare metaworld --methods warpd-256=runs/metaworld/warpd_w256 mlp-256=runs/metaworld/mlp_w256 \\
        dp-s-h32=runs/metaworld/dp_s_h32 --episodes-per-task 10 --max-steps 200 --out results/metaworld_compare
    warpd compare metaworld --config my_comparison.yaml

Every method is evaluated in this process with the same protocol
(:mod:`warpd_core.eval.metaworld_eval`: same tasks, env seeds and method seeds), side by side,
and the results folder gets

- ``results.json``: protocol, per method its model facts, FLOPs (generation, per step,
  horizon), success per task, mean success (over tasks), SE, timing; the FLOPs ratios;
- ``results.csv``: one row per method (kind, horizon, GFLOPs/step, mean success, SE, one
  column per task);
- ``episodes.csv``: one row per episode;
- ``summary.md``: the same table plus the ratio lines;
- ``success_vs_gflops.png``: success rate against GFLOPs per step (log x), one marker style per
  kind, as the paper's Figure 6.

Method specs: ``LABEL[@H]=DIR``; the kind comes from DIR (``bundle.json``: ``warpd``;
``last.json`` stage ``mlp`` / ``dp``). ``@H`` sets a DP's replanning horizon (default: its
trained horizon); WARPD's horizon is always the episode length (one generation per episode).
A YAML config holds the same as a mapping::

    episodes_per_task: 10
    max_steps: 200
    tasks: all                     # or a list of task names
    base_seed: 100000
    seed: 0
    out: results/metaworld_compare
    methods:
      - {label: warpd-256, path: runs/metaworld/warpd_w256}
      - {label: dp-s-h32, path: runs/metaworld/dp_s_h32, horizon: 32}

Command-line flags override the file.

FLOPs ratio (printed, and in results.json / summary.md): for every WARPD model, the DP model
whose mean success is closest to it (ties: the cheaper DP, so the ratio is not flattered);
ratio = DP FLOPs per step / WARPD FLOPs per step. The headline pairs the best WARPD model
(highest mean success, ties: cheaper) with its closest DP and checks the issue's target
(ratio >= 45, the paper's ~45x).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from typing import Any, Optional, Sequence

from warpd_core.cli_args import add_progress_flag, add_threads_flag
from warpd_core.eval.methods import parse_method as parse_spec

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
EPISODES_CSV = "episodes.csv"
SUMMARY_MD = "summary.md"
PLOT_PNG = "success_vs_gflops.png"
TARGET_RATIO = 45.0
CONFIG_KEYS = ("episodes_per_task", "max_steps", "tasks", "base_seed", "seed", "out", "methods", "sampler", "steps",
               "stop_on_success")


# ----------------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------------
def parse_method(text: str) -> dict:
    """``LABEL[@H]=DIR`` (:func:`warpd_core.eval.methods.parse_method`'s grammar, one directory)
    -> ``{"label", "path", "horizon"}`` (horizon None when not given)."""
    label, horizon, dirs = parse_spec(text)
    if dirs == [None]:
        raise ValueError(f"--methods {text!r}: no random baseline on Metaworld; expected LABEL[@H]=DIR")
    if len(dirs) != 1:
        raise ValueError(f"--methods {text!r}: one model directory per method on Metaworld, got {len(dirs)}")
    return {"label": label, "path": dirs[0], "horizon": horizon}


def load_spec_file(path: str) -> dict:
    """Read a comparison YAML (keys :data:`CONFIG_KEYS`); errors name the file and the field."""
    from warpd_core.config import read_yaml_mapping  # noqa: PLC0415

    data = read_yaml_mapping(path)
    for key in data:
        if key not in CONFIG_KEYS:
            raise ValueError(f"{path}: {key}: unknown key (expected one of {sorted(CONFIG_KEYS)})")
    methods = data.get("methods") or []
    if not isinstance(methods, list):
        raise ValueError(f"{path}: methods: expected a list of {{label, path[, horizon]}}")
    out = []
    for i, m in enumerate(methods):
        if isinstance(m, str):
            out.append(parse_method(m))
            continue
        if not isinstance(m, dict) or "path" not in m:
            raise ValueError(f"{path}: methods[{i}]: expected a mapping with 'path' (and 'label', 'horizon')")
        bad = set(m) - {"label", "path", "horizon"}
        if bad:
            raise ValueError(f"{path}: methods[{i}].{sorted(bad)[0]}: unknown key (expected label, path, horizon)")
        h = m.get("horizon")
        if h is not None and (not isinstance(h, int) or isinstance(h, bool) or h <= 0):
            raise ValueError(f"{path}: methods[{i}].horizon: expected a positive integer, got {h!r}")
        out.append({"label": m.get("label"), "path": str(m["path"]), "horizon": h})
    data["methods"] = out
    for key in ("episodes_per_task", "max_steps", "base_seed", "seed", "steps"):
        v = data.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise ValueError(f"{path}: {key}: expected an integer, got {v!r}")
    tasks = data.get("tasks")
    if isinstance(tasks, str):
        data["tasks"] = [tasks]
    return data


# ----------------------------------------------------------------------------------------
# Ratios
# ----------------------------------------------------------------------------------------
def closest_dp(warpd: dict, dps: Sequence[dict]) -> Optional[dict]:
    """The DP result whose mean success is closest to ``warpd``'s (ties: fewer FLOPs per step)."""
    if not dps:
        return None
    return min(dps, key=lambda d: (round(abs(d["mean_success"] - warpd["mean_success"]), 12), d["flops_per_step"]))


def flops_ratios(results: Sequence[dict]) -> dict:
    """``{"pairs": [...], "headline": {...} | None}`` for the WARPD and DP results."""
    warpds = [r for r in results if r["kind"] == "warpd"]
    dps = [r for r in results if r["kind"] == "dp"]
    pairs = []
    for w in warpds:
        d = closest_dp(w, dps)
        if d is None:
            continue
        ratio = d["flops_per_step"] / w["flops_per_step"] if w["flops_per_step"] > 0 else math.inf
        pairs.append({"warpd": w["label"], "dp": d["label"], "warpd_success": w["mean_success"],
                      "dp_success": d["mean_success"], "warpd_gflops_per_step": w["gflops_per_step"],
                      "dp_gflops_per_step": d["gflops_per_step"], "ratio": ratio,
                      "meets_target": bool(ratio >= TARGET_RATIO)})
    headline = None
    if pairs:
        best = min(warpds, key=lambda w: (-w["mean_success"], w["flops_per_step"]))
        headline = next(p for p in pairs if p["warpd"] == best["label"])
    return {"target_ratio": TARGET_RATIO, "pairs": pairs, "headline": headline}


def ratio_line(p: dict) -> str:
    return (f"FLOPs per step, WARPD {p['warpd']} : closest-performing DP {p['dp']} = 1 : {p['ratio']:.1f} "
            f"({p['warpd_gflops_per_step']:.3g} vs {p['dp_gflops_per_step']:.3g} GFLOPs/step; mean success "
            f"{p['warpd_success']:.3f} vs {p['dp_success']:.3f}); target >= {TARGET_RATIO:g}x: "
            f"{'met' if p['meets_target'] else 'not met'}")


# ----------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------
def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def write_report(out: str, cfg_dict: dict, results: list[dict], ratios: dict, meta: dict) -> dict[str, str]:
    """Write results.json, results.csv, episodes.csv, summary.md and success_vs_gflops.png into ``out``."""
    os.makedirs(out, exist_ok=True)
    tasks = list(cfg_dict["tasks"])
    paths = {k: os.path.join(out, v) for k, v in (("json", RESULTS_JSON), ("csv", RESULTS_CSV),
                                                  ("episodes", EPISODES_CSV), ("summary", SUMMARY_MD),
                                                  ("png", PLOT_PNG))}
    doc = {"benchmark": "metaworld", "config": cfg_dict, "meta": meta, "ratios": ratios,
           "methods": [{k: v for k, v in r.items() if k != "episodes"} for r in results]}
    with open(paths["json"], "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    fields = ["method", "kind", "horizon", "gflops_per_step", "generation_gflops", "step_gflops", "mean_success",
              "se", "n_episodes"] + [f"success_{t}" for t in tasks]
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in results:
            row = {"method": r["label"], "kind": r["kind"], "horizon": r["horizon"],
                   "gflops_per_step": f"{r['gflops_per_step']:.9g}",
                   "generation_gflops": f"{r['cost']['generation_flops'] / 1e9:.9g}",
                   "step_gflops": f"{r['cost']['step_flops'] / 1e9:.9g}",
                   "mean_success": f"{r['mean_success']:.6f}", "se": f"{r['se']:.6f}", "n_episodes": r["n_episodes"]}
            row.update({f"success_{t}": f"{r['success'][t]:.6f}" for t in tasks})
            w.writerow(row)
    ep_fields = ["method", "task", "task_id", "env_seed", "success", "first_success", "steps", "generation_calls",
                 "safe_steps"]
    with open(paths["episodes"], "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=ep_fields)
        w.writeheader()
        for r in results:
            for e in r["episodes"]:
                w.writerow({k: e.get(k) for k in ep_fields})
    with open(paths["summary"], "w", encoding="utf-8") as fh:
        fh.write(summary_markdown(cfg_dict, results, ratios))
    plot(results, ratios, paths["png"], cfg_dict)
    return paths


def summary_markdown(cfg_dict: dict, results: list[dict], ratios: dict) -> str:
    tasks = list(cfg_dict["tasks"])
    lines = ["# Metaworld: success rate vs inference FLOPs per step", "",
             f"{len(tasks)} tasks x {cfg_dict['episodes_per_task']} episodes (env seeds {cfg_dict['base_seed']}.."
             f"{cfg_dict['base_seed'] + cfg_dict['episodes_per_task'] - 1}), episode length {cfg_dict['max_steps']}, "
             f"method seed root {cfg_dict['seed']}. Success: info['success'] at any step. GFLOPs/step = generation "
             "FLOPs / horizon + per-step FLOPs (WARPD: horizon = episode length, one generation per episode).", "",
             "| method | kind | horizon | GFLOPs/step | mean success | SE |", "|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: r["flops_per_step"]):
        lines.append(f"| {r['label']} | {r['kind']} | {r['horizon']} | {r['gflops_per_step']:.4g} | "
                     f"{_fmt(r['mean_success'])} | {_fmt(r['se'])} |")
    lines += ["", "Success rate per task:", "",
              "| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for r in results:
        lines.append(f"| {r['label']} | " + " | ".join(_fmt(r["success"][t], 2) for t in tasks) + " |")
    lines.append("")
    if ratios["pairs"]:
        lines.append("FLOPs ratios (DP closest in mean success to each WARPD model):")
        lines.append("")
        for p in ratios["pairs"]:
            lines.append(f"- {ratio_line(p)}")
        lines += ["", f"**Headline:** {ratio_line(ratios['headline'])}", ""]
    else:
        lines += ["No FLOPs ratio: the comparison needs at least one WARPD bundle and one DP model.", ""]
    return "\n".join(lines)


def plot(results: list[dict], ratios: dict, path: str, cfg_dict: dict) -> str:
    """Success rate vs GFLOPs/step (log x), one colour and marker per kind, labels on the points;
    the headline WARPD-DP pair joined by a dashed line annotated with the ratio (Figure 6 style)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    style = {"warpd": ("tab:red", "*", "WARPD"), "dp": ("tab:blue", "o", "Diffusion Policy"),
             "mlp": ("tab:green", "s", "MLP")}
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    for kind, (color, marker, name) in style.items():
        rs = sorted((r for r in results if r["kind"] == kind), key=lambda r: r["flops_per_step"])
        if not rs:
            continue
        x = [max(r["gflops_per_step"], 1e-12) for r in rs]
        y = [r["mean_success"] for r in rs]
        ax.errorbar(x, y, yerr=[r["se"] for r in rs], color=color, marker=marker, markersize=11 if marker == "*" else 7,
                    linestyle="-" if kind != "dp" else "none", capsize=3, label=name)
        for r, xi, yi in zip(rs, x, y):
            ax.annotate(r["label"], (xi, yi), textcoords="offset points", xytext=(5, 6), fontsize=8, color=color)
    head = ratios.get("headline")
    if head:
        ax.plot([head["warpd_gflops_per_step"], head["dp_gflops_per_step"]],
                [head["warpd_success"], head["dp_success"]], linestyle="--", color="0.35")
        xm = math.sqrt(head["warpd_gflops_per_step"] * head["dp_gflops_per_step"])
        ym = (head["warpd_success"] + head["dp_success"]) / 2
        ax.annotate(f"{head['ratio']:.1f}x fewer FLOPs", (xm, ym), textcoords="offset points", xytext=(0, -14),
                    ha="center", fontsize=9, color="0.2")
    ax.set_xscale("log")
    ax.margins(x=0.12)  # room for the point labels
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("GFLOPs / step (log scale)")
    ax.set_ylabel("success rate (mean over tasks)")
    ax.set_title(f"Metaworld, {len(cfg_dict['tasks'])} tasks x {cfg_dict['episodes_per_task']} episodes, "
                 f"{cfg_dict['max_steps']} steps")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------
def run_comparison(methods: Sequence[dict], cfg, out: str, sampler: Optional[str] = None,
                   steps: Optional[int] = None, progress: bool = True, torch_threads: int = 1) -> dict:
    """Build and evaluate every method (``{"label", "path", "horizon"}``) under ``cfg``
    (:class:`~warpd_core.eval.metaworld_eval.MetaworldEvalConfig`), write the report into ``out``.
    Returns ``{"results", "ratios", "paths"}``."""
    from warpd_core.eval.metaworld_eval import build_method, close_envs, evaluate_metaworld  # noqa: PLC0415

    if torch_threads > 0:
        import torch  # noqa: PLC0415

        torch.set_num_threads(int(torch_threads))
    if not methods:
        raise ValueError("compare metaworld: no methods (give --methods LABEL=DIR ... or 'methods' in --config)")
    labels = [m.get("label") for m in methods if m.get("label")]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"compare metaworld: label {dup[0]!r} given twice")
    t0 = time.perf_counter()
    built = [build_method(m["path"], cfg.max_steps, m.get("label"), m.get("horizon"), sampler, steps) for m in methods]
    pool: dict = {}
    try:
        results = [evaluate_metaworld(b, cfg, progress=progress, env_pool=pool) for b in built]
    finally:
        close_envs(pool)
    ratios = flops_ratios(results)
    meta = {"wall_seconds": round(time.perf_counter() - t0, 2), "sampler_override": sampler, "steps_override": steps,
            "torch_threads": torch_threads}
    paths = write_report(out, cfg.to_dict(), results, ratios, meta)
    return {"results": results, "ratios": ratios, "paths": paths}


def run(args: argparse.Namespace) -> int:
    """``warpd compare metaworld``."""
    spec: dict[str, Any] = load_spec_file(args.config) if args.config else {"methods": []}
    methods = [parse_method(t) for t in args.methods] if args.methods else spec.get("methods", [])
    return _run(args, methods, spec, "results/metaworld_compare")


def run_eval(args: argparse.Namespace) -> int:
    """``warpd eval metaworld``: one model, the same protocol and outputs as a comparison."""
    return _run(args, [{"label": None, "path": args.model, "horizon": args.horizon}], {}, "results/metaworld_eval")


def _run(args: argparse.Namespace, methods: list[dict], spec: dict, default_out: str) -> int:
    from warpd_core.eval.metaworld_eval import MetaworldEvalConfig  # noqa: PLC0415


    def pick(flag, key, default):
        v = getattr(args, flag)
        return v if v is not None else spec.get(key, default)

    tasks = args.tasks if args.tasks else spec.get("tasks")
    cfg = MetaworldEvalConfig(
        tasks=tuple(tasks) if tasks and list(tasks) != ["all"] else MetaworldEvalConfig.tasks,
        episodes_per_task=pick("episodes_per_task", "episodes_per_task", 10),
        max_steps=pick("max_steps", "max_steps", 500), base_seed=pick("base_seed", "base_seed", 100_000),
        seed=pick("seed", "seed", 0),
        stop_on_success=not args.full_episodes and bool(spec.get("stop_on_success", True)))
    out = pick("out", "out", default_out)
    res = run_comparison(methods, cfg, out, sampler=pick("sampler", "sampler", None),
                         steps=pick("steps", "steps", None), progress=not args.no_progress, torch_threads=args.threads)
    for r in sorted(res["results"], key=lambda r: r["flops_per_step"]):
        print(f"{r['label']:>16} ({r['kind']:>5}, horizon {r['horizon']:>3}): {r['gflops_per_step']:.4g} GFLOPs/step, "
              f"mean success {r['mean_success']:.3f} +- {r['se']:.3f} ({r['seconds']:.1f} s)")
    ratios = res["ratios"]
    if ratios["headline"]:
        print(ratio_line(ratios["headline"]))
    else:
        print("no FLOPs ratio: needs at least one WARPD bundle and one DP model")
    print(f"wrote {os.path.abspath(out)}: " + ", ".join(sorted(os.path.basename(p) for p in res["paths"].values())))
    return 0


def add_arguments(q: argparse.ArgumentParser, compare: bool = True) -> None:
    """The protocol flags; with ``compare`` also ``--methods`` and ``--config`` (else ``--model``
    and ``--horizon``: ``warpd eval metaworld``)."""
    if compare:
        q.add_argument("--methods", nargs="+", metavar="SPEC",
                       help="LABEL[@H]=DIR: a WARPD bundle (bundle.json), or an mlp / dp checkpoint directory; "
                            "@H sets a DP's replanning horizon (default: trained horizon)")
        q.add_argument("--config", help="YAML with methods and protocol fields (flags override it)")
    else:
        q.add_argument("--model", required=True, help="a task-conditioned WARPD bundle (bundle.json), or an mlp / dp "
                                                      "checkpoint directory (warpd train mlp|dp on Metaworld data)")
        q.add_argument("--horizon", type=int, help="DP: replanning horizon (default: its trained horizon); WARPD "
                                                   "generates once per episode")
    q.add_argument("--tasks", nargs="+", help="task subset (default: all ten, Table 4 order)")
    q.add_argument("--episodes-per-task", type=int, help="episodes per task (default 10)")
    q.add_argument("--max-steps", type=int, help="episode length = WARPD's horizon (default 500, the paper's)")
    q.add_argument("--base-seed", type=int, help="env seed of the first episode of each task (default 100000)")
    q.add_argument("--seed", type=int, help="root of the method seeds (default 0)")
    q.add_argument("--sampler", choices=["ddim", "ddpm"], help="override every diffusion model's sampler")
    q.add_argument("--steps", type=int, help="override every diffusion model's number of sampler steps")
    q.add_argument("--full-episodes", action="store_true",
                   help="run every episode to max-steps (default: stop at the first success)")
    add_threads_flag(q)
    q.add_argument("--out", help="results folder (default results/metaworld_" + ("compare)" if compare else "eval)"))
    add_progress_flag(q)
    q.set_defaults(func=run if compare else run_eval)


def register_eval(sub) -> None:
    """Add ``metaworld`` to the subparsers of ``warpd eval`` (called by ``warpd_core.eval.cli``)."""
    q = sub.add_parser("metaworld", help="Metaworld: one model's success rate on the paper's ten tasks",
                       description="Evaluate one WARPD bundle, Diffusion Policy or MLP checkpoint on the paper's ten "
                                   "Metaworld tasks (the protocol of warpd compare metaworld); write results.json, "
                                   "results.csv, episodes.csv, summary.md and success_vs_gflops.png.")
    add_arguments(q, compare=False)


def register_compare(sub) -> None:
    """Add ``metaworld`` to the subparsers of ``warpd compare`` (called by ``warpd_core.eval.compare``)."""
    q = sub.add_parser("metaworld", help="Metaworld: success rate vs GFLOPs per step (WARPD, DP, MLP; Figure 6)",
                       description="Evaluate WARPD bundles, Diffusion Policy and MLP checkpoints side by side on the "
                                   "paper's ten Metaworld tasks; write results.json, results.csv, episodes.csv, "
                                   "summary.md and success_vs_gflops.png; print the FLOPs ratio WARPD : "
                                   "closest-performing DP.")
    add_arguments(q)


def register(subparsers) -> None:
    """``warpd compare metaworld``. When ``warpd_core.eval.compare`` (``warpd compare pusht``) is
    registered first it adds this subcommand itself through :func:`register_compare`; otherwise
    ``compare`` is created here with ``metaworld`` only."""
    if "compare" in getattr(subparsers, "_name_parser_map", {}):
        return
    p = subparsers.add_parser("compare", help="evaluate several methods on one protocol -> JSON, CSV, markdown, PNG")
    sub = p.add_subparsers(dest="env", metavar="ENV", required=True)
    register_compare(sub)
