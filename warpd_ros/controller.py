"""Controller node: executes the current generated MLP on every observation.

Two ways in and out, chosen by parameters:

* simulation (``inputs: []``): subscribes ``observation`` (warpd_ros/Observation), publishes
  ``action`` (warpd_ros/Action) answering each observation's ``seq``;
* hardware (``inputs: [a, b, ...]``): assembles the observation from standard messages
  (:mod:`warpd_ros.adapters`: JointState, PoseStamped, Odometry, Float64MultiArray), acts on
  every message of the first input, publishes the command on ``output.topic``
  (Float64MultiArray / Twist / JointTrajectory / PoseStamped) after per-dimension limits and a
  rate limit, and republishes the assembled observation on ``observation`` for the generator.

Always: ``policy_weights`` (warpd_ros/PolicyWeights, reliable + transient local) in,
``/diagnostics`` out. Every decision (validation, hot swap at the horizon boundary, max policy
age, safe action, clamping) is made by :class:`warpd_core.runtime.ControllerCore`; this node
only moves messages.

Modes: ``realtime`` acts on every observation at once; ``lockstep`` holds an observation that
arrives at a horizon boundary until the next policy is there (at most
``lockstep_policy_timeout`` seconds), so lockstep runs do not depend on timing. In realtime
mode, no observation for ``obs_timeout`` seconds sends the safe action and reports ERROR.

Managed (lifecycle) node: ``configure`` validates parameters and adapters, ``activate`` freezes
the start-up heap (so a full garbage collection costs microseconds, not milliseconds) and starts
acting, ``deactivate`` publishes the safe action once and stops commanding, ``cleanup``
releases. ``autostart: true`` configures and activates at start-up.

This module must never import torch (tested): the controller's process stays small and the
GIL is never held by a diffusion step.
"""

from __future__ import annotations

import gc
import secrets
import sys
import time

import numpy as np
import rclpy
import rclpy.exceptions
from rclpy.lifecycle import Node, State, TransitionCallbackReturn

from warpd_core.runtime.command_limits import CommandLimiter
from warpd_core.runtime.controller import SOURCE_SAFE, ControllerConfig, ControllerCore
from warpd_core.runtime.rate import RateMonitor, rate_status
from warpd_ros import qos
from warpd_ros.adapters import InputSpec, ObservationAssembler, OutputAdapter, OutputSpec, message_class
from warpd_ros.conversions import candidate_from_msg
from warpd_ros.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher
from warpd_ros.msg import Action, Observation, PolicyWeights
from warpd_ros.params import declare, declare_cpu_list
from warpd_ros.sched import apply_scheduling
from warpd_ros.stats import GcPauses, LatencyWindow, freeze_heap

EXECUTORS = ("events", "single")

_CORE_PARAMS = (
    # name, default, description -- one ControllerConfig field each
    ("obs_dim", 5, "Observation size."),
    ("act_dim", 2, "Action size."),
    ("action_low", [0.0], "Per-dimension lower action bound (1 entry broadcasts)."),
    ("action_high", [512.0], "Per-dimension upper action bound (1 entry broadcasts)."),
    ("safe_mode", "hold", "Safe action: hold | zero | last_valid | fixed."),
    ("safe_action", [], "Action for safe_mode=fixed."),
    ("max_policy_age", 64, "Control steps a policy may run before the safe action takes over."),
    ("expected_model_id", "", "Accept only policies of this model id ('' = any)."),
    ("max_weights", 4_000_000, "Reject policies with more weights than this."),
    ("obs_low", [], "Optional per-dimension lower observation bound."),
    ("obs_high", [], "Optional per-dimension upper observation bound."),
    ("max_policy_failures", 3, "Consecutive non-finite outputs before a policy is dropped."),
)


class ControllerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("warpd_controller", **kwargs)
        self._gc = GcPauses()  # first: destroy_node removes it, also after a failed start
        p = lambda *a: declare(self, *a)  # noqa: E731
        for name, default, desc in _CORE_PARAMS:
            p(name, default, desc)
        p("mode", "lockstep", "lockstep or realtime.")
        p("lockstep_policy_timeout", 5.0, "Lockstep: seconds to wait for the next policy.")
        p("obs_timeout", 1.0, "Realtime: seconds without an observation before the safe action (0 = off).")
        p("obs_qos", "reliable", "QoS of observation/action topics: reliable or sensor (best effort).")
        p("diagnostics_period", 1.0, "Seconds between /diagnostics messages.")
        p("inputs", [""], "Hardware observation inputs, in concatenation order ([''] / [] = the warpd Observation topic).")
        p("output.topic", "", "Hardware command topic ('' = the warpd Action topic 'action').")
        p("output.type", "std_msgs/Float64MultiArray", "Command message type: Float64MultiArray | Twist | JointTrajectory | PoseStamped.")
        p("output.joints", [""], "JointTrajectory joint names.")
        p("output.frame_id", "", "Header frame_id of the command (PoseStamped / JointTrajectory).")
        p("control_period", 0.01, "Hardware: seconds per control step (rate limit, JointTrajectory time_from_start).")
        p("command_rate_limit", [], "Per-dimension maximum command change per second ([] = none).")
        # the model's control rate against the trigger input's (warpd_core.runtime.rate)
        p("trigger_decimation", 1, "Hardware: act on every N-th message of the first input (e.g. 10 for a 10 Hz model on 100 Hz joint_states).")
        p("model_rate_hz", 0.0, "Control rate the model expects (0 = the control_rate_hz its policies carry, from bundle.json).")
        p("rate_tolerance", 0.1, "Relative difference between the control rate and the model's beyond which /diagnostics warns.")
        p("rate_error_tolerance", 0.5, "Relative difference beyond which /diagnostics reports ERROR.")
        p("configure_input_wait", 2.0, "Hardware: seconds configure waits for one message per input to check it (joint names, sizes); 0 = skip.")
        # Process-level real-time options, applied by main() (warpd_ros.sched).
        self.executor_kind = p("executor", "events", "events (rclpy.experimental.EventsExecutor, driven with spin_once: lower latency) or single (SingleThreadedExecutor).")
        if self.executor_kind not in EXECUTORS:
            raise ValueError(f"parameter executor must be one of {EXECUTORS}, got {self.executor_kind!r}")
        self.cpu_affinity = declare_cpu_list(self, "cpu_affinity", "CPUs to pin this process's threads to, e.g. "
                                             "'0', '0,1' or '0-1' ('' = off).")
        self.middleware_cpu_affinity = declare_cpu_list(
            self, "middleware_cpu_affinity", "With cpu_affinity: CPUs for every thread but the executor's (the DDS "
            "middleware's, which receive the policies), e.g. the generator's CPU ('' = same as cpu_affinity).")
        self.sched_fifo_priority = p("sched_fifo_priority", 0, "SCHED_FIFO priority 1-99 for the process's threads (0 = off; needs CAP_SYS_NICE).")
        self.autostart = p("autostart", False, "Configure and activate at start-up (simulation graphs).")
        self.core = None
        self.active = False
        self.config_error = ""
        self._handles: list = []

    # -- lifecycle -------------------------------------------------------------------------
    def _param(self, name: str):
        try:
            v = self.get_parameter(name).value
        except rclpy.exceptions.ParameterUninitializedException:
            return []  # an empty array parameter nobody set
        return list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as e:  # bad parameter or adapter: stay unconfigured, say which
            self.config_error = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            self.get_logger().error(f"configure failed: {e}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        g = self._param
        cfg = ControllerConfig(**{name: g(name) for name, _, _ in _CORE_PARAMS})
        self.mode = g("mode")
        if self.mode not in ("lockstep", "realtime"):
            raise ValueError(f"parameter mode must be lockstep or realtime, got {self.mode!r}")
        self.policy_timeout = float(g("lockstep_policy_timeout"))
        self.obs_timeout = float(g("obs_timeout"))
        self.period = float(g("control_period"))
        if self.period <= 0:
            raise ValueError(f"parameter control_period must be positive, got {self.period}")
        stream = qos.stream(g("obs_qos"))
        self._decimation = int(g("trigger_decimation"))
        if self._decimation < 1:
            raise ValueError(f"parameter trigger_decimation must be >= 1, got {self._decimation}")
        self._rate_tol = (float(g("rate_tolerance")), float(g("rate_error_tolerance")))
        if not 0 < self._rate_tol[0] <= self._rate_tol[1]:
            raise ValueError(f"parameters rate_tolerance / rate_error_tolerance must satisfy 0 < tolerance <= error "
                             f"tolerance, got {self._rate_tol}")
        self._model_hz_param = float(g("model_rate_hz"))
        self._model_hz = self._model_hz_param
        self._trigger_rate = RateMonitor()
        self.core = ControllerCore(cfg)
        self.latency = LatencyWindow()
        self.policy_wait = LatencyWindow(2000)  # lockstep: time observations waited for their policy
        self._held = None  # lockstep: (Observation, t_recv) waiting for a policy
        self._acted = None  # (sim_epoch, episode, seq) of the last answered observation
        self._episode_key = None
        self._last_obs_t = time.monotonic()
        self._timed_out = False
        self._t_start = time.monotonic()
        self._last_reason = ""
        self._last_log = 0.0
        self._stale_input = ""
        self._last_cmd = None  # hardware: the last command published (what `hold` repeats)
        inputs = [n for n in g("inputs") if n]
        self.hardware = bool(inputs)
        h = self._handles
        h.append(self.create_subscription(PolicyWeights, "policy_weights", self.on_weights, qos.WEIGHTS))
        if self.hardware:
            specs = [self._input_spec(n) for n in inputs]
            self.assembler = ObservationAssembler(specs)
            self._check_inputs_live(float(g("configure_input_wait")), stream)
            if self.assembler.dim != cfg.obs_dim:
                raise ValueError(f"inputs {inputs} give {self.assembler.dim} values, obs_dim is {cfg.obs_dim}")
            out_topic = g("output.topic") or "action"
            self.output = OutputAdapter(OutputSpec(out_topic, g("output.type"), [j for j in g("output.joints") if j],
                                                   g("output.frame_id")), cfg.act_dim, self.period)
            rate = g("command_rate_limit")
            self.limiter = CommandLimiter(cfg.low, cfg.high, rate if rate else None, dim=cfg.act_dim)
            self.pub = self.create_publisher(self.output.msg_type, out_topic, qos.COMMANDS)
            self.pub_obs = self.create_publisher(Observation, "observation", stream)
            h.append(self.pub_obs)
            self._obs_msg = Observation()
            self._obs_msg.sim_epoch = secrets.randbits(63)
            self._seq = 0
            for i, a in enumerate(self.assembler.adapters):
                cb = (lambda m, a=a: self.on_input(a, m, trigger=True)) if i == 0 else (lambda m, a=a: self.on_input(a, m))
                h.append(self.create_subscription(message_class(a.spec.type), a.spec.topic, cb, stream))
        else:
            self.pub = self.create_publisher(Action, "action", stream)
            h.append(self.create_subscription(Observation, "observation", self.on_observation, stream))
            self._action_msg = Action()
        h.append(self.pub)
        self.diag = DiagnosticsPublisher(self)
        h.append(self.create_timer(float(g("diagnostics_period")), self.publish_diagnostics))
        # watchdog: lockstep policy timeout, realtime observation timeout, stale hardware inputs
        tick = 0.05
        if self.hardware:
            tick = min(tick, min(a.spec.max_age for a in self.assembler.adapters) / 2)
        h.append(self.create_timer(tick, self._watchdog))
        self.get_logger().info(
            f"controller configured: obs_dim={cfg.obs_dim} act_dim={cfg.act_dim} mode={self.mode} "
            f"io={'hardware ' + str(inputs) + ' -> ' + self.output.spec.topic if self.hardware else 'warpd topics'} "
            f"max_policy_age={cfg.max_policy_age} safe_mode={cfg.safe_mode}"
        )

    def _check_inputs_live(self, wait: float, stream) -> None:
        """Take one message per input (if the robot is already publishing) and run it through
        its adapter, so a joint name missing from the robot's JointState fails ``configure``
        with the joint's name instead of surfacing later as a stale input."""
        if wait <= 0:
            return
        from rclpy.wait_for_message import wait_for_message

        for a in self.assembler.adapters:
            ok, msg = wait_for_message(message_class(a.spec.type), self, a.spec.topic, qos_profile=stream, time_to_wait=wait)
            if not ok:
                self.get_logger().warn(f"configure: no message on {a.spec.topic} within {wait} s; input {a.spec.name} not checked")
                continue
            a.update(msg)  # raises AdapterError (a ValueError) naming the missing joint
            a.stamp = float("-inf")  # checked only: the control loop starts from fresh messages

    def _input_spec(self, name: str) -> InputSpec:
        pre = f"input.{name}."
        fields = {"topic": "", "type": "", "joints": [""], "fields": ["position"], "size": 0, "max_age": 0.1}
        values = {}
        for key, default in fields.items():
            full = pre + key
            if not self.has_parameter(full):
                declare(self, full, default, f"Input {name}: {key}.")
            v = self._param(full)
            values[key] = [x for x in v if x] if isinstance(default, list) else v
        return InputSpec(name, values["topic"], values["type"], values["joints"], values["fields"],
                         int(values["size"]), float(values["max_age"]))

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        freeze_heap()
        self.active = True
        self._last_obs_t = time.monotonic()
        if self.hardware:
            self.limiter.reset()
        self.get_logger().info("controller active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        # stop commanding: one safe action, then silence
        self._publish_safe("deactivated")
        self.active = False
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.active = False
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._gc.remove()
        super().destroy_node()

    def _release(self) -> None:
        for hnd in self._handles:
            for destroy in (self.destroy_subscription, self.destroy_publisher, self.destroy_timer):
                try:
                    if destroy(hnd):
                        break
                except Exception:  # noqa: BLE001 - wrong kind of handle for this destroy
                    continue
        self._handles = []
        self.core = None
        self.active = False

    # -- inputs --------------------------------------------------------------------------
    def on_weights(self, msg: PolicyWeights) -> None:
        reason = self.core.offer_policy(candidate_from_msg(msg))
        if reason:
            self._throttled_warn(f"rejected policy generation {msg.generation}: {reason}")
            return
        if self._model_hz_param <= 0:
            self._model_hz = float(msg.control_rate_hz)
        if self._held is not None and not self.core.needs_policy():
            obs_msg, t_recv = self._held
            self._held = None
            self.policy_wait.add(time.perf_counter() - t_recv)
            self._act(obs_msg, None)

    def on_observation(self, msg: Observation) -> None:
        if not self.active:
            return
        t_recv = time.perf_counter()
        self._last_obs_t = time.monotonic()
        if (msg.sim_epoch, msg.episode, msg.seq) == self._acted:
            self.pub.publish(self._action_msg)  # a re-sent observation: repeat the answer
            return
        key = (msg.sim_epoch, msg.episode)
        if msg.reset or key != self._episode_key:
            self._episode_key = key
            self.core.new_episode(int(msg.episode))
        if self.mode == "lockstep" and self.core.needs_policy():
            self._held = (msg, t_recv)
            return
        self._act(msg, t_recv)

    def on_input(self, adapter, msg, trigger: bool = False) -> None:
        """Hardware mode: update one input; the first input's messages trigger a control step."""
        if not self.active:
            return
        t_recv = time.perf_counter()
        try:
            adapter.update(msg)
        except ValueError as e:  # malformed message: the input stays stale, say why
            self._throttled_warn(str(e))
            if not trigger:
                return
        if not trigger:
            return
        self._last_obs_t = time.monotonic()
        self._trigger_rate.tick(self._last_obs_t)
        if (self._trigger_rate.count - 1) % self._decimation:
            return  # decimated: this message only refreshed the input
        stale = self.assembler.stale()
        self._stale_input = stale
        m = self._obs_msg
        m.header.stamp = self.get_clock().now().to_msg()
        m.seq = self._seq
        m.reset = self._seq == 0
        m.data = self.assembler.obs.tolist()
        self._seq += 1
        self.pub_obs.publish(m)
        if stale:
            self._publish_safe(stale)
            return
        out = self.core.step(self.assembler.obs)
        self._send_command(out.action, out.source, m.header.stamp)
        self.latency.add(time.perf_counter() - t_recv)
        if out.source == SOURCE_SAFE:
            self._last_reason = out.reason
            self._throttled_warn(f"safe action: {out.reason}")

    def _watchdog(self) -> None:
        if self.core is None or not self.active:
            return
        if self._held is not None and time.perf_counter() - self._held[1] > self.policy_timeout:
            obs_msg, t_recv = self._held
            self._held = None
            self._throttled_warn(f"no policy within {self.policy_timeout:.1f} s; acting with what is there")
            self.policy_wait.add(time.perf_counter() - t_recv)
            self._act(obs_msg, None)
        if self.hardware:
            stale = self.assembler.stale()
            self._stale_input = stale
            if stale:  # the trigger input stopped (or another input is old): safe action
                self._publish_safe(stale)
                return
        if self.mode == "realtime" and self.obs_timeout > 0:
            silent = time.monotonic() - self._last_obs_t
            if silent > self.obs_timeout:
                if not self._timed_out:
                    self._timed_out = True
                    self.get_logger().error(f"no observation for {silent:.2f} s > obs_timeout {self.obs_timeout} s: safe action")
                self._publish_safe(f"no observation for {silent:.2f} s")
            else:
                self._timed_out = False

    # -- output --------------------------------------------------------------------------
    def _publish_safe(self, reason: str) -> None:
        if self.core is None:
            return
        out = self.core.safe_step(reason)
        self._last_reason = reason
        if self.hardware:
            self._send_command(out.action, out.source, self.get_clock().now().to_msg())
        else:
            m = self._action_msg
            m.header.stamp = self.get_clock().now().to_msg()
            m.data = out.action.tolist()
            m.generation = out.generation
            m.policy_age = out.policy_age
            m.source = out.source
            self.pub.publish(m)
        self._throttled_warn(f"safe action: {reason}")

    def _send_command(self, action: np.ndarray, source: int, stamp) -> None:
        """Hardware command: limits and rate limit, except that the safe action in ``hold`` mode
        repeats the last command actually published -- and publishes nothing when no command
        has been sent yet (there is no position to hold; a default could move the robot)."""
        if source == SOURCE_SAFE and self.core.cfg.safe_mode == "hold":
            if self._last_cmd is None:
                return
            cmd = self._last_cmd
        else:
            cmd = self.limiter(action, self.period)
            if self._last_cmd is None:
                self._last_cmd = np.empty_like(cmd)
            np.copyto(self._last_cmd, cmd)
        self.pub.publish(self.output.fill(cmd, stamp))

    def _act(self, obs_msg: Observation, t_recv: float | None) -> None:
        """Step and publish. ``t_recv`` None: the observation was held for a policy (its wait
        is recorded in ``policy_wait``, not in the obs->action latency)."""
        obs = np.frombuffer(obs_msg.data, dtype=np.float64) if len(obs_msg.data) else np.zeros(0)
        out = self.core.step(obs)
        m = self._action_msg
        m.header.stamp = obs_msg.header.stamp
        m.seq = obs_msg.seq
        m.episode = obs_msg.episode
        m.sim_epoch = obs_msg.sim_epoch
        m.data = out.action.tolist()
        m.generation = out.generation
        m.policy_age = out.policy_age
        m.source = out.source
        self.pub.publish(m)
        self._acted = (obs_msg.sim_epoch, obs_msg.episode, obs_msg.seq)
        if t_recv is not None:
            self.latency.add(time.perf_counter() - t_recv)
        if out.source == SOURCE_SAFE:
            self._last_reason = out.reason
            self._throttled_warn(f"safe action: {out.reason}")

    def _throttled_warn(self, text: str, period: float = 2.0) -> None:
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
            "policy_waits": len(self.policy_wait),
            "policy_wait_p50_ms": round(self.policy_wait.summary_us()["p50_us"] / 1e3, 3),
            "swaps": c.swaps,
            "active_generation": c.active_generation,
            "policy_age": c.policy_age,
            "safe_steps": c.safe_steps,
            "stale_events": c.stale_events,
            "bad_observations": c.bad_obs,
            "rejected_policies": sum(c.rejected.values()),
            "rejected_reasons": ";".join(f"{k}={v}" for k, v in sorted(c.rejected.items())),
            "last_safe_reason": self._last_reason,
            "stale_input": self._stale_input,
            "observation_timeout": self._timed_out,
            "gc_collections": "/".join(str(n) for n in self._gc.collections),
            "gc_max_pause_ms": round(self._gc.max_pause_s * 1e3, 3),
            "gc_frozen_objects": gc.get_freeze_count(),
            "trigger_rate_hz": round(self._trigger_rate.rate_hz(), 3),
            "trigger_decimation": self._decimation,
            "model_rate_hz": self._model_hz,
        }

    def publish_diagnostics(self) -> None:
        c = self.core
        if c is None:
            return
        if self._timed_out:
            level, text = ERROR, f"no observation for more than obs_timeout ({self.obs_timeout} s): safe action"
        elif self._stale_input:
            level, text = ERROR, f"{self._stale_input}: safe action"
        elif c.stale:
            level, text = ERROR, f"policy older than max_policy_age ({c.cfg.max_policy_age}): safe action"
        elif c.active_generation == 0:
            level, text = WARN, "waiting for the first policy"
        elif not self.active:
            level, text = WARN, "inactive"
        else:
            level, text = OK, "running"
        if self.hardware:
            r_level, r_text = rate_status(self._trigger_rate.rate_hz(), self._decimation, self._model_hz, *self._rate_tol)
            order = (OK, WARN, ERROR)  # diagnostic_msgs levels are bytes; rate_status's are 0 / 1 / 2
            if r_level > order.index(level):
                level, text = order[r_level], r_text
        self.diag.publish(level, text, self.stats())


def make_executor(kind: str):
    """``events``: rclpy.experimental.EventsExecutor (measured here: 35/105 us p50/p99 vs 98/217 us
    for the SingleThreadedExecutor, DESIGN.md); ``single``: the SingleThreadedExecutor."""
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor()
    return rclpy.executors.SingleThreadedExecutor()


def spin(executor, kind: str) -> None:
    """Run callbacks until shutdown. The EventsExecutor is driven with ``spin_once``: its
    ``spin()`` in rclpy 9.1.2 (Kilted wheels) dispatched no callback at all on this machine,
    timers included, while ``spin_once`` delivers everything (checked by ``warpd bench ros``)."""
    if kind == "events":
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.5)
    else:
        executor.spin()


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = ControllerNode()
    except ValueError as e:
        print(f"warpd_controller: configuration error: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    if node.autostart:
        node.trigger_configure()
        if node.core is None:  # configure failed: one line, non-zero exit
            print(f"warpd_controller: configuration error: {node.config_error}", file=sys.stderr)
            node.destroy_node()
            rclpy.try_shutdown()
            return 2
        node.trigger_activate()
    log = node.get_logger()
    apply_scheduling(node.cpu_affinity, 0, node.sched_fifo_priority, info=log.info, warn=log.warn,
                     middleware_affinity=node.middleware_cpu_affinity)
    executor = make_executor(node.executor_kind)
    executor.add_node(node)
    try:
        spin(executor, node.executor_kind)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
