"""Metaworld: env wrapper, scripted-expert data, per-method evaluation, ``warpd compare metaworld``.

Tiny data (2 tasks x 2 short expert episodes), models trained for one or two steps, 1 torch
thread: checks shapes, determinism, the task ids end to end, FLOPs and the report files, not
success."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("metaworld")
torch = pytest.importorskip("torch")

from warpd_core.envs.metaworld_env import OBS_DIM, TASKS, MetaworldEnv, parse_tasks, task_id  # noqa: E402

torch.set_num_threads(1)
FAST_TASKS = ["handle-press", "plate-slide"]  # the expert succeeds within ~55 steps on both
DEMO_STEPS = 80


# -- env ----------------------------------------------------------------------------------
def test_task_order_is_table_4():
    assert TASKS == ("window-open", "door-open", "drawer-open", "dial-turn", "faucet-close", "button-press",
                     "door-unlock", "handle-press", "plate-slide", "reach")
    assert parse_tasks(None) == list(TASKS)
    assert parse_tasks(["reach-v3", "dial-turn"]) == ["reach", "dial-turn"]
    with pytest.raises(ValueError, match="task"):
        parse_tasks(["pick-place"])
    with pytest.raises(ValueError, match="max_steps"):
        MetaworldEnv("reach", max_steps=501)


def test_seeded_reset_and_steps_are_deterministic():
    a, b = MetaworldEnv("door-open", max_steps=12), MetaworldEnv("door-open", max_steps=12)
    actions = np.random.default_rng(0).uniform(-1.5, 1.5, (12, 4))  # out of range: clipped by the wrapper
    o1, o2 = a.reset(7), b.reset(7)
    assert o1.shape == (OBS_DIM,) and o1.dtype == np.float32
    np.testing.assert_array_equal(o1, o2)
    for k, act in enumerate(actions):
        r1, r2 = a.step(act), b.step(act)
        np.testing.assert_array_equal(r1.obs, r2.obs)
        assert r1.done == (k == 11)
    with pytest.raises(RuntimeError, match="reset"):
        a.step(actions[0])
    np.testing.assert_array_equal(a.reset(7), o1)  # the same env, the same seed again
    assert not np.array_equal(a.reset(8)[-3:], o1[-3:])  # another seed: another goal
    with pytest.raises(ValueError, match="action"):
        a.step([0.0, 0.0, np.nan, 0.0])
    a.close(), b.close()


def test_reach_goal_rejection_terminates_for_many_seeds():
    # reach redraws goals too close to its object inside reset; a frozen draw looped forever.
    env = MetaworldEnv("reach", max_steps=5)
    goals = np.stack([env.reset(s)[-3:] for s in range(30)])
    assert len(np.unique(goals.round(6), axis=0)) == 30
    env.close()


# -- expert data ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_zarr(tmp_path_factory) -> Path:
    from warpd_core.envs.metaworld_expert import generate_demonstrations, write_demonstrations

    demos = generate_demonstrations(2, FAST_TASKS, seed=0, max_steps=DEMO_STEPS, tail=5, progress=False)
    out = tmp_path_factory.mktemp("mw") / "demo.zarr"
    write_demonstrations(str(out), demos)
    return out


def test_expert_data_read_back_with_task_ids(demo_zarr):
    import zarr

    from warpd_core.data.io import load_dataset

    ds = load_dataset(demo_zarr, task_key="task_id")
    assert ds.n_episodes == 4 and ds.state_dim == OBS_DIM and ds.action_dim == 4
    assert ds.task_ids.tolist() == [task_id("handle-press")] * 2 + [task_id("plate-slide")] * 2 == [7, 7, 8, 8]
    assert np.all(np.abs(ds.actions) <= 1.0)
    # each episode replays: same seed, recorded actions -> recorded states, success 5 steps before its end
    for e, (task, seed) in enumerate([("handle-press", 0), ("handle-press", 1), ("plate-slide", 0), ("plate-slide", 1)]):
        s, a = ds.episode(e)
        env = MetaworldEnv(task, max_steps=DEMO_STEPS)
        np.testing.assert_array_equal(env.reset(seed), s[0])
        for t in range(len(a)):
            obs = env.step(a[t]).obs
            if t + 1 < len(a):
                np.testing.assert_array_equal(obs, s[t + 1])
        assert env.first_success == len(a) - 5
        env.close()
    attrs = zarr.open_group(str(demo_zarr), mode="r").attrs
    assert attrs["task_names"] == list(TASKS)
    assert attrs["expert"]["plate-slide"]["success_rate"] == 1.0


def test_expert_cli_writes_store_and_reports(tmp_path, capsys):
    from warpd_core.cli import main

    out = tmp_path / "cli.zarr"
    assert main(["expert", "metaworld", "--episodes-per-task", "1", "--tasks", "handle-press", "--max-steps", "60",
                 "--tail", "0", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "handle-press: expert success 1/1" in text
    assert json.loads(text.strip().splitlines()[-1])["episodes_kept"] == 1
    assert main(["expert", "metaworld", "--episodes-per-task", "1", "--out", str(out), "--no-progress"]) == 2


# -- task one-hot for the baselines ----------------------------------------------------------------
def test_task_onehot_dataset_and_method(demo_zarr):
    from warpd_core.baselines.task_input import TaskInputMethod, with_task_onehot
    from warpd_core.data.io import load_dataset

    ds = load_dataset(demo_zarr, task_key="task_id")
    aug, n = with_task_onehot(ds, 10)
    assert n == 10 and aug.state_dim == OBS_DIM + 10
    np.testing.assert_array_equal(aug.states[: ds.episode_ends[1], OBS_DIM + 7], 1.0)
    assert aug.states[:, OBS_DIM:].sum(1).tolist() == [1.0] * ds.n_steps
    with pytest.raises(ValueError, match="task_ids"):
        with_task_onehot(load_dataset(demo_zarr), 10)

    class Echo:
        name = "echo"

        def act(self, obs, steps, active):
            self.seen = obs
            return np.zeros((obs.shape[0], 4))

    m = TaskInputMethod(Echo(), 10)
    with pytest.raises(RuntimeError, match="set_task"):
        m.act(np.zeros((2, OBS_DIM), np.float32), np.zeros(2, np.int64), np.ones(2, bool))
    m.set_task(3)
    m.act(np.ones((2, OBS_DIM), np.float32), np.zeros(2, np.int64), np.ones(2, bool))
    assert m.inner.seen.shape == (2, OBS_DIM + 10) and m.inner.seen[:, OBS_DIM + 3].tolist() == [1.0, 1.0]


# -- tiny trained models -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_models(demo_zarr, tmp_path_factory) -> dict[str, Path]:
    from warpd_core.baselines.diffusion_policy import DPTrainConfig, DPTrainer
    from warpd_core.baselines.mlp import MLPTrainConfig, MLPTrainer
    from warpd_core.config import DiffusionTrainConfig, VAETrainConfig, config_from_dict
    from warpd_core.export.writer import export_from_checkpoints
    from warpd_core.train.diffusion_trainer import DiffusionTrainer
    from warpd_core.train.vae_trainer import VAETrainer

    root = tmp_path_factory.mktemp("models")
    data = {"format": "zarr", "path": str(demo_zarr), "options": {"task_key": "task_id"}}
    vae_cfg = config_from_dict(VAETrainConfig, {
        "dataset": data, "policy": {"hidden": [16, 16]}, "horizon": DEMO_STEPS, "batch_size": 4, "epochs": 1,
        "model": {"latent_dim": 16, "encoder_hidden": [32], "decoder_size": "xs", "world_model_hidden": [32]}})
    VAETrainer(vae_cfg, root / "vae", show_progress=False).train()
    dif_cfg = config_from_dict(DiffusionTrainConfig, {
        "unet_size": "xs", "latent_shape": [4, 4], "condition": "state+task", "n_tasks": 10, "epochs": 2,
        "lr_warmup_steps": 1, "task_embed_dim": 8})
    DiffusionTrainer(dif_cfg, root / "diffusion", str(root / "vae"), show_progress=False).train()
    export_from_checkpoints(str(root / "vae"), str(root / "diffusion"), str(root / "warpd"))
    mlp_cfg = config_from_dict(MLPTrainConfig, {"dataset": data, "policy": {"hidden": [16, 16]}, "epochs": 1,
                                                "task_input": "onehot", "n_tasks": 10})
    MLPTrainer(mlp_cfg, root / "mlp", show_progress=False).train()
    for name, size in (("dp_xs", "xs"), ("dp_s", "s")):
        dp_cfg = config_from_dict(DPTrainConfig, {"dataset": data, "unet_size": size, "horizon": 8, "epochs": 1,
                                                  "batch_size": 128, "lr_warmup_steps": 1, "task_input": "onehot",
                                                  "n_tasks": 10})
        DPTrainer(dp_cfg, root / name, show_progress=False).train()
    return {k: root / k for k in ("warpd", "mlp", "dp_xs", "dp_s")}


def test_each_method_evaluates_to_rates_and_flops(tiny_models):
    from warpd_core.eval.methods import model_kind
    from warpd_core.eval.metaworld_eval import MetaworldEvalConfig, build_method, evaluate_metaworld

    cfg = MetaworldEvalConfig(tasks=("reach", "handle-press"), episodes_per_task=2, max_steps=25)
    assert model_kind(str(tiny_models["warpd"])) == ("warpd", None) and model_kind(str(tiny_models["dp_s"]))[0] == "dp"
    out = {}
    for key in ("warpd", "mlp", "dp_xs"):
        m = build_method(str(tiny_models[key]), cfg.max_steps, key)
        r = evaluate_metaworld(m, cfg, progress=False)
        out[key] = r
        assert set(r["success"]) == {"reach", "handle-press"}
        assert all(0.0 <= v <= 1.0 for v in r["success"].values()) and 0.0 <= r["mean_success"] <= 1.0
        assert r["n_episodes"] == 4 and r["flops_per_step"] > 0
        assert all(e["steps"] <= 25 for e in r["episodes"])
    w = out["warpd"]
    assert w["horizon"] == 25 and w["cost"]["horizon"] == 25 and w["cost"]["generation_flops"] > 0
    # one generation per episode, never the safe action (max_policy_age >= episode length)
    assert [e["generation_calls"] for e in w["episodes"]] == [1] * 4 and w["safe_steps"] == 0
    assert w["info"]["schedule_mismatches"] == 0 and w["info"]["rejections"] == 0
    assert math.isclose(w["flops_per_step"], w["cost"]["generation_flops"] / 25 + w["cost"]["step_flops"])
    assert out["mlp"]["cost"]["generation_flops"] == 0 and out["mlp"]["info"]["n_tasks"] == 10
    dp = out["dp_xs"]
    assert dp["horizon"] == 8 and dp["cost"]["step_flops"] == 0
    assert [e["generation_calls"] for e in dp["episodes"]] == [math.ceil(e["steps"] / 8) for e in dp["episodes"]]
    # same seeds, same results
    again = evaluate_metaworld(build_method(str(tiny_models["warpd"]), cfg.max_steps, "warpd"), cfg, progress=False)
    assert [e["steps"] for e in again["episodes"]] == [e["steps"] for e in w["episodes"]]


def test_closest_dp_and_ratio():
    from warpd_core.eval.metaworld_compare import closest_dp, flops_ratios

    def r(label, kind, s, f):
        return {"label": label, "kind": kind, "mean_success": s, "flops_per_step": f, "gflops_per_step": f / 1e9}

    res = [r("w128", "warpd", 0.5, 1e6), r("w256", "warpd", 0.8, 2e6), r("dp-a", "dp", 0.75, 1e8),
           r("dp-b", "dp", 0.85, 3e8), r("dp-c", "dp", 0.45, 5e7), r("mlp", "mlp", 0.8, 1e5)]
    assert closest_dp(res[1], res[2:5])["label"] == "dp-a"  # |0.05| tie with dp-b: the cheaper one
    ratios = flops_ratios(res)
    assert [(p["warpd"], p["dp"]) for p in ratios["pairs"]] == [("w128", "dp-c"), ("w256", "dp-a")]
    head = ratios["headline"]
    assert head["warpd"] == "w256" and head["ratio"] == pytest.approx(50.0) and head["meets_target"]
    assert flops_ratios([res[0], res[5]])["headline"] is None


def test_compare_cli_writes_json_csv_md_png(tiny_models, tmp_path, capsys):
    from warpd_core.cli import main

    out = tmp_path / "cmp"
    spec = tmp_path / "cmp.yaml"
    spec.write_text(f"episodes_per_task: 2\nmax_steps: 20\ntasks: [door-unlock, reach]\nout: {out}\nmethods:\n"
                    f"  - {{label: w, path: {tiny_models['warpd']}}}\n"
                    f"  - {{label: dp-s, path: {tiny_models['dp_s']}, horizon: 4}}\n")
    rc = main(["compare", "metaworld", "--config", str(spec), "--methods", f"w={tiny_models['warpd']}",
               f"m={tiny_models['mlp']}", f"dp-xs@8={tiny_models['dp_xs']}", f"dp-s@4={tiny_models['dp_s']}", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "closest-performing DP" in printed and "1 : " in printed
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["tasks"] == ["door-unlock", "reach"] and doc["config"]["max_steps"] == 20
    by = {m["label"]: m for m in doc["methods"]}
    assert set(by) == {"w", "m", "dp-xs", "dp-s"}
    assert by["dp-s"]["horizon"] == 4 and by["w"]["horizon"] == 20
    assert by["dp-s"]["flops_per_step"] > by["dp-xs"]["flops_per_step"] > 0
    head = doc["ratios"]["headline"]
    assert head["warpd"] == "w" and head["dp"] in ("dp-xs", "dp-s")
    assert head["ratio"] == pytest.approx(by[head["dp"]]["flops_per_step"] / by["w"]["flops_per_step"])
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["w", "m", "dp-xs", "dp-s"]
    assert {"success_door-unlock", "success_reach", "gflops_per_step"} <= set(rows[0])
    assert all(0.0 <= float(r["mean_success"]) <= 1.0 and float(r["gflops_per_step"]) > 0 for r in rows)
    with open(out / "episodes.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 4 * 2 * 2
    md = (out / "summary.md").read_text()
    assert "| method | kind | horizon | GFLOPs/step |" in md and "**Headline:**" in md
    png = (out / "success_vs_gflops.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # bad inputs: one line, exit 2
    assert main(["compare", "metaworld", "--methods", f"x={tmp_path}", "--out", str(tmp_path / "bad")]) == 2
    assert main(["compare", "metaworld", "--methods", "nolabel", "--out", str(tmp_path / "bad")]) == 2
    assert "expected LABEL[@H]=DIR" in capsys.readouterr().err


def test_eval_cli_evaluates_one_model_with_the_compare_protocol(tiny_models, tmp_path, capsys):
    from warpd_core.cli import main

    out = tmp_path / "eval"
    rc = main(["eval", "metaworld", "--model", str(tiny_models["dp_s"]), "--horizon", "4", "--episodes-per-task", "1",
               "--max-steps", "20", "--tasks", "reach", "--out", str(out), "--no-progress"])
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    (m,) = doc["methods"]
    assert m["kind"] == "dp" and m["horizon"] == 4 and doc["config"]["tasks"] == ["reach"]
    assert "no FLOPs ratio" in capsys.readouterr().out  # one model: nothing to compare with
    # a WARPD bundle generates once per episode: another horizon is refused, naming it
    assert main(["eval", "metaworld", "--model", str(tiny_models["warpd"]), "--horizon", "4", "--max-steps", "20",
                 "--tasks", "reach", "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "horizon 4 != max_steps 20" in capsys.readouterr().err
