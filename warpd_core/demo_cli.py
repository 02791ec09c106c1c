"""``warpd demo``: the main job -- the PushT graph through real ROS 2 with the shipped model.

Runs the wheels-only graph runner (``python -m warpd_ros.graph pusht_sim``, the same graph as
``ros2 launch warpd_ros pusht_sim.launch.py``) twice: without perturbation and with the
paper's adversary (probability 0.1, 40 px by default). Each run prints per-episode scores and
control-loop statistics; a GIF of the first episode with perturbation and a summary JSON are
written to ``--out``. The ROS side lives in warpd_ros; this module only starts processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from warpd_core.assets import SHIPPED_PUSHT_MODEL


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the PushT ROS 2 graph with the shipped model (the main job)")
    p.add_argument("--episodes", type=int, default=3, help="episodes per run")
    p.add_argument("--horizon", type=int, default=0, help="action horizon (0 = the model's)")
    p.add_argument("--magnitude", type=float, default=40.0, help="perturbation magnitude in pixels")
    p.add_argument("--model", default="", help="model bundle ('' = the shipped PushT model)")
    p.add_argument("--mode", default="lockstep", choices=["lockstep", "realtime"],
                   help="lockstep: the sim waits for each action (deterministic scores); realtime: it steps at its rate")
    p.add_argument("--seed", type=int, default=100000,
                   help="the graph's seed: episode i starts from the initial state of seed SEED + i, and the "
                        "generator's and perturbation node's draws are rooted at it")
    p.add_argument("--out", default="results/demo", help="output folder")
    p.set_defaults(func=run)


def _local_ros_env() -> dict:
    """Keep discovery on this machine unless the user configured DDS themselves."""
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = Path(__file__).resolve().parents[1] / "config" / "fastdds_localhost.xml"
    if profile.exists():
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    return env


def run(args) -> int:
    model = args.model or str(SHIPPED_PUSHT_MODEL)
    if not Path(model, "bundle.json").exists():
        print(f"warpd demo: no model bundle at {model} (train one: see README, or `warpd export init`)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name, perturb in (("no_perturbation", False), ("perturbation", True)):
        print(f"\n=== PushT graph, {name.replace('_', ' ')} "
              f"({'magnitude %.0f px, p=0.1' % args.magnitude if perturb else 'clean'}) ===", flush=True)
        summary = out / f"{name}.json"
        cmd = [sys.executable, "-m", "warpd_ros.graph", "pusht_sim", f"model:={model}",
               f"episodes:={args.episodes}", f"horizon:={args.horizon}", f"mode:={args.mode}",
               f"perturbation:={'true' if perturb else 'false'}", f"magnitude:={args.magnitude}",
               f"seed:={args.seed}"]
        if perturb:
            cmd.append(f"record:={(out / 'rollout.gif').resolve()}")
        cmd += ["--summary", str(summary), "--log-dir", str(out / f"logs_{name}")]
        rc = subprocess.call(cmd, env=_local_ros_env())
        if rc != 0:
            print(f"warpd demo: the {name} run failed (exit {rc}); node logs in {out / ('logs_' + name)}", file=sys.stderr)
            return rc
        runs[name] = json.loads(summary.read_text())
    combined = {
        "model": model,
        "runs": {k: {"mean_score": v.get("mean_score"), "episodes": v["episodes"],
                     "controller": v["nodes"].get("warpd_controller", {}),
                     "generator": v["nodes"].get("warpd_generator", {})} for k, v in runs.items()},
        "rollout": str(out / "rollout.gif"),
    }
    (out / "summary.json").write_text(json.dumps(combined, indent=2))
    print(f"\nmean score: clean {combined['runs']['no_perturbation']['mean_score']:.3f}, "
          f"perturbed {combined['runs']['perturbation']['mean_score']:.3f}")
    print(f"wrote {out / 'summary.json'} and {out / 'rollout.gif'}")
    return 0
