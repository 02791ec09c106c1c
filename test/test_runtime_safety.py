"""Runtime safety under outside faults (issue 14), through real rclpy processes.

The controller (and, where the fault needs it, the generator and the simulation) run as their
installed executables with the package's params files; this test process plays the outside:
a second generator, a rogue observation publisher, a lifecycle and parameter client, or the
simulation itself (``FakeSim``), and checks what the controller publishes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

import rosutil
from conftest import REPO, requires_ros
from test_fault_injection import (  # noqa: F401 - fixtures
    H,
    FakeSim,
    _policy_msg,
    controller_params,
    generator_params,
    graph,
    probe,
    run_of_policy_steps,
    sim_params,
    wait_generator_ready,
)

pytestmark = requires_ros

CTL = "config/pusht_controller.yaml"
GOOD = [10.0, 20.0, 30.0, 40.0, 0.5]


# -- helpers -------------------------------------------------------------------------------------------
def call(probe, client, request, timeout=20.0, resend_every=None):
    answer = rosutil.call(probe.node, client, request, timeout, resend_every)
    assert answer is not None, f"no answer from {client.srv_name}"
    return answer


def transition(probe, node, label):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
           "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
    cli = probe.node.create_client(ChangeState, f"/{node}/change_state")
    # a transition is not idempotent, so it is never re-sent: the node answers a GetState (re-sent
    # until it does) first, giving the server time to match this new client's response reader
    assert rosutil.lifecycle_state(probe.node, node) is not None, f"{node}: no answer to get_state"
    req = ChangeState.Request()
    req.transition.id = ids[label]
    ok = call(probe, cli, req).success
    probe.node.destroy_client(cli)
    return ok


def set_param(probe, node, name, value):
    """SetParameters on ``node`` from this process; (successful, reason)."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    cli = probe.node.create_client(SetParameters, f"/{node}/set_parameters")
    req = SetParameters.Request()
    req.parameters = [Parameter(name, value=value).to_parameter_msg()]
    res = call(probe, cli, req, resend_every=2.0).results[0]  # setting a parameter twice answers the same
    probe.node.destroy_client(cli)
    return res.successful, res.reason


def obs_msg(seq, episode=0, sim_epoch=4242, data=GOOD, reset=None):
    from warpd_ros.msg import Observation

    m = Observation()
    m.seq, m.episode, m.sim_epoch, m.task_id = seq, episode, sim_epoch, -1
    m.reset = seq == 0 if reset is None else reset
    m.data = list(map(float, data))
    return m


def keyed_policy(value, generation, epoch=77, horizon=4, episode=0, sim_epoch=0):
    m = _policy_msg(value, generation, epoch=epoch, horizon=horizon)
    m.episode, m.sim_epoch = episode, sim_epoch
    return m


def quiet(probe, seconds):
    probe.spin_until(lambda: False, seconds)


def answers(probe, start, **match):
    return [a for a in probe.actions[start:] if all(getattr(a, k) == v for k, v in match.items())]


def diag(probe):
    return probe.diag.get("warpd_controller", {})


# -- 1: lockstep, generator killed --------------------------------------------------------------------------
def test_lockstep_generator_killed_runs_past_horizon_then_safe_action_and_error(init_bundle, probe, graph):
    """The sim re-sends its unanswered observation every action_timeout (1 s here); the re-sends must
    not restart lockstep_policy_timeout (2.5 s), or the boundary observation is held forever. After
    the timeout the controller acts like realtime mode: the current policy past its horizon, then
    the safe action at max_policy_age, ERROR on /diagnostics."""
    from warpd_ros.msg import Action

    max_age = 3 * H
    gen = graph.start("generator", "config/pusht_generator.yaml", "generator", **generator_params(init_bundle))
    wait_generator_ready(probe, graph)
    graph.start("controller", CTL, "controller", **controller_params(
        mode="lockstep", lockstep_policy_timeout=2.5, max_policy_age=max_age))
    graph.start("pusht_sim", "config/pusht_sim.yaml", "sim",
                **sim_params(mode="lockstep", episodes=1, max_steps=5000, seed=1, action_timeout=1.0))
    assert probe.spin_until(lambda: run_of_policy_steps(probe.actions, 2 * H), 30), graph.logs()
    os.kill(gen.pid, signal.SIGKILL)
    gen.wait()
    n = len(probe.actions)
    t_kill = time.monotonic()
    assert probe.spin_until(lambda: sum(a.source == Action.SOURCE_SAFE for a in probe.actions[n:]) >= 5, 10), \
        f"lockstep hang: {len(probe.actions) - n} actions in {time.monotonic() - t_kill:.1f} s\n" + graph.logs()
    after = probe.actions[n:]
    policy = [a for a in after if a.source == Action.SOURCE_POLICY]
    assert policy and max(a.policy_age for a in policy) == max_age  # past its horizon H, up to max_policy_age
    assert all(a.policy_age > max_age for a in after if a.source == Action.SOURCE_SAFE)
    assert all(np.isfinite(a.data).all() and 0 <= min(a.data) <= max(a.data) <= 512 for a in after)
    assert probe.spin_until(lambda: diag(probe).get("level") == 2, 3), probe.diag
    assert "max_policy_age" in diag(probe)["message"]


# -- 2: non-finite / out-of-range parameters fail configure, naming the parameter ------------------------------
@pytest.mark.parametrize("bad, name", [
    ({"action_high": "[.nan]"}, "action_high"),
    ({"safe_mode": "fixed", "safe_action": "[.inf, 1.0]"}, "safe_action"),
    ({"obs_low": "[.nan, 0.0, 0.0, 0.0, 0.0]", "obs_high": "[]"}, "obs_low"),
    ({"action_low": "[600.0]"}, "action_low"),  # above action_high 512
    ({"control_period": "0.0"}, "control_period"),
])
def test_bad_bound_or_period_fails_configure_with_one_line_naming_it(tmp_path, bad, name):
    from warpd_ros.graph import node_command
    from warpd_ros.graph_spec import NodeSpec

    cmd = node_command(NodeSpec("controller", "warpd_controller", CTL, {"autostart": True}))
    for k, v in bad.items():
        cmd += ["-p", f"{k}:={v}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    err = [line for line in r.stderr.splitlines() if line.startswith("warpd_controller:")]
    assert len(err) == 1 and name in err[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("missing", ["obs_dim", "action_low", "action_high"])
def test_robot_params_file_without_sizes_or_bounds_fails_configure_naming_it(tmp_path, missing):
    """No default fits every robot: a params file that leaves out a size or an action bound
    must not get PushT's (a 512 clamp in radians); configure fails naming the parameter."""
    from warpd_ros.graph import node_command
    from warpd_ros.graph_spec import NodeSpec

    params = {"autostart": True, "obs_dim": 3, "act_dim": 1, "action_low": [-1.0], "action_high": [1.0]}
    del params[missing]
    params_file = tmp_path / "robot.yaml"
    params_file.write_text(yaml.safe_dump({"/**/warpd_controller": {"ros__parameters": params}}))
    cmd = node_command(NodeSpec("controller", "warpd_controller", None, {})) + ["--params-file", str(params_file)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    err = [line for line in r.stderr.splitlines() if line.startswith("warpd_controller:")]
    assert len(err) == 1 and f"parameter {missing}: required" in err[0], r.stderr
    assert "Traceback" not in r.stderr


# -- 3: SetParameters refuses unsafe values and values that would not take effect ----------------------------
BAD_AT_RUNTIME = [
    ("max_policy_age", -5), ("action_low", [600.0]), ("action_high", [float("nan")]), ("action_high", [1.0, 2.0, 3.0]),
    ("safe_mode", "freeze"), ("mode", "fast"), ("obs_qos", "best"), ("obs_timeout", -1.0), ("max_weights", -1),
    ("control_period", 0.0), ("diagnostics_period", 0.0), ("lockstep_policy_timeout", float("inf")),
]


def test_set_parameters_rejects_bad_values_naming_the_parameter(init_bundle, probe, graph):
    graph.start("controller", CTL, "controller", **controller_params(mode="realtime"))
    graph.start("generator", "config/pusht_generator.yaml", "generator",
                **generator_params(init_bundle, autostart=False))
    graph.start("pusht_sim", "config/pusht_sim.yaml", "sim", **sim_params(mode="lockstep", episodes=0))
    assert probe.spin_until(lambda: "warpd_controller" in probe.diag, 20), graph.logs()
    for name, value in BAD_AT_RUNTIME:
        ok, reason = set_param(probe, "warpd_controller", name, value)
        assert not ok and name in reason, (name, value, reason)
    # type errors name the parameter (rclpy alone says "expected '2' got '4'")
    ok, reason = set_param(probe, "warpd_controller", "max_policy_age", "many")
    assert not ok and "max_policy_age" in reason and "integer" in reason, reason
    # a valid value on a configured controller would change nothing until the next configure: refused, saying so
    ok, reason = set_param(probe, "warpd_controller", "max_policy_age", 100)
    assert not ok and "configure" in reason, reason
    assert transition(probe, "warpd_controller", "deactivate") and transition(probe, "warpd_controller", "cleanup")
    assert set_param(probe, "warpd_controller", "max_policy_age", 100) == (True, "")
    ok, reason = set_param(probe, "warpd_controller", "action_high", [float("nan")])
    assert not ok and "action_high" in reason and "finite" in reason, reason
    assert transition(probe, "warpd_controller", "configure")
    # read at start-up only: read-only
    ok, reason = set_param(probe, "warpd_controller", "executor", "single")
    assert not ok and "executor" in reason

    # the generator (unconfigured) and the simulation
    for name, value in [("horizon", -1), ("lead_steps", -2), ("backend", "tensorflow"), ("threads", 0)]:
        ok, reason = set_param(probe, "warpd_generator", name, value)
        assert not ok and name in reason, (name, reason)
    ok, reason = set_param(probe, "warpd_generator", "horizon", "abc")
    assert not ok and "horizon" in reason and "integer" in reason, reason
    assert set_param(probe, "warpd_generator", "horizon", 4) == (True, "")
    for name, value in [("rate_hz", 0.0), ("max_steps", 10), ("mode", "realtime")]:
        ok, reason = set_param(probe, "pusht_sim", name, value)
        assert not ok and name in reason, (name, reason)


# -- 4 and 6: episode keys, and nothing to hold before anything was sent --------------------------------------
def test_old_episode_or_run_policy_never_answers_and_hold_sends_nothing_before_a_command(probe, graph):
    """safe_mode hold (the shipped PushT config): before anything was sent in an episode there is
    nothing to hold, and nothing is published (it used to be [0, 0]: the agent driven to the corner).
    A policy of the previous episode, or a policy staged for episode 0 of a simulation run that
    has since restarted (its episodes numbered from 0 again), never answers the new one."""
    from warpd_ros.msg import Action

    graph.start("controller", CTL, "controller", **controller_params(mode="realtime", source_timeout=0.3))
    sim = FakeSim(probe, graph)
    pub = sim.obs_pub

    def send(m, wait=0.4):
        n = len(probe.actions)
        pub.publish(m)
        probe.spin_until(lambda: answers(probe, n, seq=m.seq, sim_epoch=m.sim_epoch), wait)
        return answers(probe, n, seq=m.seq, sim_epoch=m.sim_epoch)

    for seq in range(3):  # no policy yet
        assert send(obs_msg(seq, sim_epoch=1)) == [], "hold published an action before anything was sent"
    sim.w_pub.publish(keyed_policy([100.0, 200.0], 1, horizon=50, episode=0, sim_epoch=1))
    assert probe.spin_until(lambda: any(a.source == Action.SOURCE_POLICY for a in send(obs_msg(3, sim_epoch=1))), 5)
    # the next policy for run 1, episode 0, is staged; then run 1 dies and run 2 starts, episode 0 again
    sim.w_pub.publish(keyed_policy([300.0, 50.0], 2, horizon=50, episode=0, sim_epoch=1))
    quiet(probe, 0.5)
    got = send(obs_msg(0, episode=0, sim_epoch=2))
    assert got == [], [(a.generation, list(a.data)) for a in got]  # neither run 1's running nor its staged policy
    sim.w_pub.publish(keyed_policy([7.0, 8.0], 3, horizon=50, episode=0, sim_epoch=2))
    assert probe.spin_until(lambda: [a.generation for a in send(obs_msg(1, sim_epoch=2))] == [3], 5)
    # episode boundary of run 2: the policy of episode 0 does not answer episode 1
    got = send(obs_msg(0, episode=1, sim_epoch=2))
    assert got == [], [(a.generation, list(a.data)) for a in got]
    sim.w_pub.publish(keyed_policy([9.0, 9.0], 4, horizon=50, episode=1, sim_epoch=2))
    assert probe.spin_until(lambda: [a.generation for a in send(obs_msg(1, episode=1, sim_epoch=2))] == [4], 5)
    assert all(a.generation != 2 for a in probe.actions)


def test_realtime_graph_every_policy_action_comes_from_a_policy_for_its_episode(init_bundle, probe, graph):
    """The real generator and simulation in realtime mode across episode boundaries."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from warpd_ros.msg import Action, PolicyWeights

    graph.start("generator", "config/pusht_generator.yaml", "generator", **generator_params(init_bundle, lead_steps=2))
    wait_generator_ready(probe, graph)
    keys = {}  # (generator_epoch, generation) -> (sim_epoch, episode) it was conditioned on
    probe.node.create_subscription(
        PolicyWeights, "policy_weights",
        lambda m: keys.__setitem__((m.generator_epoch, m.generation), (m.sim_epoch, m.episode)),
        QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    graph.start("controller", CTL, "controller", **controller_params(mode="realtime"))
    graph.start("pusht_sim", "config/pusht_sim.yaml", "sim", **sim_params(mode="realtime", episodes=3, max_steps=30))
    assert probe.spin_until(lambda: len(probe.results) == 3, 60), graph.logs()
    quiet(probe, 0.3)
    epoch = probe.results[0].sim_epoch
    acts = [a for a in probe.actions if a.sim_epoch == epoch and a.source == Action.SOURCE_POLICY]
    assert len({a.episode for a in acts}) >= 2  # at least one boundary crossed (all three on an idle machine)
    gen_epoch = {e for e, _ in keys}
    assert len(gen_epoch) == 1
    for a in acts:
        assert keys[(next(iter(gen_epoch)), a.generation)] == (epoch, a.episode), (a.episode, a.seq, a.generation)


# -- 5: nothing published while inactive ------------------------------------------------------------------
def test_no_action_while_inactive_even_for_an_observation_held_for_its_policy(probe, graph):
    from warpd_ros.msg import Action

    safe = [256.0, 128.0]
    graph.start("controller", CTL, "controller", **controller_params(mode="lockstep", safe_mode="fixed", safe_action=safe))
    sim = FakeSim(probe, graph)
    sim.w_pub.publish(keyed_policy([100.0, 200.0], 1, horizon=4))
    for _ in range(4):
        assert sim.step(GOOD).source == Action.SOURCE_POLICY
    n = len(probe.actions)
    sim.obs_pub.publish(obs_msg(4))  # a horizon boundary: held until the next policy
    quiet(probe, 0.5)
    assert len(probe.actions) == n
    assert transition(probe, "warpd_controller", "deactivate")
    assert probe.spin_until(lambda: len(probe.actions) > n, 3)
    sim.w_pub.publish(keyed_policy([300.0, 50.0], 2, horizon=4))  # arrives while inactive
    quiet(probe, 1.0)
    sim.obs_pub.publish(obs_msg(4))
    quiet(probe, 0.5)
    late = probe.actions[n:]
    assert len(late) == 1 and late[0].source == Action.SOURCE_SAFE and list(late[0].data) == safe, \
        [(a.seq, a.source, list(a.data)) for a in late]
    assert transition(probe, "warpd_controller", "activate")
    sim.seq = 4
    a = sim.step(GOOD)  # the held one was dropped at deactivation; the re-sent one is answered
    assert a.generation == 2 and list(a.data) == [300.0, 50.0]


# -- 7: a second generator run ---------------------------------------------------------------------------------
def test_second_generator_run_is_rejected_while_the_first_is_alive_then_takes_over_when_it_stops(probe, graph):
    graph.start("controller", CTL, "controller", **controller_params(
        mode="realtime", safe_mode="fixed", safe_action=[256.0, 128.0], generator_timeout=1.0, max_policy_age=10_000))
    sim = FakeSim(probe, graph)
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from warpd_ros.msg import PolicyWeights

    rogue = probe.node.create_publisher(PolicyWeights, "policy_weights",
                                        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                                   durability=DurabilityPolicy.TRANSIENT_LOCAL))
    sim.w_pub.publish(keyed_policy([100.0, 200.0], 1, epoch=77, horizon=2))
    assert probe.spin_until(lambda: sim.step(GOOD).generation == 1, 5)
    gen_a, gen_b = 2, 1
    data = set()
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:  # A publishes every horizon; B floods
        for _ in range(20):
            rogue.publish(keyed_policy([300.0, 50.0], gen_b, epoch=88, horizon=2))
            gen_b += 1
        sim.w_pub.publish(keyed_policy([100.0, 200.0], gen_a, epoch=77, horizon=2))
        gen_a += 1
        for _ in range(2):
            data.add(tuple(sim.step(GOOD).data))
    assert data == {(100.0, 200.0)}, data
    assert probe.spin_until(lambda: diag(probe).get("level") == 2 and "88" in diag(probe).get("message", ""), 3), \
        diag(probe)
    assert diag(probe)["following_generator"] == 77
    # A stops (killed); B is a restarted generator now: it takes over after generator_timeout
    quiet(probe, 1.5)
    rogue.publish(keyed_policy([300.0, 50.0], gen_b, epoch=88, horizon=2))
    assert probe.spin_until(lambda: tuple(sim.step(GOOD).data) == (300.0, 50.0), 5)


# -- 8: rogue observations ----------------------------------------------------------------------------------------
def test_observations_of_another_run_change_nothing(probe, graph):
    from warpd_ros.msg import Action

    graph.start("controller", CTL, "controller", **controller_params(
        mode="realtime", safe_mode="fixed", safe_action=[256.0, 128.0], max_policy_age=60, source_timeout=5.0,
        obs_timeout=5.0))
    sim = FakeSim(probe, graph)
    sim.w_pub.publish(keyed_policy([100.0, 200.0], 1, horizon=100, sim_epoch=4242))
    assert probe.spin_until(lambda: sim.step(GOOD).source == Action.SOURCE_POLICY, 5)
    before = sim.step(GOOD)
    for k in range(2000):  # another publisher, its own run: far more than max_policy_age observations
        sim.obs_pub.publish(obs_msg(k % 300, episode=k // 300, sim_epoch=999))
        if k % 100 == 0:
            probe.rclpy.spin_once(probe.node, timeout_sec=0)
    quiet(probe, 0.5)
    after = sim.step(GOOD)
    assert after.source == Action.SOURCE_POLICY and after.generation == 1
    assert after.policy_age == before.policy_age + 1, (before.policy_age, after.policy_age)
    assert not [a for a in probe.actions if a.sim_epoch == 999]
    assert probe.spin_until(lambda: diag(probe).get("foreign_observations", 0) > 0, 3), diag(probe)
    assert diag(probe)["bad_observations"] == 0 and diag(probe)["following_sim_run"] == 4242


def test_generator_ignores_observations_of_another_run(init_bundle, probe, graph):
    """The same burst must not move the generator's schedule either (it would generate for the
    other run and be late for the followed one)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from warpd_ros import qos
    from warpd_ros.msg import Observation, PolicyWeights

    graph.start("generator", "config/pusht_generator.yaml", "generator", **generator_params(init_bundle))
    wait_generator_ready(probe, graph)
    runs = []
    probe.node.create_subscription(PolicyWeights, "policy_weights", lambda m: runs.append((m.sim_epoch, m.obs_seq)),
                                   QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    pub = probe.node.create_publisher(Observation, "observation", qos.stream("reliable"))
    assert probe.spin_until(lambda: pub.get_subscription_count() > 0, 20), graph.logs()
    quiet(probe, 0.5)
    pub.publish(obs_msg(0, sim_epoch=4242))
    assert probe.spin_until(lambda: runs == [(4242, 0)], 10), (runs, graph.logs())
    for k in range(500):
        pub.publish(obs_msg(k % 50, episode=k // 50, sim_epoch=999))
    for seq in range(1, H + 1):
        pub.publish(obs_msg(seq, sim_epoch=4242))
    assert probe.spin_until(lambda: len(runs) >= 2, 10), runs
    quiet(probe, 0.5)
    assert runs == [(4242, 0), (4242, H)], runs  # one generation per horizon of the followed run, none for 999


# -- 10: the controller does not burn a core ---------------------------------------------------------------------
def test_active_controller_at_20_hz_uses_a_few_percent_of_a_cpu(probe, graph):
    """OpenBLAS spins a worker thread per core between the MLP's matrix products unless the process
    asks for one thread before numpy loads. Started without any BLAS variable set."""
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        graph.env.pop(v, None)
    ctl = graph.start("controller", CTL, "controller", **controller_params(mode="realtime", max_policy_age=10_000))
    sim = FakeSim(probe, graph)
    sim.w_pub.publish(_policy_msg([100.0, 200.0], 1, horizon=10_000, sizes=(5, 256, 256, 2)))
    assert probe.spin_until(lambda: sim.step(GOOD).generation == 1, 5)

    def cpu_s():
        with open(f"/proc/{ctl.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    c0, t0, steps = cpu_s(), time.monotonic(), 0
    while time.monotonic() - t0 < 3.0:
        sim.step(GOOD)
        steps += 1
        quiet(probe, 0.05)
    share = (cpu_s() - c0) / (time.monotonic() - t0)
    assert steps >= 30
    assert share < 0.3, f"controller used {100 * share:.0f} % of a CPU at ~{steps / 3:.0f} Hz"


# -- 11: start-up errors -------------------------------------------------------------------------------------------
def _graph(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "warpd_ros.graph", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.mark.parametrize("args, needle", [
    (["params_file:=/nonexistent/p.yaml"], "params_file"),
    (["horizon:=abc"], "horizon"),
    (["magnitude:=abc"], "magnitude"),
    (["horizon:=-1"], "horizon"),
])
def test_graph_runner_bad_argument_one_line(args, needle):
    r = _graph("pusht_sim", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_graph_runner_non_yaml_params_file_and_sim_configuration_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pusht_sim: [unclosed\n")
    r = _graph("pusht_sim", f"params_file:={bad}")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "YAML" in r.stderr, r.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("pusht_sim:\n  ros__parameters:\n    action_timeout: -1.0\n")
    r = _graph("pusht_sim", "perturbation:=false", f"params_file:={wrong}", "--log-dir", str(tmp_path / "logs"),
               timeout=120)
    assert r.returncode != 0
    assert "action_timeout" in r.stderr, r.stderr


# -- 12: oversized policy messages -----------------------------------------------------------------------------------
def test_oversized_policy_message_rejected_by_size_and_policy_keeps_acting(probe, graph):
    from warpd_ros.conversions import float32_array
    from warpd_ros.msg import Action

    ctl = graph.start("controller", CTL, "controller", **controller_params(
        mode="realtime", safe_mode="fixed", safe_action=[256.0, 128.0], max_policy_age=10_000, max_weights=100_000))
    sim = FakeSim(probe, graph)
    sim.w_pub.publish(_policy_msg([100.0, 200.0], 1, horizon=10_000))
    assert probe.spin_until(lambda: sim.step(GOOD).generation == 1, 5)
    big = _policy_msg([300.0, 50.0], 2, horizon=4)
    big.weights = float32_array(np.zeros(2_500_000, np.float32))  # 10 MB; max_weights allows 0.4 MB
    for k in range(3):
        big.generation = 2 + k
        sim.w_pub.publish(big)
        assert probe.spin_until(lambda: f"oversized_message={k + 1}" in diag(probe).get("rejected_reasons", ""), 10), \
            diag(probe)
        a = sim.step(GOOD)
        assert a.source == Action.SOURCE_POLICY and a.generation == 1
    assert ctl.poll() is None
