"""``warpd eval pusht-demos``: closed-loop replay from demonstrations' start states, the
diagnostic that separates the VAE's reconstruction from the diffusion model's sampling."""

import json

import numpy as np
import pytest
import torch

from warpd_core.cli import main
from warpd_core.config import DiffusionTrainConfig, VAETrainConfig, config_from_dict
from warpd_core.data.zarr_store import write_zarr
from warpd_core.export.writer import export_from_checkpoints
from warpd_core.train.diffusion_trainer import DiffusionTrainer
from warpd_core.train.vae_trainer import VAETrainer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny PushT VAE (trajectory length 40 over 30-step demos: truncated windows) + diffusion."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("demos")
    rng = np.random.default_rng(0)
    n, length = 4, 30
    s = np.concatenate([rng.uniform(100, 400, (n * length, 4)), rng.uniform(0, 6, (n * length, 1))], 1)
    a = s[:, 2:4] + rng.normal(0, 5, (n * length, 2))  # "push towards the block"
    data = root / "demos.zarr"
    write_zarr(data, s.astype(np.float32), a.astype(np.float32), np.arange(1, n + 1) * length)
    cfg = config_from_dict(VAETrainConfig, {
        "dataset": {"format": "zarr", "path": str(data)}, "policy": {"hidden": [16, 16]},
        "model": {"latent_dim": 16, "encoder_hidden": [32, 32, 32], "decoder_size": "xs", "world_model_hidden": [32, 32]},
        "trajectory_length": 40, "horizon": 8, "snippet_stride": 5, "batch_size": 8, "epochs": 2, "ro_warmup_epochs": 1})
    VAETrainer(cfg, str(root / "vae"), show_progress=False).train()
    dcfg = DiffusionTrainConfig(unet_size="xs", latent_shape=[4, 4], batch_size=8, epochs=1, lr_warmup_steps=1,
                                sampler_steps=2)
    DiffusionTrainer(dcfg, str(root / "dif"), str(root / "vae"), show_progress=False).train()
    export_from_checkpoints(str(root / "vae"), str(root / "dif"), str(root / "bundle"))
    return root, s.astype(np.float32)


def test_replay_reports_every_variant_per_demo_and_repeats(tiny_model, tmp_path):
    root, _ = tiny_model
    args = ["eval", "pusht-demos", "--vae", str(root / "vae"), "--model", str(root / "bundle"), "--first", "2",
            "--horizons", "5", "--max-steps", "12", "--no-progress"]
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(args + ["--out", str(out)]) == 0
    a, b = (json.loads((o / "demo_replay.json").read_text()) for o in outs)
    assert a["variants"] == ["encoder", "diffusion", "diffusion@5"] and a["trajectory_length"] == 40
    assert [e["episode"] for e in a["episodes"]] == [0, 1]
    for e in a["episodes"]:
        for v in a["variants"]:
            score, final = e[v]
            assert 0.0 <= final <= 1.0 and 0.0 <= score <= 1.0
    assert a["episodes"] == b["episodes"]  # same seeds, same rollouts
    assert "| encoder |" in (outs[0] / "summary.md").read_text()


def test_replay_rejects_a_missing_episode(tiny_model, tmp_path, capsys):
    root, _ = tiny_model
    assert main(["eval", "pusht-demos", "--vae", str(root / "vae"), "--model", str(root / "bundle"), "--episodes",
                 "9", "--no-progress", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--episodes: 9 out of range (the dataset has 4 episodes)" in err and len(err.strip().splitlines()) == 1
