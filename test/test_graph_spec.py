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
        assert list(params) == [spec.name], f"{spec.params_file} must be keyed by node name {spec.name}"
        unknown = set(params[spec.name]["ros__parameters"]) - declared
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
