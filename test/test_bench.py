"""``warpd bench``: the quick run produces well-formed results, and the facts the benchmark
report relies on hold (controller import graph without torch, allocation-free numpy forward,
the FLOP-counting convention). No assertion on latency numbers: this machine is shared."""

import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, ros_available

SECTIONS = ("controller", "ros", "generator", "dp", "memory", "train")
ROW_KEYS = {
    "controller": {"size", "impl", "median_us", "p99_us", "p999_us", "alloc_bytes_per_call"},
    "ros": {"phase", "rate_hz", "p50_us", "p99_us", "p999_us", "deadline_miss_pct", "policy_actions_pct"},
    "generator": {"unet", "decoder", "sampler", "steps", "backend", "median_ms"},
    "dp": {"unet", "horizon", "steps", "warpd_per_step_mflops", "dp_per_step_mflops", "dp_over_warpd"},
    "memory": {"process", "rss_mb", "hwm_mb", "libtorch_loaded"},
    "train": {"stage", "batch", "samples_per_s"},
}


def _no_nan(text: str) -> dict:
    def bad(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=bad)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "warpd_core", "bench", "all", "--quick", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    return out, r, time.monotonic() - t0


def test_quick_run_finishes_within_a_minute(quick_run):
    out, r, elapsed = quick_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert elapsed < 60, f"warpd bench all --quick took {elapsed:.0f} s"
    assert (out / "summary.md").exists()


@pytest.mark.parametrize("section", SECTIONS)
def test_quick_run_writes_well_formed_json_and_markdown(quick_run, section):
    out, r, _ = quick_run
    doc = _no_nan((out / f"{section}.json").read_text())
    assert {"section", "quick", "host", "load", "config", "results", "targets", "notes"} <= set(doc)
    assert doc["section"] == section and doc["quick"] is True
    assert (out / f"{section}.md").read_text().startswith("## ")
    for t in doc["targets"]:
        assert set(t) == {"name", "target", "measured", "passed"} and t["passed"] in (True, False, None)
    if section in ("ros", "memory") and not ros_available():
        return
    rows = [row for row in doc["results"] if "note" not in row and "error" not in row]
    assert rows, doc["results"]
    for row in rows:
        missing = ROW_KEYS[section] - set(row)
        assert not missing, f"{section} row lacks {missing}: {row}"
    if section == "controller":
        impls = {row["impl"] for row in rows}
        assert {"numpy_mlp", "controller_core", "torch", "onnxruntime_iobinding"} <= impls
        assert all(row["agrees_with_numpy"] for row in rows if "agrees_with_numpy" in row)
    if section == "ros":
        assert {row["phase"] for row in rows} == {"echo", "controller", "controller+generator"}
        # the controller acted from a policy, and the generator's policies reached it
        ctrl = [row for row in rows if row["phase"] != "echo"]
        assert all(row["policy_actions_pct"] == 100.0 for row in ctrl)
        assert [row for row in ctrl if row["phase"] == "controller+generator"][0]["policies_seen"] >= 2
        # per-observation samples next to each phase's JSON: one entry per observation sent,
        # receipt after publication, and the generations the JSON counts
        for row in rows:
            tag = f"{row['phase'].replace('+', '_')}_{int(row['rate_hz'])}hz"
            res = json.loads((out / "ros_logs" / f"{tag}.json").read_text())
            smp = np.load(out / "ros_logs" / f"{tag}_samples.npz")
            got = smp["recv"] > 0
            assert smp["t_pub"].size == res["n_sent"] and int(got.sum()) == res["n_received"]
            assert (smp["recv"][got] > smp["t_pub"][got]).all()
            if row["phase"] != "echo":
                assert np.unique(smp["generation"][got]).size >= row["policies_seen"]
    if section == "memory":
        assert not any(row["libtorch_loaded"] for row in rows if row["process"] == "controller")


@pytest.mark.skipif(not ros_available(), reason="rclpy / built warpd_ros interfaces not available")
def test_controller_import_graph_has_no_torch():
    code = "import sys, warpd_ros.controller; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "False"

    from warpd_core.bench.memory import controller_imports

    assert controller_imports() == {"ok": True, "heavy_modules": []}


def test_numpy_policy_forward_allocates_nothing():
    from warpd_core.bench.controller import alloc_per_call, make_policy
    from warpd_core.policy.spec import MLPPolicy

    spec, flat = make_policy(21, (256, 256), 7)
    inputs = [np.ascontiguousarray(o) for o in np.random.default_rng(0).uniform(-1, 1, (16, 21))]
    res = alloc_per_call(MLPPolicy(spec, flat).act, inputs, 300)
    assert res["alloc_bytes_per_call"] == 0, res


def test_flop_convention_is_two_per_multiply_add():
    torch = pytest.importorskip("torch")
    from warpd_core.bench.dp import count_flops

    assert count_flops(torch.nn.Linear(5, 256), torch.zeros(1, 5)) == 2 * 5 * 256
    conv = torch.nn.Conv1d(16, 32, 5, padding=2)
    assert count_flops(conv, torch.zeros(1, 16, 8)) == 2 * 16 * 32 * 5 * 8


def test_percentiles_in_microseconds():
    from warpd_core.bench.common import summarize_ns

    s = summarize_ns(np.arange(1, 1001) * 1000)  # 1..1000 us
    assert s["n"] == 1000 and math.isclose(s["median_us"], 500.5) and s["max_us"] == 1000.0
    assert 990 <= s["p99_us"] <= 991 and 999 <= s["p999_us"] <= 1000


def test_generator_section_times_a_given_bundle_with_each_backend_it_has(tmp_path):
    """`warpd bench generator --bundle DIR`: the user's own bundle, torch and (when the bundle has
    the graphs) ONNX Runtime, named by its model_id."""
    from warpd_core.export.writer import export_init

    meta = export_init(str(tmp_path / "b"), 5, 2, [32, 32], 8, "xs", "xs", 8, (8, 1), onnx=True, sampler_steps=3)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "warpd_core", "bench", "generator", "--quick", "--bundle",
                        str(tmp_path / "b"), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = _no_nan((out / "generator.json").read_text())
    rows = doc["results"]
    assert [row["backend"] for row in rows] == ["torch", "onnx", "onnx_1thread"]
    assert all(row["latent"] == f"8 ({meta['model_id']})" and row["steps"] == 3 and row["median_ms"] > 0 for row in rows)
