"""The PushT model that ships with warpd_core (loaded by default by the launch file and
`warpd demo`): present, small enough, loadable, and not broken.

Measured when it was trained (README, "The shipped PushT model"): closed-loop mean score
0.628 on 20 seeds at horizon 16; generated policies command targets a median 26 px from
the agent on the 16 reset states below, where untrained bundles command 150-320 px away.
"""

import numpy as np

from warpd_core.assets import SHIPPED_PUSHT_MODEL


def test_bundle_is_shipped_small_and_loads():
    from warpd_core.export.bundle import load_generator

    files = [p for p in SHIPPED_PUSHT_MODEL.rglob("*") if p.is_file()]
    assert (SHIPPED_PUSHT_MODEL / "bundle.json").exists()
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    gen = load_generator(SHIPPED_PUSHT_MODEL)
    assert gen.spec.layer_sizes == (5, 256, 256, 2) and gen.horizon == 16 and gen.n_tasks == 0


def test_generated_policies_command_targets_near_the_agent_like_the_demonstrations():
    """Guards against shipping a broken model: an untrained or mis-exported bundle (wrong
    normalisation folding, wrong weights) sends the agent hundreds of pixels away."""
    from warpd_core.envs.pusht import PushTEnv
    from warpd_core.export.bundle import load_generator
    from warpd_core.policy.spec import MLPPolicy

    gen = load_generator(SHIPPED_PUSHT_MODEL, seed=0)
    env = PushTEnv()
    obs = np.stack([env.reset(seed=s) for s in range(100000, 100016)])
    weights = gen.generate(obs)
    dist = [np.linalg.norm(MLPPolicy(gen.spec, w).act(o) - o[:2]) for w, o in zip(weights, obs)]
    assert np.median(dist) < 60.0, f"median commanded distance {np.median(dist):.0f} px"


def test_short_closed_loop_evaluation_through_the_runtime_logic():
    """8 fixed seeds, horizon 16, no perturbation, through the same ControllerCore as the
    nodes. Floor 0.30 (measured 0.553 on these seeds; random actions score ~0.15, the
    first shipped model 0.225)."""
    from warpd_core.eval.harness import EvalConfig, WarpdMethod, evaluate
    from warpd_core.export.bundle import load_generator

    cfg = EvalConfig(n_seeds=8, repeats=1, horizons=(16,), magnitudes=(0.0,))
    res = evaluate(WarpdMethod(load_generator(SHIPPED_PUSHT_MODEL, seed=0)), cfg, progress=False)
    (cell,) = res.cells
    assert cell.safe_steps_mean == 0
    assert cell.score_mean >= 0.30, cell
