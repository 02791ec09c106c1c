"""Controller node: executes the current generated MLP on every observation.

Two ways in and out, chosen by parameters:

* simulation (``inputs: []``): subscribes ``observation`` (warpd_ros/Observation), publishes
  ``action`` (warpd_ros/Action) answering each observation's ``seq``;
* hardware (``inputs: [a, b, ...]``): assembles the observation from standard messages
  (:mod:`warpd_ros.adapters`: JointState, PoseStamped, Odometry, Float64MultiArray), acts on
  every message of the first input, publishes the command on ``output.topic``
  (Float64MultiArray / Twist / JointTrajectory / PoseStamped) after per-dimension limits and a
  rate limit, and republishes the assembled observation on ``observation`` for the generator.

The two are the node's two collaborators, :class:`~warpd_ros.controller_io.SimIO` and
:class:`~warpd_ros.controller_io.HardwareIO`; the node holds what they share. Always:
``policy_weights`` (warpd_ros/PolicyWeights, reliable + transient local) in, ``/diagnostics``
out. Every decision (validation, hot swap at the horizon boundary, max policy
age, safe action, clamping) is made by :class:`warpd_core.runtime.ControllerCore`; this node
only moves messages.

Modes: ``realtime`` acts on every observation at once; ``lockstep`` holds an observation that
arrives at a horizon boundary until the next policy is there (at most
``lockstep_policy_timeout`` seconds), so lockstep runs do not depend on timing. In realtime
mode, no observation for ``obs_timeout`` seconds sends the safe action and reports ERROR.

``obs_dim``, ``act_dim``, ``action_low`` and ``action_high`` have no default: the params file
states them (config/pusht_controller.yaml: 5, 2, [0], [512]); ``configure`` fails naming the
first one missing.

Managed (lifecycle) node: ``configure`` validates parameters and adapters, ``activate`` freezes
the start-up heap (so a full garbage collection costs microseconds, not milliseconds) and starts
acting, ``deactivate`` publishes the safe action once and stops commanding, ``cleanup``
releases, ``shutdown`` (from any state) publishes the safe action once if active, releases and
ends the process (exit code 0). ``autostart: true`` configures and activates at start-up.
SIGINT / SIGTERM end the process with exit code 0 (:mod:`warpd_ros.process`).

This module must never import torch (tested): the controller's process stays small and the
GIL is never held by a diffusion step.
"""

from __future__ import annotations

from warpd_ros.blas import single_threaded_blas

single_threaded_blas()  # before numpy loads: an idle OpenBLAS worker spins a whole core (README, item 10)

import gc  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import rclpy  # noqa: E402
from rclpy.lifecycle import Node, State, TransitionCallbackReturn  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402

from warpd_core.runtime.controller import SAFE_MODES, ControllerConfig, ControllerCore, Rejection  # noqa: E402
from warpd_ros import process, qos  # noqa: E402
from warpd_ros.controller_io import HardwareIO, SimIO  # noqa: E402
from warpd_ros.conversions import candidate_from_msg  # noqa: E402
from warpd_ros.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher  # noqa: E402
from warpd_ros.msg import PolicyWeights  # noqa: E402
from warpd_ros.params import Required, check_all, choice, declare, declare_cpu_list, guard, value_of, vector  # noqa: E402
from warpd_ros.sched import apply_scheduling  # noqa: E402
from warpd_ros.stats import GcPauses, LatencyWindow, freeze_heap  # noqa: E402

EXECUTORS = ("events", "single")
REPORT_S = 5.0  # a foreign generator stays in /diagnostics this long after its last policy
RELEASE_ACK_S = 1.0  # longest cleanup / shutdown waits for subscribers to acknowledge the last command


def _ordered(low: str, high: str, both: bool = True):
    """Check: ``get(low)`` <= ``get(high)`` per dimension (1 entry broadcasts; [] = unbounded)."""
    def check(v, get):
        lo, hi = list(get(low)), list(get(high))
        if not lo or not hi or (len(lo) != len(hi) and 1 not in (len(lo), len(hi))):
            return ""  # sizes are the vectors' own checks
        n = max(len(lo), len(hi))
        lo, hi = (lo * n if len(lo) == 1 else lo), (hi * n if len(hi) == 1 else hi)
        return "" if all(a <= b for a, b in zip(lo, hi)) else f"{low} {lo} exceeds {high} {hi}"
    return check


def _bounds(name: str, low: str, high: str, size_of: str, empty: bool = False):
    vec, order = vector(size_of, empty=empty), _ordered(low, high)
    return lambda v, get: vec(v, get) or order(v, get)


def _safe_action(v, get):
    if not list(v):
        return "needs safe_action (safe_mode fixed)" if get("safe_mode") == "fixed" else ""
    reason = vector("act_dim")(v, get)
    if reason:
        return reason
    lo, hi, n = list(get("action_low")), list(get("action_high")), len(v)
    lo, hi = (lo * n if len(lo) == 1 else lo), (hi * n if len(hi) == 1 else hi)
    if len(lo) == n == len(hi) and not all(a <= x <= b for a, x, b in zip(lo, v, hi)):
        return f"{list(v)} is outside [action_low, action_high] = [{lo}, {hi}]"
    return ""


_CORE_PARAMS = (
    # name, default, description, declare() keywords -- one ControllerConfig field each. The sizes
    # and the action bounds belong to the robot (or task): no default fits them all.
    ("obs_dim", Required(int), "Observation size.", {"range": (1, 1_000_000)}),
    ("act_dim", Required(int), "Action size.", {"range": (1, 1_000_000)}),
    ("action_low", Required(list), "Per-dimension lower action bound, finite (1 entry broadcasts).",
     {"check": _bounds("action_low", "action_low", "action_high", "act_dim")}),
    ("action_high", Required(list), "Per-dimension upper action bound, finite (1 entry broadcasts).",
     {"check": _bounds("action_high", "action_low", "action_high", "act_dim")}),
    ("safe_mode", "hold", "Safe action: hold | zero | last_valid | fixed.", {"check": choice(*SAFE_MODES)}),
    ("safe_action", [], "Action for safe_mode=fixed, inside [action_low, action_high].", {"check": _safe_action}),
    ("max_policy_age", 64, "Control steps a policy may run before the safe action takes over.",
     {"range": (1, 2**31 - 1)}),
    ("expected_model_id", "", "Accept only policies of this model id ('' = any; the graphs set the model they start).", {}),
    ("max_weights", 4_000_000, "Reject policies with more weights than this (also bounds a received message: "
     "4 bytes per weight).", {"range": (1, 2**31 - 1)}),
    ("obs_low", [], "Optional per-dimension lower observation bound.",
     {"check": _bounds("obs_low", "obs_low", "obs_high", "obs_dim", empty=True)}),
    ("obs_high", [], "Optional per-dimension upper observation bound.",
     {"check": _bounds("obs_high", "obs_low", "obs_high", "obs_dim", empty=True)}),
    ("max_policy_failures", 3, "Consecutive non-finite outputs before a policy is dropped.", {"range": (1, 1_000_000)}),
    ("generator_timeout", 2.0, "Seconds the followed generator run must have sent no policy before another run "
     "(a restarted generator) is followed; until then another run's policies are rejected. Keep it above the "
     "generator's period (horizon x control period).", {"range": (0.0, 3600.0)}),
)


class ControllerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("warpd_controller", **kwargs)
        self._gc = GcPauses()  # first: destroy_node removes it, also after a failed start
        p = lambda *a, **kw: declare(self, *a, **kw)  # noqa: E731
        for name, default, desc, kw in _CORE_PARAMS:
            p(name, default, desc, **kw)
        p("mode", "lockstep", "lockstep or realtime.", check=choice("lockstep", "realtime"))
        p("lockstep_policy_timeout", 5.0, "Lockstep: seconds to wait for the next policy; after that the current "
          "policy runs past its horizon, then the safe action after max_policy_age.", range=(0.001, 3600.0))
        p("obs_timeout", 1.0, "Realtime: seconds without an observation before the safe action (0 = off).",
          range=(0.0, 3600.0))
        p("source_timeout", 1.0, "Seconds the followed observation source (simulation run) must be silent before "
          "another one (a restarted simulation) is followed; until then others are ignored.", range=(0.0, 3600.0))
        p("obs_qos", "reliable", "QoS of observation/action topics: reliable or sensor (best effort).",
          check=choice("reliable", "sensor"))
        p("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", range=(0.05, 3600.0))
        p("inputs", [""], "Hardware observation inputs, in concatenation order ([''] / [] = the warpd Observation topic).")
        p("output.topic", "", "Hardware command topic ('' = the warpd Action topic 'action').")
        p("output.type", "std_msgs/Float64MultiArray", "Command message type: Float64MultiArray | Twist | JointTrajectory | PoseStamped.")
        p("output.joints", [""], "JointTrajectory joint names.")
        p("output.frame_id", "", "Header frame_id of the command (PoseStamped / JointTrajectory).")
        p("control_period", 0.01, "Hardware: seconds per control step (rate limit, JointTrajectory time_from_start).",
          range=(1e-6, 60.0))
        p("command_rate_limit", [], "Per-dimension maximum command change per second ([] = none).",
          check=vector("act_dim", empty=True, positive=True))
        # the model's control rate against the trigger input's (warpd_core.runtime.rate)
        p("trigger_decimation", 1, "Hardware: act on every N-th message of the first input (e.g. 10 for a 10 Hz model on "
          "100 Hz joint_states).", range=(1, 100000))
        p("model_rate_hz", 0.0, "Control rate the model expects (0 = the control_rate_hz its policies carry, from "
          "bundle.json).", range=(0.0, 1e6))
        p("rate_tolerance", 0.1, "Relative difference between the control rate and the model's beyond which "
          "/diagnostics warns.", range=(1e-6, 100.0))
        p("rate_error_tolerance", 0.5, "Relative difference beyond which /diagnostics reports ERROR (>= rate_tolerance).",
          range=(1e-6, 100.0), check=lambda v, get: "" if v >= get("rate_tolerance") else
          f"rate_error_tolerance {v} is below rate_tolerance {get('rate_tolerance')}")
        p("configure_input_wait", 2.0, "Hardware: seconds configure waits for one message per input to check it "
          "(joint names, sizes); 0 = skip.", range=(0.0, 60.0))
        # Process-level real-time options, applied by main() (warpd_ros.sched): start-up only.
        self.executor_kind = p("executor", "events", "events (rclpy.experimental.EventsExecutor, driven with spin_once: "
                               "lower latency) or single (SingleThreadedExecutor).", read_only=True,
                               check=choice(*EXECUTORS))
        self.cpu_affinity = declare_cpu_list(self, "cpu_affinity", "CPUs to pin this process's threads to, e.g. "
                                             "'0', '0,1' or '0-1' ('' = off).")
        self.middleware_cpu_affinity = declare_cpu_list(
            self, "middleware_cpu_affinity", "With cpu_affinity: CPUs for every thread but the executor's (the DDS "
            "middleware's, which receive the policies), e.g. the generator's CPU ('' = same as cpu_affinity).")
        self.sched_fifo_priority = p("sched_fifo_priority", 0, "SCHED_FIFO priority 1-99 for the process's threads "
                                     "(0 = off; needs CAP_SYS_NICE).", read_only=True, range=(0, 99))
        self.autostart = p("autostart", False, "Configure and activate at start-up (simulation graphs).", read_only=True)
        if self.executor_kind not in EXECUTORS:
            raise ValueError(f"parameter executor must be one of {EXECUTORS}, got {self.executor_kind!r}")
        self.core = None
        self.io = None  # SimIO or HardwareIO (warpd_ros.controller_io), made at configure
        self.active = False
        self.config_error = ""
        self.exit_requested = False  # a lifecycle shutdown transition: main() ends the process
        self._handles: list = []
        # Every other parameter is read at configure: changing one on a configured node is refused
        # (it would report success and change nothing), and bad values are refused at any time.
        self._configured = False  # set once configure succeeded (it declares the input.<name>.* parameters itself)
        guard(self, configure_only=lambda name: True, configured=lambda: self._configured)

    # -- lifecycle -------------------------------------------------------------------------
    def param(self, name: str):
        return value_of(self, name)

    def own(self, handle):
        """Keep a publisher / subscription / timer made at configure, for cleanup to release."""
        self._handles.append(handle)
        return handle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as e:  # bad parameter or adapter: stay unconfigured, say which
            self.config_error = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            self.get_logger().error(f"configure failed: {e}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self._configured = True
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        g = self.param
        check_all(self)  # params files and -p never pass the set-time checks: one line naming the parameter
        cfg = ControllerConfig(**{name: g(name) for name, *_ in _CORE_PARAMS})
        self.mode = g("mode")
        self.policy_timeout = float(g("lockstep_policy_timeout"))
        self.obs_timeout = float(g("obs_timeout"))
        self.max_msg_bytes = 4 * cfg.max_weights + 65536  # weights + the message's other fields
        stream = qos.stream(g("obs_qos"))
        self.qos_watch = qos.IncompatibleQosWatch(self)
        self._model_hz_param = float(g("model_rate_hz"))
        self.model_hz = self._model_hz_param
        self.core = ControllerCore(cfg)
        self.latency = LatencyWindow()
        self.last_obs_t = time.monotonic()  # the I/O sets it on every followed observation (sim) or trigger message (hardware)
        self._timed_out = False
        self._t_start = time.monotonic()
        self._last_reason = ""
        self._last_log = 0.0
        self._foreign_gen_last = (0, -1e9)  # (generator_epoch, monotonic time) of the last foreign policy
        # raw: the size is checked on the serialized bytes before a message is built from them
        self.own(self.create_subscription(PolicyWeights, "policy_weights", self.on_weights, qos.WEIGHTS, raw=True))
        inputs = [n for n in g("inputs") if n]
        # its publishers and subscriptions go into self._handles as they are made (node.own)
        self.io = HardwareIO(self, cfg, stream, inputs, g) if inputs else SimIO(self, stream, float(g("source_timeout")))
        self.diag = DiagnosticsPublisher(self)
        self.own(self.diag.publisher)  # released by cleanup with the rest: one per configure
        self.own(self.create_timer(float(g("diagnostics_period")), self.publish_diagnostics))
        # watchdog: lockstep policy timeout, realtime observation timeout, stale hardware inputs
        self.own(self.create_timer(self.io.tick, self._watchdog))
        self.get_logger().info(
            f"controller configured: obs_dim={cfg.obs_dim} act_dim={cfg.act_dim} mode={self.mode} "
            f"io={self.io.describe()} max_policy_age={cfg.max_policy_age} safe_mode={cfg.safe_mode}"
        )

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        freeze_heap()
        self.active = True
        self.last_obs_t = time.monotonic()
        self.io.activate()
        self.get_logger().info("controller active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        # stop commanding: one safe action, then silence (nothing is published while inactive,
        # not even the answer to an observation that was waiting for its policy)
        self.publish_safe("deactivated")
        self.active = False
        self.io.deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        # from active: stop commanding as deactivate does; then release and end the process
        if self.active:
            self.publish_safe("shutdown")
        self._release()
        self.exit_requested = True
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._gc.remove()
        super().destroy_node()

    def _release(self) -> None:
        self.active = False
        # the last command (the safe action of a shutdown or deactivate) must reach the robot
        # before its publisher goes: a reliable writer deleted right after a write loses the sample
        if self.io is not None and not self.io.flush(RELEASE_ACK_S):
            self.get_logger().warn(f"releasing: the last command was not acknowledged within {RELEASE_ACK_S} s")
        for hnd in self._handles:
            for destroy in (self.destroy_subscription, self.destroy_publisher, self.destroy_timer):
                try:
                    if destroy(hnd):
                        break
                except Exception:  # noqa: BLE001 - wrong kind of handle for this destroy
                    continue
        self._handles = []
        self.core = None
        self.io = None
        self._configured = False

    # -- policies and the watchdog ----------------------------------------------------------
    def on_weights(self, raw: bytes) -> None:
        """A serialized PolicyWeights. One larger than ``max_weights`` allows is rejected from its
        size before a message is built from it (no second copy of its weights)."""
        now = time.monotonic()
        if len(raw) > self.max_msg_bytes:
            self.core.count_rejection(Rejection.OVERSIZED_MESSAGE)
            self.throttled_warn(f"rejected a {len(raw)}-byte policy message: max_weights {self.core.cfg.max_weights} "
                                f"allows {self.max_msg_bytes} bytes")
            return
        msg = deserialize_message(raw, PolicyWeights)
        reason = self.core.offer_policy(candidate_from_msg(msg), now)
        if reason:
            if self.core.last_rejection is Rejection.FOREIGN_GENERATOR:
                self._foreign_gen_last = (int(msg.generator_epoch), now)
            self.throttled_warn(f"rejected policy generation {msg.generation}: {reason}")
            return
        if self._model_hz_param <= 0:
            self.model_hz = float(msg.control_rate_hz)
        self.io.policy_arrived()

    def _watchdog(self) -> None:
        if self.core is None or not self.active:
            return
        if self.io.watchdog():  # lockstep: a held observation past its timeout; hardware: stale inputs
            return
        if self.mode == "realtime" and self.obs_timeout > 0:
            silent = time.monotonic() - self.last_obs_t
            if silent > self.obs_timeout:
                if not self._timed_out:
                    self._timed_out = True
                    self.get_logger().error(f"no observation for {silent:.2f} s > obs_timeout {self.obs_timeout} s: safe action")
                self.publish_safe(f"no observation for {silent:.2f} s")
            else:
                self._timed_out = False

    # -- output --------------------------------------------------------------------------
    def publish_safe(self, reason: str) -> None:
        if self.core is None:
            return
        self.io.publish_safe(self.core.safe_step(reason))
        self._last_reason = reason
        self.throttled_warn(f"safe action: {reason}")

    def publish_command(self, pub, msg) -> bool:
        """The one place commands leave the node: nothing while inactive."""
        if not self.active:
            return False
        pub.publish(msg)
        return True

    def note_safe(self, reason: str, what: str = "safe action") -> None:
        """The core answered with the safe action: remember why (diagnostics) and say so."""
        self._last_reason = reason
        self.throttled_warn(f"{what}: {reason}")

    def throttled_warn(self, text: str, period: float = 2.0) -> None:
        now = time.monotonic()
        if now - self._last_log >= period:
            self._last_log = now
            self.get_logger().warn(text)

    def stats(self) -> dict:
        c = self.core
        elapsed = max(time.monotonic() - self._t_start, 1e-9)
        lat = self.latency.summary_us()
        return {
            "steps": c.steps,
            "rate_hz": round(c.steps / elapsed, 3),
            "latency_p50_us": round(lat["p50_us"], 1),
            "latency_p99_us": round(lat["p99_us"], 1),
            "swaps": c.swaps,
            "active_generation": c.active_generation,
            "policy_age": c.policy_age,
            "safe_steps": c.safe_steps,
            "stale_events": c.stale_events,
            "bad_observations": c.bad_obs,
            "rejected_policies": sum(c.rejected.values()),
            "rejected_reasons": ";".join(f"{k}={v}" for k, v in sorted(c.rejected.items())),
            "last_safe_reason": self._last_reason,
            "observation_timeout": self._timed_out,
            "following_generator": c.generators.run or 0,
            "foreign_generator": self._foreign_gen_last[0],
            "gc_collections": "/".join(str(n) for n in self._gc.collections),
            "gc_max_pause_ms": round(self._gc.max_pause_s * 1e3, 3),
            "gc_frozen_objects": gc.get_freeze_count(),
            **self.io.stats(),  # sim: lockstep waits, followed run; hardware: stale input, trigger rate
        }

    def publish_diagnostics(self) -> None:
        c = self.core
        if c is None:
            return
        now = time.monotonic()
        if self.qos_watch.error:
            level, text = ERROR, self.qos_watch.error
        elif self._timed_out:
            level, text = ERROR, f"no observation for more than obs_timeout ({self.obs_timeout} s): safe action"
        elif now - self._foreign_gen_last[1] < REPORT_S:
            level, text = ERROR, (f"rejecting policies of a second generator run (epoch {self._foreign_gen_last[0]}) "
                                  f"while following epoch {c.generators.run}")
        elif io_error := self.io.error():
            level, text = ERROR, io_error
        elif c.stale:
            level, text = ERROR, f"policy older than max_policy_age ({c.cfg.max_policy_age}): safe action"
        elif c.active_generation == 0:
            level, text = WARN, "waiting for the first policy"
        elif not self.active:
            level, text = WARN, "inactive"
        elif io_warning := self.io.warning(now):
            level, text = WARN, io_warning
        else:
            level, text = OK, "running"
        r_level, r_text = self.io.rate_status()
        order = (OK, WARN, ERROR)  # diagnostic_msgs levels are bytes; rate_status's are 0 / 1 / 2
        if r_level > order.index(level):
            level, text = order[r_level], r_text
        self.diag.publish(level, text, self.stats())


def make_executor(kind: str):
    """``events``: rclpy.experimental.EventsExecutor (measured here: 35/105 us p50/p99 vs 98/217 us
    for the SingleThreadedExecutor, DESIGN.md); ``single``: the SingleThreadedExecutor. Either is
    driven with ``spin_once`` (:func:`warpd_ros.process.run_node`): the EventsExecutor's ``spin()``
    in rclpy 9.1.2 (Kilted wheels) dispatched no callback at all on this machine, timers
    included, while ``spin_once`` delivers everything (checked by ``warpd bench ros``)."""
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor()
    return rclpy.executors.SingleThreadedExecutor()


def _place(node: ControllerNode) -> None:
    log = node.get_logger()
    apply_scheduling(node.cpu_affinity, 0, node.sched_fifo_priority, info=log.info, warn=log.warn,
                     middleware_affinity=node.middleware_cpu_affinity)


def main(args=None) -> int:
    return process.run_node(ControllerNode, "warpd_controller", args, ready=_place,
                            executor=lambda node: make_executor(node.executor_kind),
                            stop=lambda node: node.exit_requested)


if __name__ == "__main__":
    sys.exit(main())
