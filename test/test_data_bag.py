"""rosbag2 -> demonstrations (``warpd data from-bag``): bags written by the ``rosbags`` library's
own writer, both storage formats, read through the controller's adapters and the shipped
params file (config/robot_arm_example.yaml: 7 joints, position + velocity, Float64MultiArray)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rosbags")

from bagutil import ARM, PARAMS, write_bag  # noqa: E402

from warpd_core.cli import main  # noqa: E402
from warpd_core.data.io import dataset_rate_hz, load_dataset  # noqa: E402
from warpd_core.data.zarr_store import read_zarr_attrs  # noqa: E402

K = np.arange(1, 8)


def expected_obs(t: float) -> np.ndarray:
    return np.concatenate([np.sin(t + K), np.cos(t + K)])


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bags_convert_to_the_controllers_observation_at_the_declared_rate(tmp_path, capsys, storage):
    bags = [write_bag(tmp_path / f"ep{i}", storage, t0=100.0 + 10 * i, duration=2.0) for i in range(2)]
    out = tmp_path / "demos.zarr"
    rc, stdout, err = run(capsys, "data", "from-bag", *map(str, bags), "--params", str(PARAMS), "--rate", "10",
                          "--out", str(out), "--no-progress")
    assert rc == 0, err
    assert "2 episodes" in stdout and "at 10 Hz" in stdout
    ds = load_dataset(out)
    assert ds.state_dim == 14 and ds.action_dim == 7
    # one episode per bag; 2 s of 100 Hz messages (0 .. 1.99 s) resampled at 10 Hz: ticks 0.0 .. 1.9 s
    assert ds.n_episodes == 2
    assert list(np.diff(np.concatenate([[0], ds.episode_ends]))) == [20, 20]
    for e, t0 in enumerate((100.0, 110.0)):
        s, a = ds.episode(e)
        ticks = t0 + 0.1 * np.arange(len(s))
        # joints selected by name from messages listing them in reverse order (plus a gripper)
        np.testing.assert_allclose(s, np.stack([expected_obs(t) for t in ticks]), atol=1e-5)
        # the action is the command in effect by the next tick (last one before t + 0.1 s)
        np.testing.assert_allclose(a, np.stack([t + 0.0905 + 0.1 * np.arange(7) for t in ticks]), atol=1e-4)
    assert dataset_rate_hz(out) == 10.0
    attrs = read_zarr_attrs(out)
    assert attrs["observation"][:2] == ["arm.panda_joint1.position", "arm.panda_joint2.position"]
    assert attrs["trigger_topic"] == "/joint_states"
    rc, stdout, _ = run(capsys, "data", "inspect", str(out))
    assert rc == 0 and "episodes: 2" in stdout and "control rate: 10 Hz" in stdout


def test_gap_and_marker_split_episodes(tmp_path, capsys):
    gap_bag = write_bag(tmp_path / "gap", "mcap", duration=4.0, pauses=[(1.5, 2.5)])
    out = tmp_path / "gap.zarr"
    rc, _, err = run(capsys, "data", "from-bag", str(gap_bag), "--params", str(PARAMS), "--rate", "20",
                     "--split", "gap", "--gap", "0.5", "--out", str(out), "--no-progress")
    assert rc == 0, err
    assert load_dataset(out).n_episodes == 2
    marked = write_bag(tmp_path / "marked", "sqlite3", duration=4.0,
                       markers=[(0.2, True), (1.2, False), (2.0, True), (3.5, False)])
    out = tmp_path / "marked.zarr"
    rc, _, err = run(capsys, "data", "from-bag", str(marked), "--params", str(PARAMS), "--rate", "10",
                     "--split", "marker", "--marker-topic", "/episode", "--out", str(out), "--no-progress")
    assert rc == 0, err
    ds = load_dataset(out)
    lengths = np.diff(np.concatenate([[0], ds.episode_ends]))
    assert ds.n_episodes == 2 and abs(lengths[0] - 10) <= 1 and abs(lengths[1] - 15) <= 1
    np.testing.assert_allclose(ds.episode(1)[0][0], expected_obs(102.0), atol=1e-5)  # starts at the marker


def test_stale_input_inside_a_bag_cuts_the_episode_like_the_controller_would(tmp_path, capsys):
    # a 0.3 s hole in the joint states: max_age is 0.05 s, so the controller would send the
    # safe action there; those ticks are not demonstrations
    bag = write_bag(tmp_path / "hole", "mcap", duration=3.0, pauses=[(1.0, 1.3)])
    out = tmp_path / "hole.zarr"
    rc, stdout, err = run(capsys, "data", "from-bag", str(bag), "--params", str(PARAMS), "--rate", "10",
                          "--out", str(out), "--no-progress")
    assert rc == 0, err
    assert "cut into 2" in stdout
    assert load_dataset(out).n_episodes == 2


def one_error_line(capsys, *argv) -> str:
    rc, _, err = run(capsys, *argv)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    return lines[0]


def test_malformed_bags_fail_with_one_line_naming_the_problem(tmp_path, capsys):
    def convert(bag, *extra):
        return one_error_line(capsys, "data", "from-bag", str(bag), "--params", str(PARAMS), "--rate", "10",
                              "--out", str(tmp_path / "x.zarr"), "--no-progress", *extra)

    line = convert(write_bag(tmp_path / "no_cmd", cmd_topic="/other/commands"))
    assert "/forward_command_controller/commands" in line and "not in the bag" in line
    line = convert(write_bag(tmp_path / "wrong_type", state_type="std_msgs/msg/Float64MultiArray"))
    assert "/joint_states" in line and "std_msgs/Float64MultiArray" in line and "sensor_msgs/JointState" in line
    line = convert(write_bag(tmp_path / "no_joint", names=ARM[:6]))
    assert "panda_joint7" in line and "/joint_states" in line
    line = convert(write_bag(tmp_path / "bad_cmd", cmd_dim=6))
    assert "/forward_command_controller/commands" in line and "6 values" in line
    line = convert(write_bag(tmp_path / "backwards", backwards_at=1.0))
    assert "/joint_states" in line and "backwards" in line
    # joint states at 5 Hz with max_age 0.05 s: at 10 Hz every other tick is stale -> no episode
    line = convert(write_bag(tmp_path / "slow", state_hz=5.0))
    assert "empty" in line and "/joint_states" in line
    bag = write_bag(tmp_path / "trunc", "mcap", duration=3.0)
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    line = convert(bag)
    assert "trunc" in line and ("truncated" in line or "cannot open" in line)
    line = convert(tmp_path / "missing_bag")
    assert "does not exist" in line
