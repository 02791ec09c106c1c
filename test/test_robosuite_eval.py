"""``warpd eval robosuite``: one model's success rate on robosuite Lift against the action horizon
and the end-effector perturbation, in process, through the one method layer (eval.methods)."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml

pytest.importorskip("robosuite")

from conftest import REPO  # noqa: E402
from warpd_core.eval.methods import build_method, pusht_env  # noqa: E402
from warpd_core.eval.robosuite_eval import (  # noqa: E402
    ROBOSUITE_CONTROLLER,
    RobosuiteEvalConfig,
    evaluate_robosuite,
    robosuite_controller_config,
    robosuite_env,
    write_report,
)


@pytest.fixture(scope="module")
def lift_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("rs") / "lift_bundle"
    subprocess.run([sys.executable, "-m", "warpd_core", "export", "init", "--obs-dim", "19", "--act-dim", "7",
                    "--hidden", "32", "32", "--horizon", "10", "--decoder", "xs", "--unet", "xs", "--seed", "0",
                    "--act-range", "-1", "1", "--out", str(out)], check=True, cwd=REPO, capture_output=True)
    return out


@pytest.fixture(scope="module")
def lift_mlp(tmp_path_factory):
    """An MLP behaviour-cloned on random 19 -> 7 data whose actions reach past [-1, 1]."""
    from warpd_core.baselines.mlp import MLPTrainConfig, MLPTrainer
    from warpd_core.config import PolicyConfig
    from warpd_core.data import EpisodeDataset

    rng = np.random.default_rng(0)
    states = rng.normal(size=(200, 19)).astype(np.float32)
    actions = (3.0 * rng.normal(size=(200, 7))).astype(np.float32)
    ds = EpisodeDataset(states, actions, np.array([100, 200]), None, source="random")
    out = tmp_path_factory.mktemp("rs") / "mlp"
    MLPTrainer(MLPTrainConfig(policy=PolicyConfig(hidden=[16, 16]), epochs=2, seed=0), out, dataset=ds,
               show_progress=False).train()
    return out


def test_controller_config_matches_the_params_files():
    from warpd_core.envs.robosuite_env import obs_dim

    for task in ("lift", "can"):
        params = yaml.safe_load((REPO / "config" / f"robosuite_{task}_controller.yaml").read_text())
        params = params["/**/warpd_controller"]["ros__parameters"]
        for key, value in ROBOSUITE_CONTROLLER.items():
            assert params[key] == value, (task, key)
        assert params["obs_dim"] == obs_dim(task) == robosuite_controller_config(task, 16).obs_dim
    assert robosuite_controller_config("lift", 16).max_policy_age == 256
    assert robosuite_controller_config("lift", 400).max_policy_age == 400  # a long horizon must not go stale


def test_warpd_runs_every_cell_perturbed_only_where_asked_and_repeats(lift_bundle, tmp_path):
    cfg = RobosuiteEvalConfig(task="lift", horizons=(10, 25), translations=(0.0, 0.05), probability=0.5,
                              episodes=2, max_steps=25)
    built = build_method(None, str(lift_bundle), robosuite_env("lift"))
    res = evaluate_robosuite(built, cfg, progress=False)
    assert [(c["horizon"], c["translation"]) for c in res["cells"]] == [(10, 0.0), (10, 0.05), (25, 0.0), (25, 0.05)]
    eps = res["episodes"]
    assert len(eps) == cfg.n_episodes == 8 and all(e["steps"] == 25 and not e["success"] for e in eps)
    assert all((e["perturbations"] > 0) == (e["translation"] > 0) for e in eps)
    # one generation every `horizon` steps, and the controller never fell back to its safe action
    assert [e["generation_calls"] for e in eps] == [math.ceil(25 / e["horizon"]) for e in eps]
    assert sum(c["safe_steps"] for c in res["cells"]) == 0 and res["method"]["rejections"] == 0
    assert res["cells"][0]["flops_per_step"] > res["cells"][2]["flops_per_step"] > 0  # generations amortised
    # the same seeds give the same episodes; a perturbation of a cell is the same whatever the horizon
    again = evaluate_robosuite(build_method(None, str(lift_bundle), robosuite_env("lift")), cfg, progress=False)
    assert again["episodes"] == eps
    assert [e["perturbations"] for e in eps if e["horizon"] == 10] == [e["perturbations"] for e in eps if e["horizon"] == 25]
    paths = write_report(res, str(tmp_path / "out"))
    assert json.loads(open(paths["results"]).read())["cells"] == res["cells"]
    assert "| 10 | 0.00 ± 0.00 | 0.00 ± 0.00 |" in open(paths["summary"]).read()
    assert open(paths["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_mlp_actions_stay_in_bounds_and_cli_writes_the_report(lift_mlp, tmp_path):
    built = build_method(None, str(lift_mlp), robosuite_env("lift"))
    obs = np.random.default_rng(1).normal(size=(4, 19)).astype(np.float32)
    built.method.reset(4, 10, 0)
    a = built.method.act(obs, np.zeros(4, np.int64), np.ones(4, bool))
    assert a.shape == (4, 7) and np.all(np.abs(a) <= 1.0) and np.any(np.abs(a) == 1.0)  # clipped, not rescaled
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "warpd_core", "eval", "robosuite", "--model", str(lift_mlp),
                        "--episodes", "1", "--max-steps", "15", "--horizons", "5", "--translations", "0.05",
                        "--probability", "0.5", "--out", str(out), "--no-progress"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "= 1 episodes of up to 15 steps" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["method"]["kind"] == "mlp" and res["episodes"][0]["steps"] == 15


def test_models_of_another_environment_and_bad_protocols_fail_clearly(init_bundle, lift_bundle):
    with pytest.raises(ValueError, match=rf"{init_bundle}: obs_dim 5, act_dim 2; robosuite lift needs 19 and 7"):
        build_method(None, str(init_bundle), robosuite_env("lift"))
    with pytest.raises(ValueError, match="robosuite can needs 23 and 7"):
        build_method(None, str(lift_bundle), robosuite_env("can"))
    with pytest.raises(ValueError, match="PushT needs 5 and 2"):
        build_method(None, str(lift_bundle), pusht_env())
    for bad, match in (({"translations": (-0.01,)}, "translations"), ({"horizons": (0,)}, "horizons"),
                       ({"probability": 1.5}, "probability"), ({"task": "stack"}, "task"),
                       ({"episodes": 0}, "episodes"), ({"rotation": 4.0}, "rotation")):
        with pytest.raises(ValueError, match=match):
            RobosuiteEvalConfig(**bad)
