"""Baselines (warpd_core.baselines): FLOPs counting, MLP, Diffusion Policy and LDP training, the
harness plug-in, checkpoints and reproducibility. Tiny PushT-shaped data, 1 torch thread."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from warpd_core.baselines.diffusion_policy import DPMethod, DPTrainConfig, DPTrainer, chunk_indices, load_dp, padded_chunk
from warpd_core.baselines.mlp import MLPMethod, MLPTrainConfig, MLPTrainer, load_mlp
from warpd_core.config import ConfigError, PolicyConfig, load_config
from warpd_core.data import EpisodeDataset
from warpd_core.envs.pusht import ACTION_HIGH, ACTION_LOW
from warpd_core.eval.harness import EvalConfig, evaluate
from warpd_core.models.flops import StepCost, count_flops, count_params, mlp_step_cost
from warpd_core.models.schedulers import NumpySampler
from warpd_core.policy import PolicySpec

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)
PUSHT_LIMITS = {"low": ACTION_LOW, "high": ACTION_HIGH}  # the baselines take the task's action limits


def pusht_like(n_episodes: int = 6, length: int = 24, seed: int = 0) -> EpisodeDataset:
    """PushT-shaped demos: state (agent xy, block xy, angle), action = a smooth function of it."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([rng.uniform(50, 460, (n_episodes * length, 4)), rng.uniform(-3, 3, (n_episodes * length, 1))], 1)
    a = 0.5 * (s[:, 0:2] + s[:, 2:4]) + 20.0 * np.sin(s[:, 4:5])
    ends = np.arange(1, n_episodes + 1) * length
    return EpisodeDataset(s.astype(np.float32), a.astype(np.float32), ends, source="<pusht-like>")


EVAL = dict(n_seeds=2, repeats=1, horizons=(8,), magnitudes=(0.0, 40.0), max_steps=20, seed=3)


class Recorder:
    """Wraps a Method and keeps every returned action row of active episodes."""

    def __init__(self, method):
        self.m, self.name, self.actions = method, method.name, []

    def reset(self, n, h, seed):
        self.m.reset(n, h, seed)

    def act(self, obs, steps, active):
        out = self.m.act(obs, steps, active)
        self.actions.append(np.asarray(out)[active])
        return out

    def episode_stats(self):
        return self.m.episode_stats()


def table(results):
    return [(r.horizon, r.magnitude, r.env_index, r.score, r.final_coverage, r.steps) for r in results.rows]


# -- FLOPs ----------------------------------------------------------------------------------
def test_flops_of_mlp_are_two_per_multiply_add():
    spec = PolicySpec(5, (256, 128), 2)
    from warpd_core.models.policy_torch import mlp_layers

    net = mlp_layers(spec)
    expected = 2 * (5 * 256 + 256 * 128 + 128 * 2)
    assert count_flops(net, torch.zeros(1, 5)) == expected
    assert count_flops(net, torch.zeros(3, 5)) == 3 * expected  # linear in the batch
    assert count_params(net) == spec.n_weights
    cost = mlp_step_cost(spec, horizon=16)
    assert cost.step_flops == expected and cost.generation_flops == 0 and cost.flops_per_step == expected
    assert cost.step_params == spec.n_weights


def test_step_cost_amortises_generation_over_horizon():
    c = StepCost(generation_flops=1600, step_flops=10, horizon=16)
    assert c.flops_per_step == 110 and c.to_dict()["flops_per_step"] == 110
    with pytest.raises(ValueError, match="horizon"):
        StepCost(1, 1, 0)


def test_bench_dp_uses_the_same_counter():
    from warpd_core.bench import dp

    assert dp.count_flops is count_flops


# -- MLP --------------------------------------------------------------------------------------
def test_mlp_trains_checkpoints_and_plugs_into_harness(tmp_path):
    ds = pusht_like()
    cfg = MLPTrainConfig(policy=PolicyConfig(hidden=[32, 32]), batch_size=32, epochs=8, lr=3e-3, checkpoint_every=4)
    tr = MLPTrainer(cfg, tmp_path / "mlp", dataset=ds, show_progress=False)
    first = tr.train(max_epochs_this_run=1)["loss"]
    last = tr.train()["loss"]
    assert last < 0.5 * first, (first, last)

    model, cfg2, meta = load_mlp(tmp_path / "mlp")
    assert cfg2 == cfg and meta["policy_spec"]["hidden"] == [32, 32]
    for k, v in tr.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    # folded numpy forward on raw states == torch forward with explicit normalisation
    s = ds.states[:7]
    with torch.no_grad():
        ref = model.act_norm.unnormalize(model(model.obs_norm.normalize(torch.from_numpy(s)))).numpy()
    method = MLPMethod.from_checkpoint(tmp_path / "mlp", **PUSHT_LIMITS)
    np.testing.assert_allclose(method.policy.act_batch(s), ref, rtol=1e-4, atol=1e-2)

    rec = Recorder(method)
    res = evaluate(rec, EvalConfig(**EVAL), progress=False)
    acts = np.concatenate(rec.actions)
    assert acts.shape[1] == 2 and len(acts) == sum(r.steps for r in res.rows)
    assert np.all((acts >= 0) & (acts <= 512))
    assert len(res.rows) == 4 and all(r.steps == 20 or r.success for r in res.rows)
    assert table(res) == table(evaluate(MLPMethod.from_checkpoint(tmp_path / "mlp", **PUSHT_LIMITS), EvalConfig(**EVAL), progress=False))


# -- Diffusion Policy ---------------------------------------------------------------------------
def test_chunk_padding_and_indices():
    assert padded_chunk(16, "s") == 16 and padded_chunk(6, "s") == 8 and padded_chunk(6, "xs") == 8
    ds = EpisodeDataset(np.arange(10, dtype=np.float32)[:, None], np.arange(10, dtype=np.float32)[:, None], [4, 10])
    obs, act = chunk_indices(ds, 2, 4)
    assert obs[0].tolist() == [0, 0] and obs[5].tolist() == [4, 5]  # repeat the episode's first state
    assert act[2].tolist() == [2, 3, 3, 3] and act[4].tolist() == [4, 5, 6, 7]  # edge padding at the end


def test_dp_trains_checkpoints_and_plugs_into_harness(tmp_path):
    ds = pusht_like()
    cfg = DPTrainConfig(unet_size="xs", horizon=6, n_obs_steps=2, batch_size=32, epochs=20, lr=1e-3,
                        lr_warmup_steps=2, checkpoint_every=10, sampler_steps=4)
    assert cfg.chunk_len == 8
    tr = DPTrainer(cfg, tmp_path / "dp", dataset=ds, show_progress=False)
    first = tr.train(max_epochs_this_run=1)["loss"]
    last = tr.train()["loss"]
    assert last < 0.7 * first, (first, last)

    model, cfg2, meta = load_dp(tmp_path / "dp")
    assert cfg2 == cfg and meta["chunk_len"] == 8
    for k, v in tr.ema.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k

    method = DPMethod.from_checkpoint(tmp_path / "dp", **PUSHT_LIMITS)
    assert (method.sampler.kind, method.sampler.steps) == ("ddim", 4)
    cost = method.cost(6)
    x = torch.zeros(1, 8, 2)
    per_forward = count_flops(model, x, torch.ones(1), torch.zeros(1, 2, 5))
    assert cost.generation_flops == 4 * per_forward and cost.flops_per_step == 4 * per_forward / 6
    assert cost.step_flops == 0 and cost.generation_params == count_params(model.unet)

    ev = dict(EVAL, horizons=(6, 4))
    rec = Recorder(method)
    res = evaluate(rec, EvalConfig(**ev), progress=False)
    acts = np.concatenate(rec.actions)
    assert acts.shape[1] == 2 and np.all((acts >= 0) & (acts <= 512))
    # replans every horizon: ceil(steps / H) generations per episode
    for r in res.rows:
        assert r.generation_calls == -(-r.steps // r.horizon)
    again = evaluate(DPMethod.from_checkpoint(tmp_path / "dp", **PUSHT_LIMITS), EvalConfig(**ev), progress=False)
    assert table(res) == table(again)
    with pytest.raises(ValueError, match="horizon 7"):
        method.reset(2, 7, 0)


def test_dp_episode_does_not_depend_on_other_envs(tmp_path):
    """Per-env noise streams: env 0's actions are the same whether env 1 runs or not (DDPM)."""
    ds = pusht_like(n_episodes=2, length=10)
    cfg = DPTrainConfig(unet_size="xs", horizon=4, batch_size=16, epochs=1)
    tr = DPTrainer(cfg, tmp_path / "dp", dataset=ds, show_progress=False)
    m = DPMethod(tr.ema.model, cfg.chunk_len, cfg.horizon, NumpySampler(100, "squaredcos_cap_v2", "ddpm", 5), **PUSHT_LIMITS)
    obs = ds.states[:2].copy()
    m.reset(2, 4, seed=11)
    both = m.act(obs, np.zeros(2, np.int64), np.array([True, True]))
    m.reset(2, 4, seed=11)
    alone = m.act(obs, np.zeros(2, np.int64), np.array([True, False]))
    np.testing.assert_allclose(alone[0], both[0], rtol=1e-5, atol=1e-3)


# -- configs and CLI ------------------------------------------------------------------------------
def test_shipped_baseline_configs_validate_and_errors_name_the_field():
    mlp = load_config(MLPTrainConfig, REPO / "config" / "train" / "pusht_mlp.yaml")
    dp = load_config(DPTrainConfig, REPO / "config" / "train" / "pusht_dp.yaml")
    assert mlp.policy.hidden == [256, 256] and dp.chunk_len == 16 and dp.n_obs_steps == 2
    with pytest.raises(ConfigError, match="horizon"):
        load_config(DPTrainConfig, REPO / "config" / "train" / "pusht_dp.yaml", ["horizon=0"])
    with pytest.raises(ConfigError, match="policy.hidden"):
        load_config(MLPTrainConfig, REPO / "config" / "train" / "pusht_mlp.yaml", ["policy.hidden=[0]"])


def test_cli_trains_both_baselines(tmp_path):
    from warpd_core.cli import main

    synth = ["--set", "dataset.format=synthetic", "--set", "dataset.path=null", "--set", "dataset.n_episodes=4",
             "--set", "dataset.episode_len=12", "--set", "epochs=1", "--no-progress", "--threads", "1"]
    assert main(["train", "mlp", "--config", str(REPO / "config/train/pusht_mlp.yaml"), "--out", str(tmp_path / "m"),
                 "--set", "policy.hidden=[16,16]", *synth]) == 0
    assert main(["train", "dp", "--config", str(REPO / "config/train/pusht_dp.yaml"), "--out", str(tmp_path / "d"),
                 "--set", "unet_size=xs", "--set", "horizon=4", *synth]) == 0
    assert load_mlp(tmp_path / "m")[0].spec.layer_sizes == (2, 16, 16, 2)
    assert load_dp(tmp_path / "d")[2]["chunk_len"] == 4


@pytest.mark.parametrize("kind", ["mlp", "dp"])
def test_cli_evaluates_a_baseline_checkpoint(tmp_path, kind):
    import json

    from warpd_core.cli import main

    if kind == "mlp":
        MLPTrainer(MLPTrainConfig(policy=PolicyConfig(hidden=[16, 16]), epochs=1), tmp_path / "ck", dataset=pusht_like(),
                   show_progress=False).train()
    else:
        DPTrainer(DPTrainConfig(unet_size="xs", horizon=4, epochs=1), tmp_path / "ck", dataset=pusht_like(),
                  show_progress=False).train()
    out = tmp_path / "eval"
    assert main(["eval", "pusht", "--method", kind, "--model", str(tmp_path / "ck"), "--seeds", "2", "--repeats", "1",
                 "--horizons", "4", "--magnitudes", "0", "--max-steps", "8", "--no-gif", "--no-progress", "--out", str(out)]) == 0
    found = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert any(d.get("meta", {}).get("flops_per_step", {}).get("4", 0) > 0 for d in found if isinstance(d, dict)), \
        sorted(p.name for p in out.iterdir())


# -- Latent Diffusion Policy ------------------------------------------------------------------------
def ldp_config(**overrides) -> "LDPTrainConfig":
    from warpd_core.baselines.ldp import LDPModelConfig, LDPTrainConfig

    params = dict(model=LDPModelConfig(latent_dim=16, encoder_hidden=[64, 64], decoder_hidden=[32, 32]), horizon=6,
                  batch_size=32, epochs=20, lr=3e-3, checkpoint_every=10)
    params.update(overrides)
    return LDPTrainConfig(**params)


def train_tiny_ldp(out: Path, ds: EpisodeDataset, horizon: int = 6, epochs: int = 20, latent_pca: int = 0) -> dict:
    """Both LDP stages on ``ds``: stage 1 in ``out``, stage 2 in ``out/diffusion`` (xs UNet, DDIM 4) over
    the 16-d latent as 4x4, or over its top ``latent_pca`` principal components."""
    from warpd_core.baselines.ldp import LDPTrainer
    from warpd_core.config import DiffusionTrainConfig
    from warpd_core.train.diffusion_trainer import DiffusionTrainer

    tr = LDPTrainer(ldp_config(horizon=horizon, epochs=epochs), out, dataset=ds, show_progress=False)
    first = tr.train(max_epochs_this_run=1)["total"]
    last = tr.train().get("total", first)  # {} when one epoch was all
    shape = [latent_pca, 1] if latent_pca else [4, 4]
    dcfg = DiffusionTrainConfig(unet_size="xs", latent_shape=shape, latent_pca=latent_pca, batch_size=32, epochs=2,
                                lr_warmup_steps=2, sampler_steps=4)
    dt = DiffusionTrainer(dcfg, out / "diffusion", out, dataset=ds, show_progress=False)
    dt.train()
    return {"first": first, "last": last, "stage1": tr, "stage2": dt}


def test_ldp_trains_both_stages_and_plugs_into_harness(tmp_path):
    from warpd_core.baselines.ldp import LDPMethod, load_ldp
    from warpd_core.train.diffusion_trainer import encode_dataset, stage1_windows

    ds = pusht_like()
    run = train_tiny_ldp(tmp_path / "ldp", ds)
    assert run["last"] < 0.7 * run["first"], (run["first"], run["last"])

    vae, cfg, meta = load_ldp(tmp_path / "ldp")
    assert cfg == run["stage1"].cfg and (meta["obs_dim"], meta["act_dim"]) == (5, 2)
    for k, v in run["stage1"].model.state_dict().items():
        assert torch.equal(vae.state_dict()[k], v), k
    # stage 2 took its latents from the LDP encoder (the diffusion trainer's hook): posterior means
    index, length = stage1_windows(cfg, ds)
    assert length == cfg.horizon and np.array_equal(index, ds.snippet_starts(cfg.horizon, cfg.snippet_stride))
    expected = encode_dataset(vae, ds, index, length)["latents"]
    np.testing.assert_allclose(run["stage2"].data["latents"].numpy(), expected, rtol=1e-6, atol=1e-6)

    method = LDPMethod.from_checkpoint(tmp_path / "ldp", **PUSHT_LIMITS)
    assert (method.sampler.kind, method.sampler.steps, method.max_horizon) == ("ddim", 4, 6)
    ev = dict(EVAL, horizons=(6, 4))
    rec = Recorder(method)
    res = evaluate(rec, EvalConfig(**ev), progress=False)
    acts = np.concatenate(rec.actions)
    assert acts.ndim == 2 and acts.shape[1] == 2 and len(acts) == sum(r.steps for r in res.rows)
    assert np.all((acts >= 0) & (acts <= 512)) and np.all(np.isfinite(acts))
    for r in res.rows:
        assert r.generation_calls == -(-r.steps // r.horizon)
    assert table(res) == table(evaluate(LDPMethod.from_checkpoint(tmp_path / "ldp", **PUSHT_LIMITS), EvalConfig(**ev), progress=False))
    with pytest.raises(ValueError, match="horizon 7"):
        method.reset(2, 7, 0)


def test_ldp_flops_pca_stage2_and_decoder_without_state(tmp_path):
    from warpd_core.models.flops import latent_diffusion_flops
    from warpd_core.baselines.ldp import LDPMethod, LDPModelConfig, build_chunk_vae

    run = train_tiny_ldp(tmp_path / "ldp", pusht_like(), epochs=1)
    method = LDPMethod.from_checkpoint(tmp_path / "ldp", **PUSHT_LIMITS)
    den, vae = method.denoiser, method.model
    per_forward = count_flops(den, torch.zeros(1, 4, 4), torch.ones(1), torch.zeros(1, 5))
    decode = 2 * ((16 + 5) * 32 + 32 * 32 + 32 * 6 * 2)  # MLP (z, s) -> 32 -> 32 -> H*A
    assert latent_diffusion_flops(den, 4) == 4 * per_forward
    costs = [method.cost(h) for h in (1, 2, 4, 6)]
    assert costs[0].generation_flops == 4 * per_forward + decode and costs[0].step_flops == 0
    assert all(a.flops_per_step > b.flops_per_step > 0 for a, b in zip(costs, costs[1:]))
    assert costs[0].generation_params == count_params(den, vae.decoder)
    assert run["stage1"].model.decoder_state
    # stage 2 over 4 principal components: samples are lifted back to the 16-d latent (counted)
    train_tiny_ldp(tmp_path / "pca", pusht_like(), epochs=1, latent_pca=4)
    pca = LDPMethod.from_checkpoint(tmp_path / "pca", **PUSHT_LIMITS)
    assert pca.denoiser.latent_dim == 4 and pca.denoiser.projection.mean.numel() == 16
    per_forward = count_flops(pca.denoiser, torch.zeros(1, 4, 1), torch.ones(1), torch.zeros(1, 5))
    assert pca.cost(6).generation_flops == 4 * per_forward + 2 * 4 * 16 + decode
    res = evaluate(pca, EvalConfig(**dict(EVAL, horizons=(6,))), progress=False)
    assert all(r.generation_calls == 4 for r in res.rows)  # 20 steps, horizon 6
    # decoder_state false: the chunk is a function of z alone
    blind = build_chunk_vae(ldp_config(model=LDPModelConfig(latent_dim=16, encoder_hidden=[8], decoder_hidden=[8],
                                                            decoder_state=False)), 5, 2)
    z = torch.randn(3, 16)
    out = blind.decode(z, torch.randn(3, 5))
    assert out.shape == (3, 6, 2) and torch.equal(out, blind.decode(z, torch.zeros(3, 5)))


def test_ldp_and_nowm_configs_validate():
    from warpd_core.baselines.ldp import LDPTrainConfig
    from warpd_core.config import VAETrainConfig

    ldp = load_config(LDPTrainConfig, REPO / "config" / "train" / "pusht_ldp.yaml")
    assert ldp.model.decoder_hidden == [256, 256] and ldp.model.latent_dim == 256 and ldp.horizon == 16
    with pytest.raises(ConfigError, match="model.decoder_hidden"):
        load_config(LDPTrainConfig, REPO / "config" / "train" / "pusht_ldp.yaml", ["model.decoder_hidden=[0]"])
    with pytest.raises(ConfigError, match="beta_kl"):
        load_config(LDPTrainConfig, REPO / "config" / "train" / "pusht_ldp.yaml", ["beta_kl=-1"])
    # WARPD w/o WM: the WARPD PushT config with the world model off, nothing else changed
    full = load_config(VAETrainConfig, REPO / "config" / "train" / "pusht_vae.yaml")
    nowm = load_config(VAETrainConfig, REPO / "config" / "train" / "pusht_vae_nowm.yaml")
    assert full.use_world_model and nowm == dataclasses.replace(full, use_world_model=False)


def test_cli_trains_and_evaluates_ldp(tmp_path):
    from warpd_core.baselines.ldp import load_ldp
    from warpd_core.cli import main

    synth = ["--set", "dataset.format=synthetic", "--set", "dataset.path=null", "--set", "dataset.n_episodes=4",
             "--set", "dataset.episode_len=12", "--set", "epochs=1", "--no-progress", "--threads", "1"]
    out = tmp_path / "ldp"
    assert main(["train", "ldp", "--config", str(REPO / "config/train/pusht_ldp.yaml"), "--out", str(out),
                 "--set", "model.latent_dim=16", "--set", "model.encoder_hidden=[32]", "--set", "horizon=4", *synth]) == 0
    assert main(["train", "diffusion", "--config", str(REPO / "config/train/pusht_diffusion.yaml"), "--vae", str(out),
                 "--out", str(out / "diffusion"), "--set", "unet_size=xs", "--set", "latent_pca=4",
                 "--set", "latent_shape=[4,1]",
                 "--set", "epochs=1", "--no-progress", "--threads", "1"]) == 0
    assert load_ldp(out)[1].horizon == 4
    # evaluation needs PushT-shaped data: both stages through the API, then the CLI
    train_tiny_ldp(tmp_path / "p", pusht_like(), horizon=4, epochs=1)
    res = tmp_path / "eval"
    assert main(["eval", "pusht", "--method", "ldp", "--model", str(tmp_path / "p"), "--seeds", "2", "--repeats", "1",
                 "--horizons", "4", "--magnitudes", "0", "--max-steps", "8", "--no-gif", "--no-progress",
                 "--out", str(res)]) == 0
    import json

    meta = json.loads((res / "results.json").read_text())["meta"]
    assert meta["flops_per_step"]["4"] > 0 and meta["trained_horizon"] == 4 and meta["method"] == "ldp"
    assert main(["eval", "pusht", "--method", "ldp", "--model", str(out), "--seeds", "1", "--horizons", "4",
                 "--magnitudes", "0", "--max-steps", "4", "--no-gif", "--no-progress", "--out", str(res)]) == 2  # obs_dim 2
