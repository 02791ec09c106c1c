"""Shared fixtures. ROS tests run real rclpy/Fast DDS processes on this machine only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_PUSHT = REPO.parent / "shared" / "data" / "pusht" / "pusht_cchi_v7_replay.zarr"

# Keep DDS discovery on this machine and away from other test runs happening beside us.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost.xml"))
os.environ["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)


def ros_available() -> bool:
    try:
        import rclpy  # noqa: F401
        from warpd_ros.msg import PolicyWeights  # noqa: F401
    except Exception:
        return False
    return True


requires_ros = pytest.mark.skipif(not ros_available(), reason="rclpy / built warpd_ros interfaces not available (run `make setup` and source .venv/warpd-env.sh)")


def node_executable(name: str) -> str:
    from ament_index_python.packages import get_package_prefix

    return str(Path(get_package_prefix("warpd_ros")) / "lib" / "warpd_ros" / name)


@pytest.fixture(scope="session")
def init_bundle(tmp_path_factory) -> Path:
    """A PushT-shaped bundle with freshly initialised weights (2x256 policy, small models)."""
    out = tmp_path_factory.mktemp("bundle") / "init"
    subprocess.run(
        [sys.executable, "-m", "warpd_core", "export", "init", "--obs-dim", "5", "--act-dim", "2",
         "--hidden", "256", "256", "--horizon", "8", "--decoder", "xs", "--unet", "xs", "--seed", "0",
         "--out", str(out)],
        check=True, cwd=REPO,
    )
    return out


@pytest.fixture(scope="session")
def pusht_zarr() -> Path:
    if not SHARED_PUSHT.exists():
        pytest.skip(f"Diffusion Policy's PushT data not found at {SHARED_PUSHT} (the shared/ folder beside the checkout)")
    return SHARED_PUSHT
