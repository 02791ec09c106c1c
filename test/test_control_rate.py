"""The control rate travels with the model: dataset -> bundle.json -> PolicyWeights -> the
controller, which compares it with its trigger input's measured rate (WARN / ERROR on
/diagnostics) and can decimate that input (trigger_decimation)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, requires_ros
from warpd_core.export.bundle_format import BundleError, read_bundle
from warpd_core.runtime.rate import ERROR, OK, WARN, RateMonitor, rate_status


def test_rate_monitor_and_status():
    m = RateMonitor(window=50)
    assert m.rate_hz() == 0.0
    for i in range(200):
        m.tick(i * 0.01)
    assert m.rate_hz() == pytest.approx(100.0)
    assert rate_status(100.0, 1, 0.0, 0.1, 0.5) == (OK, "")  # model rate unknown: nothing to compare
    assert rate_status(100.0, 10, 10.0, 0.1, 0.5) == (OK, "")
    assert rate_status(10.5, 1, 10.0, 0.1, 0.5) == (OK, "")
    level, text = rate_status(12.5, 1, 10.0, 0.1, 0.5)
    assert level == WARN and "+25 %" in text
    level, text = rate_status(100.0, 1, 10.0, 0.1, 0.5)
    assert level == ERROR and "set trigger_decimation 10" in text and "10 Hz" in text


def export_init(out, *extra):
    return subprocess.run([sys.executable, "-m", "warpd_core", "export", "init", "--obs-dim", "14", "--act-dim", "7",
                           "--hidden", "64", "64", "--horizon", "10", "--decoder", "xs", "--unet", "xs", "--seed", "1",
                           "--act-range", "-1", "1", "--out", str(out), *extra], capture_output=True, text=True, cwd=REPO)


@pytest.fixture(scope="module")
def bundle_10hz(tmp_path_factory):
    out = tmp_path_factory.mktemp("rate") / "bundle"
    r = export_init(out, "--control-rate-hz", "10")
    assert r.returncode == 0, r.stderr
    assert "control rate 10 Hz" in r.stdout
    return out


def test_bundle_carries_the_rate_and_old_bundles_still_load(bundle_10hz, tmp_path):
    meta = read_bundle(bundle_10hz)
    assert meta["control_rate_hz"] == 10.0
    # rewriting a bundle keeps it (and the model id: the rate does not change the weights)
    r = subprocess.run([sys.executable, "-m", "warpd_core", "export", "--bundle", str(bundle_10hz), "--out",
                        str(tmp_path / "copy")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    copy = read_bundle(tmp_path / "copy")
    assert copy["control_rate_hz"] == 10.0 and copy["model_id"] == meta["model_id"]
    # a bundle written before the field existed
    jpath = tmp_path / "copy" / "bundle.json"
    raw = json.loads(jpath.read_text())
    del raw["control_rate_hz"]
    jpath.write_text(json.dumps(raw))
    assert "control_rate_hz" not in read_bundle(tmp_path / "copy")
    raw["control_rate_hz"] = -5
    jpath.write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="control_rate_hz"):
        read_bundle(tmp_path / "copy")


def test_export_takes_the_rate_from_the_training_data(tmp_path):
    from warpd_core.config import DatasetConfig
    from warpd_core.data.zarr_store import write_zarr
    from warpd_core.export.writer import _dataset_rate

    path = tmp_path / "d.zarr"
    write_zarr(path, np.zeros((4, 2)), np.zeros((4, 1)), [4], attrs={"control_rate_hz": 15.0})
    assert _dataset_rate(DatasetConfig(format="zarr", path=str(path))) == 15.0
    write_zarr(tmp_path / "old.zarr", np.zeros((4, 2)), np.zeros((4, 1)), [4])
    assert _dataset_rate(DatasetConfig(format="zarr", path=str(tmp_path / "old.zarr"))) is None


def _controller_diagnostics(bundle, tmp_path, seconds, **controller):
    """Run the robot graph against the 100 Hz fake arm; returns (command times, controller statuses)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from rosutil import processes
    from test_ros_robot import FakeArm, arm_params, run_arm

    tmp_path.mkdir(parents=True, exist_ok=True)
    params_file, _ = arm_params(tmp_path, bundle, **controller)
    cmd = [sys.executable, "-m", "warpd_ros.graph", "robot", f"params_file:={params_file}", "autostart:=true",
           "--timeout", "150"]
    rclpy.init()
    try:
        node = rclpy.create_node("fake_arm_rate")
        arm = FakeArm(node)
        diags = []
        node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: diags.extend((time.monotonic(), s) for s in m.status
                                                        if s.name == "warpd_controller"), 50)
        with processes(cmd, log_dir=str(tmp_path)):
            t0 = time.monotonic()
            # the generator imports torch first: 5 s on an idle machine, 35 s seen on a loaded one
            while not arm.commands and time.monotonic() - t0 < 90:
                run_arm(node, arm, 0.2)
            assert arm.commands, "no command within 90 s of starting the robot graph"
            arm.commands.clear()
            t_run = time.monotonic()
            run_arm(node, arm, seconds)
            cmds = list(arm.commands)
    finally:
        rclpy.try_shutdown()
    return cmds, [s for t, s in diags if t > t_run + 1.0], seconds


def _level(s) -> int:
    return s.level if isinstance(s.level, int) else int.from_bytes(s.level, "little")


@requires_ros
def test_controller_reports_a_model_rate_mismatch_and_decimation_fixes_it(bundle_10hz, tmp_path):
    # a 10 Hz model on 100 Hz joint states: ERROR on /diagnostics naming both rates
    cmds, statuses, seconds = _controller_diagnostics(bundle_10hz, tmp_path / "a", 3.0)
    assert statuses, "no controller diagnostics"
    last = statuses[-1]
    values = {kv.key: kv.value for kv in last.values}
    # (the hint is round(measured / 10): 10 on an idle machine; a loaded one delivered 74 Hz -> 7)
    assert _level(last) == 2 and "model's 10 Hz" in last.message and "set trigger_decimation" in last.message, \
        last.message
    assert float(values["model_rate_hz"]) == 10.0 and 60 <= float(values["trigger_rate_hz"]) <= 110
    assert len(cmds) / seconds > 50
    # trigger_decimation 10: the controller acts on every 10th joint state, at the model's rate
    cmds, statuses, seconds = _controller_diagnostics(bundle_10hz, tmp_path / "b", 3.0, trigger_decimation=10,
                                                      control_period=0.1)
    rate = len(cmds) / seconds
    assert 6 <= rate <= 11, f"{rate:.1f} commands/s with trigger_decimation 10 on 100 Hz joint states"
    # within 10 % on an idle machine; never the ERROR (> 50 %) of the undecimated run
    assert statuses and not any(_level(s) == 2 and "differs" in s.message for s in statuses), \
        [s.message for s in statuses]
    assert all(float({kv.key: kv.value for kv in s.values}["trigger_decimation"]) == 10 for s in statuses)
