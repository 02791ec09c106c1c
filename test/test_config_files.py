"""Every training config in config/train loads into its stage's dataclass, and ``base:`` includes
resolve as documented (warpd_core.config.read_config_mapping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from warpd_core.config import ConfigError, DiffusionTrainConfig, VAETrainConfig, config_to_dict, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "config" / "train").glob("*.yaml"))


def _config_class(path: Path):
    from warpd_core.baselines.diffusion_policy import DPTrainConfig
    from warpd_core.baselines.ldp import LDPTrainConfig
    from warpd_core.baselines.mlp import MLPTrainConfig

    words = path.stem.split("_")
    for word, cls in (("vae", VAETrainConfig), ("diffusion", DiffusionTrainConfig), ("dp", DPTrainConfig),
                      ("ldp", LDPTrainConfig), ("mlp", MLPTrainConfig)):
        if word in words:
            return cls
    raise AssertionError(f"{path.name}: no stage in its name")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_training_config_loads(path):
    load_config(_config_class(path), path)


def test_derived_configs_differ_from_their_base_only_where_they_say():
    vae = config_to_dict(load_config(VAETrainConfig, REPO / "config/train/pusht_vae.yaml"))
    nowm = config_to_dict(load_config(VAETrainConfig, REPO / "config/train/pusht_vae_nowm.yaml"))
    gpu = config_to_dict(load_config(VAETrainConfig, REPO / "config/train/pusht_vae_gpu.yaml"))
    assert {k for k in vae if vae[k] != nowm[k]} == {"use_world_model"}
    assert gpu["model"] == {**vae["model"], "decoder_size": "l"}
    assert (gpu["trajectory_length"], gpu["epochs"], gpu["beta_kl"]) == (256, 1000, 1e-10)  # Table 11


def test_base_merges_sections_and_the_including_file_wins(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "root.yaml").write_text("epochs: 5\nmodel: {decoder_size: s, latent_dim: 64}\n")
    (tmp_path / "sub" / "mid.yaml").write_text("base: ../root.yaml\nlr: 0.002\n")
    (tmp_path / "leaf.yaml").write_text("base: sub/mid.yaml\nmodel: {decoder_size: xs}\n")
    cfg = load_config(VAETrainConfig, tmp_path / "leaf.yaml", ["epochs=7"])
    assert (cfg.epochs, cfg.lr, cfg.model.decoder_size, cfg.model.latent_dim) == (7, 0.002, "xs", 64)


@pytest.mark.parametrize("text, match", [
    ("base: missing.yaml\n", r"bad\.yaml: field 'base': .*missing\.yaml does not exist"),
    ("base: [a]\n", r"bad\.yaml: field 'base': expected the path"),
    ("base: bad.yaml\n", r"bad\.yaml: field 'base': bad\.yaml includes itself"),
])
def test_bad_base_names_the_file_and_field(tmp_path, text, match):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(VAETrainConfig, tmp_path / "bad.yaml")
