"""The launch file and the wheels-only graph runner start the same graph, and every
parameter they set is one the node declares."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from warpd_ros import graph_spec

REPO = Path(__file__).resolve().parents[1]


def declared_parameters(executable: str) -> set[str]:
    """Names passed to declare()/p() in warpd_ros/<executable>.py."""
    tree = ast.parse((REPO / "warpd_ros" / f"{executable}.py").read_text())
    names = set()
    # parameters declared from a module-level table of (name, default, description) rows
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "").endswith("_PARAMS") for t in node.targets):
            for row in node.value.elts:
                names.add(row.elts[0].value)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        fn = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if fn == "p" and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names.add(node.args[0].value)
        if fn in ("declare", "declare_cpu_list") and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
            names.add(node.args[1].value)
    return names


GRAPHS = {"pusht_sim": ("PUSHT_SIM_ARGS", "pusht_sim_graph"), "robosuite_sim": ("ROBOSUITE_SIM_ARGS", "robosuite_sim_graph")}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_launch_file_declares_every_argument_and_uses_the_shared_graph(graph):
    args_name, builder = GRAPHS[graph]
    src = (REPO / "launch" / f"{graph}.launch.py").read_text()
    tree = ast.parse(src)
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert {args_name, builder, "describe"} <= imported
    assert f"describe({args_name}, {builder})" in src
    util = (REPO / "warpd_ros" / "launch_util.py").read_text()
    assert "DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)" in util
    from warpd_ros.graph import GRAPHS as RUNNER_GRAPHS  # the runner serves the same graphs

    assert RUNNER_GRAPHS[graph] == (getattr(graph_spec, args_name), getattr(graph_spec, builder))
    # every argument has a description a user can read in `ros2 launch -s`
    assert all(a.description.strip() for a in getattr(graph_spec, args_name))


@pytest.mark.parametrize("builder, overrides", [
    (graph_spec.pusht_sim_graph, {}),
    (graph_spec.pusht_sim_graph, {"perturbation": "false"}),
    (graph_spec.pusht_sim_graph, {"mode": "realtime", "horizon": "64", "backend": "onnx"}),
    (graph_spec.robosuite_sim_graph, {"model": "/m", "task": "lift"}),
    (graph_spec.robosuite_sim_graph, {"model": "/m", "task": "can", "mode": "realtime", "perturbation": "false"}),
])
def test_every_node_parameter_is_declared_and_params_files_exist(builder, overrides):
    cmake = (REPO / "CMakeLists.txt").read_text()
    installed = set(re.search(r"set\(WARPD_NODES ([^)]*)\)", cmake).group(1).split())
    for spec in builder(overrides):
        assert spec.executable in installed, f"{spec.executable} is not installed to lib/warpd_ros"
        declared = declared_parameters(spec.executable)
        unknown = set(spec.parameters) - declared
        assert not unknown, f"{spec.executable}: graph sets undeclared parameters {unknown}"
        params = yaml.safe_load((REPO / spec.params_file).read_text())
        # '/**/name': the file applies whatever namespace the graph is started in
        assert list(params) == [f"/**/{spec.name}"], f"{spec.params_file} must be keyed by /**/{spec.name}"
        unknown = set(params[f"/**/{spec.name}"]["ros__parameters"]) - declared
        assert not unknown, f"{spec.params_file}: undeclared parameters {unknown}"


def test_perturbation_can_be_switched_off_or_swapped():
    names = lambda o: {s.name: s for s in graph_spec.pusht_sim_graph(o)}  # noqa: E731
    assert "perturbation" in names({}) and "perturbation" not in names({"perturbation": "false"})
    swapped = names({"perturbation_package": "my_pkg", "perturbation_executable": "my_adversary"})["perturbation"]
    assert (swapped.package, swapped.executable) == ("my_pkg", "my_adversary")
    with pytest.raises(ValueError, match="unknown argument"):
        graph_spec.pusht_sim_graph({"horizn": "16"})
    with pytest.raises(ValueError, match="mode"):
        graph_spec.pusht_sim_graph({"mode": "fast"})


def test_backend_argument_reaches_the_generator():
    gen = lambda o: {s.name: s for s in graph_spec.pusht_sim_graph(o)}["warpd_generator"]  # noqa: E731
    assert gen({}).parameters["backend"] == "torch" and gen({"backend": "onnx"}).parameters["backend"] == "onnx"
    with pytest.raises(ValueError, match="backend"):
        graph_spec.pusht_sim_graph({"backend": "tensorrt"})


@pytest.mark.parametrize("builder, overrides", [
    (graph_spec.pusht_sim_graph, {"mode": "lockstep"}),
    (graph_spec.pusht_sim_graph, {"mode": "realtime"}),
    (graph_spec.robosuite_sim_graph, {"model": "/m", "mode": "realtime"}),
    (graph_spec.robosuite_sim_graph, {"model": "/m", "mode": "lockstep"}),
])
def test_one_stream_qos_per_mode_for_every_node_on_the_topic(builder, overrides):
    # the perturbation node used to keep `reliable` in realtime and receive nothing
    specs = builder(overrides)
    assert {s.parameters["obs_qos"] for s in specs} == {graph_spec.stream_qos(overrides["mode"])}
    assert len(specs) == 4
    for spec in specs:
        assert "obs_qos" in declared_parameters(spec.executable)


def test_exit_rules_the_sim_ends_the_graph_everything_else_is_required():
    for specs in (graph_spec.pusht_sim_graph({}), graph_spec.robosuite_sim_graph({"model": "/m"})):
        ends = [s.executable for s in specs if s.on_exit == graph_spec.ENDS_GRAPH]
        assert ends in (["pusht_sim"], ["robosuite_sim"])
        assert all(s.on_exit == graph_spec.REQUIRED for s in specs if s.executable not in ends)
    arm = str(REPO / "config" / "robot_arm_example.yaml")  # the robot graph checks that the file exists
    robot = graph_spec.robot_graph({"params_file": arm})
    assert {s.on_exit for s in robot} == {graph_spec.REQUIRED} and all(s.extra_params_files == [arm] for s in robot)
    # the launch files and the runner both read the rule from the specs, not from executable names
    util = (REPO / "warpd_ros" / "launch_util.py").read_text()
    runner = (REPO / "warpd_ros" / "graph.py").read_text()
    assert "graph_spec.ENDS_GRAPH" in util and "graph_spec.ENDS_GRAPH" in runner
    assert "OnProcessExit(target_action=node" in util and "Shutdown(" in util


def test_namespace_and_remap_arguments_reach_every_node():
    specs = graph_spec.pusht_sim_graph({"namespace": "robot1", "remap": "observation:=/arm/obs, action:=/arm/cmd"})
    assert {s.namespace for s in specs} == {"robot1"}
    assert all(s.remappings == [("observation", "/arm/obs"), ("action", "/arm/cmd")] for s in specs)
    assert {s.namespace for s in graph_spec.pusht_sim_graph({})} == {""}
    with pytest.raises(ValueError, match="argument namespace: '1robot'"):
        graph_spec.pusht_sim_graph({"namespace": "1robot"})
    with pytest.raises(ValueError, match="argument remap: 'observation=/x' is not a topic remapping"):
        graph_spec.pusht_sim_graph({"remap": "observation=/x"})
    for args, _ in (graph_spec.PUSHT_SIM_ARGS, None), (graph_spec.ROBOSUITE_SIM_ARGS, None), (graph_spec.ROBOT_ARGS, None):
        assert {"namespace", "remap"} <= {a.name for a in args}
