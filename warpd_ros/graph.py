"""Start a node graph without launch_ros and report what happened.

``ros2 launch warpd_ros pusht_sim.launch.py`` needs launch_ros, which a ROS 2 distribution
has but the PyPI wheels do not. This runner starts the *same* graph from the same
description (:mod:`warpd_ros.graph_spec`): the installed executables, the package's params
files and the same arguments, in the same ``name:=value`` syntax::

    python -m warpd_ros.graph pusht_sim horizon:=16 perturbation:=false episodes:=3

It runs until the simulation exits, prints one line per episode and the control-loop
statistics the controller and generator report on /diagnostics, and writes a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rclpy
import rclpy.executors
from ament_index_python.packages import get_package_prefix, get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray

from warpd_ros import graph_spec, qos
from warpd_ros.diagnostics import parse
from warpd_ros.msg import EpisodeResult

GRAPHS = {
    "pusht_sim": (graph_spec.PUSHT_SIM_ARGS, graph_spec.pusht_sim_graph),
    "robosuite_sim": (graph_spec.ROBOSUITE_SIM_ARGS, graph_spec.robosuite_sim_graph),
    "robot": (graph_spec.ROBOT_ARGS, graph_spec.robot_graph),
}
SIM_EXECUTABLES = ("pusht_sim", "robosuite_sim")


def _ros_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "'" + v.replace("'", "") + "'"  # quoted so '' and paths stay strings
    return str(v)


def node_command(spec: graph_spec.NodeSpec) -> list[str]:
    """The command line ``ros2 run``/launch_ros would use for ``spec``."""
    exe = Path(get_package_prefix(spec.package)) / "lib" / spec.package / spec.executable
    if not exe.exists():
        raise FileNotFoundError(f"executable {exe} not found (is the package built? run `make setup`)")
    cmd = [str(exe), "--ros-args", "-r", f"__node:={spec.name}"]
    if spec.params_file:
        cmd += ["--params-file", str(Path(get_package_share_directory(spec.package)) / spec.params_file)]
    for k, v in spec.parameters.items():
        cmd += ["-p", f"{k}:={_ros_value(v)}"]
    for extra in spec.extra_params_files:
        cmd += ["--params-file", str(extra)]
    return cmd


def _last_line(logs: Path | None, spec: graph_spec.NodeSpec) -> str:
    """': <the last line of the node's log>' (its one-line error), when its output went to a log."""
    try:
        lines = (logs / f"{spec.name}.log").read_text().strip().splitlines() if logs else []
    except OSError:
        lines = []
    return f": {lines[-1]}" if lines else ""


class _Monitor:
    def __init__(self):
        self.node = rclpy.create_node("warpd_graph_monitor")
        self.results: list[dict] = []
        self.diag: dict[str, dict] = {}
        self.node.create_subscription(EpisodeResult, "episode_result", self._on_result, qos.RESULTS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)

    def _on_result(self, m: EpisodeResult) -> None:
        r = {"episode": m.episode, "seed": m.seed, "score": round(m.score, 4), "max_coverage": round(m.max_coverage, 4),
             "success": m.success, "steps": m.steps, "perturbations": m.perturbations}
        self.results.append(r)
        print(f"[episode {m.episode}] seed {m.seed} score {m.score:.3f} max coverage {m.max_coverage:.3f} "
              f"steps {m.steps} perturbations {m.perturbations}", flush=True)

    def _on_diag(self, m: DiagnosticArray) -> None:
        for st in m.status:
            self.diag[st.name] = {"level": int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level),
                                  "message": st.message, **parse(st)}


def run_graph(graph: str, args: dict[str, str], summary: str | None, timeout: float, log_dir: str | None) -> int:
    arg_spec, build = GRAPHS[graph]
    resolved = graph_spec.resolve_args(args, arg_spec)
    specs = build(resolved)
    rclpy.init(args=[])  # our argv is the graph's arguments, not ROS arguments
    mon = _Monitor()
    procs: list[tuple[graph_spec.NodeSpec, subprocess.Popen]] = []
    logs = Path(log_dir) if log_dir else None
    if logs:
        logs.mkdir(parents=True, exist_ok=True)
    rc = 0
    try:
        for s in specs:
            out = open(logs / f"{s.name}.log", "w") if logs else None
            procs.append((s, subprocess.Popen(node_command(s), stdout=out, stderr=subprocess.STDOUT if out else None,
                                              start_new_session=True)))
        # simulation graphs end with their simulation; the robot graph runs until Ctrl-C/timeout
        sim = next((p for s, p in procs if s.executable in SIM_EXECUTABLES), None)
        deadline = time.monotonic() + timeout
        while sim is None or sim.poll() is None:
            try:
                rclpy.spin_once(mon.node, timeout_sec=0.1)
            except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
                break  # Ctrl-C: stop the graph and report
            dead = [(s, p) for s, p in procs if p is not sim and p.poll() is not None]
            if dead:
                s, p = dead[0]
                print(f"node {s.name} exited early with code {p.returncode}{_last_line(logs, s)}", file=sys.stderr)
                rc = 1
                break
            if time.monotonic() > deadline:
                if sim is not None:
                    print(f"graph did not finish within {timeout:.0f} s", file=sys.stderr)
                    rc = 1
                break
        if sim is not None and sim.poll() is not None and sim.returncode != 0:
            s = next(s for s, p in procs if p is sim)
            print(f"node {s.name} exited with code {sim.returncode}{_last_line(logs, s)}", file=sys.stderr)
            rc = 1
        # collect the final diagnostics the nodes publish on shutdown
        end = time.monotonic() + 1.5
        while time.monotonic() < end and rclpy.ok():
            rclpy.spin_once(mon.node, timeout_sec=0.05)
    finally:
        for _, p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        t_end = time.monotonic() + 5
        for _, p in procs:
            try:
                p.wait(timeout=max(0.1, t_end - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for _ in range(10):
            if not rclpy.ok():
                break
            rclpy.spin_once(mon.node, timeout_sec=0.05)
    report = {"graph": graph, "arguments": resolved, "episodes": mon.results, "nodes": mon.diag}
    scores = [r["score"] for r in mon.results]
    if scores:
        report["mean_score"] = float(sum(scores) / len(scores))
    ctl = mon.diag.get("warpd_controller", {})
    gen = mon.diag.get("warpd_generator", {})
    print("control loop: "
          f"{ctl.get('steps', 0)} steps, rate {ctl.get('rate_hz', float('nan'))} Hz, "
          f"obs->action latency p50 {ctl.get('latency_p50_us', float('nan'))} us p99 {ctl.get('latency_p99_us', float('nan'))} us, "
          f"policy swaps {ctl.get('swaps', 0)}, safe steps {ctl.get('safe_steps', 0)}, "
          f"rejected policies {ctl.get('rejected_policies', 0)}")
    print("generator: "
          f"{gen.get('generations', 0)} generations, latency p50 {gen.get('generation_latency_p50_ms', float('nan'))} ms "
          f"p99 {gen.get('generation_latency_p99_ms', float('nan'))} ms, late {gen.get('late_generations', 0)}")
    if scores:
        print(f"mean score over {len(scores)} episodes: {report['mean_score']:.3f}")
    if summary:
        Path(summary).parent.mkdir(parents=True, exist_ok=True)
        Path(summary).write_text(json.dumps(report, indent=2))
        print(f"summary: {summary}")
    mon.node.destroy_node()
    rclpy.try_shutdown()
    expected = int(resolved.get("episodes", "0"))
    if rc == 0 and expected and len(mon.results) < expected:
        print(f"only {len(mon.results)} of {expected} episode results arrived", file=sys.stderr)
        rc = 1
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m warpd_ros.graph", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("graph", choices=sorted(GRAPHS))
    ap.add_argument("arguments", nargs="*", help="launch arguments as name:=value")
    ap.add_argument("--summary", default=None, help="write a JSON summary here")
    ap.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds")
    ap.add_argument("--log-dir", default=None, help="write each node's output to <dir>/<node>.log")
    ap.add_argument("--show-args", action="store_true", help="list the graph's arguments and exit")
    ns = ap.parse_args(argv)
    if ns.show_args:
        for a in GRAPHS[ns.graph][0]:
            print(f"{a.name}:={a.default!r:14} {a.description}")
        return 0
    args = {}
    for item in ns.arguments:
        if ":=" not in item:
            ap.error(f"argument {item!r} is not name:=value")
        k, v = item.split(":=", 1)
        args[k] = v
    try:
        return run_graph(ns.graph, args, ns.summary, ns.timeout, ns.log_dir)
    except KeyboardInterrupt:
        return 0
    except (ValueError, FileNotFoundError) as e:
        print(f"warpd graph: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
