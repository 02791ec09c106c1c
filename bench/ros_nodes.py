"""ROS-side helper processes of ``warpd bench`` (started by :mod:`warpd_core.bench.ros_loop`
and :mod:`warpd_core.bench.controller`; not part of a robot graph).

A script of the checkout, outside both installs (colcon installs ``warpd_ros/``, pip
``warpd_core``), so no robot carries it; ``warpd_core.bench`` imports no ROS and starts it
with ``python bench/ros_nodes.py MODE`` (:func:`warpd_core.bench.common.bench_node_cmd`).

Modes (``python bench/ros_nodes.py MODE --help``):

``drive``     Publishes ``observation`` (warpd_ros/Observation, best effort depth 1) at a fixed
              rate and times each one until the ``action`` answering it (same ``seq``) arrives,
              in this process: obs publish -> action receipt. Optionally publishes one policy
              first (transient local) so the controller acts from the start. Reads CPU time and
              resident memory of the processes named with ``--watch name=pid`` from /proc over
              the measured window and writes everything as JSON (``--out``).
``echo``      The transport floor: answers every Observation with an Action carrying the same
              ``seq`` and data (no policy), so drive(echo) - drive(controller) is the controller's
              own cost.
``weights``   Stand-in generator: publishes PolicyWeights of a given policy size at a fixed rate
              (the horizon rate), for runs without a model bundle.
``nodestep``  Calls the controller node's ``SimIO.on_observation`` directly (no transport) with real messages
              and prints one JSON line: latency percentiles and tracemalloc bytes per call.

Timing: ``time.monotonic_ns`` in one process for both ends, so no clock is shared between
processes. The publisher runs in the main thread and sleeps (releasing the GIL) between
observations; the executor runs in a second thread and stamps each Action on receipt.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message

from warpd_core.bench.common import proc_cpu_seconds, proc_maps_contain, proc_memory_mb, summarize_ns
from warpd_core.policy.spec import PolicySpec
from warpd_ros import qos
from warpd_ros.conversions import float32_array, float64_array
from warpd_ros.msg import Action, Observation, PolicyWeights
from warpd_ros.sched import apply_scheduling
from warpd_ros.stats import freeze_heap

INITIAL_GENERATION = 1_000_000_000  # the driver's own policy; generator policies count from 1


def spin(executor, kind: str) -> None:
    """Until shutdown; the EventsExecutor through ``spin_once`` (see warpd_ros.controller.make_executor)."""
    try:
        if kind == "events":
            while rclpy.ok():
                executor.spin_once(timeout_sec=0.2)
        else:
            executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


def set_scheduling(args) -> None:
    """--cpus / --middleware-cpus / --fifo for the threads of this process (warpd_ros.sched)."""
    apply_scheduling(args.cpus, 0, args.fifo, info=lambda m: None,
                     warn=lambda m: print(f"ros_nodes: {m}", file=sys.stderr), middleware_affinity=args.middleware_cpus)


def make_executor(kind: str):
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor()
    if kind == "single":
        return rclpy.executors.SingleThreadedExecutor()
    raise ValueError(f"executor must be events or single, got {kind!r}")


def policy_msg(spec: PolicySpec, generation: int, epoch: int, horizon: int, seed: int = 0) -> PolicyWeights:
    """PolicyWeights with small random weights (Kaiming-scaled: finite, bounded actions)."""
    rng = np.random.default_rng(seed)
    layers = [(rng.standard_normal((o, i)) * np.sqrt(2.0 / i), np.zeros(o))
              for i, o in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:])]
    m = PolicyWeights()
    m.model_id = "bench"
    m.generation = generation
    m.generator_epoch = epoch
    m.episode = -1
    m.horizon = horizon
    m.task_id = -1
    m.layer_sizes = [int(s) for s in spec.layer_sizes]
    m.activation = spec.activation
    m.weights = float32_array(spec.flatten(layers))
    return m


def _spec(args) -> PolicySpec:
    return PolicySpec(args.obs_dim, tuple(args.hidden), args.act_dim, "relu")


# -- drive ------------------------------------------------------------------------------------
class Driver(Node):
    def __init__(self, args):
        super().__init__("warpd_bench_driver")
        self.args = args
        self.pub = self.create_publisher(Observation, "observation", qos.stream(args.qos))
        self.create_subscription(Action, "action", self.on_action, qos.stream(args.qos))
        self.wpub = None
        if args.publish_policy:
            self.wpub = self.create_publisher(PolicyWeights, "policy_weights", qos.WEIGHTS)
            self.wpub.publish(policy_msg(_spec(args), INITIAL_GENERATION, secrets.randbits(63), args.horizon))
        self.seq0 = 0  # first measured seq
        self.n = 0
        self.recv = np.zeros(1, np.int64)
        self.source = np.zeros(1, np.int8)
        self.generation = np.zeros(1, np.int64)
        self.warm_policy = False  # an action computed by a policy arrived
        self.warm_generated = False  # an action computed by a generated (non-initial) policy arrived
        self.measuring = False

    def on_action(self, msg: Action) -> None:
        t = time.monotonic_ns()
        if self.measuring:
            i = msg.seq - self.seq0
            if 0 <= i < self.n and self.recv[i] == 0:
                self.recv[i] = t
                self.source[i] = msg.source
                self.generation[i] = msg.generation
        elif msg.source == Action.SOURCE_POLICY:
            self.warm_policy = True
            if msg.generation != INITIAL_GENERATION:
                self.warm_generated = True


def _watch(args) -> dict[str, int]:
    out = {}
    for item in args.watch:
        name, pid = item.split("=", 1)
        out[name] = int(pid)
    return out


def drive(args) -> int:
    rclpy.init()
    node = Driver(args)
    executor = make_executor(args.executor)
    executor.add_node(node)
    set_scheduling(args)
    freeze_heap()  # as the controller does: the floor should not include full GC passes
    spinner = threading.Thread(target=spin, args=(executor, args.executor), name="bench-executor", daemon=True)
    spinner.start()
    result: dict = {"rate_hz": args.rate, "duration_s": args.duration, "ok": False}
    try:
        result.update(_drive(node, args))
        result["ok"] = True
    except RuntimeError as e:
        result["error"] = str(e)
        print(f"bench driver: {e}", file=sys.stderr)
    finally:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        rclpy.try_shutdown()  # wakes the executor thread, which then returns
        spinner.join(timeout=2.0)
    # skip interpreter teardown: destroying rclpy objects while the daemon executor thread may
    # still hold them has hung this process at exit; the result is written and flushed
    os._exit(0 if result["ok"] else 1)


def _drive(node: Driver, args) -> dict:
    period_ns = int(1e9 / args.rate)
    # discovery: observation subscribers (controller [+ generator]) and an action publisher
    t_end = time.monotonic() + args.discovery_timeout
    while time.monotonic() < t_end:
        if node.pub.get_subscription_count() >= args.obs_subscribers and node.count_publishers("action") >= 1:
            break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"discovery: {node.pub.get_subscription_count()} observation subscriber(s), "
                           f"{node.count_publishers('action')} action publisher(s) after {args.discovery_timeout} s")
    rng = np.random.default_rng(0)
    pool = [float64_array(v) for v in rng.uniform(-1, 1, (64, args.obs_dim))]
    msg = Observation()
    msg.sim_epoch = secrets.randbits(63)
    msg.episode = 0
    msg.task_id = -1
    seq = 0

    def publish_at(due: int) -> int:
        nonlocal seq
        now = time.monotonic_ns()
        if due > now:
            time.sleep((due - now) * 1e-9)
        msg.seq = seq
        msg.reset = seq == 0
        msg.data = pool[seq & 63]
        t = time.monotonic_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 1_000_000_000)
        t = time.monotonic_ns()
        node.pub.publish(msg)
        seq += 1
        return t

    # warm-up: until the controller answers from a policy (a generated one when asked)
    t0 = time.monotonic_ns()
    due = t0
    warm_end = t0 + int(args.warmup * 1e9)
    warm_limit = t0 + int(args.warmup_timeout * 1e9)
    while True:
        publish_at(due)
        due += period_ns
        now = time.monotonic_ns()
        ready = node.warm_policy and (node.warm_generated or not args.expect_generated)
        if now >= warm_end and ready:
            break
        if now >= warm_limit:
            raise RuntimeError(f"warm-up: no action from a {'generated ' if args.expect_generated else ''}policy "
                               f"within {args.warmup_timeout} s (policy seen: {node.warm_policy})")
    warmup_s = (time.monotonic_ns() - t0) / 1e9

    # measured window
    n = int(round(args.rate * args.duration))
    node.recv = np.zeros(n, np.int64)
    node.source = np.full(n, -1, np.int8)
    node.generation = np.zeros(n, np.int64)
    t_pub = np.zeros(n, np.int64)
    t_due = np.zeros(n, np.int64)
    node.seq0, node.n = seq, n
    watch = _watch(args)
    watch["driver"] = os.getpid()
    cpu0 = {k: proc_cpu_seconds(p) for k, p in watch.items()}
    node.measuring = True
    w0 = time.monotonic_ns()
    due = w0 + period_ns
    skipped = 0
    for i in range(n):
        behind = time.monotonic_ns() - due
        if behind > period_ns:
            # this process was descheduled for more than a period: a sensor on its own clock would
            # not send the missed observations back to back, so skip their slots (counted)
            k = behind // period_ns
            skipped += k
            due += k * period_ns
        t_due[i] = due
        t_pub[i] = publish_at(due)
        due += period_ns
    time.sleep(max(0.2, 3 * period_ns * 1e-9))  # stragglers
    wall = (time.monotonic_ns() - w0) / 1e9
    cpu1 = {k: proc_cpu_seconds(p) for k, p in watch.items()}
    node.measuring = False

    got = node.recv > 0
    lat = node.recv[got] - t_pub[got]
    # deadline: the action must be there before the next observation is sent
    late = got & (node.recv - t_pub > period_ns)
    procs = {}
    for k, pid in watch.items():
        procs[k] = {"pid": pid, "cpu_pct": round(100.0 * (cpu1[k] - cpu0[k]) / wall, 1), **proc_memory_mb(pid),
                    "libtorch_loaded": proc_maps_contain(pid, "libtorch")}
    src = node.source[got]
    gens = node.generation[got]
    # per observation, for looking at where the misses fall (recv 0 = lost)
    np.savez_compressed(os.path.splitext(args.out)[0] + "_samples.npz", t_due=t_due, t_pub=t_pub, recv=node.recv,
                        source=node.source, generation=node.generation)
    return {
        "n_sent": n,
        "n_received": int(got.sum()),
        "lost": int(n - got.sum()),
        "late": int(late.sum()),
        "deadline_misses": int(n - got.sum() + late.sum()),
        "deadline_miss_pct": round(100.0 * (n - got.sum() + late.sum()) / max(n, 1), 4),
        "latency": summarize_ns(lat),
        "publish_jitter": summarize_ns(np.maximum(t_pub - t_due, 0)),
        "driver_skipped_slots": int(skipped),
        "actions_from_policy": int((src == Action.SOURCE_POLICY).sum()),
        "actions_safe": int((src == Action.SOURCE_SAFE).sum()),
        "policies_seen": int(np.unique(gens[gens > 0]).size),
        "warmup_s": round(warmup_s, 2),
        "window_s": round(wall, 3),
        "processes": procs,
    }


# -- echo -------------------------------------------------------------------------------------
class Echo(Node):
    def __init__(self, args):
        super().__init__("warpd_bench_echo")
        self.pub = self.create_publisher(Action, "action", qos.stream(args.qos))
        self.create_subscription(Observation, "observation", self.on_observation, qos.stream(args.qos))
        self.out = Action()

    def on_observation(self, msg: Observation) -> None:
        m = self.out
        m.header.stamp = msg.header.stamp
        m.seq = msg.seq
        m.episode = msg.episode
        m.sim_epoch = msg.sim_epoch
        m.data = msg.data
        self.pub.publish(m)


# -- weights ----------------------------------------------------------------------------------
class WeightsPublisher(Node):
    def __init__(self, args):
        super().__init__("warpd_bench_weights")
        self.pub = self.create_publisher(PolicyWeights, "policy_weights", qos.WEIGHTS)
        self.msg = policy_msg(_spec(args), 0, secrets.randbits(63), args.horizon)
        self.create_timer(1.0 / args.rate, self.tick)
        self.rng = np.random.default_rng(0)

    def tick(self) -> None:
        m = self.msg
        m.generation += 1
        m.header.stamp = self.get_clock().now().to_msg()
        # a fresh vector each time, as a generator would send (same size, same scale)
        w = np.frombuffer(m.weights, dtype=np.float32).copy()
        w *= np.float32(1.0 + 1e-3 * self.rng.standard_normal())
        m.weights = float32_array(w)
        self.pub.publish(m)


def spin_node(node_cls, args) -> int:
    rclpy.init()
    node = node_cls(args)
    executor = make_executor(args.executor)
    executor.add_node(node)
    set_scheduling(args)
    freeze_heap()
    try:
        spin(executor, args.executor)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# -- nodestep ---------------------------------------------------------------------------------
def nodestep(args) -> int:
    from warpd_core.bench.controller import alloc_per_call, time_calls
    from warpd_ros.controller import ControllerNode

    rclpy.init()
    spec = _spec(args)
    node = ControllerNode(parameter_overrides=[
        Parameter("mode", value="realtime"), Parameter("obs_qos", value="sensor"),
        Parameter("obs_dim", value=args.obs_dim), Parameter("act_dim", value=args.act_dim),
        Parameter("action_low", value=[-1e6]), Parameter("action_high", value=[1e6]),
        Parameter("max_policy_age", value=2**31 - 1),  # the parameter's maximum: never stale here
    ])
    node.trigger_configure()  # a managed node: configure + activate, as autostart does
    node.trigger_activate()
    try:
        node.on_weights(serialize_message(policy_msg(spec, 1, 1, 16)))  # the subscription is raw
        rng = np.random.default_rng(1)
        msgs = []
        for i, v in enumerate(rng.uniform(-1, 1, (256, args.obs_dim))):
            m = Observation()
            m.seq = i + 1  # distinct consecutive seqs: never taken for a re-sent observation
            m.data = float64_array(v)
            msgs.append(m)
        t = time_calls(node.io.on_observation, msgs, args.steps, warmup=min(2000, args.steps // 5))
        row = {**summarize_ns(t), **alloc_per_call(node.io.on_observation, msgs, args.alloc_steps)}
        if node.core.safe_steps:
            row["note"] = f"{node.core.safe_steps} safe actions (policy not active)"
        print(json.dumps(row), flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench/ros_nodes.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)

    def common(sp, policy=True):
        sp.add_argument("--executor", default="events", choices=["events", "single"])
        sp.add_argument("--qos", default="sensor", choices=["sensor", "reliable"])
        sp.add_argument("--fifo", type=int, default=0, help="SCHED_FIFO priority for all threads (0 = off)")
        sp.add_argument("--cpus", default="", help="CPUs to pin all threads to, e.g. '0' ('' = off)")
        sp.add_argument("--middleware-cpus", default="", help="with --cpus: CPUs for every thread but the main one")
        if policy:
            sp.add_argument("--obs-dim", type=int, default=5)
            sp.add_argument("--act-dim", type=int, default=2)
            sp.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
            sp.add_argument("--horizon", type=int, default=16)

    d = sub.add_parser("drive")
    common(d)
    d.add_argument("--rate", type=float, required=True, help="observations per second")
    d.add_argument("--duration", type=float, required=True, help="measured seconds")
    d.add_argument("--warmup", type=float, default=1.0, help="minimum warm-up seconds")
    d.add_argument("--warmup-timeout", type=float, default=60.0)
    d.add_argument("--discovery-timeout", type=float, default=30.0)
    d.add_argument("--obs-subscribers", type=int, default=1, help="observation subscribers to wait for")
    d.add_argument("--publish-policy", action="store_true", help="publish one policy first (transient local)")
    d.add_argument("--expect-generated", action="store_true", help="warm up until a generated policy acts")
    d.add_argument("--watch", nargs="*", default=[], metavar="NAME=PID")
    d.add_argument("--out", required=True, help="JSON result file")
    e = sub.add_parser("echo")
    common(e, policy=False)
    w = sub.add_parser("weights")
    common(w)
    w.add_argument("--rate", type=float, required=True, help="policies per second")
    s = sub.add_parser("nodestep")
    common(s)
    s.add_argument("--steps", type=int, default=5000)
    s.add_argument("--alloc-steps", type=int, default=1000)
    args = p.parse_args(argv)
    if args.mode == "drive":
        return drive(args)
    if args.mode == "echo":
        return spin_node(Echo, args)
    if args.mode == "weights":
        return spin_node(WeightsPublisher, args)
    return nodestep(args)


if __name__ == "__main__":
    sys.exit(main())
