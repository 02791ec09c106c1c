"""warpd_core never needs ROS; the controller never loads torch."""

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
