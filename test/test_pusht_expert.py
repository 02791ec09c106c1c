"""Scripted PushT expert: score, determinism, multimodality, demonstration layout."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from warpd_core.envs.pusht import PushTEnv  # noqa: E402
from warpd_core.envs.pusht_expert import (  # noqa: E402
    ExpertConfig,
    PushTExpert,
    _distance_to_tee,
    _segments_hit,
    corner_error,
    generate_demonstrations,
    run_expert_episode,
)

# On 100 seeds (0..99) the expert's mean score is ~0.998 and its worst ~0.97; on these three
# each episode scores >= 0.95. The floor leaves room for platform float differences while
# still failing for a broken planner (a random policy scores ~0.05).
SCORE_FLOOR = 0.9
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def env():
    e = PushTEnv()
    yield e
    e.close()


@pytest.fixture(scope="module")
def expert():
    x = PushTExpert()
    yield x
    x.close()


def test_corner_error_is_zero_at_goal_and_wraps():
    goal = np.array([256.0, 256.0, math.pi / 4])
    assert corner_error(goal, goal) == 0.0
    assert corner_error(goal + [0, 0, 2 * math.pi], goal) == pytest.approx(0.0, abs=1e-9)
    assert corner_error(goal + [10.0, 0, 0], goal) == pytest.approx(10.0)


def test_collision_geometry():
    # Body frame: the bar spans x in [-60, 60], y in [0, 30]; the stem x in [-15, 15], y in [30, 120].
    assert _distance_to_tee(np.array([[0.0, 10.0]]))[0] == 0.0
    assert _distance_to_tee(np.array([[0.0, -20.0]]))[0] == pytest.approx(20.0)
    assert _distance_to_tee(np.array([[40.0, 60.0]]))[0] == pytest.approx(25.0)  # in the pocket under the bar
    hits = _segments_hit(np.array([[-100.0, -40.0], [-100.0, -40.0], [-100.0, 60.0]]),
                         np.array([[100.0, -40.0], [100.0, 60.0], [-40.0, 60.0]]), inflate=17.0)
    assert hits.tolist() == [False, True, False]  # above the bar; through it; into the left pocket


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="choice_tolerance"):
        ExpertConfig(choice_tolerance=2.0)
    with pytest.raises(ValueError, match="push_speed"):
        ExpertConfig(push_speed=0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_expert_scores_on_fixed_seeds(env, expert, seed):
    ep = run_expert_episode(env, expert, env_seed=seed, expert_seed=1000 + seed, max_steps=300)
    assert len(ep.actions) <= 300
    assert ep.score >= SCORE_FLOOR, f"seed {seed}: score {ep.score:.3f} (max coverage {ep.max_coverage:.3f})"
    # Actions are target positions near the agent, inside the workspace.
    assert np.all((ep.actions >= 0) & (ep.actions <= 512))
    lead = np.linalg.norm(ep.actions - ep.states[:, :2], axis=1)
    assert lead.max() < 80.0


def test_same_seeds_same_episode_different_seeds_different_paths(env, expert):
    a = run_expert_episode(env, expert, env_seed=5, expert_seed=1, max_steps=60)
    run_expert_episode(env, expert, env_seed=9, expert_seed=2, max_steps=20)  # unrelated history
    b = run_expert_episode(env, expert, env_seed=5, expert_seed=1, max_steps=60)
    np.testing.assert_array_equal(a.actions, b.actions)

    # Multimodality: from the same start state, other expert seeds choose other pushes.
    others = [run_expert_episode(env, expert, env_seed=5, expert_seed=s, max_steps=60) for s in (2, 3, 4)]
    for o in others:
        np.testing.assert_array_equal(o.states[0], a.states[0])
        gap = np.abs(o.states[:60, :2] - a.states[:60, :2]).max()
        assert gap > 20.0, f"trajectories from one start should differ (max agent gap {gap:.1f} px)"


def test_generate_demonstrations_layout():
    states, actions, ends, scores = generate_demonstrations(2, seed=7, max_steps=40, progress=False)
    assert states.dtype == np.float32 and states.shape[1] == 5
    assert actions.dtype == np.float32 and actions.shape == (len(states), 2)
    assert ends.dtype == np.int64 and ends.shape == (2,) and ends[-1] == len(states)
    assert np.all(np.diff(np.concatenate([[0], ends])) > 0) and np.all(np.diff(ends) <= 40)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    # The first state of each episode is the env's reset observation for its seed.
    e = PushTEnv()
    np.testing.assert_array_equal(states[0], e.reset(seed=7))
    np.testing.assert_array_equal(states[ends[0]], e.reset(seed=8))
    with pytest.raises(RuntimeError, match="min_score"):
        generate_demonstrations(1, seed=7, max_steps=3, progress=False, min_score=0.99)
