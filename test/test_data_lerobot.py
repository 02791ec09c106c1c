"""LeRobotDataset folders in: the fixture was written by the real lerobot library
(test/fixtures/make_lerobot_fixture.py says how), 3 episodes of 5 / 7 / 4 frames at 12 fps."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")

from warpd_core.cli import main  # noqa: E402
from warpd_core.data.episodes import DatasetError  # noqa: E402
from warpd_core.data.io import dataset_rate_hz, detect_format, load_dataset  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lerobot_tiny"


def test_fixture_loads_with_its_episodes_fps_and_values():
    assert detect_format(FIXTURE) == "lerobot"
    ds = load_dataset(FIXTURE)
    assert list(ds.episode_ends) == [5, 12, 16]
    assert dataset_rate_hz(FIXTURE) == 12.0
    for e, n in enumerate((5, 7, 4)):
        s, a = ds.episode(e)
        f = np.arange(n)
        np.testing.assert_array_equal(s, np.stack([np.full(n, e), f, 10 * e + f, -f], 1))
        np.testing.assert_allclose(a, np.stack([f / 10, e - f], 1), rtol=1e-6)


def test_convert_to_zarr_keeps_the_rate_and_inspect_reports_it(tmp_path, capsys):
    out = tmp_path / "demos.zarr"
    assert main(["data", "convert", str(FIXTURE), str(out)]) == 0
    assert dataset_rate_hz(out) == 12.0
    assert load_dataset(out).n_episodes == 3
    capsys.readouterr()
    assert main(["data", "inspect", str(FIXTURE)]) == 0
    text = capsys.readouterr().out
    assert "format: lerobot" in text and "episodes: 3" in text and "control rate: 12 Hz" in text


def test_bad_columns_and_files_name_the_problem(tmp_path, capsys):
    with pytest.raises(DatasetError, match=r"no 'observation.joints'.*observation.state"):
        load_dataset(FIXTURE, state_key="observation.joints")
    assert main(["data", "inspect", str(FIXTURE), "--action-key", "act"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'act'" in err and "info.json" in err
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    pq = next((broken / "data").rglob("*.parquet"))
    pq.write_bytes(pq.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"file-000.parquet: cannot read parquet"):
        load_dataset(broken)
    (broken / "meta" / "info.json").write_text('{"fps": 0, "features": {}}')
    with pytest.raises(DatasetError, match=r"info.json: fps: expected a positive number"):
        load_dataset(broken, format="lerobot")
