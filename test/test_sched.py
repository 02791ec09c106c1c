"""Process-level deployment properties: scheduling options (warpd_ros.sched: CPU lists, and
the nodes applying them), and a generator process without torch on ONNX Runtime.

The deployment split (controller on its own core, generator on the others at a positive
nice) only helps if the options reach every thread of the running node, DDS threads and the
generator's worker included; a malformed CPU list must stop the node at start-up, naming
the parameter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest

from conftest import requires_ros


def test_parse_cpus_lists_and_ranges():
    from warpd_ros.sched import parse_cpus

    assert parse_cpus("") == set()
    assert parse_cpus("1") == {1}
    assert parse_cpus("0, 2") == {0, 2}
    assert parse_cpus("1-3,5") == {1, 2, 3, 5}
    for bad in ("a", "3-1", "-1", "1-x"):
        with pytest.raises(ValueError, match="cpu_affinity"):
            parse_cpus(bad)


# child-process prelude: one thread started (and parked) before the scheduling call
_PRELUDE = """
import os, threading, time
from warpd_ros.sched import apply_scheduling
ev = threading.Event(); tids = []
def body():
    tids.append(threading.get_native_id()); ev.wait()
t1 = threading.Thread(target=body); t1.start()
while not tids: time.sleep(0.01)
"""


def _run_child(code: str) -> str:
    r = subprocess.run(["python", "-c", _PRELUDE + code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_apply_scheduling_reaches_threads_started_before_and_after():
    """In a child process: a thread started before, one after; both pinned and niced."""
    out = _run_child("""
applied = apply_scheduling("0", 5, 0, info=lambda m: None, warn=print)
t2 = threading.Thread(target=body); t2.start()
while len(tids) < 2: time.sleep(0.01)
for tid in tids + [threading.get_native_id()]:
    assert os.sched_getaffinity(tid) == {0}, (tid, os.sched_getaffinity(tid))
    assert os.getpriority(os.PRIO_PROCESS, tid) == 5, (tid, os.getpriority(os.PRIO_PROCESS, tid))
ev.set(); print("OK", applied)
""")
    assert "OK {'cpu_affinity': [0], 'nice': 5}" in out


def test_middleware_affinity_moves_every_thread_but_the_caller():
    """The executor (calling) thread stays on cpu_affinity; the threads that exist at the call
    (where the DDS receive threads live) go to middleware_affinity."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs")
    out = _run_child("""
n = os.cpu_count()
applied = apply_scheduling("0", 0, 0, info=lambda m: None, warn=print, middleware_affinity=str(n - 1))
assert os.sched_getaffinity(0) == {0}, os.sched_getaffinity(0)
assert os.sched_getaffinity(tids[0]) == {n - 1}, os.sched_getaffinity(tids[0])
ev.set(); print("OK", applied)
""")
    assert "'middleware_affinity': [" in out
    # alone it does nothing, and says so
    out = _run_child("""
applied = apply_scheduling("", 0, 0, info=lambda m: None, warn=print, middleware_affinity="0")
ev.set(); print("OK", applied)
""")
    assert "needs cpu_affinity" in out and "OK {}" in out


def _thread_nice_and_cpus(pid: int) -> list[tuple[int, int, set[int]]]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out.append((int(tid), os.getpriority(os.PRIO_PROCESS, int(tid)), os.sched_getaffinity(int(tid))))
        except (ProcessLookupError, OSError):
            pass  # thread ended meanwhile
    return out


def _node(executable: str, name: str, **params) -> list[str]:
    from warpd_ros.graph import node_command
    from warpd_ros.graph_spec import NodeSpec

    return node_command(NodeSpec(executable, name, None, params))


@contextlib.contextmanager
def _running(cmd: list[str], log_path, env=None):
    """The node as a child process (own session), logging to ``log_path``; stopped at exit."""
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            yield p
        finally:
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _wait_for_log(p: subprocess.Popen, log_path, needle: str, timeout: float = 60.0) -> str:
    """The log once it contains ``needle`` (or the process ended, or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None and needle not in log_path.read_text():
        time.sleep(0.2)
    return log_path.read_text()


@requires_ros
def test_generator_node_runs_pinned_and_niced(init_bundle, tmp_path):
    cmd = _node("generator", "warpd_generator", bundle=str(init_bundle), autostart=True, cpu_affinity=0, nice=7)
    # cpu_affinity:=0 reaches ROS as an integer: the node must take it as a CPU list
    with _running(cmd, tmp_path / "generator.log", {**os.environ, "OMP_NUM_THREADS": "1"}) as p:
        deadline = time.monotonic() + 60
        threads = []
        while time.monotonic() < deadline and p.poll() is None:
            threads = _thread_nice_and_cpus(p.pid)
            if threads and all(n == 7 for _, n, _ in threads) and "nice: " in (tmp_path / "generator.log").read_text():
                break
            time.sleep(0.2)
        text = (tmp_path / "generator.log").read_text()
        assert p.poll() is None, text
        assert len(threads) > 3, text  # executor, DDS threads, the generation worker
        assert all(n == 7 and cpus == {0} for _, n, cpus in threads), (threads, text)


@requires_ros
@pytest.mark.parametrize("executable,name", [("controller", "warpd_controller"), ("generator", "warpd_generator")])
def test_malformed_cpu_list_stops_node_naming_parameter(executable, name):
    r = subprocess.run(_node(executable, name, cpu_affinity="zero"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cpu_affinity" in r.stderr and "'zero'" in r.stderr, r.stderr


@requires_ros
def test_controller_keeps_executor_thread_apart_from_middleware_threads(tmp_path):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs")
    cmd = _node("controller", "warpd_controller", autostart=True, mode="realtime", cpu_affinity=0,
                middleware_cpu_affinity="1", obs_dim=5, act_dim=2, action_low=[0.0], action_high=[512.0])
    with _running(cmd, tmp_path / "controller.log") as p:
        text = _wait_for_log(p, tmp_path / "controller.log", "other threads to CPUs")
        assert p.poll() is None, text
        threads = {tid: cpus for tid, _, cpus in _thread_nice_and_cpus(p.pid)}
        names = {tid: open(f"/proc/{p.pid}/task/{tid}/comm").read().strip() for tid in threads}
        # the main thread (tid == pid) runs the executor; Fast DDS names its threads dds.*
        assert threads[p.pid] == {0}, (threads, text)
        dds = [tid for tid, name in names.items() if name.startswith("dds.")]
        assert len(dds) > 3 and all(threads[tid] == {1} for tid in dds), (names, threads, text)


@requires_ros
def test_malformed_middleware_cpu_list_names_its_parameter():
    r = subprocess.run(_node("controller", "warpd_controller", cpu_affinity="0", middleware_cpu_affinity="x-1"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "middleware_cpu_affinity" in r.stderr and "'x-1'" in r.stderr, r.stderr


@requires_ros
def test_generator_on_onnx_runtime_runs_without_torch(init_bundle, tmp_path):
    """The generator node on an ONNX bundle never loads torch (libtorch not mapped)."""
    from warpd_core.export.writer import export_from_bundle

    export_from_bundle(str(init_bundle), str(tmp_path / "onnx_bundle"), onnx=True)
    cmd = _node("generator", "warpd_generator", bundle=str(tmp_path / "onnx_bundle"), backend="onnx", autostart=True)
    with _running(cmd, tmp_path / "generator.log") as p:
        text = _wait_for_log(p, tmp_path / "generator.log", "generator active")
        assert p.poll() is None and "backend onnx" in text, text
        maps = open(f"/proc/{p.pid}/maps").read()
        assert "libtorch" not in maps and "onnxruntime" in maps, text
