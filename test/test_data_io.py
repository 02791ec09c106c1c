"""load_dataset dispatch, the train/validation split, and the ``warpd data`` CLI."""

import argparse

import numpy as np
import pytest

from warpd_core.data import cli
from warpd_core.data.episodes import DatasetError, EpisodeDataset
from warpd_core.data.io import (
    detect_format,
    load_dataset,
    read_robomimic,
    split_episode_indices,
    split_episodes,
    write_robomimic,
    write_zarr,
)


def _dataset(lengths, seed=0, tasks=None):
    rng = np.random.default_rng(seed)
    n = int(sum(lengths))
    return EpisodeDataset(rng.normal(size=(n, 5)), rng.uniform(0, 512, (n, 2)), np.cumsum(lengths), tasks)


@pytest.fixture
def files(tmp_path):
    ds = _dataset([6, 3, 9, 4], tasks=[0, 1, 1, 0])
    zpath = write_zarr(tmp_path / "d.zarr", ds.states, ds.actions, ds.episode_ends, task_ids=ds.task_ids)
    episodes = [{"state": s, "actions": a} for s, a in (ds.episode(i) for i in range(ds.n_episodes))]
    hpath = write_robomimic(tmp_path / "d.hdf5", episodes, {"env_name": "PushT"})
    return ds, zpath, hpath


def _run(argv):
    parser = argparse.ArgumentParser(prog="warpd")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_load_dataset_detects_format(files, tmp_path):
    ds, zpath, hpath = files
    assert detect_format(zpath) == "zarr" and detect_format(hpath) == "hdf5"
    for path in (zpath, hpath):
        got = load_dataset(path)
        np.testing.assert_array_equal(got.states, ds.states)
        np.testing.assert_array_equal(got.actions, ds.actions)
        np.testing.assert_array_equal(got.episode_ends, ds.episode_ends)
    # Content wins over the extension.
    renamed = tmp_path / "d_hdf5.bin"
    renamed.write_bytes(hpath.read_bytes())
    assert load_dataset(renamed, obs_keys=["state"]).n_steps == ds.n_steps
    np.testing.assert_array_equal(load_dataset(zpath, format="zarr", task_key="task_id").task_ids, ds.task_ids)
    assert load_dataset(hpath, format="robomimic", obs_keys=["state"]).n_episodes == 4


def test_load_dataset_errors(files, tmp_path):
    _, zpath, _ = files
    with pytest.raises(ValueError, match="format"):
        load_dataset(zpath, format="parquet")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(DatasetError, match="junk.dat: path: neither"):
        load_dataset(junk)
    with pytest.raises(DatasetError, match="missing.zarr: path: does not exist"):
        load_dataset(tmp_path / "missing.zarr")
    with pytest.raises(DatasetError, match="d.zarr: path: "):
        load_dataset(zpath, format="hdf5")


def test_split_is_deterministic_disjoint_and_complete():
    ds = _dataset(list(range(1, 21)))
    train_idx, val_idx = split_episode_indices(20, 0.2, seed=7)
    assert len(val_idx) == 4 and len(train_idx) == 16
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(20))
    again = split_episode_indices(20, 0.2, seed=7)
    np.testing.assert_array_equal(again[0], train_idx)
    np.testing.assert_array_equal(again[1], val_idx)
    other = split_episode_indices(20, 0.2, seed=8)
    assert not np.array_equal(other[1], val_idx)

    train, val = split_episodes(ds, 0.2, seed=7)
    assert train.n_episodes == 16 and val.n_episodes == 4
    assert train.n_steps + val.n_steps == ds.n_steps
    # Episodes move whole: episode i has length i + 1 and holds states[ends[i-1]:ends[i]].
    for sub, idx in ((train, train_idx), (val, val_idx)):
        for j, i in enumerate(idx):
            np.testing.assert_array_equal(sub.episode(j)[0], ds.episode(int(i))[0])


def test_split_edge_cases():
    assert [len(x) for x in split_episode_indices(3, 0.01, 0)] == [2, 1]  # at least one val episode
    assert [len(x) for x in split_episode_indices(3, 0.99, 0)] == [1, 2]  # at least one train episode
    with pytest.raises(ValueError):
        split_episode_indices(1, 0.5, 0)
    with pytest.raises(ValueError):
        split_episode_indices(10, 0.0, 0)


def test_cli_inspect(files, capsys):
    ds, zpath, hpath = files
    assert _run(["data", "inspect", str(zpath), "--task-key", "task_id"]) == 0
    out = capsys.readouterr().out
    assert "episodes: 4" in out and "steps: 22" in out and "state dim: 5" in out and "action dim: 2" in out
    assert "episode length: min 3, max 9, mean 5.5" in out
    assert f"{ds.states[:, 0].min():.5g}" in out and f"{ds.actions[:, 1].max():.5g}" in out
    assert "tasks: 0 (2 episodes), 1 (2 episodes)" in out
    assert _run(["data", "inspect", str(hpath), "--obs-keys", "state"]) == 0
    assert "episodes: 4" in capsys.readouterr().out


def test_cli_inspect_bad_file(tmp_path, capsys):
    assert _run(["data", "inspect", str(tmp_path / "none.zarr")]) == 2
    err = capsys.readouterr().err
    assert "none.zarr: path: does not exist" in err


def test_cli_convert_round_trip(files, tmp_path, capsys):
    ds, zpath, _ = files
    h = tmp_path / "c.hdf5"
    z = tmp_path / "c.zarr"
    assert _run(["data", "convert", str(zpath), str(h), "--task-key", "task_id"]) == 0
    assert _run(["data", "convert", str(h), str(z), "--task-key", "task_id"]) == 0
    back = load_dataset(z, task_key="task_id")
    np.testing.assert_array_equal(back.states, ds.states)
    np.testing.assert_array_equal(back.actions, ds.actions)
    np.testing.assert_array_equal(back.episode_ends, ds.episode_ends)
    np.testing.assert_array_equal(back.task_ids, ds.task_ids)
    assert read_robomimic(h, ["state"]).n_episodes == 4
    assert _run(["data", "convert", str(zpath), str(h)]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err
    assert _run(["data", "convert", str(zpath), str(tmp_path / "out.csv")]) == 2
