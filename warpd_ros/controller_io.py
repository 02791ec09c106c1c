"""The controller node's two ways in and out (:mod:`warpd_ros.controller`).

:class:`SimIO` speaks the warpd topics: ``observation`` (warpd_ros/Observation) in, ``action``
(warpd_ros/Action) out, one answer per observation ``seq``; it follows one simulation run,
answers a re-sent observation with the same action and, in ``lockstep`` mode, holds an
observation that arrives at a horizon boundary until the next policy is there.

:class:`HardwareIO` speaks standard messages: it assembles the observation from the configured
inputs (:mod:`warpd_ros.adapters`), acts on every N-th message of the first one, publishes the
command after the per-dimension and rate limits, republishes the assembled observation for the
generator, and sends the safe action when an input goes stale.

The node owns everything the two share -- the lifecycle, the :class:`ControllerCore` that makes
every decision, the policy subscription, the realtime observation timeout, ``/diagnostics`` --
and calls its I/O through the same few methods: ``watchdog``, ``publish_safe``,
``policy_arrived``, ``activate`` / ``deactivate``, ``error`` / ``warning`` / ``rate_status``,
``stats`` and ``flush`` (:class:`ControllerIO` has the defaults). Neither class publishes a command while the node is inactive: both go through
``node.publish_command``.
"""

from __future__ import annotations

import secrets
import time

import numpy as np
from rclpy.duration import Duration

from warpd_core.runtime.command_limits import CommandLimiter
from warpd_core.runtime.controller import SOURCE_SAFE, ControllerConfig
from warpd_core.runtime.follow import RunFollower
from warpd_core.runtime.rate import RateMonitor, rate_status
from warpd_ros import qos
from warpd_ros.adapters import InputSpec, ObservationAssembler, OutputAdapter, OutputSpec, message_class
from warpd_ros.msg import Action, Observation
from warpd_ros.params import declare
from warpd_ros.stats import LatencyWindow

REPORT_S = 5.0  # a foreign observation source stays in /diagnostics this long after its last message


class ControllerIO:
    """What the node calls on its I/O; the defaults are what an I/O without that concern does."""

    tick = 0.05  # watchdog period (s)

    def policy_arrived(self) -> None:
        """A policy was accepted."""

    def watchdog(self) -> bool:
        """Periodic checks; True = a safe action was sent and the node's own checks are skipped."""
        return False

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def error(self) -> str:
        """An ERROR for /diagnostics ('' = none)."""
        return ""

    def warning(self, now: float) -> str:
        """A WARN for /diagnostics ('' = none)."""
        return ""

    def rate_status(self) -> tuple[int, str]:
        """``(0 | 1 | 2, text)``: the control rate against the model's (0: fine or unknown)."""
        return 0, ""

    def flush(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every matched subscriber acknowledged the commands
        published so far; True when all did (the node calls it before releasing the publisher)."""
        return self.pub.wait_for_all_acked(Duration(seconds=timeout))


class SimIO(ControllerIO):
    """warpd Observation in, warpd Action out (``inputs: []``)."""

    def __init__(self, node, stream, source_timeout: float):
        self.node = node
        self.pub = node.own(node.create_publisher(Action, "action", stream,
                                                  event_callbacks=node.qos_watch.publisher("action")))
        node.own(node.create_subscription(Observation, "observation", self.on_observation, stream,
                                          event_callbacks=node.qos_watch.subscription("observation")))
        self._msg = Action()
        self.policy_wait = LatencyWindow(2000)  # lockstep: time observations waited for their policy
        self._held = None  # lockstep: (Observation, t_recv) waiting for a policy, t_recv of its first arrival
        self._overdue = False  # lockstep: a wait timed out; act without waiting until a policy comes
        self._acted = None  # (sim_epoch, episode, seq) of the last observation answered with a published action
        self._episode_key = None
        self.sources = RunFollower(source_timeout)  # the simulation run whose observations are used
        self._foreign = 0
        self._foreign_last = (0, -1e9)  # (sim_epoch, monotonic time) of the last ignored observation

    def describe(self) -> str:
        return "warpd topics"

    # -- in ----------------------------------------------------------------------------------
    def on_observation(self, msg: Observation) -> None:
        node = self.node
        if not node.active:
            return
        t_recv = time.perf_counter()
        now = time.monotonic()
        epoch = int(msg.sim_epoch)
        if not self.sources.allows(epoch, now):  # another publisher while ours is alive: no effect at all
            self._foreign += 1
            self._foreign_last = (epoch, now)
            node.throttled_warn(f"ignoring observations of simulation run {epoch}: following run {self.sources.run}")
            return
        if self.sources.heard(epoch, now):
            node.get_logger().info(f"following simulation run {epoch} (the previous run went silent)")
        node.last_obs_t = now
        seq_key = (msg.sim_epoch, msg.episode, msg.seq)
        if seq_key == self._acted:
            node.publish_command(self.pub, self._msg)  # a re-sent observation: repeat the answer
            return
        if self._held is not None and (self._held[0].sim_epoch, self._held[0].episode, self._held[0].seq) == seq_key:
            return  # a re-sent held observation: it keeps waiting from its first arrival
        key = (msg.sim_epoch, msg.episode)
        if msg.reset or key != self._episode_key:
            self._episode_key = key
            node.core.new_episode(int(msg.episode), epoch)
        if node.mode == "lockstep" and node.core.needs_policy() and not self._overdue:
            self._held = (msg, t_recv)
            return
        self._act(msg, t_recv)

    def policy_arrived(self) -> None:
        """A policy was accepted: lockstep waits again, and a held observation is answered."""
        self._overdue = False
        if self.node.active and self._held is not None and not self.node.core.needs_policy():
            obs_msg, t_recv = self._held
            self._held = None
            self.policy_wait.add(time.perf_counter() - t_recv)
            self._act(obs_msg, None)

    def watchdog(self) -> bool:
        """A held observation past ``lockstep_policy_timeout`` is answered. Returns False: the
        node's own checks (the realtime observation timeout) still run."""
        if self._held is None or time.perf_counter() - self._held[1] <= self.node.policy_timeout:
            return False
        obs_msg, t_recv = self._held
        self._held = None
        # Until a policy arrives, act on every observation as realtime mode does: the current
        # policy runs past its horizon, the safe action follows at max_policy_age.
        self._overdue = True
        self.node.get_logger().warn(f"no policy within lockstep_policy_timeout {self.node.policy_timeout:.1f} s; "
                                    "acting without waiting until one arrives")
        self.policy_wait.add(time.perf_counter() - t_recv)
        self._act(obs_msg, None)
        return False

    def deactivate(self) -> None:
        self._held = None  # not answered, not even once a policy comes: the node is inactive

    # -- out ---------------------------------------------------------------------------------
    def _act(self, obs_msg: Observation, t_recv: float | None) -> None:
        """Step and publish. ``t_recv`` None: the observation was held for a policy (its wait
        is recorded in ``policy_wait``, not in the obs->action latency)."""
        node = self.node
        obs = np.frombuffer(obs_msg.data, dtype=np.float64) if len(obs_msg.data) else np.zeros(0)
        out = node.core.step(obs)
        if out.nothing_to_hold:  # hold, and nothing sent this episode: send nothing (the sim stays put)
            node.note_safe(out.reason, "safe action (nothing to hold yet, nothing sent)")
            return
        m = self._msg
        m.header.stamp = obs_msg.header.stamp
        m.seq = obs_msg.seq
        m.episode = obs_msg.episode
        m.sim_epoch = obs_msg.sim_epoch
        m.data = out.action.tolist()
        m.generation = out.generation
        m.policy_age = out.policy_age
        m.source = out.source
        if node.publish_command(self.pub, m):
            self._acted = (obs_msg.sim_epoch, obs_msg.episode, obs_msg.seq)
        if t_recv is not None:
            node.latency.add(time.perf_counter() - t_recv)
        if out.source == SOURCE_SAFE:
            node.note_safe(out.reason)

    def publish_safe(self, out) -> None:
        if out.nothing_to_hold:
            return
        m = self._msg
        m.header.stamp = self.node.get_clock().now().to_msg()
        m.data = out.action.tolist()
        m.generation = out.generation
        m.policy_age = out.policy_age
        m.source = out.source
        self.node.publish_command(self.pub, m)

    # -- /diagnostics ------------------------------------------------------------------------
    def warning(self, now: float) -> str:
        if self._overdue:
            return (f"no policy within lockstep_policy_timeout ({self.node.policy_timeout} s): running the current "
                    "policy past its horizon")
        if now - self._foreign_last[1] < REPORT_S:
            return (f"ignoring observations of another simulation run (epoch {self._foreign_last[0]}) while "
                    f"following run {self.sources.run}")
        return ""

    def stats(self) -> dict:
        return {
            "policy_waits": len(self.policy_wait),
            "policy_wait_p50_ms": round(self.policy_wait.summary_us()["p50_us"] / 1e3, 3),
            "policy_overdue": self._overdue,
            "following_sim_run": self.sources.run or 0,
            "foreign_observations": self._foreign,
        }


class HardwareIO(ControllerIO):
    """Standard robot messages in, a limited command out (``inputs: [a, b, ...]``)."""

    def __init__(self, node, cfg: ControllerConfig, stream, inputs: list[str], g):
        self.node = node
        self.assembler = ObservationAssembler([self._input_spec(n) for n in inputs])
        self._check_inputs_live(float(g("configure_input_wait")), stream)
        if self.assembler.dim != cfg.obs_dim:
            raise ValueError(f"inputs {inputs} give {self.assembler.dim} values, obs_dim is {cfg.obs_dim}")
        self.inputs = inputs
        self.period = float(g("control_period"))
        self.decimation = int(g("trigger_decimation"))
        self.rate_tol = (float(g("rate_tolerance")), float(g("rate_error_tolerance")))  # ordered: the node checks
        self.trigger_rate = RateMonitor()
        out_topic = g("output.topic") or "action"
        self.output = OutputAdapter(OutputSpec(out_topic, g("output.type"), [j for j in g("output.joints") if j],
                                               g("output.frame_id")), cfg.act_dim, self.period)
        rate = g("command_rate_limit")
        self.limiter = CommandLimiter(cfg.low, cfg.high, rate if rate else None, dim=cfg.act_dim)
        self.pub = node.own(node.create_publisher(self.output.msg_type, out_topic, qos.COMMANDS))
        self.pub_obs = node.own(node.create_publisher(Observation, "observation", stream,
                                                      event_callbacks=node.qos_watch.publisher("observation")))
        self._obs_msg = Observation()
        self._obs_msg.sim_epoch = secrets.randbits(63)
        node.core.new_episode(0, self._obs_msg.sim_epoch)  # one episode: policies for this stream only
        self._seq = 0
        self._last_cmd = None  # the last command published (what `hold` repeats)
        self.stale_input = ""
        for i, a in enumerate(self.assembler.adapters):
            cb = (lambda m, a=a: self.on_input(a, m, trigger=True)) if i == 0 else (lambda m, a=a: self.on_input(a, m))
            node.own(node.create_subscription(message_class(a.spec.type), a.spec.topic, cb, stream,
                                              event_callbacks=node.qos_watch.subscription(a.spec.topic)))
        # watchdog period: the lockstep policy timeout and half the shortest input max_age
        self.tick = min(0.05, min(a.spec.max_age for a in self.assembler.adapters) / 2)

    def describe(self) -> str:
        return f"hardware {self.inputs} -> {self.output.spec.topic}"

    def _input_spec(self, name: str) -> InputSpec:
        node, pre = self.node, f"input.{name}."
        fields = {"topic": "", "type": "", "joints": [""], "fields": ["position"], "size": 0, "max_age": 0.1}
        values = {}
        for key, default in fields.items():
            full = pre + key
            if not node.has_parameter(full):
                declare(node, full, default, f"Input {name}: {key}.")
            v = node.param(full)
            values[key] = [x for x in v if x] if isinstance(default, list) else v
        return InputSpec(name, values["topic"], values["type"], values["joints"], values["fields"],
                         int(values["size"]), float(values["max_age"]))

    def _check_inputs_live(self, wait: float, stream) -> None:
        """Take one message per input (if the robot is already publishing) and run it through
        its adapter, so a joint name missing from the robot's JointState fails ``configure``
        with the joint's name instead of surfacing later as a stale input."""
        if wait <= 0:
            return
        from rclpy.wait_for_message import wait_for_message

        for a in self.assembler.adapters:
            ok, msg = wait_for_message(message_class(a.spec.type), self.node, a.spec.topic, qos_profile=stream,
                                       time_to_wait=wait)
            if not ok:
                self.node.get_logger().warn(f"configure: no message on {a.spec.topic} within {wait} s; "
                                            f"input {a.spec.name} not checked")
                continue
            a.update(msg)  # raises AdapterError (a ValueError) naming the missing joint
            a.stamp = float("-inf")  # checked only: the control loop starts from fresh messages

    # -- in ----------------------------------------------------------------------------------
    def on_input(self, adapter, msg, trigger: bool = False) -> None:
        """Update one input; the first input's messages trigger a control step."""
        node = self.node
        if not node.active:
            return
        t_recv = time.perf_counter()
        try:
            adapter.update(msg)
        except ValueError as e:  # malformed message: the input stays stale, say why
            node.throttled_warn(str(e))
            if not trigger:
                return
        if not trigger:
            return
        now = time.monotonic()
        node.last_obs_t = now
        self.trigger_rate.tick(now)
        if (self.trigger_rate.count - 1) % self.decimation:
            return  # decimated: this message only refreshed the input
        stale = self.assembler.stale()
        self.stale_input = stale
        m = self._obs_msg
        m.header.stamp = node.get_clock().now().to_msg()
        m.seq = self._seq
        m.reset = self._seq == 0
        m.data = self.assembler.obs.tolist()
        self._seq += 1
        self.pub_obs.publish(m)
        if stale:
            node.publish_safe(stale)
            return
        out = node.core.step(self.assembler.obs)
        self._send_command(out.action, out.source, m.header.stamp)
        node.latency.add(time.perf_counter() - t_recv)
        if out.source == SOURCE_SAFE:
            node.note_safe(out.reason)

    def watchdog(self) -> bool:
        """The trigger input stopped (or another input is old): safe action. Returns True then,
        so the stale input -- not the observation timeout it also causes -- is what is reported."""
        self.stale_input = self.assembler.stale()
        if self.stale_input:
            self.node.publish_safe(self.stale_input)
        return bool(self.stale_input)

    def activate(self) -> None:
        self.limiter.reset()

    # -- out ---------------------------------------------------------------------------------
    def _send_command(self, action: np.ndarray, source: int, stamp) -> None:
        """Limits and rate limit, except that the safe action in ``hold`` mode repeats the last
        command actually published -- and publishes nothing when no command has been sent yet
        (there is no position to hold; a default could move the robot)."""
        if source == SOURCE_SAFE and self.node.core.cfg.safe_mode == "hold":
            if self._last_cmd is None:
                return
            cmd = self._last_cmd
        else:
            cmd = self.limiter(action, self.period)
            if self._last_cmd is None:
                self._last_cmd = np.empty_like(cmd)
            np.copyto(self._last_cmd, cmd)
        self.node.publish_command(self.pub, self.output.fill(cmd, stamp))

    def publish_safe(self, out) -> None:
        self._send_command(out.action, out.source, self.node.get_clock().now().to_msg())

    # -- /diagnostics ------------------------------------------------------------------------
    def error(self) -> str:
        return f"{self.stale_input}: safe action" if self.stale_input else ""

    def rate_status(self) -> tuple[int, str]:
        """How far the trigger rate is off the model's control rate."""
        return rate_status(self.trigger_rate.rate_hz(), self.decimation, self.node.model_hz, *self.rate_tol)

    def stats(self) -> dict:
        return {
            "stale_input": self.stale_input,
            "trigger_rate_hz": round(self.trigger_rate.rate_hz(), 3),
            "trigger_decimation": self.decimation,
            "model_rate_hz": self.node.model_hz,
        }
