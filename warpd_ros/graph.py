"""Start a node graph without launch_ros and report what happened.

``ros2 launch warpd_ros pusht_sim.launch.py`` needs launch_ros, which a ROS 2 distribution
has but the PyPI wheels do not. This runner starts the *same* graph from the same
description (:mod:`warpd_ros.graph_spec`): the installed executables, the package's params
files and the same arguments, in the same ``name:=value`` syntax::

    python -m warpd_ros.graph pusht_sim horizon:=16 perturbation:=false episodes:=3

It runs until the simulation exits, prints one line per episode and the control-loop
statistics the controller and generator report on /diagnostics, and writes a JSON summary.
Exits follow graph_spec's rules, as the launch files do: the simulation's exit ends the graph,
any other node's exit stops it, and a node that exits non-zero fails the run (exit code 1) with
its last error line printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
import rclpy.executors
from ament_index_python.packages import get_package_prefix, get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray

from warpd_ros import graph_spec, process, qos
from warpd_ros.diagnostics import parse
from warpd_ros.msg import EpisodeResult

GRAPHS = {
    "pusht_sim": (graph_spec.PUSHT_SIM_ARGS, graph_spec.pusht_sim_graph),
    "robosuite_sim": (graph_spec.ROBOSUITE_SIM_ARGS, graph_spec.robosuite_sim_graph),
    "robot": (graph_spec.ROBOT_ARGS, graph_spec.robot_graph),
}


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
    if spec.namespace:
        cmd += ["-r", f"__ns:={absolute_namespace(spec.namespace)}"]
    for src, dst in spec.remappings:
        cmd += ["-r", f"{src}:={dst}"]
    if spec.params_file:
        cmd += ["--params-file", str(Path(get_package_share_directory(spec.package)) / spec.params_file)]
    for k, v in spec.parameters.items():
        cmd += ["-p", f"{k}:={_ros_value(v)}"]
    for extra in spec.extra_params_files:
        cmd += ["--params-file", str(extra)]
    return cmd


def absolute_namespace(ns: str) -> str:
    """The runner has no enclosing namespace: a relative one is under /."""
    return "/" + ns.strip("/")


STOP_TIMEOUT = 10.0  # s from SIGINT to SIGKILL when the graph is stopped


class _Process:
    """One node's process; its stderr passes through a thread that keeps the last line, so a
    failure can be reported with the node's own error."""

    def __init__(self, spec: graph_spec.NodeSpec, out):
        self.spec = spec
        self.proc = subprocess.Popen(node_command(spec), stdout=out, stderr=subprocess.PIPE, start_new_session=True)
        self.last_error = ""
        self._sink = out if out is not None else sys.stderr
        self._reader = threading.Thread(target=self._forward, daemon=True)
        self._reader.start()

    def _forward(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            if graph_spec.error_line(line):
                self.last_error = line.strip()
            self._sink.write(line)
            self._sink.flush()

    def failure(self) -> str:
        """'' when the process is running or exited 0; else what to report."""
        code = self.proc.poll()
        if code in (None, 0):
            return ""
        self._reader.join(timeout=1.0)  # the error line may still be in the pipe
        return graph_spec.exit_failure(self.spec.name, code, self.last_error)


class _Monitor:
    def __init__(self, namespace: str, remappings: list):
        cli = ["--ros-args"] + [x for src, dst in remappings for x in ("-r", f"{src}:={dst}")]
        self.node = rclpy.create_node("warpd_graph_monitor", namespace=absolute_namespace(namespace),
                                      cli_args=cli if remappings else None)
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
    for s in specs:
        node_command(s)  # a missing executable fails here, before anything starts
    process.init(args=[])  # our argv is the graph's arguments, not ROS arguments
    process.serve()  # Ctrl-C from here on stops the nodes and reports
    mon = _Monitor(specs[0].namespace, specs[0].remappings)
    procs: list[_Process] = []
    logs = Path(log_dir) if log_dir else None
    if logs:
        logs.mkdir(parents=True, exist_ok=True)
    failure = ""
    interrupted = False
    try:
        for s in specs:
            procs.append(_Process(s, open(logs / f"{s.name}.log", "w") if logs else None))
        # graph_spec's exit rules: the simulation ends the graph; any other exit stops it
        deadline = time.monotonic() + timeout
        while True:
            if process.stopping():
                interrupted = True  # Ctrl-C / SIGTERM: stop the graph and report
                break
            try:
                rclpy.spin_once(mon.node, timeout_sec=0.1)
            except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
                interrupted = True  # Ctrl-C / SIGTERM: stop the graph and report
                break
            exited = [p for p in procs if p.proc.poll() is not None]
            if exited:
                failure = exited[0].failure()
                break
            if time.monotonic() > deadline:
                if any(s.on_exit == graph_spec.ENDS_GRAPH for s in specs):
                    failure = f"graph did not finish within {timeout:.0f} s"
                break
        # collect the final diagnostics and results the nodes publish on shutdown
        end = time.monotonic() + 1.5
        while time.monotonic() < end and rclpy.ok():
            rclpy.spin_once(mon.node, timeout_sec=0.05)
    finally:
        for p in procs:
            if p.proc.poll() is None:
                os.killpg(p.proc.pid, signal.SIGINT)
        # as long as ros2 launch waits (SIGINT, 5 s, SIGTERM, 5 s, SIGKILL): on a loaded machine a
        # generator may be mid-generation and tearing torch down
        t_end = time.monotonic() + STOP_TIMEOUT
        for p in procs:
            try:
                p.proc.wait(timeout=max(0.1, t_end - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait()
                p.last_error = f"did not stop within {STOP_TIMEOUT:.0f} s of SIGINT"
        for _ in range(10):
            if not rclpy.ok():
                break
            rclpy.spin_once(mon.node, timeout_sec=0.05)
    # a node that crashed while being stopped fails the run too
    failure = failure or next((f for f in (p.failure() for p in procs) if f), "")
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
    if not failure and not interrupted and expected and len(mon.results) < expected:
        failure = f"only {len(mon.results)} of {expected} episode results arrived"
    if failure:  # last, so it is what the user reads
        sys.stdout.flush()
        print(f"warpd graph: {failure}", file=sys.stderr)
        return 1
    return 0


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
