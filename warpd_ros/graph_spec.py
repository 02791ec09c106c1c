"""The node graphs, described once.

Both ``launch/pusht_sim.launch.py`` (launch_ros, for users with a ROS 2 distribution) and
``python -m warpd_ros.graph`` (for wheels-only installs, where launch_ros is not available)
build their processes from these descriptions: same executables, same params files, same
arguments. Pure Python: importable without launch_ros.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LaunchArg:
    name: str
    default: str
    description: str


@dataclass
class NodeSpec:
    executable: str
    name: str
    params_file: str | None = None  # relative to the package share directory
    parameters: dict = field(default_factory=dict)  # overrides on top of the params file
    extra_params_files: list = field(default_factory=list)  # user params files, applied after params_file
    package: str = "warpd_ros"


def shipped_model() -> str:
    """Path of the PushT model bundle that ships with warpd_core."""
    from warpd_core.assets import SHIPPED_PUSHT_MODEL

    return str(SHIPPED_PUSHT_MODEL)


PUSHT_SIM_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("horizon", "16", "Action horizon: control steps each generated policy runs (0 = the model's own)."),
    LaunchArg("mode", "lockstep", "lockstep (sim waits for every action; deterministic) or realtime (sim steps on its own clock)."),
    LaunchArg("rate_hz", "10.0", "Simulation/control rate in realtime mode (PushT: 10 Hz)."),
    LaunchArg("perturbation", "true", "Run a perturbation node (true/false)."),
    LaunchArg("perturbation_package", "warpd_ros", "Package of the perturbation node (swap in your own)."),
    LaunchArg("perturbation_executable", "perturbation", "Executable of the perturbation node (swap in your own)."),
    LaunchArg("magnitude", "40.0", "Perturbation: displacement of the T block in pixels."),
    LaunchArg("probability", "0.1", "Perturbation: probability per control step."),
    LaunchArg("model", "", "Model bundle directory for the generator ('' = the shipped PushT model)."),
    LaunchArg("backend", "torch", "Generator backend: torch, or onnx (ONNX Runtime; the bundle needs its graphs: "
              "warpd export --bundle DIR --onnx --out DIR2)."),
    LaunchArg("episodes", "3", "Episodes the simulation runs before it exits (0 = forever)."),
    LaunchArg("seed", "0", "Seed of the first episode (episode k uses seed + k) and of the generator."),
    LaunchArg("max_steps", "300", "Maximum steps per episode."),
    LaunchArg("headless", "true", "true: no window; false: show the simulation in a window."),
    LaunchArg("record", "", "Write a GIF/MP4 of the first episode to this path ('' = none)."),
    LaunchArg("params_file", "", "Extra params file applied to every node after the package's own ('' = none)."),
)


def _bool(v: str, name: str = "") -> bool:
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name + ':=' if name else ''}{v}: expected true or false")


def _number(a: dict[str, str], name: str, kind=int, low: float | None = None):
    """``a[name]`` as ``kind``; ValueError naming the argument (not "invalid literal for int()")."""
    try:
        v = kind(a[name])
    except ValueError:
        raise ValueError(f"{name}:={a[name]}: expected {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(v):
        raise ValueError(f"{name}:={a[name]}: expected a finite number")
    if low is not None and v < low:
        raise ValueError(f"{name}:={a[name]}: must be >= {low}")
    return v


def check_params_file(path: str) -> None:
    """A user params file must exist and be a YAML mapping; otherwise every node would die in
    rcl with a traceback of its own. ValueError with one line naming the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"params_file:={path}: no such file")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"params_file:={path}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) and "ros__parameters" in v for v in doc.values()):
        raise ValueError(f"params_file:={path}: expected '<node name>: ros__parameters: {{...}}' entries")


def model_id_of(bundle: str) -> str:
    """The bundle's model id ('' when it cannot be read: the generator then fails with the reason)."""
    try:
        return str(json.loads((Path(bundle) / "bundle.json").read_text())["model_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def resolve_args(overrides: dict[str, str], spec: tuple[LaunchArg, ...] = PUSHT_SIM_ARGS) -> dict[str, str]:
    known = {a.name: a.default for a in spec}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown}; known: {sorted(known)}")
    known.update({k: str(v) for k, v in overrides.items()})
    return known


def pusht_sim_graph(args: dict[str, str]) -> list[NodeSpec]:
    """generator + controller + pusht_sim (+ perturbation) for the given argument values."""
    a = resolve_args(args)
    lockstep = a["mode"] == "lockstep"
    if a["mode"] not in ("lockstep", "realtime"):
        raise ValueError(f"mode must be lockstep or realtime, got {a['mode']!r}")
    perturb = _bool(a["perturbation"], "perturbation")
    model = a["model"] or shipped_model()
    horizon = _number(a, "horizon", low=0)
    seed = _number(a, "seed", low=0)
    qos = "reliable" if lockstep else "sensor"
    if a["backend"] not in ("torch", "onnx"):
        raise ValueError(f"backend must be torch or onnx, got {a['backend']!r}")
    if a["params_file"]:
        check_params_file(a["params_file"])
    nodes = [
        NodeSpec(
            "generator",
            "warpd_generator",
            "config/pusht_generator.yaml",
            {"bundle": model, "horizon": horizon, "seed": seed, "lead_steps": 0 if lockstep else -1, "obs_qos": qos,
             "backend": a["backend"]},
        ),
        NodeSpec(
            "controller",
            "warpd_controller",
            "config/pusht_controller.yaml",
            {"mode": a["mode"], "obs_qos": qos, "max_policy_age": max(256, 2 * horizon),
             "expected_model_id": model_id_of(model)},
        ),
        NodeSpec(
            "pusht_sim",
            "pusht_sim",
            "config/pusht_sim.yaml",
            {
                "mode": a["mode"],
                "rate_hz": _number(a, "rate_hz", float),
                "episodes": _number(a, "episodes", low=0),
                "seed": seed,
                "max_steps": _number(a, "max_steps", low=1),
                "headless": _bool(a["headless"], "headless"),
                "record": a["record"],
                "wait_for_perturbation": perturb and lockstep,
                "obs_qos": qos,
            },
        ),
    ]
    if perturb:
        nodes.append(
            NodeSpec(
                a["perturbation_executable"],
                "perturbation",
                "config/pusht_perturbation.yaml",
                {"magnitude": _number(a, "magnitude", float), "probability": _number(a, "probability", float),
                 "seed": seed + 7919},
                package=a["perturbation_package"],
            )
        )
    if a["params_file"]:
        for n in nodes:
            n.extra_params_files.append(a["params_file"])
    return nodes


ROBOSUITE_SIM_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("task", "lift", "robosuite task: lift or can (Panda, OSC_POSE, 20 Hz)."),
    LaunchArg("model", "", "Model bundle directory for the generator (required: no robosuite model ships)."),
    LaunchArg("horizon", "0", "Action horizon in control steps (0 = the model's own)."),
    LaunchArg("mode", "lockstep", "lockstep (sim waits for every action) or realtime (sim steps at rate_hz)."),
    LaunchArg("rate_hz", "20.0", "Simulation/control rate in realtime mode."),
    LaunchArg("action_source", "warpd", "warpd: the controller's Action topic; commands: Float64MultiArray on command_topic."),
    LaunchArg("command_topic", "/forward_command_controller/commands", "Command topic for action_source=commands."),
    LaunchArg("perturbation", "true", "Run an end-effector perturbation node (true/false)."),
    LaunchArg("perturbation_package", "warpd_ros", "Package of the perturbation node (swap in your own)."),
    LaunchArg("perturbation_executable", "ee_perturbation", "Executable of the perturbation node (swap in your own)."),
    LaunchArg("probability", "0.1", "Perturbation: probability per control step."),
    LaunchArg("translation", "0.05", "Perturbation: end-effector translation in metres."),
    LaunchArg("rotation", "0.0", "Perturbation: end-effector rotation in radians."),
    LaunchArg("episodes", "3", "Episodes the simulation runs before it exits (0 = forever)."),
    LaunchArg("seed", "0", "Seed of the first episode (episode k uses seed + k) and of the generator."),
    LaunchArg("max_steps", "400", "Maximum steps per episode."),
    LaunchArg("params_file", "", "Extra params file applied to every node after the package's own ('' = none)."),
)


def robosuite_sim_graph(args: dict[str, str]) -> list[NodeSpec]:
    """generator + controller + robosuite_sim (+ end-effector perturbation)."""
    a = resolve_args(args, ROBOSUITE_SIM_ARGS)
    if a["task"] not in ("lift", "can"):
        raise ValueError(f"task must be lift or can, got {a['task']!r}")
    if a["mode"] not in ("lockstep", "realtime"):
        raise ValueError(f"mode must be lockstep or realtime, got {a['mode']!r}")
    if not a["model"]:
        raise ValueError("model:= is required for the robosuite graph (train one: see README)")
    lockstep = a["mode"] == "lockstep"
    perturb = _bool(a["perturbation"], "perturbation")
    horizon, seed = _number(a, "horizon", low=0), _number(a, "seed", low=0)
    qos = "reliable" if lockstep else "sensor"
    if a["params_file"]:
        check_params_file(a["params_file"])
    nodes = [
        NodeSpec("generator", "warpd_generator", "config/robosuite_generator.yaml",
                 {"bundle": a["model"], "horizon": horizon, "seed": seed, "lead_steps": 0 if lockstep else -1, "obs_qos": qos}),
        NodeSpec("controller", "warpd_controller", f"config/robosuite_{a['task']}_controller.yaml",
                 {"mode": a["mode"], "obs_qos": qos, "max_policy_age": max(256, 2 * horizon),
                  "expected_model_id": model_id_of(a["model"])}),
        NodeSpec("robosuite_sim", "robosuite_sim", "config/robosuite_sim.yaml",
                 {"task": a["task"], "mode": a["mode"], "rate_hz": _number(a, "rate_hz", float),
                  "episodes": _number(a, "episodes", low=0), "seed": seed, "max_steps": _number(a, "max_steps", low=1),
                  "action_source": a["action_source"],
                  "command_topic": a["command_topic"], "wait_for_perturbation": perturb and lockstep, "obs_qos": qos}),
    ]
    if perturb:
        nodes.append(NodeSpec(a["perturbation_executable"], "ee_perturbation", "config/robosuite_ee_perturbation.yaml",
                              {"probability": _number(a, "probability", float),
                               "translation": _number(a, "translation", float),
                               "rotation": _number(a, "rotation", float), "seed": seed + 7919},
                              package=a["perturbation_package"]))
    if a["params_file"]:
        for n in nodes:
            n.extra_params_files.append(a["params_file"])
    return nodes


ROBOT_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("params_file", "", "Robot params file: topics, joint names, limits, rates (see config/robot_arm_example.yaml). Required."),
    LaunchArg("model", "", "Model bundle directory ('' = the one named in params_file)."),
    LaunchArg("autostart", "false", "Configure and activate both nodes at start-up; false = bring them up with `ros2 lifecycle set`."),
    LaunchArg("generator", "true", "Start the generator here (false: it runs on another machine, e.g. a GPU host on the same ROS_DOMAIN_ID)."),
    LaunchArg("controller", "true", "Start the controller here (false: it runs on the robot computer)."),
)


def robot_graph(args: dict[str, str]) -> list[NodeSpec]:
    """generator + controller only; everything robot-specific comes from ``params_file``."""
    a = resolve_args(args, ROBOT_ARGS)
    if not a["params_file"]:
        raise ValueError("params_file:= is required (start from config/robot_arm_example.yaml)")
    check_params_file(a["params_file"])
    auto = _bool(a["autostart"], "autostart")
    nodes = []
    if _bool(a["generator"], "generator"):
        gen = {"autostart": auto}
        if a["model"]:
            gen["bundle"] = a["model"]
        nodes.append(NodeSpec("generator", "warpd_generator", None, gen, extra_params_files=[a["params_file"]]))
    if _bool(a["controller"], "controller"):
        ctl = {"autostart": auto}
        if a["model"] and model_id_of(a["model"]):
            ctl["expected_model_id"] = model_id_of(a["model"])
        nodes.append(NodeSpec("controller", "warpd_controller", None, ctl, extra_params_files=[a["params_file"]]))
    if not nodes:
        raise ValueError("generator:=false and controller:=false leave nothing to start")
    return nodes
