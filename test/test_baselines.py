"""Baselines (warpd_core.baselines): FLOPs counting, MLP and Diffusion Policy training, the
harness plug-in, checkpoints and reproducibility. Tiny PushT-shaped data, 1 torch thread."""

from pathlib import Path

import numpy as np
import pytest
import torch

from warpd_core.baselines.diffusion_policy import DPMethod, DPTrainConfig, DPTrainer, chunk_indices, load_dp, padded_chunk
from warpd_core.baselines.flops import StepCost, count_flops, count_params
from warpd_core.baselines.mlp import MLPMethod, MLPTrainConfig, MLPTrainer, load_mlp, mlp_step_cost
from warpd_core.config import ConfigError, PolicyConfig, load_config
from warpd_core.data import EpisodeDataset
from warpd_core.eval.harness import EvalConfig, evaluate
from warpd_core.models.schedulers import NumpySampler
from warpd_core.policy import PolicySpec

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


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
    from warpd_core.baselines.mlp import mlp_layers

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
    method = MLPMethod.from_checkpoint(tmp_path / "mlp")
    np.testing.assert_allclose(method.policy.act_batch(s), ref, rtol=1e-4, atol=1e-2)

    rec = Recorder(method)
    res = evaluate(rec, EvalConfig(**EVAL), progress=False)
    acts = np.concatenate(rec.actions)
    assert acts.shape[1] == 2 and len(acts) == sum(r.steps for r in res.rows)
    assert np.all((acts >= 0) & (acts <= 512))
    assert len(res.rows) == 4 and all(r.steps == 20 or r.success for r in res.rows)
    assert table(res) == table(evaluate(MLPMethod.from_checkpoint(tmp_path / "mlp"), EvalConfig(**EVAL), progress=False))


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

    method = DPMethod.from_checkpoint(tmp_path / "dp")
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
    again = evaluate(DPMethod.from_checkpoint(tmp_path / "dp"), EvalConfig(**ev), progress=False)
    assert table(res) == table(again)
    with pytest.raises(ValueError, match="horizon 7"):
        method.reset(2, 7, 0)


def test_dp_episode_does_not_depend_on_other_envs(tmp_path):
    """Per-env noise streams: env 0's actions are the same whether env 1 runs or not (DDPM)."""
    ds = pusht_like(n_episodes=2, length=10)
    cfg = DPTrainConfig(unet_size="xs", horizon=4, batch_size=16, epochs=1)
    tr = DPTrainer(cfg, tmp_path / "dp", dataset=ds, show_progress=False)
    m = DPMethod(tr.ema.model, cfg.chunk_len, cfg.horizon, NumpySampler(100, "squaredcos_cap_v2", "ddpm", 5))
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
                 "--horizons", "4", "--magnitudes", "0", "--max-steps", "8", "--no-gif", "--quiet", "--out", str(out)]) == 0
    found = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert any(d.get("meta", {}).get("flops_per_step", {}).get("4", 0) > 0 for d in found if isinstance(d, dict)), \
        sorted(p.name for p in out.iterdir())
