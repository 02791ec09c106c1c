"""``warpd compare pusht`` (warpd_core.eval.compare): method specs, pooling over training seeds,
FLOPs per method and horizon, the output files, reproducibility, the Metaworld hook.
Tiny models trained on test_baselines' PushT-shaped data, 1 torch thread."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from test_baselines import pusht_like, train_tiny_ldp
from warpd_core.eval.compare import resolve_methods
from warpd_core.eval.methods import model_kind, parse_method

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Two MLP training seeds, a DP and an LDP trained at horizon 16 (a few epochs each)."""
    from warpd_core.baselines.diffusion_policy import DPTrainConfig, DPTrainer
    from warpd_core.baselines.mlp import MLPTrainConfig, MLPTrainer
    from warpd_core.config import PolicyConfig

    root = tmp_path_factory.mktemp("models")
    ds = pusht_like()
    for seed in (0, 1):
        MLPTrainer(MLPTrainConfig(policy=PolicyConfig(hidden=[16, 16]), epochs=3, lr=3e-3, seed=seed),
                   root / f"mlp{seed}", dataset=ds, show_progress=False).train()
    DPTrainer(DPTrainConfig(unet_size="xs", horizon=16, epochs=1, sampler_steps=2), root / "dp", dataset=ds,
              show_progress=False).train()
    train_tiny_ldp(root / "ldp", ds, horizon=16, epochs=1)
    return {"mlp0": root / "mlp0", "mlp1": root / "mlp1", "dp": root / "dp", "ldp": root / "ldp"}


def run_cli(argv: list[str]) -> int:
    from warpd_core.cli import main

    return main(["compare", "pusht", *argv, "--no-progress"])


# -- method specs ------------------------------------------------------------------------------------
def test_parse_method_grammar():
    assert parse_method("random") == ("random", None, [None])
    assert parse_method("dp@64=a,b") == ("dp", 64, ["a", "b"])
    assert parse_method("warpd_nowm=x/y") == ("warpd_nowm", None, ["x/y"])
    for bad, match in (("dp", "LABEL"), ("dp@x=a", "positive integer"), ("dp@0=a", "positive integer"),
                       ("=a", "bad label"), ("dp=", "no model directory")):
        with pytest.raises(ValueError, match=match):
            parse_method(bad)


def test_resolve_methods_assigns_models_to_horizons(tmp_path):
    def ckpt(name: str, stage: str, horizon: int = 16) -> str:
        d = tmp_path / name
        d.mkdir()
        (d / "last.json").write_text(json.dumps({"stage": stage, "config": {"horizon": horizon}}))
        return str(d)

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    dp16, dp64, dp64b = ckpt("dp16", "dp", 16), ckpt("dp64", "dp", 64), ckpt("dp64b", "dp", 64)
    mlp = ckpt("mlp", "mlp")
    assert model_kind(str(bundle)) == ("warpd", None) and model_kind(dp64) == ("dp", 64) and model_kind(mlp) == ("mlp", None)
    specs, missing = resolve_methods([f"w={bundle}", f"dp={dp16}", f"dp={dp64},{dp64b}", f"dp@8={dp16}", f"m={mlp}",
                                      "random"], (8, 16, 32, 64))
    by = {s.label: s for s in specs}
    assert [s.label for s in specs] == ["w", "dp", "m", "random"]
    assert by["w"].kind == "warpd" and sorted(by["w"].models) == [8, 16, 32, 64]
    assert by["dp"].models == {16: [dp16], 64: [dp64, dp64b], 8: [dp16]}
    assert by["dp"].directories() == [dp16, dp64, dp64b]
    assert by["random"].models[32] == [None]
    assert missing == [{"method": "dp", "horizon": 32}]
    for texts, match in (([f"dp={dp16}", f"dp@16={dp64}"], "already has a model for horizon 16"),
                         ([f"x={dp16}", f"x={mlp}"], "already a dp method"),
                         ([f"x={dp16},{mlp}"], "different kinds"),
                         ([f"x={dp16},{dp64}"], "different horizons"),
                         ([f"x={tmp_path / 'nothing'}"], "neither bundle.json")):
        with pytest.raises(ValueError, match=match):
            resolve_methods(texts, (16, 64))
    bad = ckpt("vae", "vae")
    with pytest.raises(ValueError, match=r"last.json: field 'stage' is 'vae'"):
        model_kind(bad)


def test_one_method_layer_builds_every_kind_and_refuses_models_of_another_environment(tiny_models, init_bundle):
    """eval.methods.build_method serves PushT, Metaworld and robosuite: a model whose sizes or
    task conditioning do not fit the environment fails at build time, naming the directory."""
    from warpd_core.eval.methods import EnvSpec, build_method, pusht_env
    from warpd_core.eval.metaworld_eval import metaworld_env

    pusht = pusht_env()
    for key, kind in (("mlp0", "mlp"), ("dp", "dp"), ("ldp", "ldp")):
        built = build_method(None, str(tiny_models[key]), pusht, label=key)
        assert built.kind == kind and built.method.name == key and built.info["method"] == kind
        assert built.cost(16).flops_per_step > 0
    w = build_method("warpd", str(init_bundle), pusht)
    assert w.kind == "warpd" and w.cost(16).generation_flops > 0 and w.info["n_tasks"] == 0
    assert build_method("random", None, pusht).cost(16).flops_per_step == 0
    with pytest.raises(ValueError, match="holds a mlp model, not dp"):
        build_method("dp", str(tiny_models["mlp0"]), pusht)
    with pytest.raises(ValueError, match="a model directory is required"):
        build_method("mlp", None, pusht)
    meta = metaworld_env(25)
    with pytest.raises(ValueError, match=rf"{init_bundle}: obs_dim 5, act_dim 2; Metaworld needs 39 and 4"):
        build_method(None, str(init_bundle), meta)
    with pytest.raises(ValueError, match="task_input.*Metaworld needs a model trained with task_input: onehot"):
        build_method(None, str(tiny_models["mlp0"]), meta)
    with pytest.raises(ValueError, match="no random baseline on Metaworld"):
        build_method("random", None, meta)
    arm = EnvSpec("arm", 5, 3, -1.0, 1.0, pusht.controller)
    with pytest.raises(ValueError, match=r"obs_dim 5, act_dim 2; arm needs 5 and 3"):
        build_method(None, str(tiny_models["dp"]), arm)


def test_profiles_are_one_table_for_eval_and_compare():
    from warpd_core.eval.harness import EvalConfig

    quick, paper = EvalConfig.from_profile("quick"), EvalConfig.from_profile("paper")
    assert quick.horizons == paper.horizons == (16, 32, 64, 128)
    assert quick.magnitudes == paper.magnitudes == (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)
    assert (paper.n_seeds, paper.repeats) == (50, 10) and (quick.n_seeds, quick.repeats) == (10, 1)
    assert (quick.n_episodes, paper.n_episodes) == (240, 12000)
    assert "12000 episodes" in paper.describe() and "480 for 2 methods" in quick.describe(2)
    assert EvalConfig.from_profile("quick", n_seeds=2, horizons=None).n_seeds == 2
    with pytest.raises(ValueError, match="profile"):
        EvalConfig.from_profile("huge")
    # both commands default to the short profile
    parser = __import__("warpd_core.cli", fromlist=["build_parser"]).build_parser()
    assert parser.parse_args(["eval", "pusht", "--model", "m"]).profile == "quick"
    assert parser.parse_args(["compare", "pusht", "--methods", "random"]).profile == "quick"
    from warpd_core.eval.methods import KINDS

    assert parser.parse_args(["eval", "pusht", "--method", "ldp", "--model", "m"]).method == "ldp"
    assert set(KINDS) == {"warpd", "mlp", "dp", "ldp", "random"}


# -- the sweep ---------------------------------------------------------------------------------------
def test_compare_writes_json_csv_markdown_png(tmp_path, tiny_models, init_bundle):
    m = tiny_models
    out = tmp_path / "cmp"
    assert run_cli(["--methods", f"warpd={init_bundle}", f"mlp={m['mlp0']},{m['mlp1']}", f"dp={m['dp']}",
                    f"ldp={m['ldp']}", f"ldp@8={m['ldp']}", "random", "--horizons", "8", "16", "--magnitudes", "0", "40",
                    "--seeds", "2", "--max-steps", "20", "--out", str(out)]) == 0
    for name in ("results.json", "results.csv", "summary.md", "score_vs_magnitude.png", "score_vs_horizon.png"):
        assert (out / name).is_file(), name
    for name in ("score_vs_magnitude.png", "score_vs_horizon.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["n_seeds"] == 2 and data["missing"] == [{"method": "dp", "horizon": 8}]
    cells = {(c["method"], c["horizon"], c["magnitude"]): c for c in data["cells"]}
    assert len(cells) == len(data["cells"]) == 4 * 2 * 2 + 2  # warpd, mlp, ldp, random at 8 and 16; dp at 16
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(cells)
    for r in rows:
        c = cells[(r["method"], int(r["horizon"]), float(r["magnitude"]))]
        assert float(r["score_mean"]) == pytest.approx(c["score_mean"]) and 0.0 <= c["score_mean"] <= 1.0
        assert float(r["flops_per_step"]) == pytest.approx(c["flops_per_step"])
    # every method shares the episodes' seeds; two MLP training seeds pool 2 x 2 episodes
    assert cells[("mlp", 16, 0.0)]["n_train_seeds"] == 2 and cells[("mlp", 16, 0.0)]["n_episodes"] == 4
    assert len(cells[("mlp", 16, 0.0)]["train_seed_scores"]) == 2
    assert cells[("ldp", 8, 40.0)]["n_train_seeds"] == 1 and cells[("ldp", 8, 40.0)]["train_seed_std"] == 0.0
    # FLOPs per control step: random 0, the rest > 0; generations amortise over the horizon
    assert cells[("random", 16, 0.0)]["flops_per_step"] == 0
    for label in ("warpd", "mlp", "dp", "ldp"):
        assert cells[(label, 16, 0.0)]["flops_per_step"] > 0, label
    for label in ("warpd", "ldp"):
        assert cells[(label, 8, 0.0)]["flops_per_step"] > cells[(label, 16, 0.0)]["flops_per_step"], label
    assert cells[("mlp", 8, 0.0)]["flops_per_step"] == cells[("mlp", 16, 0.0)]["flops_per_step"]
    assert cells[("warpd", 16, 0.0)]["step_flops"] > 0 and cells[("ldp", 16, 0.0)]["step_flops"] == 0
    methods = {(x["method"], x["path"]): x for x in data["methods"]}
    assert methods[("ldp", str(m["ldp"]))]["horizons"] == [8, 16]
    assert methods[("random", None)]["cost"]["8"]["flops_per_step"] == 0
    summary = (out / "summary.md").read_text()
    for label in ("warpd", "mlp", "dp", "ldp", "random"):
        assert f"## {label} (" in summary, label
    assert "seed sd" in summary and "dp at horizon 8" in summary and "MFLOPs/step" in summary
    # final coverage beside the score; paired differences against the WARPD bundle
    assert "final coverage" in summary and "## Paired differences: warpd minus each method" in summary
    for c in data["cells"]:
        assert 0.0 <= c["final_coverage_mean"] <= 1.0
    for name in ("final_coverage_vs_magnitude.png", "final_coverage_vs_horizon.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["reference"] == "warpd"
    paired = {(d["b"], d["metric"], d["horizon"], d["magnitude"]): d for d in data["paired"]}
    assert ("dp", "score", 8, 0.0) not in paired and ("dp", "score", 16, 40.0) in paired
    assert paired[("mlp", "final_coverage", 16, 0.0)]["n_pairs"] == 2  # 2 env seeds, the MLP seeds averaged
    assert all(d["a"] == "warpd" for d in data["paired"])


def test_paired_differences_pair_on_seed_and_repeat():
    from warpd_core.eval.metrics import EpisodeResult, paired_differences

    def ep(method, seed, repeat, score, final, horizon=16):
        return EpisodeResult(method, horizon, 0.0, 0.1, seed, repeat, seed, 0, 0, 10, score, final, score, False,
                             0, 1, 0)

    a = [ep("a", s, r, 0.5 + 0.1 * s, 0.2) for s in range(3) for r in range(2)]
    # b: the same per-seed level minus 0.1, listed in another order, plus an unmatched episode
    b = [ep("b", s, r, 0.4 + 0.1 * s, 0.3) for s in reversed(range(3)) for r in range(2)] + [ep("b", 9, 0, 1.0, 1.0)]
    (d,) = paired_differences(a, b)
    assert (d.a, d.b, d.n_pairs) == ("a", "b", 6)
    assert d.mean == pytest.approx(0.1) and d.se == pytest.approx(0.0, abs=1e-12)  # seed effect cancels
    (f,) = paired_differences(a, b, "final_coverage")
    assert f.mean == pytest.approx(-0.1)
    assert paired_differences(a, [ep("b", 0, 0, 0.1, 0.1, horizon=32)]) == []  # no common cell
    with pytest.raises(ValueError, match="metric"):
        paired_differences(a, b, "steps")


def test_quick_profile_smallest_cell_is_reproducible(tmp_path, tiny_models):
    """Same seeds, same table: the quick profile's smallest cell (horizon 16, no perturbation) twice."""
    m = tiny_models
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert run_cli(["--profile", "quick", "--horizons", "16", "--magnitudes", "0", "--methods",
                        f"mlp={m['mlp0']}", "random", "--out", str(out)]) == 0
    a, b = (json.loads((o / "results.json").read_text()) for o in outs)
    assert a["config"]["n_seeds"] == 10 and a["config"]["max_steps"] == 300
    # full precision agrees to rounding (a contact's last bit may differ between runs, see CSV_DECIMALS)
    assert [c.keys() for c in a["cells"]] == [c.keys() for c in b["cells"]]
    for ca, cb in zip(a["cells"], b["cells"]):
        assert {k: pytest.approx(v, rel=1e-12) if isinstance(v, (float, list)) else v for k, v in ca.items()} == cb
    for name in ("results.csv", "summary.md"):
        assert (outs[0] / name).read_text() == (outs[1] / name).read_text(), name


# -- CLI wiring -------------------------------------------------------------------------------------
def test_compare_registers_metaworld_when_its_module_imports(monkeypatch):
    from warpd_core.eval import compare

    def register_compare(sub):
        p = sub.add_parser("metaworld")
        p.set_defaults(func=lambda args: 0)

    fake = types.ModuleType("warpd_core.eval.metaworld_compare")
    fake.register_compare = register_compare
    monkeypatch.setitem(sys.modules, "warpd_core.eval.metaworld_compare", fake)
    ap = argparse.ArgumentParser()
    compare.register(ap.add_subparsers(dest="command"))
    assert ap.parse_args(["compare", "metaworld"]).func(None) == 0

    broken = types.ModuleType("warpd_core.eval.metaworld_compare")  # no register_compare: pusht still works
    monkeypatch.setitem(sys.modules, "warpd_core.eval.metaworld_compare", broken)
    ap = argparse.ArgumentParser()
    compare.register(ap.add_subparsers(dest="command"))
    assert ap.parse_args(["compare", "pusht", "--methods", "random"]).func is compare.run_pusht
    with pytest.raises(SystemExit):
        ap.parse_args(["compare", "metaworld"])


def test_bad_spec_is_one_line_exit_2(tmp_path, capsys):
    assert run_cli(["--methods", f"x={tmp_path}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither bundle.json" in err[0] and str(tmp_path) in err[0]
