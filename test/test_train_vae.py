"""Stage 1 on the synthetic point-mass family: it learns, it checkpoints, it resumes exactly."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from warpd_core.config import VAETrainConfig, config_from_dict
from warpd_core.train.checkpoint import CheckpointError, load_checkpoint
from warpd_core.train.synthetic import DT, feedback_action, make_pointmass
from warpd_core.train.vae_trainer import VAETrainer, load_vae

TINY = {
    "dataset": {"format": "synthetic", "synthetic_kind": "gains", "n_episodes": 64, "episode_len": 32, "seed": 0},
    "policy": {"hidden": [32, 32]},
    "model": {"latent_dim": 32, "encoder_hidden": [128, 128, 128], "decoder_size": "xs", "world_model_hidden": [128, 128]},
    "horizon": 16, "snippet_stride": 4, "batch_size": 32, "epochs": 60, "lr": 2e-3, "world_model_lr": 1e-3,
    "beta_kl": 1e-6, "ro_warmup_epochs": 10,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small matrices: one thread is as fast, and far faster when other processes share the CPU.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def cfg_with(**changes):
    d = json.loads(json.dumps(TINY))
    for k, v in changes.items():
        d[k] = v
    return config_from_dict(VAETrainConfig, d)


def held_out_error(vae, ds, params, n_eval=32, seed=0):
    """Mean squared action error (raw units) of encode->decode policies against their source law
    on held-out states: a fresh noisy rollout of the same law from the snippet's first state
    (same neighbourhood, states the snippet did not contain)."""
    rng = np.random.default_rng(seed)
    idx = ds.snippet_starts(16, 16)
    idx = idx[idx[:, 0] % 32 == 0][:n_eval]  # first snippet of each episode
    g = ds.gather_snippets(idx, 16)
    with torch.no_grad():
        mu, _ = vae.encode(torch.from_numpy(g["states"]), torch.from_numpy(g["actions"]))
        theta = vae.decode(mu)
    errs = []
    for i, ep in enumerate(g["episode"]):
        gain, goal = params["gain"][ep], params["goal"][ep]
        x = g["states"][i, 0].copy()
        xs = []
        for _ in range(16):
            xs.append(x)
            x = x + DT * feedback_action(gain, goal, x) + 0.05 * rng.standard_normal(2).astype(np.float32)
        xs = np.stack(xs)
        with torch.no_grad():
            a_n = vae.act_normalized(theta[i : i + 1], vae.state_norm.normalize(torch.from_numpy(xs)[None]))
            a = vae.action_norm.unnormalize(a_n)[0].numpy()
        errs.append(np.mean((a - feedback_action(gain, goal, xs)) ** 2))
    return float(np.mean(errs))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae")
    cfg = cfg_with()
    trainer = VAETrainer(cfg, str(out), show_progress=False)
    untrained = held_out_error(trainer.vae.eval(), trainer.ds, make_pointmass("gains", 64, 32, 0)[1])
    metrics = trainer.train()
    return out, trainer, untrained, metrics


def test_encode_decode_reproduces_source_policies(trained):
    out, trainer, untrained, metrics = trained
    _, params = make_pointmass("gains", 64, 32, 0)
    vae = trainer.vae.eval()
    err = held_out_error(vae, trainer.ds, params)
    # trained policies track the source laws' actions on unseen states far better than at init
    assert err < 0.4 * untrained, (err, untrained)
    assert metrics["ro_on"] == 1 and metrics["l_ro"] > 0


def test_world_model_one_step_error(trained):
    out, trainer, _, _ = trained
    ds, _ = make_pointmass("gains", 16, 32, seed=99)  # held-out episodes
    s = torch.from_numpy(ds.states)
    a = torch.from_numpy(ds.actions)
    ends = ds.episode_ends
    keep = np.ones(len(s) - 1, bool)
    keep[ends[:-1] - 1] = False  # no transitions across episodes
    vae, wm = trainer.vae, trainer.wm
    with torch.no_grad():
        mean, _ = wm(vae.state_norm.normalize(s[:-1])[:, None], vae.action_norm.normalize(a[:-1])[:, None])
        pred = vae.state_norm.unnormalize(mean)
    k = torch.from_numpy(keep)
    err = (pred - s[1:]).abs()[k].mean().item()
    oracle = (s[:-1] + DT * a[:-1] - s[1:]).abs()[k].mean().item()  # the true dynamics' mean
    naive = (s[:-1] - s[1:]).abs()[k].mean().item()  # "nothing moves"
    # the push w_t ~ N(0, 0.05^2) is unpredictable: E|w| = 0.04 is the floor (what the oracle gets)
    assert err < 1.15 * oracle and err < 0.05, (err, oracle, naive)


def test_save_load_bit_identical(trained):
    out, trainer, _, _ = trained
    vae, wm, cfg, meta = load_vae(str(out))
    for a, b in ((vae, trainer.vae), (wm, trainer.wm)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert meta["epoch"] == cfg.epochs == 60


@pytest.mark.parametrize("policy_state_noise", [0.0, 0.05])
def test_resume_equals_uninterrupted(tmp_path, policy_state_noise):
    cfg = cfg_with(epochs=4, ro_warmup_epochs=1, snippet_stride=8, policy_state_noise=policy_state_noise)
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    VAETrainer(cfg, str(a_dir), show_progress=False).train()
    VAETrainer(cfg, str(b_dir), show_progress=False).train(max_epochs_this_run=2)  # "killed" after epoch 2
    assert load_checkpoint(str(b_dir))[1]["epoch"] == 2
    VAETrainer(cfg, str(b_dir), resume=True, show_progress=False).train()
    ta, tb = load_file(str(a_dir / "last.safetensors")), load_file(str(b_dir / "last.safetensors"))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert any(k.startswith("optim.wm.") for k in ta) and any(k.startswith("model.vae.") for k in ta)


def test_resume_equals_uninterrupted_with_long_truncated_windows(tmp_path):
    """Trajectory length longer than every episode (PushT's 256 over 49-246-step
    demonstrations): most of each window is masked, and resume is still bit-identical."""
    cfg = cfg_with(epochs=3, ro_warmup_epochs=1, snippet_stride=8, trajectory_length=48)
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    tr = VAETrainer(cfg, str(a_dir), show_progress=False)
    assert tr.vae.trajectory_length == 48 and len(tr.index) == 64 * 4  # 32-step episodes, every 8th start
    tr.train()
    VAETrainer(cfg, str(b_dir), show_progress=False).train(max_epochs_this_run=1)
    VAETrainer(cfg, str(b_dir), resume=True, show_progress=False).train()
    ta, tb = load_file(str(a_dir / "last.safetensors")), load_file(str(b_dir / "last.safetensors"))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert load_vae(str(a_dir))[2].trajectory_length == 48


def test_policy_state_noise_changes_training_and_is_validated(tmp_path):
    """Noise on the states the generated policy acts on is a different run (its draws follow
    the latent noise's on the same generator); a bad value names the field."""
    runs = {}
    for std in (0.0, 0.05):
        VAETrainer(cfg_with(epochs=1, snippet_stride=16, policy_state_noise=std), str(tmp_path / str(std)),
                   show_progress=False).train()
        runs[std] = load_file(str(tmp_path / str(std) / "last.safetensors"))
    assert not torch.equal(runs[0.0]["model.vae.decoder.hnet._internal_params.5"],
                           runs[0.05]["model.vae.decoder.hnet._internal_params.5"])
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(Exception, match="policy_state_noise"):
            cfg_with(policy_state_noise=bad)


def test_trajectory_length_defaults_to_horizon_for_old_configs():
    assert cfg_with().trajectory_length == 16
    assert cfg_with(horizon=8).trajectory_length == 8


def test_resume_rejects_changed_config(tmp_path):
    cfg = cfg_with(epochs=1, snippet_stride=16)
    VAETrainer(cfg, str(tmp_path), show_progress=False).train()
    with pytest.raises(ValueError, match="lr"):
        VAETrainer(cfg_with(epochs=2, snippet_stride=16, lr=5e-4), str(tmp_path), resume=True, show_progress=False)


def test_corrupted_and_truncated_checkpoint_name_the_file(tmp_path):
    cfg = cfg_with(epochs=1, snippet_stride=16)
    VAETrainer(cfg, str(tmp_path), show_progress=False).train()
    st = tmp_path / "last.safetensors"
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="last.safetensors.*truncated"):
        load_vae(str(tmp_path))
    st.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    with pytest.raises(CheckpointError, match="last.safetensors.*corrupted"):
        load_vae(str(tmp_path))
    st.write_bytes(data)
    js = tmp_path / "last.json"
    js.write_text(js.read_text()[:50])
    with pytest.raises(CheckpointError, match="last.json"):
        VAETrainer(cfg, str(tmp_path), resume=True, show_progress=False)
    os.remove(js)
    with pytest.raises(CheckpointError, match="last.json.*not found"):
        load_vae(str(tmp_path))


def test_ablation_without_world_model_trains(tmp_path):
    cfg = cfg_with(epochs=2, use_world_model=False, snippet_stride=16)
    tr = VAETrainer(cfg, str(tmp_path), show_progress=False)
    assert tr.wm is None
    m = tr.train()
    assert m["l_ro"] == 0.0 and m["l_tf"] == 0.0
    vae, wm, _, _ = load_vae(str(tmp_path))
    assert wm is None
