"""Interrupted training resumes to bit-identical parameters.

test_train_vae.py already stops a run cleanly after k epochs (``max_epochs_this_run``) and
resumes it; here the process is really killed: SIGKILL in the middle of an epoch, and a crash
inside the checkpoint write itself (tensors written, commit record not). Stage 2: the
diffusion trainer's optimiser and EMA state survive a resume exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
VAE_CFG = REPO / "config" / "train" / "synthetic_vae.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # same thread count for every run: bit-identical float sums


def assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def vae_cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "warpd_core", "train", "vae", "--config", str(VAE_CFG), "--out", str(out),
            "--set", "epochs=10", "--set", "snippet_stride=1", "--set", "batch_size=32", "--no-progress", *extra]


def checkpoint_epoch(out: Path) -> int:
    try:
        return json.loads((out / "last.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_vae_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(vae_cli(ref), check=True, cwd=REPO, env=ENV, capture_output=True)

    p = subprocess.Popen(vae_cli(run), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while checkpoint_epoch(run) < 3 and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(p.pid, signal.SIGKILL)  # in epoch 4, between two checkpoints
    finally:
        p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = checkpoint_epoch(run)
    assert 3 <= killed_at < 10

    r = subprocess.run(vae_cli(run, "--resume"), cwd=REPO, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((run / "last.json").read_text())["epoch"] == 10
    assert_same_tensors(ref / "last.safetensors", run / "last.safetensors")


def _tiny_vae_cfg(epochs: int):
    from warpd_core.config import VAETrainConfig, load_config

    return load_config(VAETrainConfig, VAE_CFG, [f"epochs={epochs}", "snippet_stride=8"])


def test_crash_inside_checkpoint_write_still_resumes(tmp_path, monkeypatch):
    """Killed after the new tensors file is in place but before its JSON commit record: the
    previous checkpoint must still load, and the resumed run must end bit-identical."""
    import warpd_core.train.checkpoint as ckpt
    from warpd_core.train.checkpoint import load_checkpoint
    from warpd_core.train.vae_trainer import VAETrainer

    torch.set_num_threads(1)
    ref, run = tmp_path / "ref", tmp_path / "crashed"
    VAETrainer(_tiny_vae_cfg(4), str(ref), show_progress=False).train()

    real_write = ckpt.write_json_atomic
    saves = []

    class Killed(BaseException):
        pass

    def dying_write(path, obj):
        saves.append(obj["epoch"])
        if obj["epoch"] == 3:
            raise Killed  # the process dies here: tensors of epoch 3 written, JSON still says epoch 2
        real_write(path, obj)

    monkeypatch.setattr(ckpt, "write_json_atomic", dying_write)
    with pytest.raises(Killed):
        VAETrainer(_tiny_vae_cfg(4), str(run), show_progress=False).train()
    monkeypatch.setattr(ckpt, "write_json_atomic", real_write)
    assert saves == [1, 2, 3]

    tensors, meta = load_checkpoint(str(run))  # the last committed checkpoint, intact
    assert meta["epoch"] == 2
    VAETrainer(_tiny_vae_cfg(4), str(run), resume=True, show_progress=False).train()
    assert json.loads((run / "last.json").read_text())["epoch"] == 4
    assert_same_tensors(ref / "last.safetensors", run / "last.safetensors")
    assert not [f for f in os.listdir(run) if ".tmp." in f or f.endswith(".prev.safetensors")], os.listdir(run)


def test_diffusion_resume_restores_optimizer_and_ema_exactly(tmp_path):
    from warpd_core.config import DiffusionTrainConfig, config_from_dict
    from warpd_core.train.diffusion_trainer import DiffusionTrainer

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    latents = {"latents": rng.normal(size=(256, 16)).astype(np.float32),
               "states_n": rng.uniform(-1, 1, (256, 2)).astype(np.float32),
               "task_ids": np.zeros(256, np.int64)}
    cfg = config_from_dict(DiffusionTrainConfig, {
        "unet_size": "xs", "latent_shape": [4, 4], "condition": "state", "batch_size": 64, "epochs": 4,
        "lr": 1e-3, "lr_warmup_steps": 3, "seed": 0, "ema_power": 0.75})
    a = DiffusionTrainer(cfg, str(tmp_path / "a"), None, latents=latents, show_progress=False)
    a.train()
    b = DiffusionTrainer(cfg, str(tmp_path / "b"), None, latents=latents, show_progress=False)
    b.train(max_epochs_this_run=2)
    del b
    b = DiffusionTrainer(cfg, str(tmp_path / "b"), None, latents=latents, resume=True, show_progress=False)
    assert b.epoch == 2 and b.ema.optimization_step == b.step == 8
    b.train()
    assert_same_tensors(tmp_path / "a" / "last.safetensors", tmp_path / "b" / "last.safetensors")
    keys = load_file(str(tmp_path / "a" / "last.safetensors")).keys()
    assert any(k.startswith("model.ema.") for k in keys) and any(k.startswith("optim.denoiser.") for k in keys)
    # the live objects agree too (EMA decay counter, optimiser step counts)
    assert a.ema.optimization_step == b.ema.optimization_step == a.step == 16
    for pa, pb in zip(a.ema.model.parameters(), b.ema.model.parameters()):
        assert torch.equal(pa, pb)
    sa, sb = a.optimizers["denoiser"].state_dict(), b.optimizers["denoiser"].state_dict()
    for k in sa["state"]:
        for name, v in sa["state"][k].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][k][name])), (k, name)
