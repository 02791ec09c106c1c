"""Windows never cross an episode end, pad and mask correctly, and cover every step: fixed-length
snippets (baselines) and WARPD's trajectory windows (truncated at episode ends)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from warpd_core.data.episodes import EpisodeDataset


def _tagged(lengths):
    """states[:, 0] = episode index, states[:, 1] = global step: each gathered step says where it came from."""
    ends = np.cumsum(lengths)
    n = int(ends[-1])
    episode = np.repeat(np.arange(len(lengths)), lengths)
    states = np.stack([episode, np.arange(n), np.zeros(n)], axis=1)
    actions = np.stack([np.arange(n), -np.arange(n)], axis=1)
    return EpisodeDataset(states, actions, ends)


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    horizon=st.integers(1, 50),
    stride=st.integers(1, 5),
)
def test_snippets_stay_inside_one_episode(lengths, horizon, stride):
    ds = _tagged(lengths)
    index = ds.snippet_starts(horizon, stride=stride)
    batch = ds.gather_snippets(index, horizon)
    starts = ds.episode_starts
    ends = ds.episode_ends
    B = len(index)
    assert batch["states"].shape == (B, horizon, 3) and batch["actions"].shape == (B, horizon, 2)
    assert batch["mask"].shape == (B, horizon) and batch["mask"].dtype == bool
    for (start, ep), states, actions, mask in zip(index, batch["states"], batch["actions"], batch["mask"]):
        assert starts[ep] <= start < ends[ep]
        # Every step of the window, padding included, comes from this one episode.
        assert np.all(states[:, 0] == ep)
        n_real = min(horizon, ends[ep] - start)
        np.testing.assert_array_equal(mask, np.arange(horizon) < n_real)
        # Real steps are consecutive; padding repeats the episode's last (state, action).
        want_steps = np.minimum(start + np.arange(horizon), ends[ep] - 1)
        np.testing.assert_array_equal(states[:, 1], want_steps)
        np.testing.assert_array_equal(actions[:, 0], want_steps)
        # Padding only happens when the episode is shorter than the horizon.
        if not mask.all():
            assert ends[ep] - starts[ep] < horizon and start == starts[ep]
    np.testing.assert_array_equal(batch["episode"], index[:, 1])
    np.testing.assert_array_equal(batch["task_ids"], np.zeros(B, np.int64))
    # Every episode contributes, short ones exactly one padded window.
    counts = np.bincount(index[:, 1], minlength=len(lengths))
    for ep, length in enumerate(lengths):
        assert counts[ep] >= 1
        if length <= horizon:
            assert counts[ep] == 1
        elif stride == 1:
            assert counts[ep] == length - horizon + 1


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=6), horizon=st.integers(1, 35))
def test_stride_one_covers_every_step(lengths, horizon):
    ds = _tagged(lengths)
    batch = ds.gather_snippets(ds.snippet_starts(horizon), horizon)
    covered = np.unique(batch["states"][:, :, 1][batch["mask"]])
    np.testing.assert_array_equal(covered, np.arange(ds.n_steps))


def test_task_ids_follow_the_episode():
    ds = EpisodeDataset(np.zeros((9, 2)), np.zeros((9, 1)), [4, 9], task_ids=[3, 5])
    batch = ds.gather_snippets(ds.snippet_starts(3), 3)
    np.testing.assert_array_equal(batch["task_ids"], np.where(batch["episode"] == 0, 3, 5))


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 60), min_size=1, max_size=8),
    length=st.integers(1, 80),
    stride=st.integers(1, 9),
)
def test_trajectory_windows_start_anywhere_and_stop_at_the_episode_end(lengths, length, stride):
    ds = _tagged(lengths)
    index = ds.trajectory_windows(length, stride)
    batch = ds.gather_snippets(index, length)
    starts, ends = ds.episode_starts, ds.episode_ends
    for (start, ep), states, actions, mask in zip(index, batch["states"], batch["actions"], batch["mask"]):
        assert starts[ep] <= start < ends[ep] and (start - starts[ep]) % stride == 0
        # no window crosses an episode end: every step, masked or not, is from this episode
        assert np.all(states[:, 0] == ep)
        n_real = min(length, ends[ep] - start)
        np.testing.assert_array_equal(mask, np.arange(length) < n_real)
        np.testing.assert_array_equal(states[mask, 1], start + np.arange(n_real))
        np.testing.assert_array_equal(actions[mask, 0], start + np.arange(n_real))
    # one window per stride-th step of every episode, the first step included
    want = [(st_, e) for e, (a, b) in enumerate(zip(starts, ends)) for st_ in range(a, b, stride)]
    np.testing.assert_array_equal(index, np.asarray(want, np.int64).reshape(-1, 2))


def test_trajectory_windows_longer_than_every_episode():
    """PushT's case: length 256 > every demonstration, so every window ends at its episode's end."""
    ds = _tagged([5, 3])
    batch = ds.gather_snippets(ds.trajectory_windows(256, 1), 256)
    assert batch["mask"].shape == (8, 256)
    np.testing.assert_array_equal(batch["mask"].sum(1), [5, 4, 3, 2, 1, 3, 2, 1])
