"""Property-based tests of the controller's input path: whatever arrives as a policy or an
observation, :class:`ControllerCore` answers every step with a finite action inside the
bounds, never raises, and a rejected policy leaves the running one in place.

Also the resource bound: a PolicyWeights that *declares* a huge network is rejected from its
layer sizes alone, before anything of that size is allocated.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import requires_ros
from warpd_core.policy.spec import ACTIVATIONS, PolicySpec
from warpd_core.runtime.controller import (
    SAFE_MODES,
    SOURCE_POLICY,
    SOURCE_SAFE,
    ControllerConfig,
    ControllerCore,
    PolicyCandidate,
    Rejection,
)

OBS_DIM, ACT_DIM = 5, 2
LOW, HIGH = np.array([0.0, -10.0]), np.array([512.0, 10.0])
MAX_WEIGHTS = 20_000
U64 = 2**64 - 1

# float32 values that matter: ordinary, huge, tiny, non-finite
F32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
F32_FINITE_SMALL = st.floats(-4.0, 4.0, width=32)


def make_core(safe_mode: str = "hold", **kw) -> ControllerCore:
    cfg = dict(obs_dim=OBS_DIM, act_dim=ACT_DIM, action_low=LOW.tolist(), action_high=HIGH.tolist(),
               safe_mode=safe_mode, max_policy_age=6, max_weights=MAX_WEIGHTS, max_policy_failures=2)
    if safe_mode == "fixed":
        cfg["safe_action"] = [100.0, 3.0]
    cfg.update(kw)
    return ControllerCore(ControllerConfig(**cfg))


@st.composite
def layer_sizes(draw):
    """Mostly shapes the controller accepts (5 -> ... -> 2), sometimes wrong dims, zeros, huge."""
    kind = draw(st.sampled_from(["valid", "valid", "valid", "wrong_dims", "any", "huge"]))
    hidden = draw(st.lists(st.integers(1, 12), max_size=3))
    if kind == "valid":
        return (OBS_DIM, *hidden, ACT_DIM)
    if kind == "wrong_dims":
        return (draw(st.integers(0, 8)), *hidden, draw(st.integers(0, 8)))
    if kind == "huge":
        return (OBS_DIM, *[draw(st.integers(10_000, 2**32 - 1)) for _ in range(draw(st.integers(1, 3)))], ACT_DIM)
    return tuple(draw(st.lists(st.integers(-(2**40), 2**40), max_size=5)))


def mostly(draw, good, bad):
    """``good`` three times out of four, otherwise anything from ``bad``."""
    return draw(good) if draw(st.sampled_from([True, True, True, False])) else draw(bad)


@st.composite
def candidates(draw, epoch=None):
    """PolicyCandidates, about half of them acceptable, the rest wrong in one or more fields."""
    sizes = draw(layer_sizes())
    implied = None
    if len(sizes) >= 2 and all(s > 0 for s in sizes):
        implied = sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:]))
    if implied is not None and implied <= 2_000 and draw(st.sampled_from([True, True, True, False])):
        n = implied + draw(st.sampled_from([0, 0, 0, 0, 0, -1, 1]))
    else:
        n = draw(st.integers(0, 64))
    n = max(n, 0)
    weights = draw(hnp.arrays(np.float32, n, elements=mostly(draw, st.just(F32_FINITE_SMALL), st.just(F32))))
    return PolicyCandidate(
        model_id=mostly(draw, st.just("m"), st.text(max_size=8)),
        generation=draw(st.integers(0, U64)),
        generator_epoch=epoch if epoch is not None else mostly(draw, st.sampled_from([1, 2]), st.integers(0, U64)),
        layer_sizes=sizes,
        activation=mostly(draw, st.sampled_from(ACTIVATIONS), st.text(max_size=10)),
        weights=weights,
        horizon=mostly(draw, st.sampled_from([1, 4, 8]), st.integers(-(2**31), 2**32)),
        obs_seq=draw(st.integers(0, U64)),
        episode=draw(st.integers(-1, 3)),
        task_id=draw(st.integers(-(2**31), 2**31 - 1)),
    )


NUMERIC_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.int8, np.bool_]


@st.composite
def observations(draw):
    """Any shape, numeric dtype and content; half of them well-formed (5,) float64."""
    if draw(st.integers(0, 1)) == 0:
        return draw(hnp.arrays(np.float64, OBS_DIM, elements=st.floats(-600, 600)))
    dtype = draw(st.sampled_from(NUMERIC_DTYPES + [np.complex128]))
    shape = draw(st.sampled_from([(OBS_DIM,), (OBS_DIM,), (0,), (4,), (6,), (1, OBS_DIM), (OBS_DIM, 1), ()]) |
                 hnp.array_shapes(min_dims=0, max_dims=3, max_side=6))
    return draw(hnp.arrays(dtype, shape))


def check_output(c: ControllerCore, out) -> None:
    a = out.action
    assert a.shape == (ACT_DIM,) and a.dtype == np.float64
    assert np.all(np.isfinite(a)), a
    assert np.all(a >= LOW) and np.all(a <= HIGH), a
    assert out.source in (SOURCE_POLICY, SOURCE_SAFE)
    if out.source == SOURCE_SAFE:
        assert out.reason


ops = st.lists(st.one_of(st.tuples(st.just("offer"), candidates()), st.tuples(st.just("step"), observations()),
                         st.tuples(st.just("episode"), st.integers(0, 3))), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(safe_mode=st.sampled_from(SAFE_MODES), seq=ops)
def test_any_sequence_of_policies_and_observations_gives_finite_bounded_actions(safe_mode, seq):
    c = make_core(safe_mode)
    with np.errstate(all="ignore"):
        for op, arg in seq:
            if op == "offer":
                before = (c._active, c._pending, c.active_generation)
                reason = c.offer_policy(arg)
                assert isinstance(reason, str)
                event("policy rejected" if reason else "policy accepted")
                if reason:
                    # rejected: the running and the staged policy are untouched
                    assert (c._active, c._pending, c.active_generation) == before
                else:
                    sizes = tuple(int(s) for s in arg.layer_sizes)
                    assert sizes[0] == OBS_DIM and sizes[-1] == ACT_DIM and arg.activation in ACTIVATIONS
                    assert len(arg.weights) == PolicySpec.from_layer_sizes(sizes, arg.activation).n_weights
                    assert np.all(np.isfinite(arg.weights)) and int(arg.horizon) > 0
                    # staged: for the current episode, or aside for the episode it was conditioned on
                    assert any(s is not None and s[0] is arg for s in (c._pending, c._early))
            elif op == "episode":
                c.new_episode(arg)
            else:
                out = c.step(arg)
                check_output(c, out)
                event("stepped with a policy" if out.source == SOURCE_POLICY else "stepped with the safe action")


@settings(max_examples=60, deadline=None)
@given(bad=candidates(epoch=7))
def test_rejections_keep_the_previous_policy_running(bad):
    """A good policy runs; an arbitrary candidate from the same generator run either is a valid
    newer policy or is rejected, and then the old one keeps answering exactly as before."""
    c = make_core("fixed", max_policy_age=1000)
    spec = PolicySpec(OBS_DIM, (4,), ACT_DIM)
    w = np.zeros(spec.n_weights, np.float32)
    w[-ACT_DIM:] = [42.0, 1.5]  # constant output
    assert c.offer_policy(PolicyCandidate("m", 10, 7, spec.layer_sizes, "relu", w, 4)) == ""
    obs = np.ones(OBS_DIM)
    assert c.step(obs).generation == 10
    n_rejected = sum(c.rejected.values())
    reason = c.offer_policy(bad)
    if bad.generation <= 10:
        assert reason, "an older generation of the same generator run was accepted"
    if reason:
        assert sum(c.rejected.values()) == n_rejected + 1
        with np.errstate(all="ignore"):
            for _ in range(10):
                out = c.step(obs)
                assert out.source == SOURCE_POLICY and out.generation == 10
                assert out.action.tolist() == [42.0, 1.5]


@settings(max_examples=200, deadline=None)
@given(obs=observations(), safe_mode=st.sampled_from(SAFE_MODES), bounded=st.booleans())
def test_any_observation_gives_finite_bounded_action(obs, safe_mode, bounded):
    kw = dict(obs_low=[-50.0] * OBS_DIM, obs_high=[562.0] * OBS_DIM) if bounded else {}
    c = make_core(safe_mode, **kw)
    spec = PolicySpec(OBS_DIM, (8, 8), ACT_DIM, "tanh")
    w = np.random.default_rng(0).normal(0, 3, spec.n_weights).astype(np.float32)
    assert c.offer_policy(PolicyCandidate("m", 1, 1, spec.layer_sizes, "tanh", w, 100)) == ""
    with np.errstate(all="ignore"):
        check_output(c, c.step(np.linspace(0, 1, OBS_DIM)))
        out = c.step(obs)
        check_output(c, out)
        well_formed = obs.shape == (OBS_DIM,) and obs.dtype.kind in "biuf" and np.all(np.isfinite(obs))
        if not well_formed:
            assert out.source == SOURCE_SAFE
        # the next good observation is answered by the policy again
        out = c.step(np.linspace(0, 1, OBS_DIM))
    assert out.source == SOURCE_POLICY and out.generation == 1


def test_non_numeric_observations_get_the_safe_action():
    c = make_core("fixed")
    spec = PolicySpec(OBS_DIM, (4,), ACT_DIM)
    c.offer_policy(PolicyCandidate("m", 1, 1, spec.layer_sizes, "relu", np.zeros(spec.n_weights, np.float32), 8))
    for obs in (np.array(["a"] * OBS_DIM), np.array([None] * OBS_DIM, dtype=object), [1, 2, "x", 4, 5],
                np.array([b"12345"]), None):
        out = c.step(obs)
        check_output(c, out)
        assert out.source == SOURCE_SAFE and out.action.tolist() == [100.0, 3.0]
    assert c.step(np.ones(OBS_DIM)).source == SOURCE_POLICY


# -- through the ROS message ---------------------------------------------------------------
@st.composite
def weight_messages(draw):
    from warpd_ros.conversions import float32_array
    from warpd_ros.msg import PolicyWeights

    c = draw(candidates())
    m = PolicyWeights()
    m.model_id = c.model_id
    m.generation = c.generation
    m.generator_epoch = c.generator_epoch
    m.obs_seq = c.obs_seq
    m.episode = c.episode
    # the message types bound the fields: uint32 sizes/horizon, int32 episode/task
    m.horizon = min(max(int(c.horizon), 0), 2**32 - 1)
    m.task_id = max(min(int(c.task_id), 2**31 - 1), -(2**31))
    m.layer_sizes = [min(max(int(s), 0), 2**32 - 1) for s in c.layer_sizes]
    m.activation = c.activation
    m.weights = float32_array(c.weights)
    return m


@requires_ros
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=st.lists(weight_messages(), min_size=1, max_size=6), obs=st.lists(observations(), min_size=1, max_size=4))
def test_candidate_from_any_policy_weights_message(msgs, obs):
    from warpd_ros.conversions import candidate_from_msg

    c = make_core("last_valid")
    with np.errstate(all="ignore"):
        for m in msgs:
            cand = candidate_from_msg(m)
            assert cand.weights.dtype == np.float32 and len(cand.weights) == len(m.weights)
            before = (c._active, c._pending)
            if c.offer_policy(cand):
                assert (c._active, c._pending) == before
            for o in obs:
                check_output(c, c.step(o))


# -- resource bounds -----------------------------------------------------------------------
def test_declared_huge_network_is_rejected_before_allocation():
    """layer_sizes [5, 100000, 100000, 2] implies ~1e10 weights (40 GB): rejected from the sizes
    alone, in microseconds, allocating nothing of that order."""
    c = make_core(max_weights=4_000_000)
    cand = PolicyCandidate("m", 1, 1, (5, 100_000, 100_000, 2), "relu", np.zeros(16, np.float32), 8)
    tracemalloc.start()
    t0 = time.perf_counter()
    reason = c.offer_policy(cand)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "max_weights" in reason, reason
    assert peak < 64 * 1024 and dt < 0.05, (peak, dt)
    assert c._pending is None and c.rejected == {Rejection.TOO_MANY_WEIGHTS: 1}
    # sizes at the wire limit (uint32) and absurd depth are also rejected without building anything
    for sizes in ((5, 2**32 - 1, 2), (5,) + (4096,) * 1000 + (2,)):
        assert "max_weights" in c.offer_policy(PolicyCandidate("m", 2, 1, sizes, "relu", np.zeros(4, np.float32), 8))


@requires_ros
def test_declared_huge_network_message_is_rejected_cheaply():
    from warpd_ros.conversions import candidate_from_msg
    from warpd_ros.msg import PolicyWeights

    m = PolicyWeights()
    m.generation, m.generator_epoch, m.horizon, m.activation = 1, 1, 8, "relu"
    m.layer_sizes = [5, 100_000, 100_000, 2]
    m.weights = [0.0] * 16
    c = make_core(max_weights=4_000_000)
    tracemalloc.start()
    reason = c.offer_policy(candidate_from_msg(m))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "max_weights" in reason and peak < 64 * 1024, (reason, peak)


# -- regressions found by the fault-injection tests ------------------------------------------------
def _const(value, generation, epoch=1, horizon=4, episode=0):
    spec = PolicySpec(OBS_DIM, (4,), ACT_DIM)
    w = np.zeros(spec.n_weights, np.float32)
    w[-ACT_DIM:] = value
    return PolicyCandidate("m", generation, epoch, spec.layer_sizes, "relu", w, horizon, episode=episode)


def test_restarted_simulation_reusing_episode_index_gets_a_fresh_policy_at_once():
    """A restarted simulation numbers its episodes from 0 again. The policy running when the old
    one died (episode 0, mid-horizon) must not answer the new run's first observation, and the
    new run's policy installs at once, not at the old policy's horizon boundary
    (test_fault_injection.py::test_restarted_sim_resynchronises_controller_and_generator)."""
    c = make_core("fixed")
    c.new_episode(0)
    c.offer_policy(_const([1.0, 1.0], 1))
    for _ in range(2):
        assert c.step(np.ones(OBS_DIM)).generation == 1  # mid-horizon (age 2 of 4) when the sim dies
    c.new_episode(0)  # the new simulation's first observation
    assert c.needs_policy()  # lockstep: hold the observation until the new run's policy is there
    assert c.offer_policy(_const([9.0, 9.0], 2)) == ""
    out = c.step(np.ones(OBS_DIM))
    assert out.generation == 2 and out.policy_age == 1 and out.action.tolist() == [9.0, 9.0]
    assert not c.needs_policy()


def test_new_episode_drops_a_staged_policy_of_another_episode():
    c = make_core("fixed")
    c.new_episode(3)
    c.offer_policy(_const([1.0, 1.0], 1, episode=3))
    c.step(np.ones(OBS_DIM))
    c.offer_policy(_const([2.0, 2.0], 2, episode=3))  # generated early for episode 3's next horizon
    c.new_episode(4)
    assert c.needs_policy() and c._pending is None
    out = c.step(np.ones(OBS_DIM))  # realtime: episode 3's policy does not answer episode 4 (issue 14)
    assert out.source == SOURCE_SAFE and out.reason == "no policy for this episode yet"
    c.offer_policy(_const([4.0, 4.0], 3, episode=4))
    assert c.step(np.ones(OBS_DIM)).generation == 3
