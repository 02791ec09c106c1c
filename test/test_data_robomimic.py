"""robomimic hdf5 reader/writer: a file laid out like robomimic's released datasets, round
trips, demo ordering, filter keys, and one-line errors for malformed files."""

import json

import h5py
import numpy as np
import pytest

from warpd_core.data.episodes import DatasetError
from warpd_core.data.robomimic import low_dim_obs_keys, read_env_args, read_robomimic, write_robomimic

LOW_DIM = ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
WIDTHS = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}
ENV_ARGS = {"env_name": "Lift", "type": 1,
            "env_kwargs": {"robots": ["Panda"], "controller_configs": {"type": "OSC_POSE"}, "control_freq": 20}}


def _write_like_robomimic(path, lengths, seed=0):
    """A file laid out the way robomimic's released low-dim/image datasets are, written with
    plain h5py (not our writer): float64 obs and actions, next_obs, states, rewards, dones,
    model_file, an image obs key, byte-string masks, demos created in lexicographic order."""
    rng = np.random.default_rng(seed)
    demos = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for i in sorted(range(len(lengths)), key=lambda i: f"demo_{i}"):
            t = lengths[i]
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = t
            g.attrs["model_file"] = "<mujoco model='base'></mujoco>"
            g.create_dataset("actions", data=rng.uniform(-1, 1, (t, 7)))
            g.create_dataset("states", data=rng.normal(size=(t, 32)))
            g.create_dataset("rewards", data=np.zeros(t))
            g.create_dataset("dones", data=np.r_[np.zeros(t - 1), 1].astype(np.int64))
            obs = {k: rng.normal(size=(t, w)) for k, w in WIDTHS.items()}
            obs["agentview_image"] = rng.integers(0, 255, (t, 8, 8, 3), dtype=np.uint8)
            for k, v in obs.items():
                g.create_dataset(f"obs/{k}", data=v)
                g.create_dataset(f"next_obs/{k}", data=v)
            demos[f"demo_{i}"] = (obs, g["actions"][()])
        data.attrs["total"] = int(sum(lengths))
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        names = [f"demo_{i}" for i in range(len(lengths))]
        f.create_dataset("mask/train", data=np.array([n.encode() for n in names[: len(names) - 2]]))
        f.create_dataset("mask/valid", data=np.array([n.encode() for n in names[len(names) - 2:][::-1]]))
    return demos


@pytest.fixture
def lift(tmp_path):
    path = tmp_path / "low_dim.hdf5"
    lengths = [5, 3, 8, 4, 6, 2, 7, 3, 5, 4, 6, 9]  # 12 demos: demo_10, demo_11 sort after demo_9
    return path, lengths, _write_like_robomimic(path, lengths)


def _expect_error(path, field, **kw):
    kw.setdefault("obs_keys", LOW_DIM)
    with pytest.raises(DatasetError) as info:
        read_robomimic(path, **kw)
    msg = str(info.value)
    assert path.name in msg, msg
    assert field in msg, msg
    assert "\n" not in msg, msg
    return msg


def test_reads_robomimic_layout_in_numeric_demo_order(lift):
    path, lengths, demos = lift
    ds = read_robomimic(path, LOW_DIM)
    assert ds.n_episodes == 12 and ds.n_steps == sum(lengths)
    assert ds.state_dim == 19 and ds.action_dim == 7
    np.testing.assert_array_equal(ds.episode_ends, np.cumsum(lengths))  # demo_0, 1, 2, ..., 10, 11
    for i in range(12):
        obs, act = demos[f"demo_{i}"]
        s, a = ds.episode(i)
        want = np.concatenate([obs[k] for k in LOW_DIM], axis=1).astype(np.float32)
        np.testing.assert_array_equal(s, want)
        np.testing.assert_array_equal(a, act.astype(np.float32))


def test_obs_key_order_is_kept(lift):
    path, _, demos = lift
    keys = ["robot0_gripper_qpos", "robot0_eef_pos"]
    s, _ = read_robomimic(path, keys).episode(0)
    obs, _ = demos["demo_0"]
    np.testing.assert_array_equal(s[:, :2], obs["robot0_gripper_qpos"].astype(np.float32))
    np.testing.assert_array_equal(s[:, 2:], obs["robot0_eef_pos"].astype(np.float32))


def test_default_obs_keys_are_low_dim_sorted(lift):
    path, _, _ = lift
    assert low_dim_obs_keys(path) == LOW_DIM
    assert read_robomimic(path).state_dim == 19
    assert read_env_args(path) == ENV_ARGS


def test_filter_key(lift):
    path, lengths, demos = lift
    val = read_robomimic(path, LOW_DIM, filter_key="valid")  # mask lists demo_11, demo_10
    np.testing.assert_array_equal(val.episode_ends, np.cumsum([lengths[10], lengths[11]]))
    np.testing.assert_array_equal(val.actions[: lengths[10]], demos["demo_10"][1].astype(np.float32))
    train = read_robomimic(path, LOW_DIM, filter_key="train")
    assert train.n_episodes == 10 and train.n_steps + val.n_steps == sum(lengths)


def test_round_trip_exact(tmp_path):
    rng = np.random.default_rng(4)
    episodes = []
    for i, t in enumerate([4, 1, 6, 3, 2, 5, 4, 3, 2, 6, 3]):
        episodes.append({
            "robot0_eef_pos": rng.normal(size=(t, 3)).astype(np.float32),
            "obs/gripper": rng.normal(size=(t,)).astype(np.float32),
            "actions": rng.normal(size=(t, 4)).astype(np.float32),
            "rewards": np.zeros(t),
            "task_id": i % 3,
        })
    path = write_robomimic(tmp_path / "rt.hdf5", episodes, {"env_name": "Reach", "type": 1, "env_kwargs": {}},
                           masks={"valid": ["demo_10", "demo_2"]})
    ds = read_robomimic(path, ["robot0_eef_pos", "gripper"], task_key="task_id")
    for i, ep in enumerate(episodes):
        s, a = ds.episode(i)
        np.testing.assert_array_equal(s, np.concatenate([ep["robot0_eef_pos"], ep["obs/gripper"][:, None]], 1))
        np.testing.assert_array_equal(a, ep["actions"])
    np.testing.assert_array_equal(ds.task_ids, [i % 3 for i in range(11)])
    val = read_robomimic(path, ["robot0_eef_pos"], filter_key="valid")
    np.testing.assert_array_equal(val.actions, np.concatenate([episodes[2]["actions"], episodes[10]["actions"]]))
    with h5py.File(path, "r") as f:
        assert f["data"].attrs["total"] == 39 == ds.n_steps
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "Reach"
        assert f["data/demo_3"].attrs["num_samples"] == 3
        assert f["data/demo_3/rewards"].shape == (3,) and "rewards" not in f["data/demo_3/obs"]


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.hdf5"
    good = [{"x": np.zeros((3, 2)), "actions": np.zeros((3, 1))}]
    write_robomimic(path, good, {})
    with pytest.raises(FileExistsError):
        write_robomimic(path, good, {})
    bad = good + [{"x": np.zeros((4, 2)), "actions": np.zeros((3, 1))}]
    with pytest.raises(ValueError, match="episode 1"):
        write_robomimic(path, bad, {}, overwrite=True)
    original = h5py.Group.create_dataset

    def failing(self, name, *a, **kw):
        if "demo_1" in self.name:
            raise OSError("disk full")
        return original(self, name, *a, **kw)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError):
        write_robomimic(path, good * 3, {}, overwrite=True)
    monkeypatch.undo()
    assert read_robomimic(path, ["x"]).n_episodes == 1  # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.hdf5"]


# -- malformed files ----------------------------------------------------------------------


def test_missing_path(tmp_path):
    _expect_error(tmp_path / "nowhere.hdf5", "path")


def test_not_hdf5(tmp_path):
    path = tmp_path / "fake.hdf5"
    path.write_bytes(b"this is not hdf5" * 10)
    assert "not an HDF5" in _expect_error(path, "path")


def test_truncated_file(lift):
    path, _, _ = lift
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    assert "truncated" in _expect_error(path, "path")


def test_no_data_group(tmp_path):
    path = tmp_path / "empty.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("other")
    _expect_error(path, "data")


def test_missing_obs_key_names_demo_key_and_available(lift):
    path, _, _ = lift
    with h5py.File(path, "r+") as f:
        del f["data/demo_3/obs/robot0_eef_quat"]
    msg = _expect_error(path, "data/demo_3/obs/robot0_eef_quat")
    assert "robot0_eef_pos" in msg and "object" in msg


def test_missing_actions(lift):
    path, _, _ = lift
    with h5py.File(path, "r+") as f:
        del f["data/demo_2/actions"]
    _expect_error(path, "data/demo_2/actions")


def test_actions_wrong_dimensionality(lift):
    path, _, _ = lift
    with h5py.File(path, "r+") as f:
        del f["data/demo_1/actions"]
        f["data/demo_1/actions"] = np.zeros(3)
    _expect_error(path, "data/demo_1/actions")


def test_image_obs_key_is_rejected(lift):
    path, _, _ = lift
    assert "(T, D)" in _expect_error(path, "data/demo_0/obs/agentview_image", obs_keys=["agentview_image"])


def test_obs_length_mismatch(lift):
    path, _, _ = lift
    with h5py.File(path, "r+") as f:
        del f["data/demo_5/obs/object"]
        f["data/demo_5/obs/object"] = np.zeros((7, 10))
    _expect_error(path, "data/demo_5/obs/object")


def test_num_samples_mismatch(lift):
    path, _, _ = lift
    with h5py.File(path, "r+") as f:
        f["data/demo_4"].attrs["num_samples"] = 99
    _expect_error(path, "data/demo_4")


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_non_finite(lift, bad):
    path, _, _ = lift
    with h5py.File(path, "r+") as f:
        f["data/demo_7/obs/robot0_eef_pos"][1, 0] = bad
    assert "step 1" in _expect_error(path, "data/demo_7/obs/robot0_eef_pos")


def test_missing_filter_key(lift):
    path, _, _ = lift
    msg = _expect_error(path, "mask/test", filter_key="test")
    assert "train" in msg and "valid" in msg
