"""Every training config in config/train loads into its stage's dataclass, and ``base:`` includes
resolve as documented (warpd_core.config.read_config_mapping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from warpd_core.config import ConfigError, DiffusionTrainConfig, VAETrainConfig, config_from_dict, config_to_dict, load_config

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


def _restated(path: Path) -> list[str]:
    """Dotted keys of ``path`` whose value equals what they would be without them: the dataclass
    default, or for a file with ``base:`` the base's resolved value."""
    from warpd_core.config import read_yaml_mapping

    cls = _config_class(path)
    raw = read_yaml_mapping(path)
    ref = config_to_dict(load_config(cls, path.parent / raw["base"]) if "base" in raw else cls())
    out = []

    def walk(node: dict, against: dict, prefix: str) -> None:
        for key, value in node.items():
            if key == "base" or key not in against:
                continue
            if isinstance(value, dict) and isinstance(against[key], dict):
                walk(value, against[key], f"{prefix}{key}.")
            elif value == against[key]:
                out.append(prefix + key)

    walk(raw, ref, "")
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_configs_hold_only_what_differs(path):
    """A config restates nothing (`warpd train STAGE --config F --print-config` shows all of it);
    the exception is a file marked `Frozen:`, kept exactly as a past run read it."""
    if "Frozen:" in path.read_text():
        return
    assert _restated(path) == [], f"{path.name}: these keys repeat the default or the base's value"


def test_the_shipped_models_configs_resolve_to_what_trained_it():
    """config/train/pusht_vae.yaml and pusht_diffusion.yaml are the shipped model's exact configs:
    they resolve to the configs its bundle.json recorded at training time, so a changed default
    that would change them fails here. (A field added since, absent from the record, is read at
    its default, which must be the old behaviour: config_from_dict fills it the same way.)"""
    import json

    from warpd_core.assets import SHIPPED_PUSHT_MODEL

    trained = json.loads((SHIPPED_PUSHT_MODEL / "bundle.json").read_text())["provenance"]["training"]
    for stage, cls, name in (("vae", VAETrainConfig, "pusht_vae.yaml"),
                             ("diffusion", DiffusionTrainConfig, "pusht_diffusion.yaml")):
        recorded = config_to_dict(config_from_dict(cls, trained[stage]["config"]))
        assert config_to_dict(load_config(cls, REPO / "config" / "train" / name)) == recorded, name


def test_print_config_shows_the_resolved_config():
    import subprocess
    import sys

    import yaml

    r = subprocess.run([sys.executable, "-m", "warpd_core", "train", "vae", "--config",
                        "config/train/pusht_vae_nowm.yaml", "--set", "epochs=7", "--print-config"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    want = config_to_dict(load_config(VAETrainConfig, REPO / "config/train/pusht_vae_nowm.yaml", ["epochs=7"]))
    assert shown == want and shown["use_world_model"] is False and shown["model"]["latent_dim"] == 256
