"""The in-process PushT evaluation: runtime wiring, protocol, seeding, accounting, CLI."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from warpd_core.envs.pusht import BlockPerturbation
from warpd_core.eval.harness import (
    PUSHT_CONTROLLER,
    EvalConfig,
    RandomMethod,
    WarpdMethod,
    derive_seed,
    evaluate,
    pusht_controller_config,
    run_episodes,
)
from warpd_core.eval.metrics import EpisodeResult, episode_score, is_success, mean_std_se, summarize_cell
from warpd_core.eval.report import markdown_grid
from warpd_core.policy import PolicySpec

REPO = Path(__file__).resolve().parents[1]


class StandInGenerator:
    """Test double of ``warpd_core.export.bundle.PolicyGenerator``'s inference interface.

    Every generated policy is a 5 -> 8 -> 2 ReLU MLP whose action is the block position seen
    by the policy plus an offset drawn from the generator's noise stream (``_rng``, reseeded
    per repeat like the real one). Records the batch size of every ``generate`` call.
    """

    def __init__(self, seed: int = 0, hidden: int = 8, offset_std: float = 20.0):
        self.spec = PolicySpec(5, (hidden,), 2, "relu")
        self.model_id = "stand-in"
        self.horizon = 16
        self.obs_dim, self.act_dim, self.n_tasks = 5, 2, 0
        self.offset_std = offset_std
        self._rng = np.random.default_rng(seed)
        self.batches: list[int] = []

    def generate(self, obs: np.ndarray, task_id=None) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        assert obs.ndim == 2 and obs.shape[1] == 5 and task_id is None
        self.batches.append(obs.shape[0])
        h = self.spec.hidden[0]
        out = []
        for _ in range(obs.shape[0]):
            w1 = np.zeros((h, 5), np.float32)
            w1[0, 2] = w1[1, 3] = 1.0  # hidden 0, 1 = block x, y (>= 0, so ReLU passes them)
            w2 = np.zeros((2, h), np.float32)
            w2[0, 0] = w2[1, 1] = 1.0
            b2 = self._rng.normal(0.0, self.offset_std, 2).astype(np.float32)
            out.append(self.spec.flatten([(w1, np.zeros(h, np.float32)), (w2, b2)]))
        return np.stack(out)


class HoldMethod:
    """Targets the agent's own position: the agent stays, only perturbations move the block."""

    name = "hold"

    def reset(self, n_envs, horizon, seed):
        self.seen = []

    def act(self, obs, steps, active):
        self.seen.append(obs.copy())
        return obs[:, :2].astype(np.float64)

    def episode_stats(self):
        return {}


SMALL = dict(n_seeds=3, repeats=2, horizons=(8, 32), magnitudes=(0.0, 40.0), max_steps=40)


@pytest.fixture(scope="module")
def small_run():
    method = WarpdMethod(StandInGenerator())
    return method, evaluate(method, EvalConfig(**SMALL), progress=False)


def test_controller_config_matches_params_file():
    params = yaml.safe_load((REPO / "config" / "pusht_controller.yaml").read_text())["/**/warpd_controller"]["ros__parameters"]
    for key, value in PUSHT_CONTROLLER.items():
        assert params[key] == value, key
    cfg = pusht_controller_config(16)
    assert cfg.max_policy_age == 256 and cfg.obs_dim == 5 and cfg.act_dim == 2
    assert pusht_controller_config(300).max_policy_age == 300  # a longer horizon must not go stale


def test_shapes_and_metrics(small_run):
    method, res = small_run
    assert len(res.rows) == 3 * 2 * 2 * 2 and len(res.cells) == 4
    assert {(c.horizon, c.magnitude) for c in res.cells} == {(8, 0.0), (8, 40.0), (32, 0.0), (32, 40.0)}
    for r in res.rows:
        assert 1 <= r.steps <= 40
        assert 0.0 <= r.max_coverage <= 1.0 and r.final_coverage <= r.max_coverage + 1e-12
        assert r.score == pytest.approx(min(max(r.max_coverage / 0.95, 0.0), 1.0))
        assert r.success == (r.max_coverage > 0.95)
        assert 0 <= r.steps_to_best <= r.steps
        assert r.env_seed == 100_000 + r.env_index
        assert r.safe_steps == 0  # a policy is always installed before the controller acts
        if r.magnitude == 0:
            assert r.perturbation_events == 0
    assert sum(r.perturbation_events for r in res.rows if r.magnitude == 40) > 0
    # the schedule (generator node) and needs_policy (controller node) agree at every step
    assert method.schedule_mismatches == 0 and method.rejections == 0
    c = res.cell(8, 40.0)
    cell_rows = [r for r in res.rows if (r.horizon, r.magnitude) == (8, 40.0)]
    assert c.n_episodes == 6
    assert c.score_mean == pytest.approx(np.mean([r.score for r in cell_rows]))
    assert c.score_se == pytest.approx(np.std([r.score for r in cell_rows], ddof=1) / math.sqrt(6))


def test_generator_called_once_per_horizon_and_batched(small_run):
    method, res = small_run
    for r in res.rows:
        assert r.generation_calls == math.ceil(r.steps / r.horizon), r
    gen = method.generator
    assert sum(gen.batches) == sum(r.generation_calls for r in res.rows)
    assert max(gen.batches) == SMALL["n_seeds"]  # episodes of one repeat share each generate call


def test_swaps_happen_at_horizon_boundaries():
    gen = StandInGenerator()
    method = WarpdMethod(gen)
    envs_cfg = EvalConfig(n_seeds=2, repeats=1, horizons=(7,), magnitudes=(0.0,), max_steps=30)
    res = evaluate(method, envs_cfg, progress=False)
    for core, row in zip(method.cores, res.rows):
        steps = [s for s, _, _ in core.swap_log]
        assert steps == [1 + 7 * k for k in range(math.ceil(row.steps / 7))]  # core.steps counts from 1
        assert [g for _, g, _ in core.swap_log] == list(range(1, len(steps) + 1))
        assert all(age in (-1, 7) for _, _, age in core.swap_log)  # each policy ran exactly H steps


def test_reproducible_and_seed_dependent():
    cfg = EvalConfig(n_seeds=2, repeats=2, horizons=(8,), magnitudes=(60.0,), max_steps=30)
    a = evaluate(WarpdMethod(StandInGenerator()), cfg, progress=False)
    b = evaluate(WarpdMethod(StandInGenerator(seed=123)), cfg, progress=False)  # reseeded per repeat anyway
    assert a.rows == b.rows
    fmt = lambda c: f"{c.score_mean:.6f}"  # noqa: E731
    assert markdown_grid(a.cells, fmt) == markdown_grid(b.cells, fmt)
    c = evaluate(WarpdMethod(StandInGenerator()), EvalConfig(**{**cfg.to_dict(), "seed": 1}), progress=False)
    assert [r.max_coverage for r in c.rows] != [r.max_coverage for r in a.rows]
    # repeats differ from each other (new generator and perturbation seeds), env seeds do not
    r0 = [r for r in a.rows if r.repeat == 0]
    r1 = [r for r in a.rows if r.repeat == 1]
    assert [r.env_seed for r in r0] == [r.env_seed for r in r1]
    assert r0[0].method_seed != r1[0].method_seed and r0[0].perturbation_seed != r1[0].perturbation_seed


@pytest.mark.parametrize("probability", [1.0, 0.3])
def test_perturbation_events_follow_block_perturbation(probability):
    cfg = EvalConfig(n_seeds=2, repeats=1, horizons=(8,), magnitudes=(25.0,), probability=probability, max_steps=20)
    res = evaluate(RandomMethod(), cfg, progress=False)
    for r in res.rows:
        adv = BlockPerturbation(probability, 25.0, r.perturbation_seed)
        expected = sum(adv.sample() is not None for _ in range(r.steps))
        assert r.perturbation_events == expected
        if probability == 1.0:
            assert r.perturbation_events == r.steps


def test_perturbation_applied_between_observation_and_step():
    """obs k -> act -> displacement k -> step: with the agent holding still, the block moves by
    exactly the adversary's k-th displacement between observations k and k + 1."""
    from warpd_core.envs.pusht import PushTEnv

    method = HoldMethod()
    envs = [PushTEnv(max_steps=8)]
    seed = derive_seed(5, 1, 0, 0)
    run_episodes(method, envs, [100_003], [seed], 0, horizon=8, magnitude=5.0, probability=1.0)
    seen = np.stack([o[0] for o in method.seen])  # (8, 5): observations the method acted on
    final = envs[0].obs
    blocks = np.concatenate([seen[:, 2:4], final[None, 2:4]])
    adv = BlockPerturbation(1.0, 5.0, seed)
    expected = np.stack([adv.sample() for _ in range(8)])
    np.testing.assert_allclose(np.diff(blocks, axis=0), expected, atol=1e-3)
    envs[0].close()


def test_random_method_makes_no_generation_calls():
    res = evaluate(RandomMethod(), EvalConfig(n_seeds=2, repeats=1, horizons=(16,), magnitudes=(0.0,), max_steps=10),
                   progress=False)
    assert all(r.generation_calls == 0 and r.steps == 10 for r in res.rows)


def test_metrics_math():
    assert episode_score(0.95) == 1.0 and episode_score(1.0) == 1.0
    assert episode_score(0.475) == pytest.approx(0.5) and episode_score(0.0) == 0.0
    assert not is_success(0.95) and is_success(0.9501)
    assert mean_std_se([1.0]) == (1.0, 0.0, 0.0)
    m, s, se = mean_std_se([0.0, 1.0, 0.5, 0.5])
    assert m == 0.5 and s == pytest.approx(np.std([0, 1, 0.5, 0.5], ddof=1)) and se == pytest.approx(s / 2)
    with pytest.raises(ValueError):
        mean_std_se([])
    base = dict(method="m", horizon=8, magnitude=0.0, probability=0.1, env_index=0, repeat=0, env_seed=1,
                perturbation_seed=2, method_seed=3, steps=300, final_coverage=0.0, steps_to_best=5,
                generation_calls=38, perturbation_events=0)
    rows = [EpisodeResult(**base, max_coverage=c, score=episode_score(c), success=is_success(c)) for c in (0.2, 0.96)]
    cell = summarize_cell(rows)
    assert cell.score_mean == pytest.approx((0.2 / 0.95 + 1.0) / 2) and cell.success_rate == 0.5
    with pytest.raises(ValueError, match="several cells"):
        summarize_cell(rows + [EpisodeResult(**{**base, "horizon": 16}, max_coverage=0.1, score=0.1, success=False)])


def test_config_validation():
    with pytest.raises(ValueError, match="horizons"):
        EvalConfig(horizons=(0,))
    with pytest.raises(ValueError, match="probability"):
        EvalConfig(probability=1.5)
    with pytest.raises(ValueError, match="magnitudes"):
        EvalConfig(magnitudes=(-1.0,))
    with pytest.raises(ValueError, match="profile"):
        EvalConfig.from_profile("huge")
    q = EvalConfig.from_profile("quick", n_seeds=None, horizons=[32])
    assert q.n_seeds == 10 and q.horizons == (32,)
    p = EvalConfig.from_profile("paper")
    assert (p.n_seeds, p.repeats, p.horizons, p.magnitudes, p.probability, p.max_steps) == (
        50, 10, (16, 32, 64, 128), (0.0, 20.0, 40.0, 60.0, 80.0, 100.0), 0.1, 300)


def _parser():
    from warpd_core.eval import cli

    ap = argparse.ArgumentParser()
    cli.register(ap.add_subparsers(dest="command"))
    return ap


def test_cli_random(tmp_path):
    out = tmp_path / "res"
    args = _parser().parse_args(["eval", "pusht", "--method", "random", "--seeds", "2", "--repeats", "1",
                                 "--horizons", "8", "16", "--magnitudes", "0", "50", "--max-steps", "10",
                                 "--out", str(out), "--no-progress", "--no-gif"])
    assert args.func(args) == 0
    for name in ("results.json", "episodes.csv", "summary.md", "score_vs_horizon.png"):
        assert (out / name).is_file(), name
    args = _parser().parse_args(["eval", "pusht", "--out", str(out)])
    with pytest.raises(ValueError, match="--model"):
        args.func(args)


def test_real_generator_from_init_bundle(init_bundle):
    """The real load_generator on a bundle from `warpd export init`: the harness drives it."""
    pytest.importorskip("warpd_core.export.bundle", reason="the learning core's bundle loader is not importable")
    import torch

    from warpd_core.export.bundle import load_generator

    cfg = EvalConfig(n_seeds=2, repeats=1, horizons=(8,), magnitudes=(40.0,), max_steps=16)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: extra threads only add synchronisation
    try:
        method = WarpdMethod(load_generator(init_bundle, seed=0))
        a = evaluate(method, cfg, progress=False)
        method.generator.generate(np.zeros((1, 5), np.float32))  # advance the noise stream
        b = evaluate(method, cfg, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert method.schedule_mismatches == 0 and method.rejections == 0
    assert a.rows == b.rows  # the generator is reseeded per repeat
    for r in a.rows:
        assert r.generation_calls == 2 and r.safe_steps == 0 and r.steps == 16
