"""The whole PushT graph (generator, controller, pusht_sim, perturbation) through real rclpy,
each node in its own process, started by the wheels-only graph runner from the same
description the launch file uses."""

import json
import subprocess
import sys
from collections import defaultdict

from conftest import REPO, requires_ros
from rosutil import spin_until

pytestmark = requires_ros

H = 8


def test_lockstep_graph_every_step_acted_and_swaps_at_horizon_boundaries(init_bundle, tmp_path):
    import rclpy

    from warpd_ros import qos
    from warpd_ros.msg import Action, EpisodeResult

    rclpy.init()
    node = rclpy.create_node("graph_test_probe")
    actions, results = [], []
    node.create_subscription(Action, "action", actions.append, qos.stream("reliable", depth=1000))
    node.create_subscription(EpisodeResult, "episode_result", results.append, qos.RESULTS)
    summary = tmp_path / "summary.json"
    cmd = [sys.executable, "-m", "warpd_ros.graph", "pusht_sim", f"model:={init_bundle}", "episodes:=2",
           "max_steps:=30", f"horizon:={H}", "perturbation:=true", "magnitude:=20.0", "probability:=0.3",
           "seed:=3", "--summary", str(summary), "--timeout", "150", "--log-dir", str(tmp_path / "logs")]
    try:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        spin_until(node, lambda: proc.poll() is not None, timeout=180)
        spin_until(node, lambda: False, timeout=0.5)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        rclpy.try_shutdown()
    logs = "\n".join(p.read_text()[-1500:] for p in sorted((tmp_path / "logs").glob("*.log")))
    assert proc.returncode == 0, out + logs
    report = json.loads(summary.read_text())
    assert len(report["episodes"]) == 2 and len(results) == 2
    assert "control loop:" in out and "[episode 1]" in out

    by_episode = defaultdict(dict)
    for a in actions:
        by_episode[a.episode][a.seq] = a  # a re-sent observation repeats the same answer
    for r in results:
        got = by_episode[r.episode]
        # every simulated step got exactly the action for its observation
        assert sorted(got) == list(range(r.steps)), (r.episode, sorted(got))
        gens = [got[s].generation for s in range(r.steps)]
        ages = [got[s].policy_age for s in range(r.steps)]
        assert all(g > 0 for g in gens) and all(got[s].source == Action.SOURCE_POLICY for s in got)
        assert ages == [s % H + 1 for s in range(r.steps)]
        for s in range(1, r.steps):
            assert (gens[s] != gens[s - 1]) == (s % H == 0), f"episode {r.episode}: swap at step {s}"
        assert all(0.0 <= v <= 512.0 for s in got for v in got[s].data)
    assert sum(r.perturbations for r in results) > 0
    ctl = report["nodes"]["warpd_controller"]
    assert ctl["swaps"] >= sum((r.steps + H - 1) // H for r in results)
    assert ctl["rejected_policies"] == 0 and ctl["safe_steps"] == 0
