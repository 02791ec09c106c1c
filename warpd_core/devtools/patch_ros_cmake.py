"""Point the ROS 2 wheels' exported CMake files at this machine's Python and numpy headers.

The Kilted wheels were built in a manylinux container; their ``share/*/cmake/*.cmake``
exports name ``/opt/python/cp311-cp311/include/python3.11`` and that container's numpy
include directory. CMake refuses imported targets whose include paths do not exist, so
interface generation (colcon build of msg/) fails until they are rewritten. Idempotent.

Usage: ``python -m warpd_core.devtools.patch_ros_cmake <venv>``
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

_PY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
_NP_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include")


def patch(prefix: Path) -> int:
    import numpy

    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    changed = 0
    for f in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        text = f.read_text()
        new = _NP_INCLUDE.sub(np_inc, _PY_INCLUDE.sub(py_inc, text))
        if new != text:
            f.write_text(new)
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m warpd_core.devtools.patch_ros_cmake <venv prefix>", file=sys.stderr)
        return 2
    prefix = Path(argv[0])
    if not (prefix / "share").is_dir():
        print(f"patch_ros_cmake: {prefix}/share not found (are the ros-* wheels installed?)", file=sys.stderr)
        return 1
    n = patch(prefix)
    print(f"patch_ros_cmake: rewrote include paths in {n} CMake file(s) under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main())
