"""The node graphs, described once.

Both ``launch/pusht_sim.launch.py`` (launch_ros, for users with a ROS 2 distribution) and
``python -m warpd_ros.graph`` (for wheels-only installs, where launch_ros is not available)
build their processes from these descriptions: same executables, same params files, same
arguments. Pure Python: importable without launch_ros.
"""

from __future__ import annotations

import re
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

# What a graph does when one of its processes exits. The launch files (warpd_ros.launch_util)
# and the runner (warpd_ros.graph) both follow these two rules, so `ros2 launch` and
# `python -m warpd_ros.graph` end at the same moment with the same verdict:
# * ENDS_GRAPH (the simulation): its exit ends the graph; the others are stopped with SIGINT.
# * REQUIRED (everything else): its exit, before the graph ends, stops the graph.
# Any non-zero exit, at any time, makes the graph fail, and the failing node's last error line
# is the last thing printed.
ENDS_GRAPH = "ends_graph"
REQUIRED = "required"
_LOG_LINE = re.compile(r"\[(DEBUG|INFO|WARN)\] \[")


def error_line(line: str) -> bool:
    """Whether a line a node wrote to stderr can be the error its failure is reported with: not
    one of its own DEBUG/INFO/WARN log lines (rcutils logs every level to stderr)."""
    return bool(line.strip()) and not _LOG_LINE.match(line.strip())


def exit_failure(name: str, code: int, error: str) -> str:
    """How both starters report a node that exited non-zero ('' for a clean exit)."""
    if code == 0:
        return ""
    how = f"exited with code {code}"
    if code < 0:
        import signal

        try:
            how += f" ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return f"{name} {how}" + (f": {error}" if error else "")


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
    on_exit: str = REQUIRED  # ENDS_GRAPH | REQUIRED: what the graph does when this process exits
    namespace: str = ""  # '' = the enclosing one (a PushROSNamespace, or /)
    remappings: list = field(default_factory=list)  # [(from, to)] topic remappings


def shipped_model() -> str:
    """Path of the PushT model bundle that ships with warpd_core."""
    from warpd_core.assets import SHIPPED_PUSHT_MODEL

    return str(SHIPPED_PUSHT_MODEL)


# Arguments every graph takes: where it lives in the ROS graph.
PLACEMENT_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("namespace", "", "Namespace of every node and topic of the graph, e.g. robot1 ('' = the enclosing "
              "namespace); /diagnostics stays global."),
    LaunchArg("remap", "", "Topic remappings applied to every node, 'from:=to' pairs separated by spaces or commas, "
              "e.g. 'observation:=/arm/obs action:=/arm/cmd' ('' = none)."),
)

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
) + PLACEMENT_ARGS


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


def stream_qos(mode: str) -> str:
    """The QoS of the observation stream for a graph mode -- one decision, given as ``obs_qos`` to
    every node on the stream (sim, controller, generator, perturbation): lockstep is lossless
    (the sim waits for each answer), realtime keeps only the newest sample (best effort). A node
    left on the other profile would receive nothing (a best-effort publisher never reaches a
    reliable subscriber)."""
    if mode not in ("lockstep", "realtime"):
        raise ValueError(f"argument mode must be lockstep or realtime, got {mode!r}")
    return "reliable" if mode == "lockstep" else "sensor"


_NAMESPACE = re.compile(r"/?([A-Za-z_][A-Za-z0-9_]*)(/[A-Za-z_][A-Za-z0-9_]*)*/?")
_TOPIC = re.compile(r"[~/]?[A-Za-z_{][A-Za-z0-9_{}/~]*")


def parse_remaps(text: str) -> list[tuple[str, str]]:
    """``'observation:=/arm/obs, action:=/arm/cmd'`` -> [('observation', '/arm/obs'), ('action', '/arm/cmd')]."""
    out = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        src, sep, dst = item.partition(":=")
        if not sep or not _TOPIC.fullmatch(src) or not _TOPIC.fullmatch(dst):
            raise ValueError(f"argument remap: {item!r} is not a topic remapping 'from:=to' (e.g. observation:=/arm/obs)")
        out.append((src, dst))
    return out


def _place(nodes: list[NodeSpec], a: dict[str, str]) -> list[NodeSpec]:
    """Apply what every graph shares to its nodes: the user's params file, namespace and remappings."""
    ns = a["namespace"].strip()
    if ns and ns != "/" and not _NAMESPACE.fullmatch(ns):
        raise ValueError(f"argument namespace: {ns!r} is not a ROS namespace (names of letters, digits and _ "
                         "separated by /, not starting with a digit)")
    remaps = parse_remaps(a["remap"])
    for n in nodes:
        if a["params_file"]:
            n.extra_params_files.append(a["params_file"])
        n.namespace = ns.rstrip("/") if ns != "/" else ns
        n.remappings = list(remaps)
    return nodes


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
    qos = stream_qos(a["mode"])
    lockstep = a["mode"] == "lockstep"
    if a["mode"] not in ("lockstep", "realtime"):
        raise ValueError(f"mode must be lockstep or realtime, got {a['mode']!r}")
    perturb = _bool(a["perturbation"], "perturbation")
    model = a["model"] or shipped_model()
    horizon = _number(a, "horizon", low=0)
    seed = _number(a, "seed", low=0)
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
            on_exit=ENDS_GRAPH,
        ),
    ]
    if perturb:
        nodes.append(
            NodeSpec(
                a["perturbation_executable"],
                "perturbation",
                "config/pusht_perturbation.yaml",
                {"magnitude": _number(a, "magnitude", float), "probability": _number(a, "probability", float),
                 "seed": seed + 7919, "obs_qos": qos},
                package=a["perturbation_package"],
            )
        )
    return _place(nodes, a)


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
) + PLACEMENT_ARGS


def robosuite_sim_graph(args: dict[str, str]) -> list[NodeSpec]:
    """generator + controller + robosuite_sim (+ end-effector perturbation)."""
    a = resolve_args(args, ROBOSUITE_SIM_ARGS)
    if a["task"] not in ("lift", "can"):
        raise ValueError(f"task must be lift or can, got {a['task']!r}")
    qos = stream_qos(a["mode"])
    if not a["model"]:
        raise ValueError("model:= is required for the robosuite graph (train one: see README)")
    lockstep = a["mode"] == "lockstep"
    perturb = _bool(a["perturbation"], "perturbation")
    horizon, seed = _number(a, "horizon", low=0), _number(a, "seed", low=0)
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
                  "command_topic": a["command_topic"], "wait_for_perturbation": perturb and lockstep, "obs_qos": qos},
                 on_exit=ENDS_GRAPH),
    ]
    if perturb:
        nodes.append(NodeSpec(a["perturbation_executable"], "ee_perturbation", "config/robosuite_ee_perturbation.yaml",
                              {"probability": _number(a, "probability", float),
                               "translation": _number(a, "translation", float),
                               "rotation": _number(a, "rotation", float), "seed": seed + 7919, "obs_qos": qos},
                              package=a["perturbation_package"]))
    return _place(nodes, a)


ROBOT_ARGS: tuple[LaunchArg, ...] = (
    LaunchArg("params_file", "", "Robot params file: topics, joint names, limits, rates (see config/robot_arm_example.yaml). Required."),
    LaunchArg("model", "", "Model bundle directory ('' = the one named in params_file)."),
    LaunchArg("autostart", "false", "Configure and activate both nodes at start-up; false = bring them up with `ros2 lifecycle set`."),
    LaunchArg("generator", "true", "Start the generator here (false: it runs on another machine, e.g. a GPU host on the same ROS_DOMAIN_ID)."),
    LaunchArg("controller", "true", "Start the controller here (false: it runs on the robot computer)."),
) + PLACEMENT_ARGS


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
        nodes.append(NodeSpec("generator", "warpd_generator", None, gen))
    if _bool(a["controller"], "controller"):
        ctl = {"autostart": auto}
        if a["model"] and model_id_of(a["model"]):
            ctl["expected_model_id"] = model_id_of(a["model"])
        nodes.append(NodeSpec("controller", "warpd_controller", None, ctl))
    if not nodes:
        raise ValueError("generator:=false and controller:=false leave nothing to start")
    return _place(nodes, a)
