"""Controller core: runs the active generated policy on every observation.

Horizon protocol (DESIGN.md, "Runtime contract"):

* A policy arrives as a :class:`PolicyCandidate`; :meth:`ControllerCore.offer_policy`
  validates it and stages it as *pending* (a newer pending one replaces an older one).
* The pending policy is installed atomically at the start of a :meth:`~ControllerCore.step`
  when the active policy has run its horizon (``age >= horizon``), when there is no active
  policy, or when the active one belongs to an earlier episode. Until then the current
  policy keeps running: it is closed-loop.
* Episodes are keyed by ``(sim_epoch, episode)``: a restarted simulation numbers its episodes
  from 0 again, so the index alone does not tell runs apart. A policy conditioned on another
  episode is never used for this one: it is staged aside and dropped when its episode does
  not come; until this episode's first policy is there, the safe action is sent.
* ``hold`` repeats the last action sent in this episode; before anything was sent there is
  nothing to hold, and the step says so (``StepOutput.nothing_to_hold``): the node publishes
  nothing rather than a default that could move the robot.
* With ``generator_timeout`` > 0 the controller follows one generator run (epoch) at a time:
  another run's policies are rejected while the followed one has delivered a policy within
  the last ``generator_timeout`` seconds (:class:`~warpd_core.runtime.follow.RunFollower`).
* ``age`` counts control steps since installation. At ``age >= max_policy_age`` the
  controller sends the safe action and raises ``stale`` until a new policy is installed.
* Every action is finite and clamped to ``[action_low, action_high]``. A policy whose output
  is non-finite on ``max_policy_failures`` consecutive steps is dropped.
* Every rejected or dropped policy is counted in ``rejected`` under a :class:`Rejection`.

The same object drives the ROS controller node and the offline evaluation harness, so what
is evaluated offline is what runs on the robot. The hot path (:meth:`step`) works on
preallocated buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Optional

import numpy as np

from warpd_core.policy.spec import ACTIVATIONS, MLPPolicy, PolicySpec
from warpd_core.runtime.follow import RunFollower

SOURCE_POLICY = 0
SOURCE_SAFE = 1

SAFE_MODES = ("hold", "zero", "last_valid", "fixed")


class Rejection(StrEnum):
    """Why a policy was turned away: the keys of :attr:`ControllerCore.rejected`, and so of the
    controller node's ``rejected_reasons`` diagnostic (``key=count;...``). Stable names: tools
    and dashboards count by them; the message that comes with each says the details."""

    BAD_LAYER_SIZES = "bad_layer_sizes"  # fewer than 2 layers, or a size <= 0
    WRONG_IO_SIZES = "wrong_io_sizes"  # layer_sizes do not map obs_dim to act_dim
    UNKNOWN_ACTIVATION = "unknown_activation"
    TOO_MANY_WEIGHTS = "too_many_weights"  # the declared sizes exceed max_weights
    WEIGHT_COUNT = "weight_count"  # the weights sent do not match the declared sizes
    WRONG_MODEL = "wrong_model"  # model_id is not expected_model_id
    BAD_HORIZON = "bad_horizon"  # horizon <= 0
    STALE_GENERATION = "stale_generation"  # not newer than the last accepted of its generator run
    NONFINITE_WEIGHTS = "nonfinite_weights"
    FOREIGN_GENERATOR = "foreign_generator"  # another generator run while the followed one is alive
    OVERSIZED_MESSAGE = "oversized_message"  # the node refused the message from its size, undecoded
    NONFINITE_OUTPUT = "nonfinite_output"  # dropped after max_policy_failures non-finite actions


@dataclass
class ControllerConfig:
    """Controller parameters (the controller node declares one ROS parameter per field).

    Attributes:
        obs_dim: observation size the controller accepts.
        act_dim: action size it emits.
        action_low / action_high: per-dimension clamp (length 1 broadcasts).
        safe_mode: ``hold`` (repeat the last action sent), ``zero``, ``last_valid`` (the last
            action computed by a policy) or ``fixed`` (``safe_action``).
        safe_action: the action for ``fixed`` (and the fallback before any action exists).
        max_policy_age: control steps a policy may run before the safe action takes over.
        expected_model_id: accept only policies of this model ('' accepts any).
        max_weights: reject weight vectors longer than this (resource bound).
        obs_low / obs_high: optional observation range; outside it the observation is rejected.
        max_policy_failures: consecutive non-finite outputs after which a policy is dropped.
        generator_timeout: seconds the followed generator run must be silent before another
            run's policies are accepted (0: accept any run; the offline harness has one).
    """

    obs_dim: int
    act_dim: int
    action_low: list = field(default_factory=lambda: [-math.inf])
    action_high: list = field(default_factory=lambda: [math.inf])
    safe_mode: str = "hold"
    safe_action: list = field(default_factory=list)
    max_policy_age: int = 64
    expected_model_id: str = ""
    max_weights: int = 4_000_000
    obs_low: list = field(default_factory=list)
    obs_high: list = field(default_factory=list)
    max_policy_failures: int = 3
    generator_timeout: float = 0.0

    def __post_init__(self) -> None:
        if int(self.obs_dim) <= 0 or int(self.act_dim) <= 0:
            raise ValueError(f"obs_dim and act_dim must be positive, got {self.obs_dim}, {self.act_dim}")
        if self.safe_mode not in SAFE_MODES:
            raise ValueError(f"safe_mode must be one of {SAFE_MODES}, got {self.safe_mode!r}")
        for name in ("max_policy_age", "max_weights", "max_policy_failures"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not (math.isfinite(self.generator_timeout) and self.generator_timeout >= 0):
            raise ValueError(f"generator_timeout must be finite and >= 0, got {self.generator_timeout}")
        self.low = self._vec("action_low", self.action_low, self.act_dim)
        self.high = self._vec("action_high", self.action_high, self.act_dim)
        if np.any(self.low > self.high):
            raise ValueError(f"action_low {self.low.tolist()} exceeds action_high {self.high.tolist()}")
        if self.safe_mode == "fixed" and len(self.safe_action) == 0:
            raise ValueError("safe_mode 'fixed' needs safe_action")
        if len(self.safe_action):
            sa = self._vec("safe_action", self.safe_action, self.act_dim)
            if not np.all(np.isfinite(sa)):
                raise ValueError(f"safe_action must be finite, got {sa.tolist()}")
            self.safe = np.clip(sa, self.low, self.high)
        else:
            # Default safe action: zero clipped into the bounds (mid-range if 0 is outside).
            mid = np.where(np.isfinite(self.low) & np.isfinite(self.high), (self.low + self.high) / 2, 0.0)
            self.safe = np.clip(np.zeros(self.act_dim), self.low, self.high)
            self.safe = np.where((self.low > 0) | (self.high < 0), mid, self.safe)
        self.olow = self._vec("obs_low", self.obs_low, self.obs_dim) if len(self.obs_low) else None
        self.ohigh = self._vec("obs_high", self.obs_high, self.obs_dim) if len(self.obs_high) else None
        if self.olow is not None and self.ohigh is not None and np.any(self.olow > self.ohigh):
            raise ValueError(f"obs_low {self.olow.tolist()} exceeds obs_high {self.ohigh.tolist()}")

    @staticmethod
    def _vec(name: str, values, n: int) -> np.ndarray:
        """Per-dimension vector (1 entry broadcasts); NaN is never a bound (every comparison
        with it is false, so it would let anything through). Infinite bounds are the library
        default; the controller node requires finite ones."""
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 1:
            v = np.full(n, float(v[0]))
        if v.size != n:
            raise ValueError(f"{name} must have 1 or {n} entries, got {v.size}")
        if np.any(np.isnan(v)):
            raise ValueError(f"{name} must not contain NaN, got {v.tolist()}")
        return v


@dataclass
class PolicyCandidate:
    """A received policy, as decoded from a PolicyWeights message (no copy of ``weights``)."""

    model_id: str
    generation: int
    generator_epoch: int
    layer_sizes: tuple
    activation: str
    weights: np.ndarray  # (n_weights,) float32
    horizon: int
    obs_seq: int = 0
    episode: int = -1  # episode of the conditioning observation (-1: unknown)
    task_id: int = -1
    sim_epoch: int = 0  # simulation run of the conditioning observation (0: unknown)

    @property
    def key(self) -> tuple | None:
        """(sim_epoch, episode) it was conditioned on; None when unknown (fits any episode)."""
        return None if self.episode < 0 else (int(self.sim_epoch), int(self.episode))


def _all_finite(x: np.ndarray, zeros: np.ndarray) -> bool:
    """Every entry of ``x`` is finite, for a short vector on the hot path.

    ``x . 0`` is 0 when all entries are finite and nan as soon as one is inf or nan
    (inf * 0 = nan); the products are all zero, so nothing can overflow. Same answer as
    ``np.all(np.isfinite(x))`` at a quarter of the cost: a reduction builds an iterator on
    every call, and the controller checks twice per step (``warpd bench controller``).
    """
    return bool(np.dot(x, zeros) == 0.0)


@dataclass
class StepOutput:
    action: np.ndarray  # (act_dim,) float64, view of an internal buffer
    source: int  # SOURCE_POLICY or SOURCE_SAFE
    generation: int  # generation of the policy that produced it (0 for none)
    policy_age: int
    reason: str = ""  # why the safe action was sent ('' when from the policy)
    nothing_to_hold: bool = False  # safe_mode hold, nothing sent yet this episode: send nothing


class _Active:
    __slots__ = ("policy", "generation", "epoch", "horizon", "key", "age", "failures", "model_id")

    def __init__(self, cand: PolicyCandidate, policy: MLPPolicy):
        self.policy = policy
        self.generation = int(cand.generation)
        self.epoch = int(cand.generator_epoch)
        self.horizon = int(cand.horizon)
        self.key = cand.key
        self.model_id = cand.model_id
        self.age = 0
        self.failures = 0


class ControllerCore:
    """See module docstring. Not thread-safe by itself: the node calls it from one executor thread."""

    def __init__(self, cfg: ControllerConfig):
        self.cfg = cfg
        self._active: Optional[_Active] = None
        self._pending: Optional[tuple[PolicyCandidate, MLPPolicy]] = None  # fits the current episode
        self._early: Optional[tuple[PolicyCandidate, MLPPolicy]] = None  # conditioned on another episode
        self._episode = -1
        self._sim_epoch = 0
        self._newest: Optional[tuple[int, int]] = None  # (generator_epoch, generation) last accepted
        self.generators = RunFollower(cfg.generator_timeout)
        self._action = np.zeros(cfg.act_dim, dtype=np.float64)
        self._last_sent: Optional[np.ndarray] = None
        self._last_valid: Optional[np.ndarray] = None
        self._obs = np.zeros(cfg.obs_dim, dtype=np.float32)
        self._zeros_obs = np.zeros(cfg.obs_dim)  # for _all_finite
        self._zeros_act = np.zeros(cfg.act_dim, dtype=np.float32)
        # counters (reported in diagnostics and by the graph runner)
        self.steps = 0
        self.safe_steps = 0
        self.swaps = 0
        self.rejected: dict[Rejection, int] = {}
        self.last_rejection: Optional[Rejection] = None  # the reason counted last
        self.bad_obs = 0
        self.stale_events = 0  # transitions into the max-age safe state
        self._stale = False
        self._outdated = False  # the active policy belongs to an episode before the current one
        self.swap_log: list[tuple[int, int, int]] = []  # (step, generation, previous age)

    # -- policies -----------------------------------------------------------------------
    def validate(self, c: PolicyCandidate) -> str:
        """'' if the candidate is acceptable, else the reason it is rejected."""
        found = self._rejection(c)
        return found[1] if found else ""

    def _rejection(self, c: PolicyCandidate) -> Optional[tuple[Rejection, str]]:
        cfg = self.cfg
        sizes = tuple(int(s) for s in c.layer_sizes)
        if len(sizes) < 2 or any(s <= 0 for s in sizes):
            return Rejection.BAD_LAYER_SIZES, f"layer_sizes {list(sizes)} invalid"
        if sizes[0] != cfg.obs_dim or sizes[-1] != cfg.act_dim:
            return (Rejection.WRONG_IO_SIZES,
                    f"layer_sizes {list(sizes)} do not map obs_dim {cfg.obs_dim} to act_dim {cfg.act_dim}")
        if c.activation not in ACTIVATIONS:
            return Rejection.UNKNOWN_ACTIVATION, f"unknown activation {c.activation!r}"
        n = sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:]))
        if n > cfg.max_weights:
            return Rejection.TOO_MANY_WEIGHTS, f"policy has {n} weights, more than max_weights {cfg.max_weights}"
        if len(c.weights) != n:
            return Rejection.WEIGHT_COUNT, f"{len(c.weights)} weights, layer_sizes {list(sizes)} imply {n}"
        if cfg.expected_model_id and c.model_id != cfg.expected_model_id:
            return Rejection.WRONG_MODEL, f"model_id {c.model_id!r} != expected {cfg.expected_model_id!r}"
        if int(c.horizon) <= 0:
            return Rejection.BAD_HORIZON, f"horizon {c.horizon} must be positive"
        # Generations are ordered within one generator run (epoch); a restarted generator
        # starts a new epoch and its generation numbers start again.
        newest = self._newest
        if newest is not None and int(c.generator_epoch) == newest[0] and int(c.generation) <= newest[1]:
            return Rejection.STALE_GENERATION, f"generation {c.generation} not newer than {newest[1]}"
        if not np.all(np.isfinite(c.weights)):
            return Rejection.NONFINITE_WEIGHTS, "non-finite weights"
        return None

    def count_rejection(self, why: Rejection) -> None:
        """Count a rejected policy under ``why`` (the node counts here what it refuses before
        decoding, e.g. an oversized message)."""
        self.rejected[why] = self.rejected.get(why, 0) + 1
        self.last_rejection = why

    def offer_policy(self, c: PolicyCandidate, now: float = 0.0) -> str:
        """Validate and stage ``c`` (received at ``now``, seconds on any monotonic clock).
        Returns '' when accepted, else the rejection reason."""
        epoch = int(c.generator_epoch)
        if not self.generators.allows(epoch, now):
            self.count_rejection(Rejection.FOREIGN_GENERATOR)
            return (f"generator epoch {epoch} while following epoch {self.generators.run}, which sent a policy "
                    f"{self.generators.silent_for(now):.2f} s ago (generator_timeout {self.cfg.generator_timeout} s)")
        found = self._rejection(c)
        if found:
            self.count_rejection(found[0])
            return found[1]
        self.generators.heard(epoch, now)
        self._newest = (epoch, int(c.generation))
        spec = PolicySpec.from_layer_sizes(c.layer_sizes, c.activation)
        staged = (c, MLPPolicy(spec, c.weights))
        if self._fits(c.key):
            self._pending = staged
        else:  # for an episode this controller has not seen yet (or never will)
            self._early = staged
        return ""

    def _fits(self, key: tuple | None) -> bool:
        """Was a policy with this (sim_epoch, episode) key conditioned on the current episode?
        Unknown keys (and sim_epoch 0, unknown run) fit by episode index alone."""
        if key is None or self._episode < 0:
            return True
        sim, ep = key
        return ep == self._episode and (sim == 0 or self._sim_epoch == 0 or sim == self._sim_epoch)

    def needs_policy(self) -> bool:
        """True when the next step would want a new policy and none is pending.

        The lockstep controller node and the evaluation harness use this to wait for (or
        compute) the next generation before acting, which makes runs deterministic.
        """
        if self._pending is not None:
            return False
        a = self._active
        return a is None or a.age >= a.horizon or self._outdated or not self._fits(a.key)

    def new_episode(self, episode: int, sim_epoch: int = 0) -> None:
        """Mark the start of an episode: the next policy conditioned on it replaces the active one.

        The active policy is outdated whatever its key: it answers no step of this episode. A
        staged policy conditioned on another (sim_epoch, episode) is dropped; one for this episode
        is kept (it may have arrived just before the episode's first observation).
        """
        self._episode = int(episode)
        self._sim_epoch = int(sim_epoch)
        self._last_sent = None
        self._last_valid = None
        self._outdated = self._active is not None
        staged = [s for s in (self._pending, self._early) if s is not None and self._fits(s[0].key)]
        self._pending = max(staged, key=lambda s: int(s[0].generation)) if staged else None
        self._early = None

    def _maybe_install(self) -> None:
        p = self._pending
        if p is None:
            return
        a = self._active
        cand = p[0]
        newer_episode = a is not None and cand.key is not None and cand.key != a.key
        if a is None or a.age >= a.horizon or newer_episode or self._outdated:
            prev_age = -1 if a is None else a.age
            self._active = _Active(cand, p[1])
            self._pending = None
            self.swaps += 1
            self._stale = False
            self._outdated = False
            if len(self.swap_log) < 100_000:
                self.swap_log.append((self.steps, int(cand.generation), prev_age))

    @property
    def active_generation(self) -> int:
        return 0 if self._active is None else self._active.generation

    @property
    def policy_age(self) -> int:
        return 0 if self._active is None else self._active.age

    @property
    def stale(self) -> bool:
        return self._stale

    # -- control step ---------------------------------------------------------------------
    def _safe(self, reason: str) -> StepOutput:
        cfg = self.cfg
        mode = cfg.safe_mode
        nothing = False
        if mode == "hold" and self._last_sent is not None:
            src = self._last_sent
        elif mode == "last_valid" and self._last_valid is not None:
            src = self._last_valid
        else:
            src = cfg.safe
            nothing = mode == "hold"
        np.copyto(self._action, src)
        self.safe_steps += 1
        a = self._active
        return StepOutput(self._action, SOURCE_SAFE, 0 if a is None else a.generation, 0 if a is None else a.age, reason,
                          nothing_to_hold=nothing)

    def _sent(self, out: StepOutput) -> StepOutput:
        if not out.nothing_to_hold:  # what `hold` repeats: only an action that was actually sent
            if self._last_sent is None:
                self._last_sent = np.empty(self.cfg.act_dim)
            np.copyto(self._last_sent, out.action)
        return out

    def safe_step(self, reason: str) -> StepOutput:
        """The safe action for a step the node decided not to compute (stale input, no
        observation, deactivation); counted like any other safe step."""
        return self._sent(self._safe(reason))

    def check_obs(self, obs: np.ndarray) -> str:
        cfg = self.cfg
        if obs.shape != (cfg.obs_dim,):
            return f"observation has shape {obs.shape}, expected ({cfg.obs_dim},)"
        if obs.dtype.kind not in "biuf":  # strings/objects would raise below, complex would lose its imaginary part
            return f"observation has dtype {obs.dtype}, expected a real number type"
        if not _all_finite(obs, self._zeros_obs):
            return "non-finite observation"
        if cfg.olow is not None and np.any(obs < cfg.olow):
            return "observation below obs_low"
        if cfg.ohigh is not None and np.any(obs > cfg.ohigh):
            return "observation above obs_high"
        return ""

    def step(self, obs: np.ndarray) -> StepOutput:
        """One control step: obs (obs_dim,) -> action (act_dim,), always finite and clamped."""
        self.steps += 1
        self._maybe_install()
        obs = np.asarray(obs)
        bad = self.check_obs(obs)
        return self._sent(self._step_checked(obs, bad))

    def _step_checked(self, obs: np.ndarray, bad: str) -> StepOutput:
        a = self._active
        if bad:
            self.bad_obs += 1
            if a is not None:
                a.age += 1
            return self._safe(bad)
        if a is None:
            return self._safe("no policy yet")
        if self._outdated or not self._fits(a.key):
            return self._safe("no policy for this episode yet")
        if a.age >= self.cfg.max_policy_age:
            if not self._stale:
                self._stale = True
                self.stale_events += 1
            a.age += 1
            return self._safe(f"policy age {a.age - 1} >= max_policy_age {self.cfg.max_policy_age}")
        np.copyto(self._obs, obs, casting="unsafe")
        y = a.policy.act(self._obs)
        a.age += 1
        if not _all_finite(y, self._zeros_act):
            a.failures += 1
            if a.failures >= self.cfg.max_policy_failures:
                self._active = None
                self.count_rejection(Rejection.NONFINITE_OUTPUT)
            return self._safe("policy produced a non-finite action")
        a.failures = 0
        # clamp; maximum + minimum instead of np.clip, whose wrapper costs ~2 us per call
        np.maximum(y, self.cfg.low, out=self._action)
        np.minimum(self._action, self.cfg.high, out=self._action)
        if self._last_valid is None:
            self._last_valid = np.empty(self.cfg.act_dim)
        np.copyto(self._last_valid, self._action)
        return StepOutput(self._action, SOURCE_POLICY, a.generation, a.age)
