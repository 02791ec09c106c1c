"""Process hygiene of every node, each in its own process, with real signals: SIGINT (twice, as a
terminal and then ``ros2 launch`` send it) or SIGTERM, mid-episode or idle, ends every node with
exit code 0 and nothing on stderr; lifecycle ``cleanup`` releases the node's /diagnostics
publisher; ``shutdown`` from active sends the safe action and ends the process.

Node logs go to stdout here (RCUTILS_LOGGING_USE_STDOUT), so stderr holds only what a crash
writes: tracebacks, ``terminate called ...``, ``RCLError``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import requires_ros
from rosutil import lifecycle_state, spin_until

pytestmark = requires_ros

ENV = {**os.environ, "RCUTILS_LOGGING_USE_STDOUT": "1", "OMP_NUM_THREADS": "1"}


class Procs:
    """Node processes started from graph_spec NodeSpecs (the runner's command lines), stdout and
    stderr to separate files."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, spec) -> subprocess.Popen:
        from warpd_ros.graph import node_command

        out = open(self.dir / f"{spec.name}.out", "w")
        err = open(self.dir / f"{spec.name}.err", "w")
        p = subprocess.Popen(node_command(spec), stdout=out, stderr=err, start_new_session=True, env=ENV)
        self.procs[spec.name] = p
        return p

    def out(self, name: str) -> str:
        return (self.dir / f"{name}.out").read_text()

    def err(self, name: str) -> str:
        return (self.dir / f"{name}.err").read_text()

    def wait_for_log(self, name: str, text: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.out(name):
                return
            assert self.procs[name].poll() is None, f"{name} exited: {self.out(name)[-1500:]}{self.err(name)}"
            time.sleep(0.1)
        raise AssertionError(f"{name} did not log {text!r} within {timeout} s:\n{self.out(name)[-1500:]}")

    def kill_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _graph(bundle, **args):
    from warpd_ros import graph_spec

    return graph_spec.pusht_sim_graph({"model": str(bundle), "horizon": "8", "probability": "0.3", **args})


@pytest.mark.parametrize("phase, mode, sig", [
    ("idle", "lockstep", "SIGINT"), ("idle", "lockstep", "SIGTERM"),
    ("mid_episode", "lockstep", "SIGINT"), ("mid_episode", "lockstep", "SIGTERM"),
    ("mid_episode", "realtime", "SIGINT"),
])
def test_every_node_exits_0_with_empty_stderr_on_a_signal(init_bundle, tmp_path, phase, mode, sig):
    import rclpy

    from warpd_ros import graph_spec, qos
    from warpd_ros.msg import Action

    specs = _graph(init_bundle, episodes="0", max_steps="300", mode=mode, rate_hz="20.0")  # the sim would run forever
    if phase == "idle":  # generator, controller and perturbation up, nothing observed yet
        specs = [s for s in specs if s.executable != "pusht_sim"]
    procs = Procs(tmp_path)
    rclpy.init()
    try:
        probe = rclpy.create_node("signal_probe")
        actions = []
        probe.create_subscription(Action, "action", actions.append, qos.stream(graph_spec.stream_qos(mode), depth=100))
        for s in specs:
            procs.start(s)
        procs.wait_for_log("warpd_generator", "generator active", 60)
        procs.wait_for_log("warpd_controller", "controller active", 30)
        procs.wait_for_log("perturbation", "perturbation ready", 30)
        if phase == "mid_episode":
            assert spin_until(probe, lambda: len(actions) >= 30, 60), f"{len(actions)} actions"
        for p in procs.procs.values():
            os.killpg(p.pid, getattr(signal, sig))
        if sig == "SIGINT":  # the terminal's, then ros2 launch's own
            time.sleep(0.2)
            for p in procs.procs.values():
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGINT)
        for name, p in procs.procs.items():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} still running 20 s after {sig}:\n{procs.out(name)[-1500:]}")
    finally:
        procs.kill_all()
        rclpy.try_shutdown()
    for name, p in procs.procs.items():
        assert (p.returncode, procs.err(name)) == (0, ""), f"{name} after {sig} ({phase}):\n{procs.out(name)[-1500:]}"


def test_lifecycle_cleanup_releases_diagnostics_and_shutdown_from_active_sends_safe_action_and_exits(init_bundle, tmp_path):
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    from warpd_ros import qos
    from warpd_ros.graph_spec import NodeSpec
    from warpd_ros.msg import Action

    procs = Procs(tmp_path)
    # `fixed` safe action: what the shutdown must publish, recognisable whatever was sent before
    ctl = NodeSpec("controller", "warpd_controller", "config/pusht_controller.yaml",
                   {"autostart": False, "safe_mode": "fixed", "safe_action": [7.0, 9.0], "diagnostics_period": 0.2})
    gen = NodeSpec("generator", "warpd_generator", "config/pusht_generator.yaml",
                   {"autostart": False, "bundle": str(init_bundle), "horizon": 8, "diagnostics_period": 0.2})
    rclpy.init()
    try:
        probe = rclpy.create_node("lifecycle_probe")
        actions = []
        probe.create_subscription(Action, "action", actions.append, qos.stream("reliable", depth=100))
        clients = {n: probe.create_client(ChangeState, f"/{n}/change_state") for n in ("warpd_controller", "warpd_generator")}
        for s in (ctl, gen):
            procs.start(s)

        def transition(node, tid):
            assert clients[node].wait_for_service(timeout_sec=30), f"{node}: no lifecycle service"
            req = ChangeState.Request()
            req.transition.id = tid
            fut = clients[node].call_async(req)
            assert spin_until(probe, fut.done, 60), f"{node}: transition {tid} got no answer"
            assert fut.result().success, f"{node}: transition {tid} failed:\n{procs.out(node)[-1500:]}"

        def diagnostics_publishers(node) -> int:
            spin_until(probe, lambda: False, 0.5)  # graph changes reach the probe
            return sum(1 for i in probe.get_publishers_info_by_topic("/diagnostics") if i.node_name == node)

        for node in clients:
            assert lifecycle_state(probe, node) == "unconfigured", f"{node}: no answer to get_state"
            for _ in range(3):
                transition(node, Transition.TRANSITION_CONFIGURE)
                transition(node, Transition.TRANSITION_CLEANUP)
            assert diagnostics_publishers(node) == 0, f"{node}: /diagnostics publisher left after cleanup"
            transition(node, Transition.TRANSITION_CONFIGURE)
            assert diagnostics_publishers(node) == 1, f"{node}: one /diagnostics publisher per configured node"

        transition("warpd_controller", Transition.TRANSITION_ACTIVATE)
        transition("warpd_generator", Transition.TRANSITION_ACTIVATE)
        transition("warpd_controller", Transition.TRANSITION_ACTIVE_SHUTDOWN)
        transition("warpd_generator", Transition.TRANSITION_ACTIVE_SHUTDOWN)
        spin_until(probe, lambda: any(a.source == Action.SOURCE_SAFE for a in actions), 5)
        rcs = {}
        for name, p in procs.procs.items():
            try:
                rcs[name] = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rcs[name] = None
    finally:
        procs.kill_all()
        rclpy.try_shutdown()
    safe = [list(a.data) for a in actions if a.source == Action.SOURCE_SAFE]
    assert safe == [[7.0, 9.0]], f"shutdown from active must send the safe action once, got {safe}"
    for name, rc in rcs.items():
        assert (rc, procs.err(name)) == (0, ""), f"{name} after shutdown:\n{procs.out(name)[-1500:]}"


def test_incompatible_qos_is_an_error_naming_the_topic(tmp_path):
    """A perturbation node left on `reliable` beside a best-effort observation stream says so at
    ERROR (it used to count zero perturbations with one WARN line)."""
    import rclpy

    from warpd_ros import qos
    from warpd_ros.graph_spec import NodeSpec
    from warpd_ros.msg import Observation

    procs = Procs(tmp_path)
    rclpy.init()
    try:
        probe = rclpy.create_node("qos_probe")
        pub = probe.create_publisher(Observation, "observation", qos.stream("sensor"))
        procs.start(NodeSpec("perturbation", "perturbation", "config/pusht_perturbation.yaml", {"obs_qos": "reliable"}))
        procs.wait_for_log("perturbation", "perturbation ready", 30)
        end = time.monotonic() + 20
        while "incompatible QoS" not in procs.out("perturbation") and time.monotonic() < end:
            pub.publish(Observation())
            spin_until(probe, lambda: False, 0.2)
        os.killpg(procs.procs["perturbation"].pid, signal.SIGINT)
        procs.procs["perturbation"].wait(timeout=15)
    finally:
        procs.kill_all()
        rclpy.try_shutdown()
    lines = [ln for ln in procs.out("perturbation").splitlines() if "incompatible QoS" in ln]
    assert lines and "[ERROR]" in lines[0], procs.out("perturbation")[-1500:]
    assert "'/observation'" in lines[0] and "RELIABILITY" in lines[0] and "obs_qos" in lines[0]
