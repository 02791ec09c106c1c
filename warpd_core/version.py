"""Which warpd this is: the package version and, in a git checkout, the revision.

:func:`package_version` is the version of the installed distribution (``pip install .``, the
editable install ``make setup`` makes). A tree that was never pip-installed -- a source
checkout on ``PYTHONPATH``, or the colcon install of a ROS distribution workspace, which
copies ``warpd_core`` without distribution metadata -- falls back to the ``version`` in
``pyproject.toml`` beside the package, then to the ``<version>`` of the ament package's
``share/warpd_ros/package.xml``. ``test_packaging.py`` keeps those equal.

:func:`git_revision` is what checkpoints and bundle.json record as the code that made them:
``{"commit": <40 hex>, "dirty": <tracked files differ from it>}``, or None where the package
is not the working tree of a git checkout (an installed wheel) or git is not available.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

DISTRIBUTION = "warpd"
UNKNOWN = "0+unknown"
_HERE = Path(__file__).resolve().parent  # .../warpd_core


def _metadata_version() -> str | None:
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    # Metadata of another copy (a venv's install of a different checkout) does not describe
    # this one: trust it only where it is this tree's install (wheel) or points at this tree
    # (editable).
    installed = Path(dist.locate_file("warpd_core/__init__.py"))
    if installed.exists() and installed.resolve().parent == _HERE:
        return dist.version
    direct = dist.read_text("direct_url.json") or ""
    match = re.search(r'"url"\s*:\s*"file://([^"]+)"', direct)
    if match and Path(match.group(1)).resolve() == _HERE.parent:
        return dist.version
    return None


def _file_version(path: Path, pattern: str) -> str | None:
    try:
        match = re.search(pattern, path.read_text(encoding="utf-8"), re.MULTILINE)
    except OSError:
        return None
    return match.group(1) if match else None


def package_version() -> str:
    """The version string of this warpd (see the module docstring for where it comes from)."""
    found = _metadata_version()
    if found:
        return found
    found = _file_version(_HERE.parent / "pyproject.toml", r'^version\s*=\s*"([^"]+)"')
    if found:
        return found
    for prefix in list(_HERE.parents)[:5]:  # <prefix>/lib/pythonX.Y/site-packages/warpd_core
        found = _file_version(prefix / "share" / "warpd_ros" / "package.xml", r"<version>\s*([^<\s]+)\s*</version>")
        if found:
            return found
    return UNKNOWN


def git_revision(path: str | os.PathLike | None = None) -> dict | None:
    """``{"commit", "dirty"}`` of the git checkout whose working tree holds ``path`` (default:
    this package), or None. Only a checkout whose top level holds ``warpd_core/`` counts, so an
    install inside some other repository (a venv in a project folder) is not mistaken for it.
    ``dirty`` counts tracked files only: results and runs in the tree do not make it dirty."""
    where = Path(path).resolve() if path is not None else _HERE
    if where.is_file():
        where = where.parent

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top or not (Path(top) / "warpd_core").is_dir():
        return None
    if path is None and Path(top).resolve() != _HERE.parent:
        return None
    commit = git("rev-parse", "--verify", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    if not commit or status is None:
        return None
    return {"commit": commit, "dirty": bool(status)}


def describe() -> str:
    """``warpd 0.1.0``, plus ``(git 1234567890ab[, modified])`` in a git checkout."""
    text = f"{DISTRIBUTION} {package_version()}"
    rev = git_revision()
    if rev is not None:
        text += f" (git {rev['commit'][:12]}{', modified' if rev['dirty'] else ''})"
    return text
