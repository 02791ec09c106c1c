"""Generator node: latent diffusion + hypernetwork -> PolicyWeights, once per action horizon.

Subscribes ``observation`` (warpd_ros/Observation); publishes ``policy_weights``
(reliable + transient local, depth 1) and ``/diagnostics``. Which observation triggers a
generation is decided by :class:`warpd_core.runtime.GenerationSchedule`; the model runs in a
worker thread fed through a one-slot mailbox (a newer trigger replaces an unstarted older
one), so the executor keeps taking observations while a generation runs.

``lead_steps``: start this many control steps before the boundary (0 in lockstep). -1 picks
it automatically from the measured generation latency and the observation rate.

Managed (lifecycle) node: ``configure`` loads and validates the bundle, ``activate`` starts
generating, ``deactivate`` stops, ``cleanup`` releases the model (the worker thread is joined),
``shutdown`` releases and ends the process. ``autostart: true`` (the
simulation graphs) runs configure + activate at start-up; on a robot bring it up with
``ros2 lifecycle set /warpd_generator configure`` then ``activate``.
"""

from __future__ import annotations

from warpd_ros.blas import single_threaded_blas

single_threaded_blas()  # numpy's BLAS does no work here; torch / ONNX Runtime threads are set from `threads`

import math  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from rclpy.lifecycle import Node, State, TransitionCallbackReturn  # noqa: E402

from warpd_core.runtime.follow import RunFollower  # noqa: E402
from warpd_core.runtime.generator import GenerationSchedule  # noqa: E402
from warpd_ros import process, qos  # noqa: E402
from warpd_ros.conversions import float32_array  # noqa: E402
from warpd_ros.diagnostics import ERROR, OK, WARN, DiagnosticsPublisher  # noqa: E402
from warpd_ros.msg import Observation, PolicyWeights  # noqa: E402
from warpd_ros.params import check_all, choice, declare, declare_cpu_list, guard  # noqa: E402
from warpd_ros.sched import apply_scheduling  # noqa: E402
from warpd_ros.stats import LatencyWindow  # noqa: E402


class GeneratorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("warpd_generator", **kwargs)
        p = lambda *a, **kw: declare(self, *a, **kw)  # noqa: E731
        p("bundle", "", "Model bundle directory (warpd export).")
        p("backend", "torch", "torch or onnx.", check=choice("torch", "onnx"))
        p("device", "cpu", "torch device / onnxruntime provider selection: cpu or cuda.", check=choice("cpu", "cuda"))
        p("sampler", "", "ddpm or ddim ('' = the bundle's default).", check=choice("", "ddpm", "ddim"))
        p("steps", 0, "Denoising steps (0 = the bundle's default).", range=(0, 100_000))
        p("seed", 0, "Sampling seed.")
        p("horizon", 0, "Action horizon in control steps (0 = the bundle's).", range=(0, 1_000_000))
        p("lead_steps", 0, "Start generating this many steps early (-1 = auto from latency).", range=(-1, 1_000_000))
        p("task_id", -1, "Task id to condition on when observations carry none (-1 = none).", range=(-1, 2**31 - 1))
        p("obs_qos", "reliable", "QoS of the observation topic: reliable or sensor.", check=choice("reliable", "sensor"))
        p("source_timeout", 1.0, "Seconds the followed observation source (simulation run) must be silent before "
          "another one (a restarted simulation) is followed; until then others are ignored.", range=(0.0, 3600.0))
        p("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", range=(0.05, 3600.0))
        p("extra_latency", 0.0, "Seconds added to every generation: simulates a slow generator (fault injection, "
          "benchmarks).", range=(0.0, 3600.0))
        p("obs_dim", 0, "Observation size the controller expects (0 = do not check the bundle against it).",
          range=(0, 1_000_000))
        p("act_dim", 0, "Action size the controller expects (0 = do not check).", range=(0, 1_000_000))
        p("threads", 1, "torch / ONNX Runtime CPU threads (1: measured 5-10x faster than 2 on a loaded 2-core "
          "machine).", range=(1, 1024))
        # Process-level options, applied by main() (warpd_ros.sched): start-up only.
        self.cpu_affinity = declare_cpu_list(self, "cpu_affinity", "CPUs to pin this process's threads to, e.g. "
                                             "'1' or '1-3' ('' = off).")
        self.nice = p("nice", 0, "nice value of the process's threads (e.g. 10: a generation yields the CPU to the "
                      "controller).", read_only=True, range=(-20, 19))
        self.autostart = p("autostart", False, "Configure and activate at start-up (simulation graphs).", read_only=True)
        self.gen = None
        # everything else is read at configure: refused on a configured node, bad values refused always
        guard(self, configure_only=lambda name: True, configured=lambda: self.gen is not None)
        self.active = False
        self.generation = 0
        self.late = 0
        self._worker = None
        self.exit_requested = False  # a lifecycle shutdown transition: main() ends the process
        self.config_error = ""  # why configure failed (main prints it at autostart)

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
        check_all(self)
        bundle = g("bundle")
        self.extra_delay = float(g("extra_latency"))
        if not bundle:
            raise ValueError("parameter 'bundle' is empty: give the model bundle directory")
        from warpd_core.export.bundle import load_generator  # heavy (torch); only this process

        os.environ["WARPD_ORT_THREADS"] = str(int(g("threads")))  # read when the ONNX Runtime sessions are made
        if g("backend") == "torch":
            import torch

            torch.set_num_threads(int(g("threads")))

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
        self.qos_watch = qos.IncompatibleQosWatch(self)
        self.sub = self.create_subscription(Observation, "observation", self.on_observation, qos.stream(g("obs_qos")),
                                            event_callbacks=self.qos_watch.subscription("observation"))
        self.diag = DiagnosticsPublisher(self)
        self.diag_timer = self.create_timer(float(g("diagnostics_period")), self.publish_diagnostics)
        self.latency = LatencyWindow(2000)
        self.late = 0  # generations published after their boundary step had been observed
        self._obs_period = LatencyWindow(200)
        self._last_obs_t = None
        self._last_seq = (None, -1)  # (episode key, seq) of the newest observation
        self.sources = RunFollower(float(g("source_timeout")))  # the simulation run generated for
        self.foreign_obs = 0
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
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.active = False
        self._release()
        self.exit_requested = True
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.shutdown()
        for attr, destroy in (("sub", self.destroy_subscription), ("pub", self.destroy_publisher),
                              ("diag_timer", self.destroy_timer)):
            obj = getattr(self, attr, None)
            if obj is not None:
                destroy(obj)
                setattr(self, attr, None)
        if getattr(self, "diag", None) is not None:  # one /diagnostics publisher per configure
            self.destroy_publisher(self.diag.publisher)
            self.diag = None
        self.gen = None

    def on_observation(self, msg: Observation) -> None:
        if not self.active:
            return
        now = time.perf_counter()
        if not self.sources.allows(int(msg.sim_epoch), now):  # another publisher: it must not move the schedule
            self.foreign_obs += 1
            return
        self.sources.heard(int(msg.sim_epoch), now)
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
                if not self.context.ok():
                    return  # a signal shut the context down mid-generation: the process is stopping
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
        out.sim_epoch = int(msg.sim_epoch)
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
            "foreign_observations": self.foreign_obs,
        }
        level = OK if self.generation else WARN
        text = "running" if self.generation else "waiting for observations"
        if self.late:
            level, text = WARN, f"{self.late} generation(s) finished after their horizon boundary"
        if self.qos_watch.error:
            level, text = ERROR, self.qos_watch.error
        self.diag.publish(level, text, values)

    def shutdown(self) -> None:
        """Stop the worker thread and wait for it: a thread still inside torch when the
        interpreter exits aborts the process (``terminate called without an active exception``)."""
        if self._worker is None:
            return
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._worker.join(timeout=10.0)  # at most the generation in progress
        self._worker = None


def _place(node: GeneratorNode) -> None:
    log = node.get_logger()
    apply_scheduling(node.cpu_affinity, node.nice, 0, info=log.info, warn=log.warn)


def main(args=None) -> int:
    # any exception while building the node is a configuration error (e.g. a bundle that does not load)
    return process.run_node(GeneratorNode, "warpd_generator", args, errors=(Exception,), ready=_place,
                            stop=lambda node: node.exit_requested, release=lambda node: node.shutdown())


if __name__ == "__main__":
    sys.exit(main())
