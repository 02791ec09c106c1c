"""The graphs as a ROS user runs them: ``ros2 launch warpd_ros pusht_sim.launch.py`` executed by
the real launch system (launch / launch_ros / ros2cli from ../shared/ros2_launch, installed by
``make setup``), and the wheels-only runner under the same exit rules (graph_spec.ENDS_GRAPH /
REQUIRED): the graph ends with the simulation, a dead node ends it with its error last, Ctrl-C
is clean, the params files apply under a namespace, realtime perturbation reaches the sim.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, requires_ros
from rosutil import spin_until

pytestmark = requires_ros

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _launch_missing() -> str:
    try:
        import composition_interfaces  # noqa: F401  (launch_ros imports it at load time)
        import launch_ros  # noqa: F401
    except ImportError as e:
        return f"launch_ros not importable ({e}): `make setup` installs it from ../shared/ros2_launch when that folder exists"
    if shutil.which("ros2") is None:
        return "the ros2 command is not on PATH (source .venv/warpd-env.sh)"
    return ""


requires_launch = pytest.mark.skipif(bool(_launch_missing()), reason=_launch_missing() or "-")

CRASH_SIGNS = ("Traceback", "terminate called", "RCLError", "process has died", "KeyboardInterrupt")


def _graph_args(bundle, **kw) -> list[str]:
    # a lockstep controller waits for the first policy however long the loaded machine takes to
    # load the model (by default it acts without one after 10 s, and the scores would differ)
    patient = bundle.parent / "patient_controller.yaml"
    patient.write_text("/**/warpd_controller:\n  ros__parameters:\n    lockstep_policy_timeout: 300.0\n")
    args = {"model": str(bundle), "horizon": "8", "episodes": "1", "max_steps": "20", "seed": "3",
            "magnitude": "20.0", "probability": "0.3", "params_file": str(patient), **kw}
    return [f"{k}:={v}" for k, v in args.items()]


def _run(cmd, timeout: float, probe=None) -> subprocess.CompletedProcess:
    """Run ``cmd`` (own session) to its end; SIGKILL its group and fail if it does not end by itself."""
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True, env=ENV)
    try:
        if probe is not None:
            spin_until(probe, lambda: p.poll() is not None, timeout)
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        pytest.fail(f"{' '.join(cmd[:4])} did not end by itself within {timeout} s:\n{out[-3000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, out, "")


def _launch(*args) -> list[str]:
    return ["ros2", "launch", "warpd_ros", "pusht_sim.launch.py", *args]


def _runner(*args) -> list[str]:
    return [sys.executable, "-m", "warpd_ros.graph", "pusht_sim", *args]


def _sim_scores(out: str) -> list[tuple[str, str, int]]:
    """(seed, score, perturbations) of every episode pusht_sim logged."""
    return [(m[0], m[1], int(m[2])) for m in
            re.findall(r"episode \d+ seed (\d+): score ([\d.]+) .*? perturbations (\d+)", out)]


@requires_launch
def test_ros2_launch_ends_when_the_sim_finishes_and_scores_as_the_runner(init_bundle):
    launched = _run(_launch(*_graph_args(init_bundle)), 150)
    assert launched.returncode == 0, launched.stdout[-3000:]
    assert launched.stdout.count("process has finished cleanly") == 4, launched.stdout[-3000:]
    assert not [s for s in CRASH_SIGNS if s in launched.stdout], launched.stdout[-3000:]
    (seed, score, _), = _sim_scores(launched.stdout)
    ran = _run(_runner(*_graph_args(init_bundle)), 150)
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert f"[episode 0] seed {seed} score {score} " in ran.stdout  # lockstep: the same episode


def _last_line(out: str) -> str:
    return [ln for ln in out.splitlines() if ln.strip()][-1]


@pytest.mark.parametrize("how", [pytest.param("launch", marks=requires_launch), "runner"])
def test_dead_generator_ends_the_graph_with_its_error_last(how, tmp_path):
    bad = tmp_path / "nonexistent"
    args = [f"model:={bad}", "episodes:=1", "perturbation:=false"]
    res = _run(_launch(*args) if how == "launch" else _runner(*args), 90)
    last = _last_line(res.stdout)
    assert res.returncode == 1, res.stdout[-3000:]
    assert "warpd_generator exited with code 2" in last and str(bad) in last, res.stdout[-3000:]
    assert "re-sending" not in res.stdout.splitlines()[-1]


@requires_launch
def test_ctrl_c_mid_episode_every_node_finishes_cleanly_and_cli_sees_the_nodes(init_bundle):
    p = subprocess.Popen(_launch(*_graph_args(init_bundle, episodes="0", max_steps="300")), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=ENV)
    try:
        cli = lambda *a: subprocess.run(["ros2", *a, "--no-daemon"], capture_output=True, text=True, timeout=60, env=ENV)  # noqa: E731
        end = time.monotonic() + 90
        state = None
        while time.monotonic() < end and p.poll() is None:
            state = cli("lifecycle", "get", "/warpd_controller")
            if state.stdout.startswith("active"):
                break
            time.sleep(1.0)
        assert state is not None and state.stdout.startswith("active [3]"), (state.stdout + state.stderr) if state else ""
        described = cli("param", "describe", "/warpd_controller", "max_policy_age")
        assert "Control steps a policy may run" in described.stdout, described.stdout + described.stderr
        time.sleep(2.0)  # mid-episode (300 steps)
        os.killpg(p.pid, signal.SIGINT)  # as a terminal sends it: launch and every node
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    assert p.returncode == 0, out[-3000:]
    assert out.count("process has finished cleanly") == 4, out[-3000:]
    assert not [s for s in CRASH_SIGNS if s in out], out[-3000:]


@requires_launch
def test_included_under_a_namespace_the_params_apply_and_the_graph_runs(init_bundle, tmp_path):
    """PushROSNamespace('robot1') around the include, plus the graph's own namespace:= and remap:=
    arguments: the nodes live in /robot1/arm, the results go to the remapped topic."""
    import rclpy

    from warpd_ros import qos
    from warpd_ros.msg import EpisodeResult

    args = dict(a.split(":=", 1) for a in _graph_args(init_bundle, perturbation="false", namespace="arm",
                                                       remap="episode_result:=results"))
    outer = tmp_path / "two_robots.launch.py"
    outer.write_text(f'''
import os
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import PushROSNamespace


def generate_launch_description():
    graph = os.path.join(get_package_share_directory("warpd_ros"), "launch", "pusht_sim.launch.py")
    return LaunchDescription([GroupAction([
        PushROSNamespace("robot1"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(graph), launch_arguments={args!r}.items()),
    ])])
''')
    rclpy.init()
    try:
        probe = rclpy.create_node("namespace_probe")
        results, root = [], []
        probe.create_subscription(EpisodeResult, "/robot1/arm/results", results.append, qos.RESULTS)
        for elsewhere in ("/episode_result", "/robot1/episode_result", "/robot1/arm/episode_result"):
            probe.create_subscription(EpisodeResult, elsewhere, root.append, qos.RESULTS)
        res = _run(["ros2", "launch", str(outer)], 150, probe=probe)
        spin_until(probe, lambda: bool(results), 2)
    finally:
        rclpy.try_shutdown()
    assert res.returncode == 0, res.stdout[-3000:]
    assert len(results) == 1 and not root, res.stdout[-3000:]


@pytest.mark.parametrize("how", [pytest.param("launch", marks=requires_launch), "runner"])
def test_realtime_perturbation_reaches_the_sim(how, init_bundle):
    args = _graph_args(init_bundle, mode="realtime", rate_hz="20.0", max_steps="40", probability="0.5")
    res = _run(_launch(*args) if how == "launch" else _runner(*args), 150)
    assert res.returncode == 0, res.stdout[-3000:]
    if how == "launch":
        (_, _, perturbations), = _sim_scores(res.stdout)
    else:
        perturbations = int(re.search(r"\[episode 0\] .* perturbations (\d+)", res.stdout).group(1))
    assert perturbations > 0, res.stdout[-3000:]
    assert "incompatible QoS" not in res.stdout


def test_runner_namespace_and_remap_arguments(init_bundle):
    import rclpy

    from warpd_ros import qos
    from warpd_ros.msg import EpisodeResult

    args = _graph_args(init_bundle, perturbation="false", namespace="robot2", remap="episode_result:=/robot2_results")
    rclpy.init()
    try:
        probe = rclpy.create_node("remap_probe")
        results = []
        probe.create_subscription(EpisodeResult, "/robot2_results", results.append, qos.RESULTS)
        res = _run(_runner(*args), 150, probe=probe)
        spin_until(probe, lambda: bool(results), 2)
    finally:
        rclpy.try_shutdown()
    # the runner's monitor follows the same namespace and remappings: it saw the episode too
    assert res.returncode == 0 and len(results) == 1, res.stdout[-3000:]
    assert "[episode 0] seed 3" in res.stdout
