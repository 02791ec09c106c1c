"""The robosuite graph (generator + controller + robosuite_sim + end-effector perturbation),
each node in its own process, started by the graph runner as robosuite_sim.launch.py would."""

import json
import subprocess
import sys

from conftest import REPO, requires_ros

pytestmark = requires_ros


def test_robosuite_lift_graph_runs_an_episode_on_generated_policies(tmp_path):
    bundle = tmp_path / "lift_bundle"
    subprocess.run([sys.executable, "-m", "warpd_core", "export", "init", "--obs-dim", "19", "--act-dim", "7",
                    "--hidden", "64", "64", "--horizon", "10", "--decoder", "xs", "--unet", "xs", "--seed", "0",
                    "--act-range", "-1", "1", "--out", str(bundle)], check=True, cwd=REPO)
    summary = tmp_path / "summary.json"
    r = subprocess.run([sys.executable, "-m", "warpd_ros.graph", "robosuite_sim", f"model:={bundle}", "task:=lift",
                        "episodes:=1", "max_steps:=30", "probability:=0.3", "--summary", str(summary),
                        "--timeout", "150", "--log-dir", str(tmp_path / "logs")],
                       cwd=REPO, capture_output=True, text=True, timeout=200)
    logs = "\n".join(p.read_text()[-1500:] for p in sorted((tmp_path / "logs").glob("*.log")))
    assert r.returncode == 0, r.stdout + r.stderr + logs
    report = json.loads(summary.read_text())
    (episode,) = report["episodes"]
    assert episode["steps"] == 30 and episode["perturbations"] > 0
    ctl = report["nodes"]["warpd_controller"]
    assert ctl["steps"] >= 30 and ctl["swaps"] >= 3 and ctl["safe_steps"] == 0 and ctl["rejected_policies"] == 0
