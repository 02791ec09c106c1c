"""Corrupt, truncated and inconsistent files: every loader answers with one line that names the
file (and the field when there is one), and the command exits non-zero -- no traceback.

Covered elsewhere and not repeated here: the loader-level messages for bundles
(test_export.py) and checkpoints (test_train_vae.py), zarr stores (test_data_zarr.py),
robomimic hdf5 (test_data_robomimic.py), config errors through ``load_config``
(test_cli_train.py). This file checks what a user sees from the CLI and from the generator node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, node_executable, requires_ros

VAE_CFG = REPO / "config" / "train" / "synthetic_vae.yaml"
DIFF_CFG = REPO / "config" / "train" / "synthetic_diffusion.yaml"


def warpd(*args, timeout=120) -> subprocess.CompletedProcess:
    """The real command line, in a fresh process (exit code as the shell sees it)."""
    return subprocess.run([sys.executable, "-m", "warpd_core", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


@pytest.fixture
def warpd_main(capsys):
    """``warpd`` in this process (same code path as ``python -m warpd_core`` minus sys.exit): cheap
    enough to run every fault through it. Returns what ``warpd`` above returns."""
    from warpd_core.cli import main

    def run(*args):
        capsys.readouterr()
        rc = main([str(a) for a in args])
        cap = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, cap.out, cap.err)

    return run


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    """The command failed with exit code 2 and a single stderr line containing every needle."""
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, r.stderr[-2000:]
    for n in needles:
        assert n in err, (n, err)
    return err


# -- bundles, loaded by the CLI ----------------------------------------------------------------------
@pytest.fixture
def bundle_copy(init_bundle, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(init_bundle, dst)
    return dst


def eval_with(bundle: Path, tmp_path: Path, run=warpd) -> subprocess.CompletedProcess:
    return run("eval", "pusht", "--model", bundle, "--seeds", "1", "--repeats", "1", "--horizons", "8",
                 "--magnitudes", "0", "--max-steps", "5", "--no-gif", "--no-progress", "--out", tmp_path / "eval")


def _edit_json(path: Path, **fields) -> None:
    meta = json.loads(path.read_text())
    meta.update(fields)
    path.write_text(json.dumps(meta))


BUNDLE_FAULTS = {
    "missing bundle.json": (lambda b: (b / "bundle.json").unlink(), ["bundle.json", "not found"]),
    "truncated safetensors": (lambda b: (b / "denoiser.safetensors").write_bytes(
        (b / "denoiser.safetensors").read_bytes()[:1000]), ["denoiser.safetensors", "truncated"]),
    "truncated bundle.json": (lambda b: (b / "bundle.json").write_text((b / "bundle.json").read_text()[:300]),
                              ["bundle.json", "corrupted or truncated JSON"]),
    "wrong field type": (lambda b: _edit_json(b / "bundle.json", horizon="8"), ["bundle.json", "'horizon'"]),
    "wrong policy dims": (lambda b: _edit_json(b / "bundle.json", obs_dim=4), ["bundle.json", "'policy_spec'", "obs_dim"]),
    "weights do not fit the architecture": (
        lambda b: _edit_json(b / "bundle.json", policy_spec={"in_dim": 5, "hidden": [128, 128], "out_dim": 2,
                                                              "activation": "relu"}),
        ["hypernet.safetensors", "cannot load weights"]),
}


@pytest.mark.parametrize("fault", list(BUNDLE_FAULTS))
def test_broken_bundle_cli_one_line(fault, bundle_copy, tmp_path, warpd_main):
    breaks, needles = BUNDLE_FAULTS[fault]
    breaks(bundle_copy)
    # every fault in process; one through a real process for the exit code
    run = warpd if fault == "truncated safetensors" else warpd_main
    err = one_line_error(eval_with(bundle_copy, tmp_path, run), *needles)
    assert str(bundle_copy) in err


def test_bundle_for_another_robot_cli_one_line(tmp_path, warpd_main):
    """A valid bundle whose obs/act sizes do not fit PushT: named, with both sizes."""
    other = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "warpd_core", "export", "init", "--obs-dim", "3", "--act-dim", "2",
                    "--hidden", "16", "16", "--horizon", "8", "--decoder", "xs", "--unet", "xs", "--out", str(other)],
                   check=True, cwd=REPO, capture_output=True)
    one_line_error(eval_with(other, tmp_path, warpd_main), str(other), "obs_dim 3")


# -- training checkpoints ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vae")
    r = warpd("train", "vae", "--config", VAE_CFG, "--out", out, "--set", "epochs=1", "--set", "snippet_stride=16",
              "--no-progress")
    assert r.returncode == 0, r.stderr
    return out


CHECKPOINT_FAULTS = {
    "truncated tensors": (lambda d: (d / "last.safetensors").write_bytes((d / "last.safetensors").read_bytes()[:500]),
                          ["last.safetensors", "truncated"]),
    "flipped byte": (lambda d: (d / "last.safetensors").write_bytes(
        (lambda b: b[:200] + bytes([b[200] ^ 1]) + b[201:])((d / "last.safetensors").read_bytes())),
        ["last.safetensors", "corrupted"]),
    "missing tensors": (lambda d: (d / "last.safetensors").unlink(), ["last.safetensors", "not found"]),
    "truncated json": (lambda d: (d / "last.json").write_text((d / "last.json").read_text()[:40]),
                       ["last.json", "corrupted"]),
    "json without hash": (lambda d: _edit_json(d / "last.json", tensors_sha256=None) or
                          (d / "last.json").write_text(json.dumps(
                              {k: v for k, v in json.loads((d / "last.json").read_text()).items()
                               if k != "tensors_sha256"})),
                          ["last.json", "tensors_sha256"]),
}


@pytest.mark.parametrize("fault", list(CHECKPOINT_FAULTS))
def test_broken_checkpoint_cli_one_line(fault, vae_run, tmp_path, warpd_main):
    breaks, needles = CHECKPOINT_FAULTS[fault]
    d = tmp_path / "vae"
    shutil.copytree(vae_run, d)
    breaks(d)
    run = warpd if fault == "truncated tensors" else warpd_main
    # stage 2 reads the stage-1 checkpoint; --resume reads the run's own
    one_line_error(run("train", "diffusion", "--config", DIFF_CFG, "--vae", d, "--out", tmp_path / "dif",
                         "--no-progress"), str(d), *needles)
    if fault == "truncated tensors":
        one_line_error(warpd_main("train", "vae", "--config", VAE_CFG, "--out", d, "--resume", "--set", "epochs=2",
                             "--set", "snippet_stride=16", "--no-progress"), str(d), *needles)


# -- YAML training configs --------------------------------------------------------------------------------
CONFIG_FAULTS = {
    "unknown key": ({"lerning_rate": 0.1}, ["lerning_rate"]),
    "unknown nested key": ({"model": {"latent_dims": 8}}, ["model.latent_dims"]),
    "wrong type": ({"batch_size": "big"}, ["batch_size", "int"]),
    "wrong nested type": ({"policy": {"hidden": [32, "wide"]}}, ["policy.hidden[1]", "int"]),
    "bad choice": ({"model": {"decoder_size": "huge"}}, ["model.decoder_size", "one of"]),
    "bad value": ({"epochs": -3}, ["epochs"]),
    "section not a mapping": ({"dataset": [1, 2]}, ["dataset", "mapping"]),
}


@pytest.mark.parametrize("fault", list(CONFIG_FAULTS))
def test_bad_training_config_cli_one_line(fault, tmp_path, warpd_main):
    change, needles = CONFIG_FAULTS[fault]
    d = yaml.safe_load(VAE_CFG.read_text())
    for k, v in change.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    run = warpd if fault == "unknown key" else warpd_main
    one_line_error(run("train", "vae", "--config", p, "--out", tmp_path / "out"), str(p), *needles)
    assert not (tmp_path / "out").exists()  # nothing written for a rejected config


def test_unreadable_training_config_cli_one_line(tmp_path, warpd_main):
    p = tmp_path / "broken.yaml"
    p.write_text("dataset: {format: synthetic\nepochs: [")
    one_line_error(warpd_main("train", "vae", "--config", p, "--out", tmp_path / "o"), str(p), "invalid YAML", "line 2")
    one_line_error(warpd_main("train", "vae", "--config", tmp_path / "absent.yaml", "--out", tmp_path / "o"),
                   "absent.yaml", "cannot read")
    p.write_text("- just\n- a list\n")
    one_line_error(warpd_main("train", "diffusion", "--config", p, "--vae", tmp_path, "--out", tmp_path / "o"),
                   str(p), "mapping")


# -- the generator node ---------------------------------------------------------------------------------
def run_generator(bundle, *params, timeout=40) -> subprocess.CompletedProcess:
    cmd = [node_executable("generator"), "--ros-args", "-p", f"bundle:={bundle}", "-p", "autostart:=true",
           *[x for p in params for x in ("-p", p)]]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the generator kept running with a bad bundle: {e.stderr!s:.1500}")


def node_error_line(r: subprocess.CompletedProcess, prefix: str) -> str:
    assert r.returncode != 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(prefix)]
    assert len(lines) == 1, r.stderr[-2000:]
    return lines[0]


@requires_ros
def test_generator_node_exits_with_one_line_on_broken_bundle(bundle_copy):
    (bundle_copy / "hypernet.safetensors").write_bytes((bundle_copy / "hypernet.safetensors").read_bytes()[:-7])
    line = node_error_line(run_generator(bundle_copy), "warpd_generator:")
    assert "hypernet.safetensors" in line and "truncated" in line, line


@requires_ros
def test_generator_node_rejects_bundle_of_wrong_size_for_the_controller(init_bundle):
    # the controller is configured for obs_dim 4, act_dim 2; the bundle is a 5 -> 2 model
    r = run_generator(init_bundle, "obs_dim:=4", "act_dim:=2", timeout=10)  # loads in ~3 s
    line = node_error_line(r, "warpd_generator:")
    assert "bundle.json" in line and "obs_dim" in line and "5" in line and "4" in line, line
