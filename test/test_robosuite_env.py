"""robosuite Lift / Can wrapper, end-effector perturbation, scripted expert and its hdf5 output."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("robosuite")

from warpd_core.data.robomimic import read_env_args, read_robomimic  # noqa: E402
from warpd_core.envs.robosuite_env import (  # noqa: E402
    FLOOR_MARGIN,
    JOINT_NAMES,
    OBS_KEYS,
    EEPerturbation,
    RobosuiteEnv,
    mat_to_rotvec,
    obs_dim,
    rotvec_to_mat,
)
from warpd_core.envs.robosuite_expert import ScriptedExpert, generate_demonstrations, rollout_expert  # noqa: E402


@pytest.fixture(scope="module")
def lift():
    env = RobosuiteEnv("lift", max_steps=80)
    yield env
    env.close()


@pytest.fixture(scope="module")
def can():
    env = RobosuiteEnv("can", max_steps=20)
    yield env
    env.close()


# -- wrapper -----------------------------------------------------------------------------


def test_lift_observation_layout(lift):
    obs = lift.reset(seed=3)
    raw = lift.raw_obs
    assert obs.shape == (19,) == (obs_dim("lift"),) and obs.dtype == np.float64
    expected = np.concatenate([raw["robot0_eef_pos"], raw["robot0_eef_quat"], raw["robot0_gripper_qpos"],
                               raw["cube_pos"], raw["cube_quat"], raw["gripper_to_cube_pos"]])
    np.testing.assert_array_equal(obs, expected)
    assert list(lift.obs_dict) == list(OBS_KEYS)
    assert [v.shape for v in lift.obs_dict.values()] == [(3,), (4,), (2,), (10,)]


def test_can_observation_layout_has_relative_pose_at_reset(can):
    obs = can.reset(seed=0)
    raw = can.raw_obs
    assert obs.shape == (23,) == (obs_dim("can"),)
    expected = np.concatenate([raw["Can_pos"], raw["Can_quat"], raw["Can_to_robot0_eef_pos"], raw["Can_to_robot0_eef_quat"]])
    obj = can.obs_dict["object"]
    np.testing.assert_array_equal(obj, expected)
    # robosuite leaves the relative pose at zero after reset unless observables are refreshed
    assert np.linalg.norm(obj[7:10]) > 0.05


def test_reset_is_deterministic_per_seed(lift):
    a = lift.reset(seed=11)
    b = lift.reset(seed=11)
    c = lift.reset(seed=12)
    np.testing.assert_array_equal(a, b)
    assert np.linalg.norm(a[9:12] - c[9:12]) > 1e-4  # the cube starts elsewhere


def test_robot_state_matches_observation(lift):
    lift.reset(seed=0)
    st = lift.robot_state()
    raw = lift.raw_obs
    assert len(JOINT_NAMES) == 9 and JOINT_NAMES[0] == "panda_joint1" and JOINT_NAMES[-1] == "panda_finger_joint2"
    assert st.joint_pos.shape == st.joint_vel.shape == (9,)
    np.testing.assert_allclose(st.joint_pos[:7], raw["robot0_joint_pos"])
    np.testing.assert_allclose(st.joint_pos[7:], np.abs(raw["robot0_gripper_qpos"]))  # both fingers positive
    np.testing.assert_allclose(st.eef_pos, raw["robot0_eef_pos"])
    np.testing.assert_allclose(st.object_pos, raw["cube_pos"])
    np.testing.assert_allclose(np.abs(st.object_quat), np.abs(raw["cube_quat"]), atol=1e-9)
    assert abs(np.linalg.norm(st.eef_quat) - 1.0) < 1e-9


def test_action_moves_the_end_effector_and_is_validated(lift):
    lift.reset(seed=0)
    p0 = lift.obs[:3].copy()
    for _ in range(5):
        res = lift.step(np.array([5.0, 0, 0, 0, 0, 0, -1]))  # clipped to 1: 5 cm goal offsets
    moved = res.obs[:3] - p0
    assert moved[0] > 0.03 and abs(moved[1]) < 0.01 and abs(moved[2]) < 0.01
    with pytest.raises(ValueError, match="7 entries"):
        lift.step(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        lift.step(np.r_[np.zeros(6), np.nan])


def test_episode_ends_at_max_steps(lift):
    lift.reset(seed=1)
    for i in range(lift.max_steps):
        res = lift.step(np.zeros(7))
        assert res.done == (i == lift.max_steps - 1)
    assert res.info == {"success": False, "truncated": True, "step": lift.max_steps}
    with pytest.raises(RuntimeError, match="reset"):
        lift.step(np.zeros(7))


# -- end-effector displacement ---------------------------------------------------------


def test_rotation_helpers_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rv = rng.standard_normal(3)
        rv *= rng.uniform(0.0, 3.0) / np.linalg.norm(rv)
        np.testing.assert_allclose(mat_to_rotvec(rotvec_to_mat(rv)), rv, atol=1e-9)


def test_displace_ee_moves_the_hand_exactly_in_free_space(lift):
    lift.reset(seed=0)
    d = np.array([0.04, -0.03, 0.05, 0.0, 0.0, 0.25])
    p0, r0 = lift.eef_pose
    applied = lift.displace_ee(d)
    p1, r1 = lift.eef_pose
    np.testing.assert_allclose(applied, d, atol=1e-5)
    np.testing.assert_allclose(p1 - p0, d[:3], atol=1e-5)
    np.testing.assert_allclose(mat_to_rotvec(r1 @ r0.T), d[3:], atol=1e-5)
    np.testing.assert_allclose(lift.obs[:3], p1)  # observation refreshed
    # the OSC goal is re-anchored: a zero action keeps the hand where it was put
    lift.step(np.r_[np.zeros(6), -1.0])
    assert np.linalg.norm(lift.eef_pose[0] - p1) < 0.005


def test_displace_ee_keeps_the_hand_above_the_table(lift):
    lift.reset(seed=0)
    lift.displace_ee(np.array([0.0, 0.0, -1.0, 0, 0, 0]))
    assert lift.eef_pose[0][2] >= lift.floor_z + FLOOR_MARGIN - 1e-4


def _run_expert_until(env, expert, phase, seed=0, max_steps=80):
    env.reset(seed=seed)
    expert.reset(env)
    for _ in range(max_steps):
        a = expert.act(env)
        if expert._i >= phase:
            return
        env.step(a)
    raise AssertionError(f"expert did not reach phase {phase}")


def test_displace_ee_carries_a_grasped_cube(lift):
    expert = ScriptedExpert("lift", seed=0)
    _run_expert_until(lift, expert, phase=4)  # gripper closed, about to lift
    assert lift.is_grasping()
    cube0 = lift.robot_state().object_pos
    applied = lift.displace_ee(np.array([0.0, 0.03, 0.06, 0, 0, 0]))
    cube1 = lift.robot_state().object_pos
    np.testing.assert_allclose(cube1 - cube0, applied[:3], atol=1e-4)  # rigid motion incl. ~1e-5 rad of rotation
    assert lift.is_grasping()


def test_displace_ee_into_the_cube_is_shortened(lift):
    expert = ScriptedExpert("lift", seed=0)
    _run_expert_until(lift, expert, phase=2)  # hovering above the cube, gripper open
    cube0 = lift.robot_state().object_pos
    gap = lift.eef_pose[0][2] - cube0[2]
    applied = lift.displace_ee(np.array([0.0, 0.0, -gap, 0, 0, 0]))  # fingertips into the cube
    assert -gap < applied[2] < 0.0
    for _ in range(5):
        lift.step(np.r_[np.zeros(6), -1.0])
    assert np.linalg.norm(lift.robot_state().object_pos - cube0) < 0.01  # not launched


# -- perturbation statistics ---------------------------------------------------------------


def test_ee_perturbation_probability_zero_and_one():
    assert all(EEPerturbation(0.0, 0.05, 0.3, seed=1).sample() is None for _ in range(2000))
    pert = EEPerturbation(1.0, 0.05, 0.3, seed=1)
    ds = np.array([pert.sample() for _ in range(2000)])
    assert ds.shape == (2000, 6)
    np.testing.assert_allclose(np.linalg.norm(ds[:, :3], axis=1), 0.05, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(ds[:, 3:], axis=1), 0.3, rtol=1e-12)
    # uniform directions: mean of unit vectors near 0, each axis' second moment near 1/3
    units = ds[:, :3] / 0.05
    assert np.all(np.abs(units.mean(axis=0)) < 0.06)
    assert np.all(np.abs((units**2).mean(axis=0) - 1 / 3) < 0.04)


def test_ee_perturbation_rate_and_seed_independence():
    n = 20000
    p = EEPerturbation(0.1, 0.02, 0.0, seed=5)
    hits = sum(p.sample() is not None for _ in range(n))
    assert abs(hits / n - 0.1) < 4 * math.sqrt(0.1 * 0.9 / n)
    # the same seed gives the same directions whatever the probability
    a, b = EEPerturbation(1.0, 0.02, 0.1, seed=9), EEPerturbation(0.5, 0.02, 0.1, seed=9)
    for _ in range(50):
        da, db = a.sample(), b.sample()
        if db is not None:
            np.testing.assert_array_equal(da, db)
    assert np.all(EEPerturbation(1.0, 0.0, 0.0, seed=0).sample() == 0.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"probability": 1.5}, "probability"),
    ({"translation": -0.1}, "translation"),
    ({"rotation": 4.0}, "rotation"),
])
def test_ee_perturbation_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EEPerturbation(**kwargs)


# -- scripted expert and demonstrations --------------------------------------------------


def test_expert_demonstrations_round_trip_through_robomimic_hdf5(lift, tmp_path):
    out = tmp_path / "lift.hdf5"
    episodes, stats = generate_demonstrations("lift", 2, seed=0, out=out, env=lift)
    assert stats.successes == 2 and stats.path == str(out)
    ds = read_robomimic(out, obs_keys=list(OBS_KEYS))
    assert ds.n_episodes == 2
    for i, ep in enumerate(episodes):
        s, a = ds.episode(i)
        assert s.shape == (len(ep["actions"]), 19) and a.shape == (len(ep["actions"]), 7)
        assert np.all(np.abs(a) <= 1.0)
        np.testing.assert_allclose(s[:, :3], ep["obs/robot0_eef_pos"], rtol=1e-6)
        assert ep["dones"][-1] == 1 and ep["rewards"][-1] == 1.0
    # the first recorded observation is the reset observation of seed 0
    np.testing.assert_allclose(ds.episode(0)[0][0], lift.reset(seed=0), rtol=1e-6)
    args = read_env_args(out)
    assert args["env_name"] == "Lift" and args["type"] == 1
    arm = args["env_kwargs"]["controller_configs"]["body_parts"]["right"]
    assert arm["type"] == "OSC_POSE" and args["env_kwargs"]["control_freq"] == 20
    assert args["obs_keys"] == list(OBS_KEYS)


def test_expert_is_multimodal_across_seeds(lift):
    trajs = []
    for expert_seed in (0, 1, 2):
        ep, ok = rollout_expert(lift, ScriptedExpert("lift", seed=expert_seed), seed=4)
        assert ok
        trajs.append(ep["obs/robot0_eef_pos"][:10])
    # same start state, different expert seeds: different paths
    assert min(np.abs(trajs[0] - trajs[1]).max(), np.abs(trajs[0] - trajs[2]).max()) > 0.01


def test_can_expert_reaches_the_can(can):
    # the full Can episode takes ~110 steps; check the pick part within the short horizon
    expert = ScriptedExpert("can", seed=0)
    can.reset(seed=0)
    expert.reset(can)
    for _ in range(can.max_steps - 1):
        can.step(expert.act(can))
    assert expert._i >= 1
    assert np.linalg.norm(can.eef_pose[0][:2] - can.robot_state().object_pos[:2]) < 0.05


def test_cli_writes_demonstrations(tmp_path, capsys):
    from warpd_core.cli import build_parser

    parser = build_parser()
    out = tmp_path / "cli.hdf5"
    args = parser.parse_args(["expert", "robosuite", "--task", "lift", "--episodes", "1", "--max-steps", "80",
                              "--out", str(out)])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["demos"] == 1 and report["out"] == str(out)
    assert read_robomimic(out, obs_keys=list(OBS_KEYS)).n_episodes == 1
