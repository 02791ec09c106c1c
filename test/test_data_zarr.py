"""Diffusion Policy zarr reader/writer: the real PushT file, round trips, atomic writes, and
one-line errors naming the file and the field for every malformed store."""

from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

from warpd_core.data.episodes import DatasetError
from warpd_core.data.zarr_store import read_zarr, write_zarr

PUSHT_DIR = Path(__file__).parents[1] / ".." / "shared" / "data" / "pusht"
PUSHT = PUSHT_DIR / "pusht_cchi_v7_replay.zarr"


def _episodes(rng, lengths, s_dim=5, a_dim=2):
    n = int(sum(lengths))
    states = rng.normal(size=(n, s_dim)).astype(np.float32)
    actions = rng.uniform(0, 512, size=(n, a_dim)).astype(np.float32)
    return states, actions, np.cumsum(lengths).astype(np.int64)


@pytest.fixture
def store(tmp_path):
    """A valid small store: 3 episodes (4, 7, 5 steps), state 5, action 2."""
    rng = np.random.default_rng(0)
    states, actions, ends = _episodes(rng, [4, 7, 5])
    path = tmp_path / "demo.zarr"
    write_zarr(path, states, actions, ends, extra={"keypoint": rng.normal(size=(16, 9, 2)).astype(np.float32)})
    return path


def _expect_error(path, field, **kw):
    with pytest.raises(DatasetError) as info:
        read_zarr(path, **kw)
    msg = str(info.value)
    assert path.name in msg, msg
    assert field in msg, msg
    assert "\n" not in msg, msg
    return msg


# -- the real file ---------------------------------------------------------------------


@pytest.mark.skipif(not PUSHT.exists(), reason=f"Diffusion Policy's PushT data not found at {PUSHT_DIR} "
                                               "(the shared/ folder beside the checkout)")
def test_reads_real_pusht_without_touching_images(monkeypatch):
    touched = []
    original = zarr.core.Array.__getitem__

    def spy(self, selection):
        touched.append(self.path)
        return original(self, selection)

    monkeypatch.setattr(zarr.core.Array, "__getitem__", spy)
    ds = read_zarr(PUSHT)
    assert ds.states.shape == (25650, 5) and ds.states.dtype == np.float32
    assert ds.actions.shape == (25650, 2) and ds.actions.dtype == np.float32
    assert ds.n_episodes == 206
    assert ds.episode_ends[-1] == 25650
    lengths = np.diff(np.concatenate([[0], ds.episode_ends]))
    assert lengths.min() == 49 and lengths.max() == 246
    assert np.all((ds.actions >= 0) & (ds.actions <= 512))
    assert np.all((ds.states[:, 4] >= 0) & (ds.states[:, 4] < 2 * np.pi + 1e-4))
    assert set(touched) == {"data/state", "data/action", "meta/episode_ends"}, touched


# -- round trips and layout --------------------------------------------------------------


def test_round_trip_exact(tmp_path):
    rng = np.random.default_rng(1)
    states, actions, ends = _episodes(rng, [3, 10, 1, 6], s_dim=7, a_dim=3)
    keypoint = rng.normal(size=(20, 9, 2)).astype(np.float32)
    n_contacts = rng.integers(0, 3, size=(20, 1)).astype(np.float32)
    tasks = np.array([0, 2, 1, 2])
    path = write_zarr(tmp_path / "rt.zarr", states, actions, ends,
                      extra={"keypoint": keypoint, "n_contacts": n_contacts}, task_ids=tasks)
    ds = read_zarr(path, task_key="task_id")
    np.testing.assert_array_equal(ds.states, states)
    np.testing.assert_array_equal(ds.actions, actions)
    np.testing.assert_array_equal(ds.episode_ends, ends)
    np.testing.assert_array_equal(ds.task_ids, tasks)
    assert read_zarr(path).task_ids is None
    # Extra arrays are stored too, and can be read back as the state.
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["data/n_contacts"][:], n_contacts)
    np.testing.assert_array_equal(read_zarr(path, state_key="n_contacts").states, n_contacts)


def test_layout_matches_diffusion_policy(store):
    root = zarr.open_group(str(store), mode="r")
    assert root["data/state"].dtype == np.float32 and root["data/action"].dtype == np.float32
    assert root["meta/episode_ends"].dtype == np.int64
    for arr in (root["data/state"], root["data/keypoint"], root["meta/episode_ends"]):
        comp = arr.compressor
        assert isinstance(comp, numcodecs.Blosc) and comp.cname == "zstd" and comp.shuffle == numcodecs.Blosc.BITSHUFFLE
        assert arr.chunks[1:] == arr.shape[1:]  # chunked along time only
    assert (store / ".zgroup").is_file() and (store / "data" / "state" / ".zarray").is_file()


def test_task_ids_from_per_step_array(store):
    root = zarr.open_group(str(store), mode="r+")
    root["data"].create_dataset("task", data=np.repeat([3, 1, 3], [4, 7, 5]).astype(np.int64))
    np.testing.assert_array_equal(read_zarr(store, task_key="task").task_ids, [3, 1, 3])
    root["data"].create_dataset("task", data=np.array([3] * 5 + [1] * 6 + [3] * 5), overwrite=True)
    _expect_error(store, "data/task", task_key="task")


# -- atomic writes -------------------------------------------------------------------------


def test_write_refuses_to_clobber_and_overwrites_atomically(store, tmp_path):
    rng = np.random.default_rng(2)
    states, actions, ends = _episodes(rng, [5, 5])
    with pytest.raises(FileExistsError):
        write_zarr(store, states, actions, ends)
    assert read_zarr(store).n_episodes == 3
    write_zarr(store, states, actions, ends, overwrite=True)
    np.testing.assert_array_equal(read_zarr(store).states, states)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.zarr"]  # no temp or old dirs left


def test_failed_write_leaves_nothing_at_final_path(store, tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    states, actions, ends = _episodes(rng, [5, 5])
    calls = []
    original = zarr.hierarchy.Group.create_dataset

    def failing(self, name, **kw):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, name, **kw)

    monkeypatch.setattr(zarr.hierarchy.Group, "create_dataset", failing)
    with pytest.raises(OSError):
        write_zarr(tmp_path / "new.zarr", states, actions, ends)
    assert not (tmp_path / "new.zarr").exists()
    calls.clear()
    with pytest.raises(OSError):
        write_zarr(store, states, actions, ends, overwrite=True)
    monkeypatch.undo()
    assert read_zarr(store).n_episodes == 3  # the old store is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.zarr"]


def test_write_validates_before_writing(tmp_path):
    path = tmp_path / "bad.zarr"
    with pytest.raises(DatasetError, match="episode_ends"):
        write_zarr(path, np.zeros((5, 2)), np.zeros((5, 2)), [3, 4])
    with pytest.raises(ValueError, match="keypoint"):
        write_zarr(path, np.zeros((5, 2)), np.zeros((5, 2)), [5], extra={"keypoint": np.zeros((4, 9, 2))})
    assert not path.exists()


# -- malformed stores ------------------------------------------------------------------------


def _replace(store, key, data):
    root = zarr.open_group(str(store), mode="r+")
    group, _, name = key.rpartition("/")
    root[group].create_dataset(name, data=data, overwrite=True)


def test_missing_path(tmp_path):
    _expect_error(tmp_path / "nowhere.zarr", "path")


def test_not_a_zarr_store(tmp_path):
    text = tmp_path / "notes.zarr"
    text.write_text("hello")
    assert "not a zarr" in _expect_error(text, "path")
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    assert "not a zarr" in _expect_error(empty, "path")
    bad_meta = tmp_path / "badmeta.zarr"
    bad_meta.mkdir()
    (bad_meta / ".zgroup").write_text("{not json")
    _expect_error(bad_meta, "path")


def test_missing_state_lists_available(store):
    msg = _expect_error(store, "data/velocity", state_key="velocity")
    assert "keypoint" in msg and "state" in msg


def test_missing_state_array(store):
    import shutil
    shutil.rmtree(store / "data" / "state")
    _expect_error(store, "data/state")


def test_missing_episode_ends(store):
    import shutil
    shutil.rmtree(store / "meta" / "episode_ends")
    _expect_error(store, "meta/episode_ends")
    shutil.rmtree(store / "meta")
    _expect_error(store, "meta/episode_ends")


def test_episode_ends_not_increasing(store):
    _replace(store, "meta/episode_ends", np.array([4, 3, 16]))
    assert "increasing" in _expect_error(store, "episode_ends")


def test_episode_ends_last_not_n(store):
    _replace(store, "meta/episode_ends", np.array([4, 11, 15]))
    assert "15" in _expect_error(store, "episode_ends")


def test_episode_ends_not_integer(store):
    _replace(store, "meta/episode_ends", np.array([4.0, 11.0, 16.0]))
    _expect_error(store, "meta/episode_ends")


def test_state_action_length_mismatch(store):
    _replace(store, "data/action", np.zeros((15, 2), np.float32))
    _expect_error(store, "action")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite(store, bad):
    states = read_zarr(store).states.copy()
    states[9, 2] = bad
    _replace(store, "data/state", states)
    msg = _expect_error(store, "state")
    assert "step 9" in msg


def test_corrupt_chunk_names_the_array(store):
    (store / "data" / "action" / "0.0").write_bytes(b"\x00garbage" * 4)
    assert "corrupt" in _expect_error(store, "data/action")


def test_truncated_chunk_names_the_array(store):
    chunk = store / "data" / "state" / "0.0"
    chunk.write_bytes(chunk.read_bytes()[:-7])
    _expect_error(store, "data/state")


def test_missing_chunk_is_not_read_as_zeros(store):
    (store / "meta" / "episode_ends" / "0").unlink()
    assert "missing" in _expect_error(store, "meta/episode_ends")


@pytest.mark.parametrize("shape", [(16,), (16, 5, 1)])
def test_wrong_state_dimensionality(store, shape):
    _replace(store, "data/state", np.zeros(shape, np.float32))
    assert str(shape) in _expect_error(store, "data/state")


def test_wrong_episode_ends_dimensionality(store):
    _replace(store, "meta/episode_ends", np.array([[4, 11, 16]]))
    _expect_error(store, "meta/episode_ends")


def test_missing_task_key(store):
    assert "neither" in _expect_error(store, "task", task_key="task_id")


def test_reads_zip_store(tmp_path):
    from warpd_core.data.zarr_store import COMPRESSOR

    path = tmp_path / "demo.zarr.zip"
    zs = zarr.ZipStore(str(path), mode="w")
    root = zarr.group(store=zs)
    states = np.arange(30, dtype=np.float32).reshape(10, 3)
    root.create_dataset("data/state", data=states, chunks=(4, 3), compressor=COMPRESSOR)
    root.create_dataset("data/action", data=states[:, :2], compressor=COMPRESSOR)
    root.create_dataset("meta/episode_ends", data=np.array([4, 10]), compressor=COMPRESSOR)
    zs.close()
    ds = read_zarr(path)
    np.testing.assert_array_equal(ds.states, states)
    np.testing.assert_array_equal(ds.episode_ends, [4, 10])
