"""Latent-space analysis: labels, PCA, exact t-SNE and the VAE -> plots pipeline."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from warpd_core.analysis.latents import (
    APPROACH_SIDES,
    _conditional_p,
    analyze_latents,
    pca_2d,
    pusht_approach_side,
    tsne_2d,
)


def _clusters(n_per=30, k=3, dim=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 8.0, (k, dim))
    labels = np.repeat(np.arange(k), n_per)
    return centres[labels] + rng.normal(0.0, 1.0, (len(labels), dim)), labels


def test_approach_side_in_block_frame():
    def state(angle, body_offset):
        c, s = math.cos(angle), math.sin(angle)
        bx, by = np.array([0.0, 45.0]) + body_offset  # relative to the T's centre, body frame
        agent = np.array([256.0, 256.0]) + np.array([c * bx - s * by, s * bx + c * by])
        return [agent[0], agent[1], 256.0, 256.0, angle]

    for angle in (0.0, math.pi / 2, 4.0):
        states = np.array([state(angle, o) for o in ([100, 5], [0, 100], [-100, -5], [3, -100])])
        assert [APPROACH_SIDES[i] for i in pusht_approach_side(states)] == ["right", "stem end", "left", "bar side"]
    with pytest.raises(ValueError, match="states"):
        pusht_approach_side(np.zeros((3, 4)))


def test_pca_2d():
    rng = np.random.default_rng(0)
    t = rng.normal(size=200)
    x = np.outer(t, [3.0, 0.0, 4.0]) + 0.01 * rng.normal(size=(200, 3))
    emb, ratio = pca_2d(x)
    assert emb.shape == (200, 2) and ratio[0] > 0.99
    assert abs(np.corrcoef(emb[:, 0], t)[0, 1]) > 0.999
    np.testing.assert_allclose(emb.mean(axis=0), 0.0, atol=1e-9)


def test_conditional_p_has_target_perplexity():
    x, _ = _clusters()
    sq = (x**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None] - 2 * x @ x.T, 0)
    p = _conditional_p(d2, 10.0)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.all(np.diag(p) == 0)
    h = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(1)
    np.testing.assert_allclose(np.exp(h), 10.0, rtol=1e-3)


def test_tsne_separates_clusters_and_is_deterministic():
    x, labels = _clusters()
    y = tsne_2d(x, perplexity=10, n_iter=500, seed=0)
    assert y.shape == (90, 2) and np.all(np.isfinite(y))
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(1)] == labels).mean() == 1.0  # nearest neighbour in 2-D is in the same cluster
    np.testing.assert_array_equal(y, tsne_2d(x, perplexity=10, n_iter=500, seed=0))
    with pytest.raises(ValueError, match="at most"):
        tsne_2d(np.zeros((2001, 3)))


def test_analyze_latents_writes_png_and_csv(tmp_path):
    x, labels = _clusters()
    episode = np.arange(90) // 10
    out = analyze_latents(x, episode, labels, ["a", "b", "c"], str(tmp_path), start=np.arange(90), perplexity=10,
                          tsne_iter=200, title="test")
    with open(out["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 90 and rows[15]["mode_name"] == "a" and int(rows[15]["episode"]) == 1
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("pca_x", "pca_y", "tsne_x", "tsne_y"))
    assert open(out["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="labels"):
        analyze_latents(x, episode[:5], labels, ["a", "b", "c"], str(tmp_path))


def test_cli_on_a_vae_checkpoint(tmp_path):
    """`warpd analyze latents` end to end on a (freshly initialised) VAE checkpoint and a zarr."""
    import argparse

    from warpd_core.analysis import cli
    from warpd_core.config import VAETrainConfig, config_from_dict
    from warpd_core.data.zarr_store import write_zarr
    from warpd_core.train.vae_trainer import VAETrainer

    cfg = config_from_dict(VAETrainConfig, {
        "dataset": {"format": "synthetic", "synthetic_kind": "gains", "n_episodes": 8, "episode_len": 24, "seed": 0},
        "policy": {"hidden": [16, 16]},
        "model": {"latent_dim": 8, "encoder_hidden": [32, 32, 32], "decoder_size": "xs", "world_model_hidden": [32, 32]},
        "horizon": 8, "snippet_stride": 4, "batch_size": 16, "epochs": 1,
    })
    trainer = VAETrainer(cfg, str(tmp_path / "vae"), show_progress=False)
    trainer.save("last")
    ds = trainer.ds
    write_zarr(tmp_path / "demo.zarr", ds.states, ds.actions, ds.episode_ends)
    ap = argparse.ArgumentParser()
    cli.register(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["analyze", "latents", "--vae", str(tmp_path / "vae"), "--data", str(tmp_path / "demo.zarr"),
                          "--out", str(tmp_path / "out"), "--max-points", "60", "--tsne-iter", "100",
                          "--perplexity", "10"])
    assert args.func(args) == 0
    data = np.load(tmp_path / "out" / "latents.npz")
    assert data["mu"].shape == (60, 8) and set(np.unique(data["mode"])) <= {0, 1, 2}
    assert (tmp_path / "out" / "latents.png").is_file() and (tmp_path / "out" / "latents_2d.csv").is_file()


def test_components_for_variance_counts_the_effective_dimension():
    from warpd_core.analysis.latents import components_for_variance

    rng = np.random.default_rng(0)
    # 3 strong directions embedded in 64 dimensions plus tiny noise
    x = rng.normal(size=(500, 3)) * [10.0, 5.0, 2.0] @ np.linalg.qr(rng.normal(size=(64, 64)))[0][:3]
    x += 1e-3 * rng.normal(size=x.shape)
    counts = components_for_variance(x, (0.5, 0.9, 0.999))
    assert counts == {"0.5": 1, "0.9": 2, "0.999": 3}
