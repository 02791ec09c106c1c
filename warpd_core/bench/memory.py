"""Resident memory of the runtime processes, and the controller's torch-free import graph.

* Import check: a fresh interpreter runs ``import warpd_ros.controller`` and lists which of
  torch / diffusers / hypnettorch / onnxruntime ended up in ``sys.modules`` (must be none of
  the first three: the controller process stays small and never runs a diffusion step).
* Running processes: VmRSS (now) and VmHWM (peak) from /proc/<pid>/status, read by the
  driver at the end of a short control loop (:func:`warpd_core.bench.ros_loop.run_phase`):
  the controller acting on every observation with a policy installed, the generator node
  regenerating every horizon, a plain rclpy echo node as the floor of any rclpy process.
  ``libtorch_loaded`` says whether a libtorch shared object is mapped into the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from warpd_core.bench.common import LoadMonitor, Target, ros_available, ros_env, write_section
from warpd_core.bench import ros_loop

HEAVY = ("torch", "diffusers", "hypnettorch", "onnxruntime")
COLUMNS = ["process", "what", "rss_mb", "hwm_mb", "libtorch_loaded", "cpu_pct"]


def controller_imports() -> dict:
    """Modules of :data:`HEAVY` present after ``import warpd_ros.controller`` in a fresh interpreter."""
    code = ("import json, sys, warpd_ros.controller; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ros_env())
    if r.returncode != 0:
        return {"ok": False, "error": (r.stderr.strip().splitlines() or ["import failed"])[-1]}
    return {"ok": True, "heavy_modules": json.loads(r.stdout.strip().splitlines()[-1])}


def _rows_from(res: dict, what: str) -> list[dict]:
    rows = []
    for name, p in res.get("processes", {}).items():
        if name == "driver":
            continue
        label = what
        if name == "generator":
            label = (f"generator ({res.get('generator_kind')}, init bundle UNet s, decoder xs, "
                     f"{res.get('generator_backend', 'torch')} backend)")
        rows.append({"process": name, "what": label, "rss_mb": p["rss_mb"], "hwm_mb": p["hwm_mb"],
                     "libtorch_loaded": p["libtorch_loaded"], "cpu_pct": p["cpu_pct"]})
    return rows


PHASE_LABELS = {"echo": "plain rclpy echo node (floor of an rclpy process)", "controller": "controller, policy installed",
                "controller+generator": "controller beside the generator"}


def run(quick: bool, out_dir: str, ros_doc: dict | None = None) -> dict:
    """``ros_doc``: the ros section's result of the same invocation; its processes' memory is
    reported instead of starting new ones (``warpd bench all``)."""
    load = LoadMonitor()
    rows: list[dict] = []
    notes: list[str] = []
    imp = controller_imports()
    # None: the controller module does not import here at all (no ROS); nothing to judge
    torch_free = (not any(m in imp["heavy_modules"] for m in HEAVY[:3])) if imp.get("ok") else None
    config = {"controller_import": imp}
    ok, why = ros_available()
    if ros_doc and ros_doc.get("results"):
        # the longest run of each phase from the ros section (memory after the most steps)
        best: dict[str, dict] = {}
        for r in ros_doc["results"]:
            if "error" not in r and (r["phase"] not in best or r["n_sent"] > best[r["phase"]]["n_sent"]):
                best[r["phase"]] = r
        for phase, r in best.items():
            for name in ("echo", "controller", "generator"):
                if f"rss_{name}_mb" in r:
                    label = PHASE_LABELS[phase] if name != "generator" else f"generator ({r.get('generator')})"
                    rows.append({"process": name, "what": f"{label}; after {r['n_sent']} steps at {r['rate_hz']:.0f} Hz",
                                 "rss_mb": r[f"rss_{name}_mb"], "hwm_mb": r[f"hwm_{name}_mb"],
                                 "libtorch_loaded": r.get(f"libtorch_in_{name}"), "cpu_pct": r.get(f"cpu_{name}_pct")})
        notes.append("Processes measured by the ros section of the same run (its longest run of each phase).")
    elif ok:
        env = ros_env()
        work = Path(out_dir) / "memory_logs"
        work.mkdir(parents=True, exist_ok=True)
        duration = 2.0 if quick else 10.0
        phases = ["controller+generator"] if quick else ["echo", "controller", "controller+generator"]
        with tempfile.TemporaryDirectory(prefix="warpd-bench-mem-") as tmp:
            bundle, why_no = ros_loop.make_init_bundle(str(Path(tmp) / "bundle"))
            if not bundle:
                notes.append(f"no init bundle ({why_no}): generator row is the weights stand-in")
            for phase in phases:
                res = ros_loop.run_phase(phase, 100.0, duration, work, env, "events", bundle)
                if not res.get("ok"):
                    rows.append({"process": phase, "what": f"failed: {res.get('error', '')}"})
                    continue
                rows += _rows_from(res, f"{PHASE_LABELS[phase]}; after {duration:.0f} s at 100 Hz")
    else:
        notes.append(f"ROS not available ({why}): only the import check ran")
    if ok and not quick:
        # the generator on ONNX Runtime: torch never loads into it
        work = Path(out_dir) / "memory_logs"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="warpd-bench-mem-") as tmp:
            bundle, why_no = ros_loop.make_init_bundle(str(Path(tmp) / "bundle"), onnx=True)
            res = ros_loop.run_phase("controller+generator", 100.0, 10.0, work, ros_env(), "events", bundle,
                                     backend="onnx") if bundle else {"ok": False, "error": why_no}
        if res.get("ok"):
            rows += [r for r in _rows_from(res, "") if r["process"] == "generator"]
        else:
            rows.append({"process": "generator", "what": f"onnx backend failed: {res.get('error', '')}"})
    ctrl = [r for r in rows if r["process"] == "controller" and "rss_mb" in r]
    rss = max((r["hwm_mb"] for r in ctrl), default=None)
    targets = [
        Target("controller imports no torch/diffusers/hypnettorch (fresh interpreter)", "none",
               ",".join(imp.get("heavy_modules", [])) or ("none" if imp.get("ok") else imp.get("error")), torch_free),
        Target("controller resident memory (VmHWM)", "<= 150 MB", rss, None if rss is None else rss <= 150),
    ]
    if ctrl:
        targets.append(Target("libtorch mapped into the running controller", "no",
                              any(r["libtorch_loaded"] for r in ctrl), not any(r["libtorch_loaded"] for r in ctrl)))
    notes.append("VmRSS / VmHWM from /proc/<pid>/status at the end of the measured window; MB = 2**20 bytes.")
    doc = write_section(out_dir, "memory", quick, config, rows, COLUMNS, targets, load.result(), notes,
                        title="Memory of the runtime processes")
    if torch_free is False:
        raise AssertionError(f"warpd_ros.controller imports heavy modules: {imp}")
    return doc
