"""PushT simulation node: gym-pusht behind topics.

Publishes ``observation`` (warpd_ros/Observation) and ``episode_result``
(warpd_ros/EpisodeResult); subscribes ``action`` (warpd_ros/Action) and ``perturbation``
(warpd_ros/Perturbation, displacements of the T block).

* ``lockstep``: publish observation ``seq``, wait for the Action answering ``seq`` (and, when
  ``wait_for_perturbation``, the Perturbation for ``seq``), apply the perturbation, step,
  publish ``seq + 1``. Deterministic for a given seed. An observation that gets no answer
  within ``action_timeout`` is published again (lost message, restarted controller).
* ``realtime``: a timer steps the env at ``rate_hz`` with the newest action (the agent holds
  its target when none has arrived); perturbations are applied at the next step.

Episodes end on success (coverage > 0.95) or after ``max_steps``; the node then publishes
an EpisodeResult, resets with the next seed and, after ``episodes`` episodes, exits.
"""

from __future__ import annotations

import json
import secrets
import sys
import time

import numpy as np
from rclpy.node import Node

from warpd_core.envs.pusht import PushTEnv
from warpd_ros import qos
from warpd_ros.msg import Action, EpisodeResult, Observation, Perturbation
from warpd_ros.params import check_all, choice, declare
from warpd_ros.sim_main import run_simulation
from warpd_ros.stats import LatencyWindow


class PushTSimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("pusht_sim", **kwargs)
        # every parameter is read here, once: read-only afterwards (a SetParameters would change nothing)
        p = lambda *a, **kw: declare(self, *a, read_only=True, **kw)  # noqa: E731
        self.mode = p("mode", "lockstep", "lockstep or realtime.", check=choice("lockstep", "realtime"))
        self.rate_hz = p("rate_hz", 10.0, "Realtime mode: steps per second.", range=(0.01, 10_000.0))
        self.episodes = p("episodes", 3, "Episodes to run before exiting (0 = forever).", range=(0, 2**31 - 1))
        self.seed = p("seed", 0, "Seed of the first episode; episode k uses seed + k.", range=(0, 2**31 - 1))
        self.max_steps = p("max_steps", 300, "Maximum steps per episode.", range=(1, 2**31 - 1))
        self.wait_pert = p("wait_for_perturbation", False, "Lockstep: also wait for the Perturbation of each step.")
        self.action_timeout = p("action_timeout", 2.0, "Lockstep: seconds before an unanswered observation is re-sent.",
                                range=(0.001, 3600.0))
        self.headless = p("headless", True, "false: show the simulation in a window.")
        self.record = p("record", "", "Write a GIF/MP4 of the first episode here ('' = none).")
        self.summary_path = p("summary", "", "Append one JSON line per episode to this file ('' = none).")
        obs_qos = p("obs_qos", "reliable", "QoS of observation/action topics: reliable or sensor.",
                    check=choice("reliable", "sensor"))
        check_all(self)  # ValueError naming the parameter: run_simulation prints it and exits 2

        self.env = PushTEnv(max_steps=self.max_steps)
        self.sim_epoch = secrets.randbits(63)
        watch = qos.IncompatibleQosWatch(self)
        self.pub_obs = self.create_publisher(Observation, "observation", qos.stream(obs_qos),
                                             event_callbacks=watch.publisher("observation"))
        self.pub_result = self.create_publisher(EpisodeResult, "episode_result", qos.RESULTS)
        self.create_subscription(Action, "action", self.on_action, qos.stream(obs_qos),
                                 event_callbacks=watch.subscription("action"))
        self.create_subscription(Perturbation, "perturbation", self.on_perturbation, qos.stream("reliable"))
        self.rtt = LatencyWindow()
        self.episode = -1
        self.finished = False
        self._pending_pert: dict[int, np.ndarray] = {}
        self._action: np.ndarray | None = None
        self._answer: tuple[int, np.ndarray] | None = None
        self._sent_at = 0.0
        self._frames: list | None = None
        self._marks: list = []
        self._obs_msg = Observation()
        self._start_episode()
        if self.mode == "realtime":
            self.create_timer(1.0 / self.rate_hz, self._realtime_tick)
        else:
            self.create_timer(0.05, self._lockstep_watchdog)

    # -- episodes ------------------------------------------------------------------------
    def _start_episode(self) -> None:
        self.episode += 1
        seed = int(self.seed) + self.episode
        self.env.reset(seed=seed)
        self.ep_seed = seed
        self.seq = 0
        self.n_pert = 0
        self._pending_pert.clear()
        self._answer = None
        self._action = None
        want_frames = (self.record and self.episode == 0) or not self.headless
        self._frames = [] if want_frames else None
        self._marks = []
        self._capture()
        self._publish_obs(reset=True)

    def _end_episode(self) -> None:
        env = self.env
        r = EpisodeResult()
        r.header.stamp = self.get_clock().now().to_msg()
        r.episode = self.episode
        r.sim_epoch = self.sim_epoch
        r.seed = self.ep_seed
        r.steps = env.steps
        r.max_coverage = float(env.max_coverage)
        r.score = float(env.score)
        r.success = bool(env.max_coverage > 0.95)
        r.perturbations = self.n_pert
        self.pub_result.publish(r)
        rtt = self.rtt.summary_us()
        self.get_logger().info(
            f"episode {self.episode} seed {self.ep_seed}: score {r.score:.3f} max coverage "
            f"{r.max_coverage:.3f} steps {r.steps} perturbations {r.perturbations} "
            f"obs->action p50 {rtt['p50_us']:.0f} us p99 {rtt['p99_us']:.0f} us"
        )
        if self.summary_path:
            with open(self.summary_path, "a") as f:
                f.write(json.dumps({"episode": r.episode, "seed": r.seed, "score": r.score,
                                    "max_coverage": r.max_coverage, "success": r.success,
                                    "steps": r.steps, "perturbations": r.perturbations}) + "\n")
        if self._frames is not None and self.record and self.episode == 0:
            self._write_recording()
        if self.episodes and self.episode + 1 >= self.episodes:
            self.finished = True
            self.get_logger().info("all episodes done")
            return
        self._start_episode()

    def _write_recording(self) -> None:
        from warpd_core.envs.render import write_rollout

        try:
            write_rollout(self.record, self._frames, self._marks, fps=10)
            self.get_logger().info(f"wrote {self.record}")
        except Exception as e:  # a failed recording must not take the simulation down
            self.get_logger().error(f"could not write {self.record}: {e}")

    def _capture(self, event: dict | None = None) -> None:
        if self._frames is not None:
            self._frames.append(self.env.render_frame())
            self._marks.append(event or {})

    # -- messages ------------------------------------------------------------------------
    def _publish_obs(self, reset: bool = False) -> None:
        m = self._obs_msg
        m.header.stamp = self.get_clock().now().to_msg()
        m.seq = self.seq
        m.episode = self.episode
        m.sim_epoch = self.sim_epoch
        m.data = self.env.obs.astype(np.float64).tolist()
        m.task_id = -1
        m.reset = reset
        self._sent_at = time.perf_counter()
        self.pub_obs.publish(m)

    def on_action(self, msg: Action) -> None:
        if msg.sim_epoch != self.sim_epoch or msg.episode != self.episode or self.finished:
            return  # an answer to an earlier run or episode
        a = np.frombuffer(msg.data, dtype=np.float64)
        if a.shape != (2,):
            self.get_logger().warn(f"ignoring malformed action for seq {msg.seq}: shape {a.shape}, expected (2,)")
            return
        if not np.all(np.isfinite(a)):
            self.get_logger().warn(f"ignoring non-finite action for seq {msg.seq}: {a.tolist()}")
            return
        if msg.seq == self.seq:
            self.rtt.add(time.perf_counter() - self._sent_at)
        if self.mode == "realtime":
            self._action = a.copy()
            self._last_gen = int(msg.generation)
            return
        if msg.seq == self.seq and self._answer is None:
            self._answer = (int(msg.generation), a.copy())
            self._try_lockstep_step()

    def on_perturbation(self, msg: Perturbation) -> None:
        d = np.frombuffer(msg.displacement, dtype=np.float64)
        if d.shape not in ((0,), (2,)) or not np.all(np.isfinite(d)):
            self.get_logger().warn(f"ignoring malformed perturbation (shape {d.shape})")
            return
        if self.mode == "realtime":
            if d.size:
                self._apply_perturbation(d)
            return
        # only the current step and a few ahead are kept: a misbehaving publisher cannot grow this
        if self.seq <= msg.seq < self.seq + 8:
            self._pending_pert[int(msg.seq)] = d.copy()
            self._try_lockstep_step()

    def _apply_perturbation(self, d: np.ndarray) -> None:
        applied = self.env.displace_block(d)
        self.n_pert += 1
        self._capture({"perturbation": applied.tolist()})

    # -- stepping ------------------------------------------------------------------------
    def _try_lockstep_step(self) -> None:
        if self._answer is None or (self.wait_pert and self.seq not in self._pending_pert):
            return
        gen, a = self._answer
        self._answer = None
        d = self._pending_pert.pop(self.seq, None)
        if d is not None and d.size:
            self._apply_perturbation(d)
        self._step(a, gen)

    def _step(self, action: np.ndarray, generation: int) -> None:
        res = self.env.step(action)
        self.seq += 1
        prev = self._marks[-1].get("generation") if self._marks else None
        self._capture({"generation": generation, "swap": prev is not None and generation != prev})
        if res.done:
            self._end_episode()
        else:
            self._publish_obs()

    def _lockstep_watchdog(self) -> None:
        if not self.finished and time.perf_counter() - self._sent_at > self.action_timeout:
            self.get_logger().warn(f"no action for seq {self.seq} within {self.action_timeout} s; re-sending")
            self._publish_obs(reset=self.seq == 0)

    def _realtime_tick(self) -> None:
        if self.finished:
            return
        if self._action is None:
            # nothing received yet: the agent holds its position
            self._action = self.env.obs[:2].astype(np.float64)
            self._last_gen = 0
        self._step(self._action, getattr(self, "_last_gen", 0))


def main(args=None) -> int:
    return run_simulation(PushTSimNode, "pusht_sim", args)


if __name__ == "__main__":
    sys.exit(main())
