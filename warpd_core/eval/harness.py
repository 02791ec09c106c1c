"""In-process PushT evaluation with the runtime's own controller logic.

What runs here is what runs in the ROS graph (DESIGN.md, "Runtime contract"): for WARPD,
every episode gets a :class:`~warpd_core.runtime.ControllerCore` configured as
``config/pusht_controller.yaml`` and a :class:`~warpd_core.runtime.GenerationSchedule` with
``lead = 0`` (the lockstep mode of the generator node). One control step ``k`` is, in the
order the lockstep ``pusht_sim`` node uses:

1. observation ``k`` -> the schedule decides whether a generation starts from it; if so the
   generator is called on observation ``k`` and the policy is offered to the controller
   (``PolicyCandidate`` with an increasing generation number and the episode index);
2. ``ControllerCore.step(obs_k)`` -> action ``k`` (installs the new policy at the boundary);
3. the perturbation for step ``k`` is sampled and applied (``PushTEnv.displace_block``);
4. ``PushTEnv.step(action_k)`` -> observation ``k + 1``.

Episodes run in lock-step across env instances, so the generator is called with a batch of
observations (B > 1), the main speed-up on CPU.

Protocol (paper, section 4.1): ``n_seeds`` env instances seeded ``base_seed + i`` x
``repeats``; repeat ``r`` changes the method's seed (generator noise) and the perturbation
seed, never the env seed. Seeds are derived with ``numpy.random.SeedSequence`` from
``(seed, tag, r[, i])``; the method seed and the perturbation seeds do not depend on the
horizon or the magnitude, so cells share their random numbers (common random numbers make
the differences between cells less noisy).

Other methods (Diffusion Policy action chunks, a plain MLP, ...) plug in through the small
:class:`Method` protocol below.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from warpd_core.envs.pusht import DEFAULT_MAX_STEPS, WORKSPACE_SIZE, BlockPerturbation, PushTEnv
from warpd_core.eval.metrics import CellSummary, EpisodeResult, episode_score, is_success, summarize
from warpd_core.eval.profiles import PROFILES
from warpd_core.runtime import ControllerConfig, ControllerCore, GenerationSchedule, PolicyCandidate
from warpd_core.runtime.controller import SOURCE_SAFE

# The controller parameters of config/pusht_controller.yaml (test_eval_harness checks that the
# two agree). Kept here as data so the harness does not depend on where config/ is installed.
PUSHT_CONTROLLER: dict[str, Any] = {
    "obs_dim": 5,
    "act_dim": 2,
    "action_low": [0.0],
    "action_high": [WORKSPACE_SIZE],
    "safe_mode": "hold",
    "max_policy_age": 256,
    "expected_model_id": "",
    "obs_low": [-50.0, -50.0, -50.0, -50.0, -10.0],
    "obs_high": [562.0, 562.0, 562.0, 562.0, 10.0],
}

# Tags that keep the derived seed streams apart.
_TAG_METHOD, _TAG_PERTURBATION = 0, 1


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys (``numpy.random.SeedSequence``); stable across runs."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint32)[0])


def pusht_controller_config(horizon: int, **overrides: Any) -> ControllerConfig:
    """ControllerConfig of ``config/pusht_controller.yaml``.

    ``max_policy_age`` is raised to ``horizon`` when the horizon is longer than the file's
    value (256): otherwise the controller would fall back to its safe action before the next
    policy is due. A ROS run at such a horizon needs the same change in its params file.
    """
    params = dict(PUSHT_CONTROLLER)
    params["max_policy_age"] = max(int(params["max_policy_age"]), int(horizon))
    params.update(overrides)
    return ControllerConfig(**params)


# ----------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------
@runtime_checkable
class Method(Protocol):
    """A control method evaluated on ``B`` env instances in lock-step.

    ``reset(n_envs, horizon, seed)`` starts one batch of episodes (one per env).
    ``act(obs (B, obs_dim) float32, steps (B,) int64, active (B,) bool) -> (B, act_dim) float64``:
    the actions for control step ``steps[i]`` of each episode (``steps`` counts from 0 at
    reset). Rows with ``active[i] == False`` belong to finished episodes: the method must not
    advance their state, and their returned rows are ignored.
    ``episode_stats() -> dict[str, (B,) ndarray]``: per-episode counters of the current batch;
    keys the harness reads when present: ``generation_calls`` (model invocations),
    ``safe_steps`` (safe-action steps), ``active_generation`` (id of the policy acting now).
    """

    name: str

    def reset(self, n_envs: int, horizon: int, seed: int) -> None: ...

    def act(self, obs: np.ndarray, steps: np.ndarray, active: np.ndarray) -> np.ndarray: ...

    def episode_stats(self) -> dict[str, np.ndarray]: ...


RUNTIME_COUNTERS = ("schedule_mismatches", "rejections", "generate_seconds")


def checked_actions(method: "Method", obs: np.ndarray, steps: np.ndarray, active: np.ndarray,
                    act_dim: int) -> np.ndarray:
    """``method.act`` as float64, ValueError naming the method unless it is ``(B, act_dim)``."""
    n = obs.shape[0]
    actions = np.asarray(method.act(obs, steps, active), dtype=np.float64)
    if actions.shape != (n, act_dim):
        raise ValueError(f"method {method.name}: act returned shape {actions.shape}, expected ({n}, {act_dim})")
    return actions


def episode_counters(method: "Method", n: int) -> tuple[np.ndarray, np.ndarray]:
    """(generation calls, safe-action steps) per episode of the current batch (zeros when the
    method keeps none)."""
    stats = method.episode_stats()
    zeros = np.zeros(n, np.int64)
    return stats.get("generation_calls", zeros), stats.get("safe_steps", zeros)


def runtime_counters(method: Any) -> dict:
    """The runtime's own counters a method keeps (:data:`RUNTIME_COUNTERS`; WARPD's), for the results."""
    return {a: getattr(method, a) for a in RUNTIME_COUNTERS if hasattr(method, a)}


class PolicyGeneratorLike(Protocol):
    """What :class:`WarpdMethod` needs from ``warpd_core.export.bundle.PolicyGenerator``."""

    spec: Any  # PolicySpec
    model_id: str
    n_tasks: int

    def generate(self, obs: np.ndarray, task_id: Optional[np.ndarray] = None) -> np.ndarray: ...


def reseed_generator(generator: Any, seed: int) -> None:
    """Restart the generator's noise stream at ``seed``.

    Uses ``generator.reseed(seed)`` (PolicyGenerator has it); otherwise replaces the ``_rng``
    (``numpy.random.Generator``) that ``PolicyGenerator`` draws its diffusion noise from.
    """
    if callable(getattr(generator, "reseed", None)):
        generator.reseed(int(seed))
    elif isinstance(getattr(generator, "_rng", None), np.random.Generator):
        generator._rng = np.random.default_rng(int(seed))
    else:
        raise TypeError(f"{type(generator).__name__}: cannot reseed (needs reseed(seed) or a numpy Generator _rng)")


class WarpdMethod:
    """WARPD through the runtime: ControllerCore + GenerationSchedule(lead 0) per episode.

    Args:
        generator: a ``PolicyGenerator`` (``load_generator(bundle)``) or anything with the same
            ``spec``, ``model_id``, ``n_tasks`` and ``generate(obs (B, obs_dim), task_id)``.
        controller: a function ``horizon -> ControllerConfig`` (default: the PushT params file).
        task_id: task index for task-conditioned models (``generator.n_tasks > 0``).
        max_batch: largest batch passed to one ``generate`` call.
        name: method name in the results.
    """

    def __init__(self, generator: PolicyGeneratorLike, controller: Callable[[int], ControllerConfig] = pusht_controller_config,
                 task_id: Optional[int] = None, max_batch: int = 256, name: str = "warpd"):
        if int(getattr(generator, "n_tasks", 0)) > 0 and task_id is None:
            raise ValueError(f"task_id: required, the model is task conditioned ({generator.n_tasks} tasks)")
        if max_batch <= 0:
            raise ValueError(f"max_batch must be positive, got {max_batch}")
        self.name = name
        self.generator = generator
        self.controller = controller
        self.task_id = task_id
        self.max_batch = int(max_batch)
        self.cores: list[ControllerCore] = []
        self.schedules: list[GenerationSchedule] = []
        self.schedule_mismatches = 0  # schedule trigger and ControllerCore.needs_policy() disagreed
        self.rejections = 0  # candidates the controller refused
        self.generate_seconds = 0.0

    def reset(self, n_envs: int, horizon: int, seed: int) -> None:
        reseed_generator(self.generator, seed)
        cfg = self.controller(horizon)
        self.horizon = int(horizon)
        self.cores = [ControllerCore(cfg) for _ in range(n_envs)]
        self.schedules = [GenerationSchedule(horizon, lead=0) for _ in range(n_envs)]
        for core in self.cores:
            core.new_episode(0)  # each core serves one episode: episode index 0
        self._generation = np.zeros(n_envs, np.int64)
        self._safe = np.zeros(n_envs, np.int64)
        self._active_gen = np.zeros(n_envs, np.int64)

    def act(self, obs: np.ndarray, steps: np.ndarray, active: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        actions = np.zeros((obs.shape[0], self.cores[0].cfg.act_dim), np.float64)
        idx = np.flatnonzero(active)
        due = []
        for i in idx:
            trig = self.schedules[i].observe(int(steps[i]), episode=0)
            if (trig is not None) != self.cores[i].needs_policy():
                self.schedule_mismatches += 1
            if trig is not None:
                due.append(i)
        if due:
            self._generate(np.asarray(due), obs, steps)
        for i in idx:
            out = self.cores[i].step(obs[i])
            actions[i] = out.action  # copies: out.action is the core's internal buffer
            self._safe[i] += out.source == SOURCE_SAFE
            self._active_gen[i] = out.generation
        return actions

    def _generate(self, due: np.ndarray, obs: np.ndarray, steps: np.ndarray) -> None:
        gen = self.generator
        spec = gen.spec
        t0 = time.perf_counter()
        for b0 in range(0, len(due), self.max_batch):
            rows = due[b0 : b0 + self.max_batch]
            task = None if self.task_id is None else np.full(len(rows), self.task_id, np.int64)
            flat = np.asarray(gen.generate(obs[rows], task), dtype=np.float32)  # (B, n_weights)
            for k, i in enumerate(rows):
                self._generation[i] += 1
                cand = PolicyCandidate(
                    model_id=gen.model_id, generation=int(self._generation[i]), generator_epoch=0,
                    layer_sizes=spec.layer_sizes, activation=spec.activation, weights=flat[k],
                    horizon=self.horizon, obs_seq=int(steps[i]), episode=0,
                    task_id=-1 if self.task_id is None else int(self.task_id),
                )
                if self.cores[i].offer_policy(cand):
                    self.rejections += 1
        self.generate_seconds += time.perf_counter() - t0

    def episode_stats(self) -> dict[str, np.ndarray]:
        return {"generation_calls": self._generation.copy(), "safe_steps": self._safe.copy(),
                "active_generation": self._active_gen.copy()}


class RandomMethod:
    """The paper's *random* baseline: a uniformly random target position every step."""

    name = "random"

    def __init__(self, low: float = 0.0, high: float = WORKSPACE_SIZE, act_dim: int = 2):
        self.low, self.high, self.act_dim = float(low), float(high), int(act_dim)

    def reset(self, n_envs: int, horizon: int, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._n = int(n_envs)

    def act(self, obs: np.ndarray, steps: np.ndarray, active: np.ndarray) -> np.ndarray:
        # one draw per env per call, active or not, so an episode's actions do not depend on
        # when the other episodes end
        return self._rng.uniform(self.low, self.high, size=(self._n, self.act_dim))

    def episode_stats(self) -> dict[str, np.ndarray]:
        return {}


# ----------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------

@dataclass
class EvalConfig:
    """PushT evaluation protocol.

    Attributes:
        n_seeds: env instances; env ``i`` is reset with seed ``base_seed + i``.
        repeats: episodes per env instance and cell (new method and perturbation seeds each).
        horizons: action horizons (control steps per generated policy) to evaluate.
        magnitudes: perturbation displacement lengths in pixels (0 = no perturbation).
        probability: perturbation probability per control step (paper: 0.1).
        max_steps: episode length limit (control steps at 10 Hz; paper: 300).
        base_seed: first env seed. 100000 follows Diffusion Policy's test seeds (its
            training demonstrations use low seeds).
        seed: root of the method and perturbation seeds.
    """

    n_seeds: int = 50
    repeats: int = 10
    horizons: tuple = (16, 32, 64, 128)
    magnitudes: tuple = (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)
    probability: float = 0.1
    max_steps: int = DEFAULT_MAX_STEPS
    base_seed: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_seeds", "repeats", "max_steps"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"EvalConfig.{name} must be positive, got {getattr(self, name)!r}")
        self.horizons = tuple(int(h) for h in self.horizons)
        self.magnitudes = tuple(float(m) for m in self.magnitudes)
        if not self.horizons or any(h <= 0 for h in self.horizons):
            raise ValueError(f"EvalConfig.horizons must be positive ints, got {self.horizons!r}")
        if not self.magnitudes or any(not math.isfinite(m) or m < 0 for m in self.magnitudes):
            raise ValueError(f"EvalConfig.magnitudes must be finite and >= 0, got {self.magnitudes!r}")
        if not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError(f"EvalConfig.probability must be in [0, 1], got {self.probability!r}")
        if int(self.base_seed) < 0:
            raise ValueError(f"EvalConfig.base_seed must be >= 0, got {self.base_seed!r}")

    @classmethod
    def from_profile(cls, profile: str, **overrides: Any) -> "EvalConfig":
        """A profile of :data:`PROFILES` with the given fields replaced (None values ignored)."""
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
        params = dict(PROFILES[profile])
        params.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**params)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["horizons"], d["magnitudes"] = list(self.horizons), list(self.magnitudes)
        return d

    @property
    def n_episodes(self) -> int:
        """Episodes one method runs under this protocol."""
        return self.n_seeds * self.repeats * len(self.horizons) * len(self.magnitudes)

    def describe(self, n_methods: int = 1) -> str:
        """What a run is about to do, printed before it starts (``--profile paper`` takes hours)."""
        per = (f"{self.n_seeds} env seeds x {self.repeats} repeats x {len(self.horizons)} horizons "
               f"x {len(self.magnitudes)} magnitudes = {self.n_episodes} episodes")
        if n_methods == 1:
            return per
        return f"{per} per method, {self.n_episodes * n_methods} for {n_methods} methods"

    def env_seed(self, i: int) -> int:
        return int(self.base_seed) + int(i)

    def method_seed(self, repeat: int) -> int:
        return derive_seed(self.seed, _TAG_METHOD, repeat)

    def perturbation_seed(self, repeat: int, i: int) -> int:
        return derive_seed(self.seed, _TAG_PERTURBATION, repeat, i)


@dataclass
class Recording:
    """Frames of one rollout for a video: ``frames`` RGB (S, S, 3) uint8 and one ``marks``
    dict per frame (``{"generation": g, "swap": bool}`` after a step, ``{"perturbation":
    [dx, dy]}`` after a displacement, ``{}`` for the first frame) -- the format of
    ``warpd_core.envs.render.write_rollout``."""

    horizon: int
    magnitude: float
    env_seed: int
    frames: list = field(default_factory=list)
    marks: list = field(default_factory=list)


@dataclass
class EvalResults:
    """Everything an evaluation produced (``report.write_report`` turns it into files)."""

    method: str
    config: EvalConfig
    rows: list[EpisodeResult]
    cells: list[CellSummary]
    meta: dict = field(default_factory=dict)
    recording: Optional[Recording] = None

    def cell(self, horizon: int, magnitude: float) -> CellSummary:
        for c in self.cells:
            if c.horizon == int(horizon) and c.magnitude == float(magnitude):
                return c
        raise KeyError(f"no cell for horizon {horizon}, magnitude {magnitude}")


# ----------------------------------------------------------------------------------------
# Running episodes
# ----------------------------------------------------------------------------------------
def run_episodes(method: Method, envs: Sequence[PushTEnv], env_seeds: Sequence[int],
                 perturbation_seeds: Sequence[int], method_seed: int, horizon: int, magnitude: float,
                 probability: float, recording: Optional[Recording] = None) -> list[dict]:
    """Run one episode per env in lock-step; returns one dict of raw metrics per env.

    ``recording`` (optional) collects the frames of env 0. Episode length is each env's
    ``max_steps``. A magnitude of 0 means no perturbation: nothing is applied or counted.
    """
    n = len(envs)
    if not (len(env_seeds) == len(perturbation_seeds) == n):
        raise ValueError(f"need one env seed and one perturbation seed per env, got {len(env_seeds)}, "
                         f"{len(perturbation_seeds)} for {n} envs")
    obs = np.stack([env.reset(int(s)) for env, s in zip(envs, env_seeds)]).astype(np.float32)  # (B, 5)
    adversaries = [BlockPerturbation(probability, magnitude, int(s)) for s in perturbation_seeds]
    method.reset(n, horizon, method_seed)
    steps = np.zeros(n, np.int64)
    active = np.ones(n, bool)
    best = np.array([env.max_coverage for env in envs])
    best_step = np.zeros(n, np.int64)
    events = np.zeros(n, np.int64)
    final = np.array([env.coverage for env in envs])
    if recording is not None:
        recording.frames.append(envs[0].render_frame())
        recording.marks.append({})
    last_gen = None
    while active.any():
        actions = checked_actions(method, obs, steps, active, 2)
        rec_gen = None
        if recording is not None and active[0]:
            rec_gen = int(method.episode_stats().get("active_generation", np.zeros(n, np.int64))[0])
        for i in np.flatnonzero(active):
            env = envs[i]
            d = adversaries[i].sample()  # drawn every step so the event stream is fixed by the seed
            if d is not None and magnitude > 0:
                applied = env.displace_block(d)
                events[i] += 1
                if recording is not None and i == 0:
                    recording.frames.append(env.render_frame())
                    recording.marks.append({"perturbation": applied.tolist()})
            res = env.step(actions[i])
            steps[i] += 1
            obs[i] = res.obs
            final[i] = res.coverage
            if env.max_coverage > best[i]:
                best[i], best_step[i] = env.max_coverage, steps[i]
            if res.done:
                active[i] = False
            if recording is not None and i == 0:
                recording.frames.append(env.render_frame())
                recording.marks.append({"generation": rec_gen, "swap": last_gen is not None and rec_gen != last_gen})
                last_gen = rec_gen
    calls, safe = episode_counters(method, n)
    return [
        {"steps": int(steps[i]), "max_coverage": float(best[i]), "final_coverage": float(final[i]),
         "steps_to_best": int(best_step[i]), "perturbation_events": int(events[i]),
         "generation_calls": int(calls[i]), "safe_steps": int(safe[i])}
        for i in range(n)
    ]


def evaluate(method: Method, cfg: EvalConfig, progress: bool = True,
             record: Optional[tuple[int, float]] = None, meta: Optional[dict] = None) -> EvalResults:
    """Evaluate ``method`` on every (horizon, magnitude) cell of ``cfg``.

    ``record=(horizon, magnitude)`` keeps the frames of the first episode (env 0, repeat 0)
    of that cell in ``results.recording``. ``meta`` is stored in the results (model id, ...).
    """
    from tqdm.auto import tqdm

    envs = [PushTEnv(max_steps=cfg.max_steps) for _ in range(cfg.n_seeds)]
    env_seeds = [cfg.env_seed(i) for i in range(cfg.n_seeds)]
    rows: list[EpisodeResult] = []
    recording = None
    cell_seconds: dict[str, float] = {}
    t_start = time.perf_counter()
    total = len(cfg.horizons) * len(cfg.magnitudes) * cfg.repeats
    bar = tqdm(total=total, desc=f"eval {method.name}", unit="batch", disable=not progress)
    try:
        for horizon in cfg.horizons:
            for magnitude in cfg.magnitudes:
                t_cell = time.perf_counter()
                scores: list[float] = []
                for r in range(cfg.repeats):
                    rec = None
                    if record is not None and r == 0 and (int(record[0]), float(record[1])) == (horizon, magnitude):
                        rec = recording = Recording(horizon, magnitude, env_seeds[0])
                    pert_seeds = [cfg.perturbation_seed(r, i) for i in range(cfg.n_seeds)]
                    m_seed = cfg.method_seed(r)
                    raw = run_episodes(method, envs, env_seeds, pert_seeds, m_seed, horizon, magnitude,
                                       cfg.probability, rec)
                    for i, x in enumerate(raw):
                        row = EpisodeResult(
                            method=method.name, horizon=horizon, magnitude=magnitude, probability=float(cfg.probability),
                            env_index=i, repeat=r, env_seed=env_seeds[i], perturbation_seed=pert_seeds[i],
                            method_seed=m_seed, score=episode_score(x["max_coverage"]),
                            success=is_success(x["max_coverage"]), **x,
                        )
                        rows.append(row)
                        scores.append(row.score)
                    bar.update(1)
                    bar.set_postfix(H=horizon, mag=magnitude, score=f"{np.mean(scores):.3f}")
                cell_seconds[f"{horizon}/{magnitude:g}"] = round(time.perf_counter() - t_cell, 3)
    finally:
        bar.close()
        for env in envs:
            env.close()
    info = dict(meta or {})
    info.update({"wall_seconds": round(time.perf_counter() - t_start, 3), "cell_seconds": cell_seconds})
    info.update(runtime_counters(method))
    return EvalResults(method.name, cfg, rows, summarize(rows), info, recording)
