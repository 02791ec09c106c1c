"""The ``warpd`` CLI end to end on tiny synthetic configs, and config validation errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from warpd_core.cli import main
from warpd_core.config import ConfigError, DiffusionTrainConfig, VAETrainConfig, load_config

REPO = Path(__file__).resolve().parents[1]
VAE_CFG = REPO / "config" / "train" / "synthetic_vae.yaml"
DIFF_CFG = REPO / "config" / "train" / "synthetic_diffusion.yaml"


def test_train_export_generate_end_to_end(tmp_path):
    vae, dif, bundle = tmp_path / "vae", tmp_path / "dif", tmp_path / "bundle"
    fast = ["--set", "epochs=2", "--set", "snippet_stride=8", "--set", "trajectory_length=24", "--no-progress"]
    assert main(["train", "vae", "--config", str(VAE_CFG), "--out", str(vae), *fast]) == 0
    assert (vae / "last.safetensors").exists() and (vae / "metrics.csv").exists()
    assert main(["train", "diffusion", "--config", str(DIFF_CFG), "--vae", str(vae), "--out", str(dif),
                 "--set", "epochs=1", "--no-progress"]) == 0
    assert main(["export", "--vae", str(vae), "--diffusion", str(dif), "--out", str(bundle), "--onnx"]) == 0
    from warpd_core.export.bundle import load_generator

    text = (bundle / "bundle.json").read_text()
    meta = json.loads(text)
    # provenance: both stages' resolved configs and revisions, no path of this machine
    prov = meta["provenance"]
    assert prov["kind"] == "checkpoints" and "source" not in meta and str(tmp_path) not in text
    assert prov["training"]["vae"]["config"] == json.loads((vae / "last.json").read_text())["config"]
    assert prov["training"]["vae"]["config"]["trajectory_length"] == 24 and prov["training"]["vae"]["epoch"] == 2
    assert prov["training"]["diffusion"]["config"]["epochs"] == 1
    assert prov["training"]["vae"]["git"] == prov["git"]  # trained and exported by this checkout
    # the action horizon and the training trajectories' length travel separately
    assert meta["trajectory_length"] == 24 and meta["horizon"] == load_config(VAETrainConfig, VAE_CFG).horizon
    obs = np.array([[0.2, -0.3], [0.9, 0.9]], np.float32)
    w_t = load_generator(bundle, backend="torch", seed=0).generate(obs)
    w_o = load_generator(bundle, backend="onnx", seed=0).generate(obs)
    assert w_t.shape == (2, 2 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2)
    np.testing.assert_allclose(w_o, w_t, atol=1e-4, rtol=1e-4)
    # resume a finished run with more epochs
    assert main(["train", "vae", "--config", str(VAE_CFG), "--out", str(vae), "--resume", *fast[2:],
                 "--set", "epochs=3"]) == 0
    assert json.loads((vae / "last.json").read_text())["epoch"] == 3


def test_config_errors_name_file_and_field(tmp_path):
    base = yaml.safe_load(VAE_CFG.read_text())
    cases = [
        ({"unknown_key": 1}, "unknown_key"),
        ({"batch_size": "big"}, "batch_size.*int"),
        ({"model": {"decoder_size": "huge"}}, "model.decoder_size.*one of"),
        ({"dataset": {"format": "zarr"}}, "dataset.path"),
        ({"epochs": 0}, "epochs"),
    ]
    for change, pattern in cases:
        d = json.loads(json.dumps(base))
        for k, v in change.items():
            d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump(d))
        with pytest.raises(ConfigError, match=f"c.yaml.*{pattern}"):
            load_config(VAETrainConfig, p)
    cfg = load_config(VAETrainConfig, VAE_CFG, ["model.latent_dim=8", "dataset.path=/x.zarr", "dataset.format=zarr"])
    assert cfg.model.latent_dim == 8 and cfg.dataset.path == "/x.zarr"
    with pytest.raises(ConfigError, match="model.nope"):
        load_config(VAETrainConfig, VAE_CFG, ["model.nope=1"])


def test_cli_reports_bad_checkpoint_and_help_is_fast(tmp_path):
    (tmp_path / "last.json").write_text("{trunc")
    r = subprocess.run([sys.executable, "-m", "warpd_core", "train", "diffusion", "--config", str(DIFF_CFG),
                        "--vae", str(tmp_path), "--out", str(tmp_path / "d")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "last.json" in r.stderr
    r = subprocess.run([sys.executable, "-c", "import sys; from warpd_core.cli import build_parser; build_parser(); "
                        "sys.exit(1 if 'torch' in sys.modules else 0)"], cwd=REPO)
    assert r.returncode == 0


def test_pca_latent_diffusion_exports_a_folded_hypernetwork(tmp_path):
    """latent_pca: k: the denoiser diffuses k principal-component coordinates; the bundle's
    hypernetwork takes those k numbers and generates exactly the policy the VAE's decoder
    generates on the lifted latent mean + c @ basis."""
    import torch

    from warpd_core.export.bundle import load_generator
    from warpd_core.train.denoiser_checkpoint import load_diffusion
    from warpd_core.train.vae_trainer import load_vae

    vae_dir, dif, bundle = tmp_path / "vae", tmp_path / "dif", tmp_path / "bundle"
    assert main(["train", "vae", "--config", str(VAE_CFG), "--out", str(vae_dir), "--set", "epochs=1",
                 "--set", "snippet_stride=8", "--no-progress"]) == 0
    assert main(["train", "diffusion", "--config", str(DIFF_CFG), "--vae", str(vae_dir), "--out", str(dif),
                 "--set", "epochs=1", "--set", "latent_pca=8", "--set", "latent_shape=[8,1]", "--no-progress"]) == 0
    den, cfg, meta = load_diffusion(str(dif))
    assert (den.latent_dim, meta["latent_dim"], meta["diffused_dim"]) == (8, 32, 8)
    basis = den.projection.basis.numpy()
    np.testing.assert_allclose(basis @ basis.T, np.eye(8), atol=1e-5)  # orthonormal rows
    assert main(["export", "--vae", str(vae_dir), "--diffusion", str(dif), "--out", str(bundle), "--onnx"]) == 0
    assert json.loads((bundle / "bundle.json").read_text())["latent_dim"] == 8

    vae = load_vae(str(vae_dir))[0]
    gen = load_generator(bundle, backend="torch", seed=0)
    c = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    with torch.no_grad():
        theta = vae.decode(den.projection.lift(torch.from_numpy(c))).numpy()
    np.testing.assert_allclose(gen._impl.decode(c), theta, atol=2e-4, rtol=1e-4)
    w = gen.generate(np.array([[0.2, -0.3]], np.float32))
    np.testing.assert_allclose(load_generator(bundle, backend="onnx", seed=0).generate(np.array([[0.2, -0.3]], np.float32)),
                               w, atol=1e-4, rtol=1e-4)


def test_latent_pca_config_must_fit_latent_shape():
    with pytest.raises(ConfigError, match="latent_shape"):
        DiffusionTrainConfig(latent_pca=8, latent_shape=[16, 16])
    with pytest.raises(ConfigError, match="latent_pca"):
        DiffusionTrainConfig(latent_pca=-1)
