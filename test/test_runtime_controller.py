"""ControllerCore and GenerationSchedule without ROS: the runtime contract of DESIGN.md."""

import numpy as np
import pytest

from warpd_core.policy.spec import MLPPolicy, PolicySpec
from warpd_core.runtime.controller import (
    SOURCE_POLICY,
    SOURCE_SAFE,
    ControllerConfig,
    ControllerCore,
    PolicyCandidate,
    Rejection,
)
from warpd_core.runtime.generator import GenerationSchedule

SPEC = PolicySpec(5, (16, 16), 2, "relu")


def constant_policy(value, gen, epoch=1, horizon=4, episode=-1, spec=SPEC):
    """A policy whose output is exactly `value` (zero weights, last bias = value)."""
    flat = np.zeros(spec.n_weights, np.float32)
    flat[-spec.out_dim:] = value
    return PolicyCandidate("m", gen, epoch, spec.layer_sizes, spec.activation, flat, horizon, episode=episode)


def make(**kw):
    cfg = dict(obs_dim=5, act_dim=2, action_low=[0.0], action_high=[100.0], max_policy_age=8)
    cfg.update(kw)
    return ControllerCore(ControllerConfig(**cfg))


OBS = np.ones(5)


def test_no_policy_gives_safe_action():
    c = make(safe_mode="fixed", safe_action=[1.0, 2.0])
    out = c.step(OBS)
    assert out.source == SOURCE_SAFE and out.action.tolist() == [1.0, 2.0]


def test_swap_happens_exactly_at_horizon_boundary():
    c = make()
    assert c.offer_policy(constant_policy(10.0, 1)) == ""
    gens = []
    for t in range(12):
        if t == 2:  # the next policy arrives early: it must wait for the boundary
            assert c.offer_policy(constant_policy(20.0, 2)) == ""
        if t == 6:
            assert c.offer_policy(constant_policy(30.0, 3)) == ""
        out = c.step(OBS)
        gens.append((out.generation, out.policy_age, out.action[0]))
    assert [g for g, _, _ in gens] == [1] * 4 + [2] * 4 + [3] * 4
    assert [a for _, a, _ in gens] == [1, 2, 3, 4] * 3
    assert [v for _, _, v in gens] == [10.0] * 4 + [20.0] * 4 + [30.0] * 4
    assert c.swaps == 3


def test_keeps_current_policy_until_next_arrives_then_safe_after_max_age():
    c = make(safe_mode="fixed", safe_action=[5.0, 5.0], max_policy_age=6)
    c.offer_policy(constant_policy(10.0, 1, horizon=4))
    outs = [(o.source, o.action.copy()) for o in (c.step(OBS) for _ in range(8))]
    assert [s for s, _ in outs[:6]] == [SOURCE_POLICY] * 6  # past the horizon: still closed loop
    assert all(a[0] == 10.0 for _, a in outs[:6])
    assert [s for s, _ in outs[6:]] == [SOURCE_SAFE] * 2
    assert outs[7][1].tolist() == [5.0, 5.0]
    assert c.stale and c.stale_events == 1
    c.offer_policy(constant_policy(20.0, 2))
    out = c.step(OBS)
    assert out.source == SOURCE_POLICY and out.action[0] == 20.0 and not c.stale


@pytest.mark.parametrize(
    "mutate, reason, key",
    [
        (lambda p: setattr(p, "weights", p.weights[:-1]), "weights", Rejection.WEIGHT_COUNT),
        (lambda p: p.weights.__setitem__(3, np.nan), "non-finite", Rejection.NONFINITE_WEIGHTS),
        (lambda p: setattr(p, "layer_sizes", (4, 16, 16, 2)), "obs_dim", Rejection.WRONG_IO_SIZES),
        (lambda p: setattr(p, "layer_sizes", (5, 16, 16, 3)), "act_dim", Rejection.WRONG_IO_SIZES),
        (lambda p: setattr(p, "activation", "swish"), "activation", Rejection.UNKNOWN_ACTIVATION),
        (lambda p: setattr(p, "generation", 1), "not newer", Rejection.STALE_GENERATION),
        (lambda p: setattr(p, "horizon", 0), "horizon", Rejection.BAD_HORIZON),
    ],
)
def test_malformed_policy_is_rejected_and_previous_kept(mutate, reason, key):
    c = make()
    c.offer_policy(constant_policy(10.0, 1))
    c.step(OBS)
    bad = constant_policy(50.0, 2)
    bad.weights = bad.weights.copy()
    mutate(bad)
    got = c.offer_policy(bad)
    assert reason in got
    for _ in range(6):
        out = c.step(OBS)
        assert out.generation == 1 and out.action[0] == 10.0
    assert c.rejected == {key: 1} and c.last_rejection is key


def test_model_id_and_size_limits():
    c = make(expected_model_id="abc", max_weights=100)
    p = constant_policy(1.0, 1)
    assert "model_id" in c.offer_policy(p) or "max_weights" in c.offer_policy(p)
    c2 = make(max_weights=100)
    assert "max_weights" in c2.offer_policy(constant_policy(1.0, 1))


def test_restarted_generator_new_epoch_accepted():
    c = make()
    c.offer_policy(constant_policy(10.0, 5, epoch=1))
    c.step(OBS)
    assert c.offer_policy(constant_policy(20.0, 1, epoch=2)) == ""


def test_actions_are_clamped_and_nonfinite_outputs_replaced():
    c = make(safe_mode="fixed", safe_action=[1.0, 1.0], max_policy_failures=2)
    c.offer_policy(constant_policy(1e6, 1))
    assert c.step(OBS).action.tolist() == [100.0, 100.0]
    c2 = make(safe_mode="fixed", safe_action=[1.0, 1.0], max_policy_failures=2)
    p = constant_policy(0.0, 1)
    p.weights[-1] = np.float32(3e38)
    p.weights[0: SPEC.in_dim] = 3e38  # overflow to inf in float32
    p.weights[SPEC.n_weights - 2 - 2 * 16: SPEC.n_weights - 2] = 3e38
    c2.offer_policy(p)
    with np.errstate(over="ignore", invalid="ignore"):
        outs = [(o.source, o.action.copy()) for o in (c2.step(np.full(5, 1e30)) for _ in range(3))]
    assert all(np.all(np.isfinite(a)) for _, a in outs)
    assert outs[0][0] == SOURCE_SAFE


def test_bad_observation_gets_safe_action_and_recovers():
    c = make(safe_mode="fixed", safe_action=[3.0, 3.0], obs_low=[-1] * 5, obs_high=[10] * 5)
    c.offer_policy(constant_policy(10.0, 1, horizon=100))
    for bad in (np.array([np.nan, 0, 0, 0, 0]), np.ones(4), np.full(5, 11.0)):
        out = c.step(bad)
        assert out.source == SOURCE_SAFE and out.action.tolist() == [3.0, 3.0]
    assert c.bad_obs == 3
    assert c.step(OBS).action[0] == 10.0


def test_new_episode_wants_a_fresh_policy_and_installs_it_at_once():
    c = make()
    c.new_episode(0)
    c.offer_policy(constant_policy(10.0, 1, horizon=50, episode=0))
    c.step(OBS)
    c.new_episode(1)
    assert c.needs_policy()
    c.offer_policy(constant_policy(20.0, 2, horizon=50, episode=1))
    assert c.step(OBS).action[0] == 20.0


def test_numpy_policy_matches_reference():
    rng = np.random.default_rng(0)
    spec = PolicySpec(5, (256, 256), 2, "relu")
    flat = rng.normal(size=spec.n_weights).astype(np.float32) * 0.05
    layers = spec.unflatten(flat)
    x = rng.normal(size=5)
    h = x
    for i, (w, b) in enumerate(layers):
        h = w.astype(np.float64) @ h + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    y = MLPPolicy(spec, flat).act(x)
    np.testing.assert_allclose(y, h, rtol=1e-4, atol=1e-4)
    assert spec.n_weights == 67842
    assert np.array_equal(spec.flatten(layers), flat)


def test_fold_affine_maps_raw_to_raw():
    rng = np.random.default_rng(1)
    spec = PolicySpec(5, (8,), 2, "tanh")
    flat = rng.normal(size=spec.n_weights).astype(np.float32)
    s_in, o_in = rng.uniform(0.5, 2, 5), rng.normal(size=5)
    s_out, o_out = rng.uniform(0.5, 2, 2), rng.normal(size=2)
    x = rng.normal(size=5)
    expected = s_out * MLPPolicy(spec, flat).act(s_in * x + o_in) + o_out
    folded = spec.fold_affine(flat, s_in, o_in, s_out, o_out)
    np.testing.assert_allclose(MLPPolicy(spec, folded).act(x), expected, rtol=1e-5, atol=1e-5)


def test_schedule_triggers_on_grid_with_lead_and_realigns():
    s = GenerationSchedule(horizon=4, lead=1)
    trig = [t.seq for seq in range(12) if (t := s.observe(seq, episode=0))]
    assert trig == [0, 3, 7, 11]  # first obs, then one step before each boundary
    s0 = GenerationSchedule(horizon=4, lead=0)
    assert [t.boundary for seq in range(9) if (t := s0.observe(seq, 0))] == [0, 4, 8]
    # new episode restarts the grid; a re-sent first observation does not trigger again
    assert s0.observe(0, 1, reset=True).boundary == 0
    assert s0.observe(0, 1, reset=True) is None
    # dropped observations: the first one past the trigger fires, realigned to its cell
    assert s0.observe(13, 1).boundary == 12
    with pytest.raises(ValueError):
        GenerationSchedule(4, lead=4)


# -- issue 14: runtime safety under outside faults ------------------------------------------------------
@pytest.mark.parametrize("kw, name", [
    ({"action_high": [float("nan")]}, "action_high"),
    ({"action_low": [float("nan"), 0.0]}, "action_low"),
    ({"obs_low": [float("nan")] * 5}, "obs_low"),
    ({"obs_low": [1.0] * 5, "obs_high": [0.0] * 5}, "obs_low"),
    ({"max_weights": -1}, "max_weights"),
    ({"max_policy_failures": 0}, "max_policy_failures"),
    ({"generator_timeout": float("nan")}, "generator_timeout"),
])
def test_config_rejects_nan_and_inverted_bounds_naming_the_field(kw, name):
    with pytest.raises(ValueError, match=name):
        make(**kw)


def keyed(value, gen, episode, sim_epoch, epoch=1, horizon=4):
    c = constant_policy(value, gen, epoch=epoch, horizon=horizon, episode=episode)
    c.sim_epoch = sim_epoch
    return c


def test_staged_policy_of_a_restarted_simulation_run_never_answers_the_new_run():
    """Both runs number their episodes from 0: only the sim_epoch tells them apart."""
    c = make(safe_mode="fixed", safe_action=[1.0, 1.0])
    c.new_episode(0, sim_epoch=11)
    c.offer_policy(keyed(10.0, 1, 0, 11))
    c.step(OBS)
    assert c.offer_policy(keyed(20.0, 2, 0, 11)) == ""  # staged for run 11's next horizon
    c.new_episode(0, sim_epoch=22)  # run 11 died; run 22 starts at episode 0
    out = c.step(OBS)
    assert out.source == SOURCE_SAFE and out.generation == 1  # neither 1 (running) nor 2 (staged) acts
    c.offer_policy(keyed(30.0, 3, 0, 22))
    out = c.step(OBS)
    assert out.generation == 3 and out.policy_age == 1 and out.action[0] == 30.0


def test_policy_arriving_before_its_episode_waits_for_it_and_does_not_displace_the_current_one():
    c = make()
    c.new_episode(0, sim_epoch=5)
    c.offer_policy(keyed(10.0, 1, 0, 5))
    c.step(OBS)
    c.offer_policy(keyed(20.0, 2, 0, 5))  # next horizon of episode 0
    c.offer_policy(keyed(90.0, 3, 0, 6))  # conditioned on another run's observation: staged aside
    assert [c.step(OBS).generation for _ in range(4)] == [1, 1, 1, 2]
    c.new_episode(0, sim_epoch=6)  # that run does start: its policy is there at once
    assert c.step(OBS).generation == 3


def test_hold_with_nothing_sent_yet_has_nothing_to_hold():
    c = make(safe_mode="hold")
    out = c.step(OBS)
    assert out.source == SOURCE_SAFE and out.nothing_to_hold
    c.offer_policy(constant_policy(10.0, 1, horizon=100, episode=0))
    assert c.step(OBS).action.tolist() == [10.0, 10.0]
    out = c.step(np.full(5, np.nan))
    assert out.source == SOURCE_SAFE and not out.nothing_to_hold and out.action.tolist() == [10.0, 10.0]
    c.new_episode(1)
    assert c.safe_step("no observation").nothing_to_hold  # nothing sent in episode 1 yet


def test_second_generator_run_rejected_while_the_followed_one_is_alive():
    c = make(generator_timeout=1.0)
    assert c.offer_policy(constant_policy(10.0, 1, epoch=7), now=0.0) == ""
    reason = c.offer_policy(constant_policy(20.0, 1, epoch=8), now=0.5)
    assert "generator epoch 8" in reason and "following epoch 7" in reason
    assert c.rejected == {"foreign_generator": 1}
    assert c.offer_policy(constant_policy(10.0, 2, epoch=7), now=0.9) == ""
    assert c.offer_policy(constant_policy(20.0, 1, epoch=8), now=1.5) != ""  # 7 spoke at 0.9
    assert c.offer_policy(constant_policy(20.0, 1, epoch=8), now=2.0) == ""  # 7 silent > 1 s: a restart
    assert c.generators.run == 8
