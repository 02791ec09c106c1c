"""Generator node: latent diffusion + hypernetwork -> PolicyWeights, once per action horizon.

Subscribes ``observation`` (warpd_ros/Observation); publishes ``policy_weights``
(reliable + transient local, depth 1) and ``/diagnostics``. Which observation triggers a
generation is decided by :class:`warpd_core.runtime.GenerationSchedule`; the model runs in a
worker thread fed through a one-slot mailbox (a newer trigger replaces an unstarted older
one), so the executor keeps taking observations while a generation runs.

``lead_steps``: start this many control steps before the boundary (0 in lockstep). -1 picks
it automatically from the measured generation latency and the observation rate.

Managed (lifecycle) node: ``configure`` loads and validates the bundle, ``activate`` starts
generating, ``deactivate`` stops, ``cleanup`` releases the model. ``autostart: true`` (the
simulation graphs) runs configure + activate at start-up; on a robot bring it up with
``ros2 lifecycle set /warpd_generator configure`` then ``activate``.
"""

from __future__ import annotations

import math
import secrets
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.lifecycle import Node, State, TransitionCallbackReturn

from warpd_core.runtime.generator import GenerationSchedule
from warpd_ros import qos
from warpd_ros.conversions import float32_array
from warpd_ros.diagnostics import OK, WARN, DiagnosticsPublisher
from warpd_ros.msg import Observation, PolicyWeights
from warpd_ros.params import declare, declare_cpu_list
from warpd_ros.sched import apply_scheduling
from warpd_ros.stats import LatencyWindow


class GeneratorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("warpd_generator", **kwargs)
        p = lambda *a: declare(self, *a)  # noqa: E731
        p("bundle", "", "Model bundle directory (warpd export).")
        p("backend", "torch", "torch or onnx.")
        p("device", "cpu", "torch device / onnxruntime provider selection: cpu or cuda.")
        p("sampler", "", "ddpm or ddim ('' = the bundle's default).")
        p("steps", 0, "Denoising steps (0 = the bundle's default).")
        p("seed", 0, "Sampling seed.")
        p("horizon", 0, "Action horizon in control steps (0 = the bundle's).")
        p("lead_steps", 0, "Start generating this many steps early (-1 = auto from latency).")
        p("task_id", -1, "Task id to condition on when observations carry none (-1 = none).")
        p("obs_qos", "reliable", "QoS of the observation topic: reliable or sensor.")
        p("diagnostics_period", 1.0, "Seconds between /diagnostics messages.")
        p("extra_latency", 0.0, "Seconds added to every generation: simulates a slow generator (fault injection, benchmarks).")
        p("obs_dim", 0, "Observation size the controller expects (0 = do not check the bundle against it).")
        p("act_dim", 0, "Action size the controller expects (0 = do not check).")
        p("threads", 1, "torch CPU threads (1: measured 5-10x faster than 2 on a loaded 2-core machine).")
        # Process-level options, applied by main() (warpd_ros.sched): keep generations off the controller's core.
        self.cpu_affinity = declare_cpu_list(self, "cpu_affinity", "CPUs to pin this process's threads to, e.g. "
                                             "'1' or '1-3' ('' = off).")
        self.nice = p("nice", 0, "nice value of the process's threads (e.g. 10: a generation yields the CPU to the controller).")
        self.autostart = p("autostart", False, "Configure and activate at start-up (simulation graphs).")
        self.gen = None
        self.active = False
        self.generation = 0
        self.late = 0
        self._worker = None

    # -- lifecycle -----------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        g = lambda n: self.get_parameter(n).value  # noqa: E731
        try:
            self._configure(g)
        except Exception as e:  # a bad bundle or parameter: stay unconfigured, say why
            self.get_logger().error(f"configure failed: {type(e).__name__}: {e}")
            self.config_error = f"{type(e).__name__}: {e}"
            self.gen = None
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self, g) -> None:
        bundle = g("bundle")
        self.extra_delay = float(g("extra_latency"))
        if self.extra_delay < 0:
            raise ValueError(f"parameter extra_latency must be >= 0, got {self.extra_delay}")
        if not bundle:
            raise ValueError("parameter 'bundle' is empty: give the model bundle directory")
        from warpd_core.export.bundle import load_generator  # heavy (torch); only this process

        if g("backend") == "torch":
            import torch

            torch.set_num_threads(max(1, int(g("threads"))))

        t0 = time.perf_counter()
        self.gen = load_generator(bundle, backend=g("backend"), device=g("device"), sampler=g("sampler") or None,
                                  steps=g("steps") or None, seed=g("seed"))
        for name, have in (("obs_dim", self.gen.obs_dim), ("act_dim", self.gen.act_dim)):
            want = int(g(name))
            if want and want != have:
                raise ValueError(f"{bundle}/bundle.json: field '{name}' is {have}, the controller is configured for {want}")
        self.control_rate_hz = float(self.gen.meta.get("control_rate_hz") or 0.0)  # sent with every policy
        horizon = int(g("horizon"))
        self.horizon = horizon if horizon > 0 else int(self.gen.horizon)
        self.lead_param = int(g("lead_steps"))
        self.task_id = int(g("task_id"))
        lead = 0 if self.lead_param < 0 else self.lead_param
        self.schedule = GenerationSchedule(self.horizon, min(lead, self.horizon - 1))
        self.epoch = secrets.randbits(63)
        self.generation = 0
        self.pub = self.create_publisher(PolicyWeights, "policy_weights", qos.WEIGHTS)
        self.sub = self.create_subscription(Observation, "observation", self.on_observation, qos.stream(g("obs_qos")))
        self.diag = DiagnosticsPublisher(self)
        self.diag_timer = self.create_timer(float(g("diagnostics_period")), self.publish_diagnostics)
        self.latency = LatencyWindow(2000)
        self.late = 0  # generations published after their boundary step had been observed
        self._obs_period = LatencyWindow(200)
        self._last_obs_t = None
        self._last_seq = (None, -1)  # (episode key, seq) of the newest observation
        self._mailbox = None
        self._cv = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="warpd-generator", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"generator configured: model {self.gen.model_id} policy {self.gen.spec.layer_sizes} "
            f"horizon {self.horizon} lead {self.schedule.lead} backend {g('backend')} "
            f"(loaded in {time.perf_counter() - t0:.2f} s)"
        )

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self.active = True
        self.get_logger().info("generator active")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.active = False
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.shutdown()
        for attr in ("sub", "pub", "diag_timer"):
            obj = getattr(self, attr, None)
            if obj is not None:
                {"sub": self.destroy_subscription, "pub": self.destroy_publisher, "diag_timer": self.destroy_timer}[attr](obj)
        self.gen = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.shutdown()
        return TransitionCallbackReturn.SUCCESS

    def on_observation(self, msg: Observation) -> None:
        if not self.active:
            return
        now = time.perf_counter()
        if self._last_obs_t is not None and not msg.reset:
            self._obs_period.add(now - self._last_obs_t)
        self._last_obs_t = now
        self._last_seq = ((msg.sim_epoch, msg.episode), int(msg.seq))
        trig = self.schedule.observe(msg.seq, msg.episode, msg.sim_epoch, msg.reset)
        if trig is None:
            return
        obs = np.frombuffer(msg.data, dtype=np.float64).astype(np.float32)
        task = msg.task_id if msg.task_id >= 0 else self.task_id
        with self._cv:
            self._mailbox = (obs, task, msg, trig, now)
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._mailbox is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                obs, task, msg, trig, t_recv = self._mailbox
                self._mailbox = None
            try:
                self._generate(obs, task, msg, trig, t_recv)
            except Exception as e:  # keep the node alive; the controller falls back safely
                self.get_logger().error(f"generation failed: {type(e).__name__}: {e}")

    def _generate(self, obs, task, msg, trig, t_recv) -> None:
        if obs.shape[0] != self.gen.obs_dim or not np.all(np.isfinite(obs)):
            self.get_logger().warn(f"skipping generation: observation shape {obs.shape} or non-finite values")
            return
        task_arr = None if self.gen.n_tasks == 0 else np.array([max(task, 0)], dtype=np.int64)
        flat = self.gen.generate(obs[None, :], task_arr)[0]
        if self.extra_delay:
            time.sleep(self.extra_delay)
        out = PolicyWeights()
        out.header.stamp = self.get_clock().now().to_msg()
        out.model_id = self.gen.model_id
        self.generation += 1
        out.generation = self.generation
        out.generator_epoch = self.epoch
        out.obs_seq = int(msg.seq)
        out.episode = int(msg.episode)
        out.obs_stamp = msg.header.stamp
        out.horizon = self.horizon
        out.task_id = int(task)
        out.layer_sizes = [int(s) for s in self.gen.spec.layer_sizes]
        out.activation = self.gen.spec.activation
        out.weights = float32_array(flat)
        latency = time.perf_counter() - t_recv
        out.generation_latency = float(latency)
        out.control_rate_hz = self.control_rate_hz
        # Checked before publishing: once published, the next observation can arrive at once.
        # Late: the controller already acted on a step past the boundary with the old policy.
        # (With lead 0 the trigger is the boundary observation itself, so that step is always
        # served by the old policy in realtime mode; only later steps count.)
        key, seq = self._last_seq
        if key == (msg.sim_epoch, msg.episode) and seq > max(trig.seq, trig.boundary - 1):
            self.late += 1
        self.pub.publish(out)
        self.latency.add(latency)
        if self.lead_param < 0 and len(self._obs_period) >= 5:
            period = float(np.median(self._obs_period._buf[: len(self._obs_period)]))
            p99 = self.latency.summary_us()["p99_us"] * 1e-6
            self.schedule.set_lead(int(math.ceil(p99 / max(period, 1e-6))) + 1)

    def publish_diagnostics(self) -> None:
        lat = self.latency.summary_us()
        values = {
            "model_id": self.gen.model_id,
            "generations": self.generation,
            "horizon": self.horizon,
            "lead_steps": self.schedule.lead,
            "generation_latency_p50_ms": round(lat["p50_us"] / 1e3, 3),
            "generation_latency_p99_ms": round(lat["p99_us"] / 1e3, 3),
            "late_generations": self.late,
        }
        level = OK if self.generation else WARN
        text = "running" if self.generation else "waiting for observations"
        if self.late:
            level, text = WARN, f"{self.late} generation(s) finished after their horizon boundary"
        self.diag.publish(level, text, values)

    def shutdown(self) -> None:
        if self._worker is None:
            return
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._worker = None


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = GeneratorNode()
    except Exception as e:  # parameter errors: one line, non-zero exit
        print(f"warpd_generator: {type(e).__name__}: {e}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    if node.autostart:
        node.trigger_configure()
        if node.gen is None:  # configure failed: one line, non-zero exit
            print(f"warpd_generator: {getattr(node, 'config_error', 'configure failed')}", file=sys.stderr)
            node.destroy_node()
            rclpy.try_shutdown()
            return 2
        node.trigger_activate()
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    log = node.get_logger()
    apply_scheduling(node.cpu_affinity, node.nice, 0, info=log.info, warn=log.warn)
    try:
        executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
