"""Control loop through real rclpy across processes: observation publish -> action receipt.

Phases, each a fresh set of processes in a ROS domain of its own (``ROS_DOMAIN_ID``):

* ``echo``                 -- driver + a plain echo node (same message sizes, no policy): the
  transport floor.
* ``controller``           -- driver + the installed controller node (``mode:=realtime
  obs_qos:=sensor``); the driver publishes one policy first (transient local).
* ``controller+generator`` -- as above with a generator process beside it regenerating every
  horizon: the real generator node on an initialised bundle (``warpd export init``) when the
  learning core is there, else ``bench/ros_nodes.py weights`` publishing PolicyWeights of the same
  size at the horizon rate. Warm-up lasts until an action computed by a generated policy
  arrives.

Per phase: latency p50/p99/p99.9, deadline misses (action lost, or received later than one
period after its observation was sent), CPU share of every process (/proc/<pid>/stat over
the measured window), resident memory, and the share of actions computed by a policy.
The controller runs with ``max_policy_age`` large so every measured action goes through the
MLP even when the generator falls behind on a loaded 2-core machine (policies received are
counted). The driver and the echo node use the same executor as the controller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from warpd_core.bench.common import (
    LoadMonitor,
    Target,
    bench_node_cmd,
    node_executable,
    progress,
    ros_available,
    ros_env,
    start_process,
    stop_processes,
    write_section,
)

OBS_DIM, ACT_DIM, HIDDEN, HORIZON = 5, 2, (256, 256), 16
COLUMNS = ["phase", "rate_hz", "duration_s", "executor", "p50_us", "p99_us", "p999_us", "max_us", "deadline_miss_pct",
           "lost", "late", "policy_actions_pct", "policies_seen", "cpu_controller_pct", "cpu_controller_us_per_step", "cpu_generator_pct",
           "cpu_driver_pct", "rss_controller_mb"]


def make_init_bundle(out_dir: str, unet: str = "s", decoder: str = "xs", horizon: int = HORIZON, onnx: bool = False) -> tuple[str | None, str]:
    """``warpd export init`` for the PushT shapes; (bundle dir, '') or (None, why not)."""
    cmd = [sys.executable, "-m", "warpd_core", "export", "init", "--obs-dim", str(OBS_DIM), "--act-dim", str(ACT_DIM),
           "--hidden", *map(str, HIDDEN), "--horizon", str(horizon), "--decoder", decoder, "--unet", unet,
           "--seed", "0", "--out", out_dir] + (["--onnx"] if onnx else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["export init failed"])[-1]
    return out_dir, ""


def controller_cmd(executor: str, extra: list[str] = ()) -> list[str]:
    exe = node_executable("controller")
    if exe is None:
        raise RuntimeError("controller executable not installed (make setup)")
    params = {"autostart": "true", "mode": "realtime", "obs_qos": "sensor", "obs_dim": OBS_DIM, "act_dim": ACT_DIM,
              "max_policy_age": 1_000_000_000, "action_low": "[-1000000.0]", "action_high": "[1000000.0]"}
    args = [sys.executable, exe, "--ros-args"]
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    if executor:
        args += ["-p", f"executor:={executor}"]
    return args + list(extra)


def isolation_plan(isolate: bool, fifo: bool = False) -> dict[str, str]:
    """CPU lists per role: the control path (controller, echo, driver = the robot side) on CPU 0,
    the generator on the other CPUs at nice 10 (``warpd_ros.sched``). With SCHED_FIFO the
    middleware threads of the controller and the echo node (which receive the 270 kB policies)
    go with the generator and only their executor thread stays on CPU 0; under normal
    scheduling they stay on CPU 0 (beside a busy generator they would wait for its time slice:
    BENCHMARKS.md, "middleware threads"). Empty = no pinning."""
    n = os.cpu_count() or 1
    if not isolate or n < 2:
        return {"control": "", "middleware": "", "generator": "", "generator_nice": "0"}
    rest = f"1-{n - 1}" if n > 2 else "1"
    return {"control": "0", "middleware": rest if fifo else "", "generator": rest, "generator_nice": "10"}


def generator_cmd(bundle: str | None, rate: float, cpus: str = "", nice: str = "0",
                  backend: str = "torch") -> tuple[list[str], str]:
    """(command, kind): the real generator node on ``bundle``, else the weights stand-in."""
    exe = node_executable("generator")
    if bundle and exe:
        return [sys.executable, exe, "--ros-args", "-p", f"bundle:={bundle}", "-p", "obs_qos:=sensor",
                "-p", "lead_steps:=-1", "-p", "autostart:=true", "-p", f"nice:={nice}", "-p", f"backend:={backend}",
                *(["-p", f"cpu_affinity:={cpus}"] if cpus else [])], "generator_node"
    return bench_node_cmd("weights", "--rate", str(rate / HORIZON), "--horizon", str(HORIZON),
                          *(["--cpus", cpus] if cpus else [])), "weights_stand_in"


def run_phase(phase: str, rate: float, duration: float, work: Path, env: dict, executor: str = "events",
              bundle: str | None = None, warmup: float = 1.0, fifo: int = 0, isolate: bool = False,
              backend: str = "torch") -> dict:
    """Start the processes of one phase, drive it, stop it; returns the driver's JSON plus context.
    ``backend``: the generator's (``onnx`` needs a bundle with the graphs)."""
    tag = f"{phase.replace('+', '_')}_{int(rate)}hz" + ("_rt" if fifo else "") + ("_iso" if isolate else "") + (
        f"_{backend}" if backend != "torch" else "")
    cpus = isolation_plan(isolate, fifo > 0)
    rt = (["--fifo", str(fifo)] if fifo else []) + (["--cpus", cpus["control"]] if cpus["control"] else [])
    mw = ["--middleware-cpus", cpus["middleware"]] if cpus["middleware"] else []
    ctl_extra = (["-p", f"sched_fifo_priority:={fifo}"] if fifo else []) + (
        ["-p", f"cpu_affinity:={cpus['control']}"] if cpus["control"] else []) + (
        ["-p", f"middleware_cpu_affinity:={cpus['middleware']}"] if cpus["middleware"] else [])
    procs: dict[str, subprocess.Popen] = {}
    gen_kind = ""
    try:
        if phase == "echo":
            procs["echo"] = start_process(bench_node_cmd("echo", "--executor", executor, *rt, *mw), env, work / f"{tag}_echo.log")
        else:
            procs["controller"] = start_process(controller_cmd(executor, ctl_extra), env, work / f"{tag}_controller.log")
            if phase == "controller+generator":
                cmd, gen_kind = generator_cmd(bundle, rate, cpus["generator"], cpus["generator_nice"], backend)
                procs["generator"] = start_process(cmd, env, work / f"{tag}_generator.log")
        out_json = work / f"{tag}.json"
        real_gen = gen_kind == "generator_node"
        drive = bench_node_cmd(
            "drive", "--rate", str(rate), "--duration", str(duration), "--warmup", str(warmup), "--executor", executor,
            "--obs-subscribers", str(2 if real_gen else 1), "--out", str(out_json),
            "--watch", *[f"{k}={p.pid}" for k, p in procs.items()],
            *(["--publish-policy"] if phase != "echo" else []),
            *(["--expect-generated"] if phase == "controller+generator" else []),
            "--warmup-timeout", "120" if real_gen else "30", *rt)
        driver = start_process(drive, env, work / f"{tag}_driver.log")
        try:
            driver.wait(timeout=duration + 200)
        except subprocess.TimeoutExpired:
            stop_processes([driver])
        res = json.loads(out_json.read_text()) if out_json.exists() else {"ok": False, "error": "driver wrote no result"}
        for name, p in procs.items():
            if p.poll() is not None:
                res.setdefault("error", "")
                res["error"] += f" {name} exited with {p.returncode} (log {work / f'{tag}_{name}.log'})"
    finally:
        stop_processes(procs.values())
    res.update({"phase": phase, "executor": executor, "generator_kind": gen_kind, "generator_backend": backend})
    return res


def row_of(res: dict) -> dict:
    lat = res.get("latency", {})
    procs = res.get("processes", {})
    n = max(res.get("n_received", 0), 1)
    row = {"phase": res["phase"], "rate_hz": res.get("rate_hz"), "duration_s": res.get("duration_s"),
           "executor": res.get("executor"), "generator": res.get("generator_kind", ""),
           "p50_us": lat.get("median_us"), "p99_us": lat.get("p99_us"), "p999_us": lat.get("p999_us"),
           "max_us": lat.get("max_us"), "deadline_miss_pct": res.get("deadline_miss_pct"), "lost": res.get("lost"),
           "late": res.get("late"), "n_sent": res.get("n_sent"),
           "policy_actions_pct": None if res["phase"] == "echo" else round(100.0 * res.get("actions_from_policy", 0) / n, 2),
           "policies_seen": None if res["phase"] == "echo" else res.get("policies_seen"),
           "publish_jitter_p99_us": res.get("publish_jitter", {}).get("p99_us"),
           "driver_skipped_slots": res.get("driver_skipped_slots")}
    for name in ("controller", "generator", "echo", "driver"):
        if name in procs:
            row[f"cpu_{name}_pct"] = procs[name]["cpu_pct"]
            row[f"rss_{name}_mb"] = procs[name]["rss_mb"]
            row[f"hwm_{name}_mb"] = procs[name]["hwm_mb"]
            row[f"libtorch_in_{name}"] = procs[name]["libtorch_loaded"]
    if "controller" in procs and res.get("rate_hz"):
        # CPU time of the whole controller process (executor, DDS threads, BLAS) per control step
        row["cpu_controller_us_per_step"] = round(procs["controller"]["cpu_pct"] * 1e4 / res["rate_hz"], 1)
    if not res.get("ok"):
        row["error"] = res.get("error", "failed")
    return row


def plan(quick: bool) -> list[tuple[str, float, float]]:
    """(phase, rate Hz, measured seconds)."""
    if quick:
        return [("echo", 100.0, 1.0), ("controller", 100.0, 1.0), ("controller+generator", 100.0, 2.0)]
    out = []
    for rate, dur in ((100.0, 20.0), (500.0, 20.0), (1000.0, 60.0)):
        for ph in ("echo", "controller", "controller+generator"):
            out.append((ph, rate, dur))
    return out


def run(quick: bool, out_dir: str, executor: str = "events", phases: list[tuple[str, float, float]] | None = None,
        fifo: int = 0, isolate: bool = False) -> dict:
    """``fifo`` > 0: controller (``sched_fifo_priority``), echo and driver run SCHED_FIFO at that
    priority (the generator stays SCHED_OTHER). ``isolate``: controller, echo and driver pinned
    to CPU 0, the generator to the other CPUs at nice 10 (:func:`isolation_plan`). Written as
    section ``ros``, ``ros_rt``, ``ros_iso`` or ``ros_rt_iso``."""
    load = LoadMonitor()
    ok, why = ros_available()
    notes: list[str] = []
    rows: list[dict] = []
    section = "ros" + ("_rt" if fifo else "") + ("_iso" if isolate else "")
    cpus = isolation_plan(isolate, fifo > 0)
    title = "Control loop through rclpy across processes (obs publish -> action receipt)" + (
        f", controller/echo/driver SCHED_FIFO {fifo}" if fifo else "") + (
        f", control path on CPU {cpus['control']}, generator on CPUs {cpus['generator']} at nice {cpus['generator_nice']}"
        if cpus["control"] else "") + (
        f", controller/echo middleware threads on CPUs {cpus['middleware']}" if cpus["middleware"] else "")
    config = {"obs_dim": OBS_DIM, "act_dim": ACT_DIM, "hidden": list(HIDDEN), "horizon": HORIZON,
              "qos": "sensor (best effort, depth 1)", "sched_fifo_priority": fifo, "isolation": cpus}
    if not ok:
        notes.append(f"skipped: ROS not available ({why})")
        return write_section(out_dir, section, quick, config, rows, COLUMNS, [], load.result(), notes, title=title)
    env = ros_env()
    config["ros_domain_id"] = env["ROS_DOMAIN_ID"]
    work = Path(out_dir) / "ros_logs"
    work.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="warpd-bench-ros-")
    bundle, why_no_bundle = make_init_bundle(str(Path(tmp.name) / "bundle"))
    config["generator"] = (f"generator node on an init bundle (UNet s, decoder xs, DDIM 10, horizon {HORIZON})" if bundle
                           else f"weights stand-in ({why_no_bundle})")
    phases = phases or plan(quick)
    bar = progress(sum(d for _, _, d in phases), section, "s measured")  # ETA weighted by each phase's length
    for phase, rate, duration in phases:
        t0 = time.monotonic()
        res = run_phase(phase, rate, duration, work, env, executor, bundle, fifo=fifo, isolate=isolate)
        row = row_of(res)
        rows.append(row)
        bar.update(duration)
        bar.write(f"  {phase:22s} {rate:6.0f} Hz  p50 {row['p50_us']} us  p99 {row['p99_us']} us  p99.9 {row['p999_us']} us  "
                  f"miss {row['deadline_miss_pct']}%  ({time.monotonic() - t0:.0f} s){'  ERROR ' + row['error'] if 'error' in row else ''}")
    bar.close()
    notes += [
        "Latency = obs publish -> action receipt in the driver process (two DDS hops + the node's callback).",
        "Deadline miss = the action was lost or arrived more than one period after its observation was published.",
        "When the driver itself was descheduled for more than a period it skips the missed slots instead of sending "
        "them back to back (driver_skipped_slots in the JSON); publish_jitter_p99_us is its lateness against the schedule.",
        "CPU % is per process over the measured window (100% = one core); the machine has 2 cores.",
        f"Logs and raw JSON of each phase: {work}",
    ]
    tmp.cleanup()

    def pick(phase: str, rate: float) -> dict | None:
        for r in rows:
            if r["phase"] == phase and r["rate_hz"] == rate and "error" not in r:
                return r
        return None

    targets = []
    for rate, p99_max, label in ((500.0, 500.0, "<= 500 us"), (1000.0, 1000.0, "<= 1 ms")):
        r = pick("controller+generator", rate) or pick("controller", rate)
        targets.append(Target(f"ROS {rate:.0f} Hz p99 ({r['phase'] if r else 'not run'})", label,
                              r["p99_us"] if r else None, None if r is None else r["p99_us"] <= p99_max))
    r = pick("controller+generator", 1000.0)
    full = r is not None and (r["duration_s"] or 0) >= 60
    targets.append(Target("1 kHz deadline misses over 60 s (controller+generator)", "< 0.1%",
                          r["deadline_miss_pct"] if r else None, None if not full else r["deadline_miss_pct"] < 0.1))
    return write_section(out_dir, section, quick, config, rows, COLUMNS, targets, load.result(), notes, title=title)

