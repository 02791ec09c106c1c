"""warpd_core never needs ROS; the controller never loads torch; no two modules import each other."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import warpd_core

REPO = Path(__file__).resolve().parents[1]

BLOCK_ROS = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {'rclpy', 'rcl_interfaces', 'std_msgs', 'sensor_msgs', 'launch', 'launch_ros', 'warpd_ros'}:
            raise ImportError(f'{name} blocked: warpd_core must not import ROS')
sys.meta_path.insert(0, Block())
"""


def core_modules() -> list[str]:
    mods = []
    for m in pkgutil.walk_packages(warpd_core.__path__, "warpd_core."):
        mods.append(m.name)
    return sorted(mods)


def test_warpd_core_imports_without_ros():
    mods = [m for m in core_modules() if not m.endswith("__main__")]
    code = BLOCK_ROS + "import importlib\nfor m in %r:\n    importlib.import_module(m)\nprint('ok', len(%r))" % (mods, mods)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(mods) > 10


def test_controller_process_never_imports_torch():
    code = "import sys, warpd_ros.controller; bad = [m for m in ('torch', 'diffusers', 'hypnettorch') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at the top or inside a function (a lazy import
    that only breaks a circle at import time still ties the two modules together)."""
    files = {}
    for pkg in ("warpd_core", "warpd_ros"):
        for path in (REPO / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = path

    def owner(name: str) -> str:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name

    graph = {m: set() for m in files}
    for m, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            graph[m].update(o for o in map(owner, names) if o and o != m)
    return graph


def test_no_import_circles():
    graph = import_graph()

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            m = todo.pop()
            if m == b:
                return True
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return False

    circles = sorted(f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if reaches(b, a))
    assert len(graph) > 50 and not circles, circles
