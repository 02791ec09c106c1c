"""Export bundles and the generator API: determinism, ONNX == torch, normalisation folding,
and clear errors for broken bundles."""

import json
import shutil

import numpy as np
import pytest
import torch

from warpd_core.export.bundle import load_generator
from warpd_core.export.bundle_format import BundleError, read_bundle
from warpd_core.export.writer import export_init
from warpd_core.models.policy_torch import policy_forward
from warpd_core.policy import MLPPolicy

OBS_RANGE, ACT_RANGE = (0.0, 512.0), (0.0, 512.0)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    kw = dict(obs_dim=5, act_dim=2, hidden=[64, 64], horizon=8, decoder="xs", unet="xs", latent_dim=64,
              latent_shape=(16, 4), obs_range=OBS_RANGE, act_range=ACT_RANGE, sampler_steps=5)
    export_init(str(root / "a"), seed=3, onnx=True, **kw)
    export_init(str(root / "b"), seed=3, **kw)
    export_init(str(root / "task"), seed=1, onnx=True, condition="state+task", n_tasks=3, **kw)
    # latent (4, 2): the UNet's levels run at lengths 4, 2, 1, where the export trims kernel taps
    export_init(str(root / "short"), seed=2, onnx=True, **{**kw, "latent_dim": 8, "latent_shape": (4, 2)})
    return root


def obs_batch(n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 512, (n, 5)).astype(np.float32)


def test_init_is_deterministic_in_seed(bundles, tmp_path):
    a, b = read_bundle(bundles / "a"), read_bundle(bundles / "b")
    assert a["model_id"] == b["model_id"]
    assert a["files"]["denoiser.safetensors"] == b["files"]["denoiser.safetensors"]
    c = export_init(str(tmp_path / "c"), 5, 2, [64, 64], 8, "xs", "xs", 64, (16, 4), seed=4, sampler_steps=5)
    assert c["model_id"] != a["model_id"]


def test_generate_contract(bundles):
    g = load_generator(bundles / "a", seed=0)
    assert (g.obs_dim, g.act_dim, g.n_tasks, g.horizon) == (5, 2, 0, 8)
    assert g.spec.layer_sizes == (5, 64, 64, 2) and g.model_id == read_bundle(bundles / "a")["model_id"]
    w = g.generate(obs_batch())
    assert w.shape == (3, g.spec.n_weights) and w.dtype == np.float32 and np.isfinite(w).all()
    # same seed -> same sequence of policies
    w2 = load_generator(bundles / "a", seed=0).generate(obs_batch())
    np.testing.assert_array_equal(w, w2)
    with pytest.raises(ValueError, match="obs"):
        g.generate(np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("name,task", [("a", None), ("task", np.array([0, 2, 1])), ("short", None)])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_onnx_equals_torch(bundles, name, task, sampler):
    gt = load_generator(bundles / name, backend="torch", sampler=sampler, steps=5, seed=7)
    go = load_generator(bundles / name, backend="onnx", sampler=sampler, steps=5, seed=7)
    zt = gt.sample_latents(obs_batch(), task)
    zo = go.sample_latents(obs_batch(), task)
    np.testing.assert_allclose(zo, zt, rtol=0, atol=1e-4)
    np.testing.assert_allclose(go.decode(zt), gt.decode(zt), rtol=1e-4, atol=1e-4)


def test_specialize_conv1d_is_exact_and_trims_dead_taps():
    from torch import nn

    from warpd_core.export.specialize import Conv1dAs2d, specialize_conv1d
    from warpd_core.models.denoiser import LatentDenoiser

    torch.manual_seed(0)
    den = LatentDenoiser(8, (4, 2), "state", 5, unet_size="xs").eval()
    args = (torch.randn(3, 4, 2), torch.tensor([3.0, 40.0, 90.0]), torch.randn(3, 5))
    with torch.no_grad():
        ref = den(*args)
    counts = specialize_conv1d(den, args)
    kernels = {name: m.kernel_size[0] for name, m in den.named_modules() if isinstance(m, nn.Conv1d)}
    # bottom level runs at length 1 (kernel 5 -> 1), the level above at length 2 (5 -> 3)
    assert kernels["unet.down.2.0.block1.0"] == 1 and kernels["unet.down.1.0.block1.0"] == 3
    assert kernels["unet.down.0.0.block1.0"] == 5 and counts["trimmed"] > 0
    with torch.no_grad():
        torch.testing.assert_close(den(*args), ref, rtol=0, atol=1e-5)
    specialize_conv1d(den, args, as_conv2d=True)
    assert not any(isinstance(m, nn.Conv1d) for m in den.modules())
    assert any(isinstance(m, Conv1dAs2d) for m in den.modules())
    with torch.no_grad():
        torch.testing.assert_close(den(*args), ref, rtol=0, atol=1e-5)


def test_rewriting_a_bundle_adds_onnx_and_keeps_its_identity(bundles, tmp_path):
    """`warpd export --bundle B --onnx`: a bundle shipped without ONNX graphs gets them; the
    weights, the model_id and what the torch backend generates stay the same."""
    from warpd_core.cli import main as warpd_main

    assert read_bundle(bundles / "b")["onnx"] is None
    assert warpd_main(["export", "--bundle", str(bundles / "b"), "--onnx", "--out", str(tmp_path / "b2")]) == 0
    old, new = read_bundle(bundles / "b"), read_bundle(tmp_path / "b2")
    assert new["model_id"] == old["model_id"] and new["onnx"] is not None
    assert new["files"]["denoiser.safetensors"] == old["files"]["denoiser.safetensors"]
    obs = obs_batch()
    np.testing.assert_array_equal(load_generator(tmp_path / "b2", seed=0).generate(obs),
                                  load_generator(bundles / "b", seed=0).generate(obs))
    np.testing.assert_allclose(load_generator(tmp_path / "b2", backend="onnx", seed=0).generate(obs),
                               load_generator(bundles / "b", seed=0).generate(obs), rtol=1e-3, atol=1e-3)
    assert warpd_main(["export", "init", "--bundle", str(bundles / "b"), "--out", str(tmp_path / "b3")]) == 2
    assert not (tmp_path / "b3").exists()


def test_fold_affine_through_generate(bundles):
    """Raw weights from generate() on raw obs == unnormalise(policy_n(normalise(obs)))."""
    g = load_generator(bundles / "a", seed=0)
    obs = obs_batch(4, seed=1)
    z = g.sample_latents(obs)
    raw = g.decode(z)
    with torch.no_grad():
        theta_n = g._impl.hypernet(torch.from_numpy(z)).double()
    o_s, o_o = g._obs_scale, g._obs_offset
    a_s = np.full(2, 2.0 / 512.0)
    a_o = np.full(2, -1.0)
    test_obs = obs_batch(6, seed=2).astype(np.float64)
    for i in range(4):
        a_n = policy_forward(g.spec, theta_n[i : i + 1], torch.from_numpy(test_obs * o_s + o_o)[None])[0].numpy()
        expected = (a_n - a_o) / a_s
        got = MLPPolicy(g.spec, raw[i]).act_batch(test_obs)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-2)  # float32 weights ~ 500 scale


def test_float16_bundle_loads(bundles, tmp_path):
    export_init(str(tmp_path / "h"), 5, 2, [64, 64], 8, "xs", "xs", 64, (16, 4), seed=3, dtype="float16",
                sampler_steps=5, obs_range=OBS_RANGE, act_range=ACT_RANGE)
    g16 = load_generator(tmp_path / "h", seed=0)
    g32 = load_generator(bundles / "b", seed=0)
    w16, w32 = g16.generate(obs_batch()), g32.generate(obs_batch())
    assert np.isfinite(w16).all()
    assert np.abs(w16 - w32).max() < 0.05 * np.abs(w32).max()


def test_broken_bundles_name_file_and_field(bundles, tmp_path):
    src = bundles / "a"
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    st = bad / "hypernet.safetensors"
    data = st.read_bytes()
    st.write_bytes(data[:-10])
    with pytest.raises(BundleError, match="hypernet.safetensors.*truncated"):
        load_generator(bad)
    st.write_bytes(data[:-10] + bytes(b ^ 0x5A for b in data[-10:]))
    with pytest.raises(BundleError, match="hypernet.safetensors.*corrupted"):
        load_generator(bad)
    st.write_bytes(data)
    meta = json.loads((bad / "bundle.json").read_text())
    (bad / "bundle.json").write_text(json.dumps(meta)[:200])
    with pytest.raises(BundleError, match="bundle.json"):
        load_generator(bad)
    for field, value in (("obs_dim", "five"), ("latent_shape", [3, 3]), ("condition", "mood")):
        m = dict(meta)
        m[field] = value
        (bad / "bundle.json").write_text(json.dumps(m))
        with pytest.raises(BundleError, match=f"bundle.json.*{field}"):
            load_generator(bad)
    m = dict(meta)
    del m["normalization"]
    (bad / "bundle.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="normalization"):
        load_generator(bad)
    with pytest.raises(BundleError, match="not found"):
        load_generator(tmp_path / "nowhere")
    (bad / "bundle.json").write_text(json.dumps(meta))
    shutil.rmtree(bad / "onnx")
    with pytest.raises(BundleError, match="onnx/denoiser.onnx.*missing"):
        load_generator(bad, backend="onnx")


def test_bundle_format_module_is_torch_free():
    import subprocess
    import sys

    code = ("import sys; import warpd_core.export.bundle_format, warpd_core.policy; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_provenance_names_no_machine_path(bundles, tmp_path):
    """bundle.json says what made it (kind, seed, the exporting code's git revision) without
    absolute paths; a rewritten bundle keeps what the original said."""
    from warpd_core.cli import main as warpd_main
    from warpd_core.export.bundle_format import bundle_provenance
    from warpd_core.version import git_revision

    meta = read_bundle(bundles / "b")
    assert "source" not in meta
    assert meta["provenance"] == {"kind": "init", "seed": 3, "git": git_revision()}
    rev = meta["provenance"]["git"]
    if rev is not None:  # a git checkout (CI's fresh clone is one)
        assert len(rev["commit"]) == 40 and isinstance(rev["dirty"], bool)
    assert warpd_main(["export", "--bundle", str(bundles / "b"), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "bundle.json").read_text()
    assert str(tmp_path) not in text and str(bundles) not in text
    prov = bundle_provenance(json.loads(text))
    assert prov["kind"] == "rewritten" and prov["model_id"] == meta["model_id"]
    assert prov["original"] == meta["provenance"]


def test_old_bundles_with_source_still_load_and_rewrite_without_its_paths(bundles, tmp_path):
    """Bundles exported before `provenance` (the snippet-16 model shipped until 2026-12-03 is one)
    carry `source`: the training machine's run folders. They load as they are (hash list
    intact); rewriting one keeps only the folders' names."""
    from warpd_core.cli import main as warpd_main
    from warpd_core.export.bundle_format import bundle_provenance

    old = tmp_path / "old"
    shutil.copytree(bundles / "b", old)
    legacy = json.loads((old / "bundle.json").read_text())
    del legacy["provenance"]
    legacy["source"] = {"vae": "/work/main/runs/pusht_h16/vae_long", "diffusion": "/work/main/runs/pusht_h16/diffusion_long_pca8"}
    (old / "bundle.json").write_text(json.dumps(legacy))
    meta = read_bundle(old)  # verifies every sha256 in files
    assert "provenance" not in meta and meta["source"]["vae"].startswith("/")
    assert bundle_provenance(meta) == {"kind": "legacy", "git": None,
                                       "runs": {"vae": "vae_long", "diffusion": "diffusion_long_pca8"}}
    assert bundle_provenance({"source": {"init": True, "seed": 4}}) == {"kind": "init", "git": None, "seed": 4}
    assert bundle_provenance({}) == {"kind": "legacy", "git": None, "runs": {}}
    assert warpd_main(["export", "--bundle", str(old), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "bundle.json").read_text()
    assert "/work/" not in text and meta["source"]["vae"] not in text
    new = json.loads(text)
    assert new["model_id"] == meta["model_id"] and new["provenance"]["original"]["runs"]["vae"] == "vae_long"


def test_bad_provenance_is_a_bundle_error(bundles, tmp_path):
    shutil.copytree(bundles / "b", tmp_path / "b")
    path = tmp_path / "b" / "bundle.json"
    meta = json.loads(path.read_text())
    for bad, match in (([], "provenance"), ({"kind": "mystery"}, "kind")):
        path.write_text(json.dumps({**meta, "provenance": bad}))
        with pytest.raises(BundleError, match=match):
            read_bundle(tmp_path / "b")


def test_git_revision_outside_a_checkout_is_none(tmp_path):
    from warpd_core.version import git_revision

    assert git_revision(tmp_path) is None
