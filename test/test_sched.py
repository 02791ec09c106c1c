"""Process scheduling options (warpd_ros.sched): CPU lists, and the nodes applying them.

The deployment split (controller on its own core, generator on the others at a positive
nice) only helps if the options reach every thread of the running node, DDS threads and the
generator's worker included; a malformed CPU list must stop the node at start-up, naming
the parameter.
"""

from __future__ import annotations

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


def test_apply_scheduling_reaches_threads_started_before_and_after():
    """In a child process: a thread started before, one after; both pinned and niced."""
    code = """
import os, threading, time
from warpd_ros.sched import apply_scheduling
ev = threading.Event(); tids = []
def body():
    tids.append(threading.get_native_id()); ev.wait()
t1 = threading.Thread(target=body); t1.start()
while not tids: time.sleep(0.01)
applied = apply_scheduling("0", 5, 0, info=lambda m: None, warn=print)
t2 = threading.Thread(target=body); t2.start()
while len(tids) < 2: time.sleep(0.01)
for tid in tids + [threading.get_native_id()]:
    assert os.sched_getaffinity(tid) == {0}, (tid, os.sched_getaffinity(tid))
    assert os.getpriority(os.PRIO_PROCESS, tid) == 5, (tid, os.getpriority(os.PRIO_PROCESS, tid))
ev.set(); print("OK", applied)
"""
    r = subprocess.run(["python", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK {'cpu_affinity': [0], 'nice': 5}" in r.stdout


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


@requires_ros
def test_generator_node_runs_pinned_and_niced(init_bundle, tmp_path):
    cmd = _node("generator", "warpd_generator", bundle=str(init_bundle), autostart=True, cpu_affinity=0, nice=7)
    # cpu_affinity:=0 reaches ROS as an integer: the node must take it as a CPU list
    log = open(tmp_path / "generator.log", "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
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
    finally:
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


@requires_ros
@pytest.mark.parametrize("executable,name", [("controller", "warpd_controller"), ("generator", "warpd_generator")])
def test_malformed_cpu_list_stops_node_naming_parameter(executable, name):
    r = subprocess.run(_node(executable, name, cpu_affinity="zero"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cpu_affinity" in r.stderr and "'zero'" in r.stderr, r.stderr
