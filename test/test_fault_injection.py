"""Fault injection through real rclpy processes: what the controller publishes, step by step,
when the generator dies or is slow, when inputs are malformed, and when the simulation
restarts. Nodes are started one by one from the installed executables with the package's
params files (``warpd_ros.graph.node_command``, the command the launch file runs), so a test
can SIGKILL or restart any one of them. This test process observes ``action``,
``policy_weights`` and ``/diagnostics``; in test (c) it also plays the simulation and a
misbehaving generator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import requires_ros

pytestmark = requires_ros

H = 8  # horizon of the test bundle
RATE = 20.0  # realtime simulation rate (Hz)


# -- process and probe helpers ----------------------------------------------------------------
class Graph:
    """Starts nodes one at a time (own session each) and stops what is left on exit."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the machine is shared; torch takes one core

    def start(self, executable: str, params_file: str | None, tag: str, **parameters) -> subprocess.Popen:
        from warpd_ros.graph import node_command
        from warpd_ros.graph_spec import NodeSpec

        name = {"generator": "warpd_generator", "controller": "warpd_controller"}.get(executable, executable)
        cmd = node_command(NodeSpec(executable, name, params_file, parameters))
        log = open(os.path.join(self.log_dir, f"{tag}.log"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.env)
        p.tag = tag
        self.procs.append(p)
        return p

    def logs(self) -> str:
        out = []
        for p in self.procs:
            path = os.path.join(self.log_dir, f"{p.tag}.log")
            with open(path) as fh:
                out.append(f"--- {p.tag} (rc {p.poll()}) ---\n" + fh.read()[-2000:])
        return "\n".join(out)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def generator_params(bundle, **kw):
    p = {"bundle": str(bundle), "horizon": H, "seed": 0, "obs_qos": "reliable", "diagnostics_period": 0.25,
         "autostart": True}
    p.update(kw)
    return p


def controller_params(**kw):
    p = {"obs_qos": "reliable", "diagnostics_period": 0.25, "autostart": True}
    p.update(kw)
    return p


def sim_params(**kw):
    p = {"obs_qos": "reliable", "rate_hz": RATE, "headless": True, "record": ""}
    p.update(kw)
    return p


class Probe:
    """A node in the test process recording what the graph publishes."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from warpd_ros import qos
        from warpd_ros.msg import Action, EpisodeResult, PolicyWeights

        self.rclpy = rclpy
        self.node = rclpy.create_node("fault_injection_probe")
        self.actions: list = []  # in arrival order
        self.weights: list[tuple[int, int]] = []  # (generator_epoch, generation)
        self.diag: dict[str, dict] = {}
        self.results: list = []
        self.node.create_subscription(Action, "action", self.actions.append, qos.stream("reliable", depth=1000))
        # volatile reader: compatible with the transient-local publisher, sees every generation
        self.node.create_subscription(PolicyWeights, "policy_weights",
                                      lambda m: self.weights.append((m.generator_epoch, m.generation)),
                                      QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.node.create_subscription(EpisodeResult, "episode_result", self.results.append, qos.RESULTS)

    def _on_diag(self, m) -> None:
        from warpd_ros.diagnostics import parse

        for st in m.status:
            level = int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level)
            self.diag[st.name] = {"level": level, "message": st.message, **parse(st)}

    def spin_until(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.02)
            if predicate():
                return True
        return predicate()


@pytest.fixture
def probe():
    import rclpy

    rclpy.init()
    pr = Probe()
    try:
        yield pr
    finally:
        pr.node.destroy_node()
        rclpy.try_shutdown()


@pytest.fixture
def graph(tmp_path):
    g = Graph(str(tmp_path))
    try:
        yield g
    finally:
        g.stop()


def wait_generator_ready(probe, graph, timeout=90.0):
    """The generator publishes diagnostics once its bundle is loaded (torch import + bundle load:
    over 30 s when the 2 cores are shared with several other jobs)."""
    ok = probe.spin_until(lambda: "warpd_generator" in probe.diag, timeout)
    assert ok, "generator did not come up\n" + graph.logs()
    probe.diag.pop("warpd_generator")


def run_of_policy_steps(actions, n):
    """True once the last ``n`` actions were all computed by a policy."""
    from warpd_ros.msg import Action

    return len(actions) >= n and all(a.source == Action.SOURCE_POLICY for a in actions[-n:])


# -- (a) the generator is killed, then restarted ---------------------------------------------------
def test_generator_killed_controller_keeps_policy_then_safe_then_resumes_after_restart(init_bundle, probe, graph):
    from warpd_ros.msg import Action

    max_age = 24
    gen = graph.start("generator", "config/pusht_generator.yaml", "generator1",
                      **generator_params(init_bundle, lead_steps=2))
    wait_generator_ready(probe, graph)
    ctl = graph.start("controller", "config/pusht_controller.yaml", "controller",
                      **controller_params(mode="realtime", max_policy_age=max_age))
    graph.start("pusht_sim", "config/pusht_sim.yaml", "sim",
                **sim_params(mode="realtime", episodes=1, max_steps=5000, seed=1))
    assert probe.spin_until(lambda: run_of_policy_steps(probe.actions, 2 * H), 20), graph.logs()
    epoch1 = {e for e, _ in probe.weights}
    assert len(epoch1) == 1

    # SIGKILL the generator: no goodbye, no last message
    os.kill(gen.pid, signal.SIGKILL)
    gen.wait()
    n_kill = len(probe.actions)
    assert probe.spin_until(lambda: sum(a.source == Action.SOURCE_SAFE for a in probe.actions[n_kill:]) >= 10, 15), \
        graph.logs()
    gens1 = {g for e, g in probe.weights if e in epoch1}  # everything the dead generator published

    after = probe.actions[n_kill - 1:]
    seqs = [a.seq for a in after]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a step went unanswered"
    # step by step: the current policy keeps running (closed loop) until it is max_policy_age steps
    # old, then the safe action -- 'hold' in the shipped config: the last action sent, repeated
    swaps = 0
    last_policy_action = None
    for prev, a in zip(after, after[1:]):
        assert a.generation in gens1
        if a.generation != prev.generation:
            swaps += 1  # a policy published just before the kill may still be installed at its boundary
            assert a.policy_age == 1 and a.source == Action.SOURCE_POLICY
        else:
            assert a.policy_age == prev.policy_age + 1
        if a.policy_age <= max_age:
            assert a.source == Action.SOURCE_POLICY, (a.seq, a.policy_age)
            last_policy_action = list(a.data)
        else:
            assert a.source == Action.SOURCE_SAFE, (a.seq, a.policy_age)
            assert list(a.data) == last_policy_action
    assert swaps <= 1
    assert all(np.isfinite(a.data).all() and 0 <= min(a.data) and max(a.data) <= 512 for a in after)
    assert probe.spin_until(lambda: probe.diag.get("warpd_controller", {}).get("level") == 2, 3), probe.diag
    assert probe.diag["warpd_controller"]["stale_events"] >= 1

    # restart the generator; the same controller process picks up its policies (new epoch, generation 1..)
    n_restart = len(probe.actions)
    graph.start("generator", "config/pusht_generator.yaml", "generator2", **generator_params(init_bundle, lead_steps=2))

    def resumed():
        new = [g for e, g in probe.weights if e not in epoch1]
        return new and any(a.source == Action.SOURCE_POLICY for a in probe.actions[n_restart:])

    assert probe.spin_until(resumed, 90), graph.logs()  # the new process imports torch first
    assert probe.spin_until(lambda: run_of_policy_steps(probe.actions, H + 2), 5)
    new_gens = {g for e, g in probe.weights if e not in epoch1}
    first = next(a for a in probe.actions[n_restart:] if a.source == Action.SOURCE_POLICY)
    assert first.generation in new_gens and first.policy_age == 1
    assert min(new_gens) == 1  # the new generator run numbers its generations from 1 again
    assert all(a.source == Action.SOURCE_SAFE for a in probe.actions[n_restart:] if a.seq < first.seq)
    assert ctl.poll() is None, "the controller was not supposed to restart"
    assert probe.spin_until(lambda: probe.diag.get("warpd_controller", {}).get("level") == 0, 3), probe.diag


# -- (b) a generator slower than the horizon ----------------------------------------------------------
def test_slow_generator_controller_acts_every_step_and_late_generations_reported(init_bundle, probe, graph):
    from warpd_ros.msg import Action

    horizon = 4  # 0.2 s at 20 Hz; every generation takes > 0.5 s
    steps = 80
    graph.start("generator", "config/pusht_generator.yaml", "generator",
                **generator_params(init_bundle, horizon=horizon, lead_steps=2, extra_latency=0.5))
    wait_generator_ready(probe, graph)
    graph.start("controller", "config/pusht_controller.yaml", "controller",
                **controller_params(mode="realtime", max_policy_age=200))
    assert probe.spin_until(lambda: "warpd_controller" in probe.diag, 15), graph.logs()
    graph.start("pusht_sim", "config/pusht_sim.yaml", "sim", **sim_params(mode="realtime", episodes=1, max_steps=steps))
    assert probe.spin_until(lambda: len(probe.results) == 1, 25), graph.logs()
    probe.spin_until(lambda: any(a.seq == probe.results[0].steps - 1 for a in probe.actions), 3)
    assert probe.spin_until(lambda: probe.diag.get("warpd_generator", {}).get("late_generations", 0) > 0, 5), probe.diag
    gdiag = probe.diag["warpd_generator"]
    assert gdiag["level"] == 1 and "horizon boundary" in gdiag["message"]  # WARN
    assert gdiag["generation_latency_p50_ms"] > 500

    by_seq = {}
    for a in probe.actions:
        # answers to this simulation's observations; before and after the episode the controller
        # also publishes safe actions on its own (obs_timeout), repeating the last seq it saw
        if a.sim_epoch == probe.results[0].sim_epoch:
            by_seq.setdefault(a.seq, a)
    # the realtime sim steps on its own clock from the start: its first observations may go out
    # before discovery has matched it with the controller (up to a second on this busy machine);
    # from the first one that arrives, every step is answered
    first_seq = min(by_seq)
    assert first_seq <= 30 and sorted(by_seq) == list(range(first_seq, probe.results[0].steps)), \
        "the controller skipped a step"
    acts = [by_seq[s] for s in sorted(by_seq)]
    first = next(i for i, a in enumerate(acts) if a.source == Action.SOURCE_POLICY)
    # before the first policy: safe; from then on every step is computed by a policy, which runs
    # past its horizon (closed loop) while the next one is late
    assert all(a.source == Action.SOURCE_SAFE for a in acts[:first])
    assert all(a.source == Action.SOURCE_POLICY for a in acts[first:])
    assert max(a.policy_age for a in acts) > horizon
    assert len({a.generation for a in acts[first:]}) >= 2  # late policies are still installed


# -- (c) NaN observations and malformed weights from another process ------------------------------------
def _policy_msg(value, generation, epoch=77, horizon=4, sizes=(5, 8, 2), activation="relu"):
    from warpd_ros.conversions import float32_array
    from warpd_ros.msg import PolicyWeights

    n = sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:]))
    w = np.zeros(n, np.float32)
    w[-2:] = value  # constant output: zero weights, last bias = value
    m = PolicyWeights()
    m.model_id, m.generation, m.generator_epoch, m.horizon = "test", generation, epoch, horizon
    m.episode, m.task_id, m.activation = 0, -1, activation
    m.layer_sizes = list(sizes)
    m.weights = float32_array(w)
    return m


class FakeSim:
    """The test process as simulation and generator: publishes observations and weights to a
    controller and waits for the answer to each observation."""

    def __init__(self, probe, graph):
        from warpd_ros import qos
        from warpd_ros.msg import Observation, PolicyWeights

        self.probe, self.graph, self.seq, self.Observation = probe, graph, 0, Observation
        self.obs_pub = probe.node.create_publisher(Observation, "observation", qos.stream("reliable"))
        self.w_pub = probe.node.create_publisher(PolicyWeights, "policy_weights", qos.WEIGHTS)
        ok = probe.spin_until(lambda: self.obs_pub.get_subscription_count() > 0 and self.w_pub.get_subscription_count() > 0
                              and probe.node.count_publishers("action") > 0, 20)
        assert ok, graph.logs()
        probe.spin_until(lambda: False, 0.5)  # let the controller's writers match our readers too

    def step(self, data):
        m = self.Observation()
        m.seq, m.episode, m.sim_epoch, m.task_id, m.reset = self.seq, 0, 4242, -1, self.seq == 0
        m.data = list(map(float, data))
        n = len(self.probe.actions)
        self.obs_pub.publish(m)

        def answer():  # the controller also publishes on its own (safe action after obs_timeout)
            return next((a for a in self.probe.actions[n:] if a.seq == m.seq and a.sim_epoch == 4242), None)

        assert self.probe.spin_until(lambda: answer() is not None, 5), f"no action for seq {m.seq}\n" + \
            self.graph.logs()
        self.seq += 1
        return answer()


def test_bad_observations_and_malformed_weights_from_another_process(probe, graph):
    from warpd_ros.conversions import float32_array
    from warpd_ros.msg import Action

    safe = [256.0, 128.0]
    graph.start("controller", "config/pusht_controller.yaml", "controller",
                **controller_params(mode="realtime", safe_mode="fixed", safe_action=safe, max_policy_age=1000))
    sim = FakeSim(probe, graph)
    step, w_pub = sim.step, sim.w_pub
    w_pub.publish(_policy_msg([100.0, 200.0], generation=1))

    good = [10.0, 20.0, 30.0, 40.0, 0.5]
    # the first policy is there before the first observation (transient local)
    assert probe.spin_until(lambda: step(good).source == Action.SOURCE_POLICY, 5)
    nan = float("nan")
    bad_obs = [[nan, 20.0, 30.0, 40.0, 0.5], [10.0, 20.0, 30.0, 40.0], [float("inf")] * 5, [1e12] * 5, [],
               good + [1.0], [10.0, -1e300, 30.0, 40.0, 0.5]]
    for bad in bad_obs:
        a = step(bad)
        assert a.source == Action.SOURCE_SAFE and list(a.data) == safe, (bad, a)
        a = step(good)  # recovers on the next good observation
        assert a.source == Action.SOURCE_POLICY and list(a.data) == [100.0, 200.0] and a.generation == 1

    def rejected():
        return probe.diag.get("warpd_controller", {}).get("rejected_policies", -1)

    assert probe.spin_until(lambda: probe.diag.get("warpd_controller", {}).get("bad_observations") == len(bad_obs), 3), \
        probe.diag
    assert rejected() == 0

    def wrong_count(m):
        m.weights = float32_array(np.zeros(len(m.weights) - 1, np.float32))

    def non_finite(m):
        w = np.frombuffer(m.weights, np.float32).copy()
        w[3] = np.inf
        w[-1] = np.nan
        m.weights = float32_array(w)

    def oversized(m):
        m.layer_sizes = [5, 100_000, 100_000, 2]  # ~1e10 weights declared, 66 sent

    def activation(m):
        m.activation = "swish"

    def wrong_dims(m):
        m.layer_sizes = [4, 8, 2]

    def zero_horizon(m):
        m.horizon = 0

    def old_generation(m):
        m.generation = 1  # not newer than the running policy of the same generator run

    mutations = [wrong_count, non_finite, oversized, activation, wrong_dims, zero_horizon, old_generation]
    for k, mutate in enumerate(mutations):
        m = _policy_msg([300.0, 50.0], generation=10 + k)
        mutate(m)
        w_pub.publish(m)
        assert probe.spin_until(lambda: rejected() == k + 1, 5), (mutate.__name__, probe.diag.get("warpd_controller"))
        for _ in range(2):  # the good policy keeps acting
            a = step(good)
            assert a.source == Action.SOURCE_POLICY and a.generation == 1 and list(a.data) == [100.0, 200.0]
    reasons = probe.diag["warpd_controller"]["rejected_reasons"]
    counted = dict(kv.split("=") for kv in reasons.split(";"))
    assert counted == {"weight_count": "1", "nonfinite_weights": "1", "too_many_weights": "1", "unknown_activation": "1",
                       "wrong_io_sizes": "1", "bad_horizon": "1", "stale_generation": "1"}, reasons
    # activation froze the start-up heap: full collections skip it (DEPLOYING.md, CPU placement)
    assert int(probe.diag["warpd_controller"]["gc_frozen_objects"]) > 10_000, probe.diag["warpd_controller"]
    assert len(probe.diag["warpd_controller"]["gc_collections"].split("/")) == 3

    # a good policy is still accepted afterwards and installed at the horizon boundary
    w_pub.publish(_policy_msg([300.0, 50.0], generation=50))
    assert probe.spin_until(lambda: step(good).generation == 50, 5)
    a = probe.actions[-1]
    assert a.source == Action.SOURCE_POLICY and list(a.data) == [300.0, 50.0] and a.policy_age == 1
    assert rejected() == len(mutations)


# -- (d) the simulation restarts --------------------------------------------------------------------------
def test_restarted_sim_resynchronises_controller_and_generator(init_bundle, probe, graph):
    from warpd_ros.msg import Action

    graph.start("generator", "config/pusht_generator.yaml", "generator", **generator_params(init_bundle, lead_steps=0))
    wait_generator_ready(probe, graph)
    graph.start("controller", "config/pusht_controller.yaml", "controller", **controller_params(mode="lockstep"))
    sim1 = graph.start("pusht_sim", "config/pusht_sim.yaml", "sim1",
                       **sim_params(mode="lockstep", episodes=1, max_steps=1000, seed=1))
    # kill the first simulation in the middle of a horizon
    assert probe.spin_until(lambda: len({a.seq for a in probe.actions}) >= 2 * H + 3, 20), graph.logs()
    os.kill(sim1.pid, signal.SIGKILL)
    sim1.wait()
    epoch1 = {a.sim_epoch for a in probe.actions}
    gens1 = {a.generation for a in probe.actions}
    assert len(epoch1) == 1

    steps = 3 * H + 3
    graph.start("pusht_sim", "config/pusht_sim.yaml", "sim2",
                **sim_params(mode="lockstep", episodes=1, max_steps=steps, seed=5))
    assert probe.spin_until(lambda: any(r.sim_epoch not in epoch1 for r in probe.results), 25), graph.logs()
    res = next(r for r in probe.results if r.sim_epoch not in epoch1)
    # the result and the last actions travel on different topics: let the actions catch up
    probe.spin_until(lambda: {a.seq for a in probe.actions if a.sim_epoch == res.sim_epoch} >= set(range(res.steps)), 3)
    got = {}
    for a in probe.actions:
        if a.sim_epoch == res.sim_epoch:
            got[a.seq] = a  # a re-sent observation repeats its answer
    assert sorted(got) == list(range(res.steps)), sorted(got)
    acts = [got[s] for s in range(res.steps)]
    assert all(a.source == Action.SOURCE_POLICY for a in acts), [(a.seq, a.source) for a in acts]
    # every action of the new run comes from a policy generated for the new run, swapped exactly
    # at its horizon boundaries, as in an undisturbed lockstep run
    assert not ({a.generation for a in acts} & gens1), "the new simulation was driven by a policy of the old one"
    assert [a.policy_age for a in acts] == [s % H + 1 for s in range(res.steps)]
    for s in range(1, res.steps):
        assert (acts[s].generation != acts[s - 1].generation) == (s % H == 0), s


# -- observations stop ------------------------------------------------------------------------------------
def test_observation_timeout_gives_safe_action_and_error_status(probe, graph):
    """No observation for longer than ``obs_timeout`` seconds (realtime mode): the controller publishes the
    safe action on its own (a robot must not keep executing a stale command) and reports ERROR on
    /diagnostics; the next observation is answered by the policy again and the status recovers."""
    from warpd_ros.msg import Action

    safe = [256.0, 128.0]
    graph.start("controller", "config/pusht_controller.yaml", "controller",
                **controller_params(mode="realtime", safe_mode="fixed", safe_action=safe, max_policy_age=1000,
                                    obs_timeout=0.5))
    sim = FakeSim(probe, graph)
    sim.w_pub.publish(_policy_msg([100.0, 200.0], generation=1))
    good = [10.0, 20.0, 30.0, 40.0, 0.5]
    assert probe.spin_until(lambda: sim.step(good).source == Action.SOURCE_POLICY, 5)
    n, t0 = len(probe.actions), time.monotonic()
    assert probe.spin_until(lambda: len(probe.actions) > n, 3), "no action published after the observations stopped"
    a = probe.actions[n]
    assert a.source == Action.SOURCE_SAFE and list(a.data) == safe
    assert 0.4 <= time.monotonic() - t0 <= 1.5
    assert probe.spin_until(lambda: probe.diag.get("warpd_controller", {}).get("level") == 2, 2), probe.diag
    assert "observation" in probe.diag["warpd_controller"]["message"]
    a = sim.step(good)
    assert a.source == Action.SOURCE_POLICY and list(a.data) == [100.0, 200.0]
    assert probe.spin_until(lambda: probe.diag.get("warpd_controller", {}).get("level") == 0, 2), probe.diag
