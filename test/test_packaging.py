"""Packaging: ``pip install .`` into a fresh virtualenv gives a working library, extra by extra,
and the metadata (pyproject.toml, package.xml, LICENSE, the requirements files) agrees.

The fresh-venv tests build the wheel once from a copy of this tree, make a virtualenv without
system site packages and without the dev environment (no PYTHONPATH, no ROS prefix), and install
the wheel with ``-c requirements.lock`` through pip's configuration as ``make setup`` has it
(torch from the machine's local CPU wheel, the rest from the package index; pip's cache makes
a repeat cheap). Then extra by extra, each adding to the last: the base install (``--version``,
``--help``, bundle reading and the controller core, no torch), ``[onnx]`` (the generator's ONNX
backend and ``warpd bench generator --bundle``, still no torch), ``[data]`` (``warpd data``: zarr 2, LeRobot; the command is listed in
``--help``), ``[torch]`` (``warpd export init``), ``[train]`` (train both stages, export from
the checkpoints: bundle.json's provenance), ``[sim]`` (``warpd expert pusht-eval``) and
``[eval]`` (``warpd eval pusht``). Each step checks that its command fails or is missing
without the extra where the order allows it, so a dependency dropped from an extra fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
CONFIGS = REPO / "config" / "train"
LEROBOT = REPO / "test" / "fixtures" / "lerobot_tiny"


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock_pins() -> dict[str, list[str]]:
    pins: dict[str, list[str]] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins.setdefault(_canon(name), []).append(version)
    return pins


def _requirement_lines(path: Path) -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def _declared() -> dict[str, list[str]]:
    """extra ('' = base) -> requirement strings, self-references (warpd[...]) left out."""
    proj = PYPROJECT["project"]
    out = {"": list(proj["dependencies"])}
    for extra, reqs in proj["optional-dependencies"].items():
        out[extra] = [r for r in reqs if not r.startswith(f"{proj['name']}[")]
    return out


# -- metadata ---------------------------------------------------------------------------------
def test_versions_agree_and_cli_prints_it():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.findtext("version") == VERSION
    from warpd_core.version import package_version

    assert package_version() == VERSION
    r = subprocess.run([sys.executable, "-m", "warpd_core", "--version"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"warpd {VERSION}"), r.stdout  # + "(git ...)" in a checkout


def test_source_checkout_version_without_metadata(tmp_path):
    """Never pip-installed (a copy on PYTHONPATH): the version comes from pyproject.toml."""
    shutil.copytree(REPO / "warpd_core", tmp_path / "warpd_core", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    code = "import warpd_core; print(warpd_core.__version__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == VERSION
    (tmp_path / "pyproject.toml").unlink()  # the colcon install layout: share/warpd_ros/package.xml
    prefix = tmp_path / "prefix"
    site = prefix / "lib" / "python3" / "site-packages"
    site.mkdir(parents=True)
    shutil.move(tmp_path / "warpd_core", site / "warpd_core")
    (prefix / "share" / "warpd_ros").mkdir(parents=True)
    shutil.copy(REPO / "package.xml", prefix / "share" / "warpd_ros")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=site)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == VERSION


def test_license_and_package_xml():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    root = ET.parse(REPO / "package.xml").getroot()
    lic = root.find("license")
    assert lic.text == "Apache-2.0" and lic.get("file") == "LICENSE"
    maint = root.find("maintainer")
    assert maint.get("email") != "maintainers@warpd.dev"  # the old placeholder domain
    assert {"name": maint.text, "email": maint.get("email")} in PYPROJECT["project"]["maintainers"]
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    catkin_pkg.parse_package(REPO / "package.xml").validate()  # what colcon and rosdep check


def test_package_xml_declares_every_ros_package_the_nodes_import():
    import ast

    ros_names = {n[len("ros-"):].replace("-", "_") for n in _lock_pins() if n.startswith("ros-")} | {"launch", "launch_ros"}
    imported = set()
    for path in [*(REPO / "warpd_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    root = ET.parse(REPO / "package.xml").getroot()
    declared = {e.text for e in root if e.tag in ("depend", "exec_depend", "build_depend", "buildtool_depend")}
    missing = sorted((imported & ros_names) - declared)
    assert not missing, f"package.xml lacks <exec_depend> for {missing}"
    assert {"ament_index_python", "rcl_interfaces"} <= declared


def test_every_third_party_import_is_declared_in_an_extra():
    """A new ``import x`` in warpd_core needs x's distribution in pyproject.toml (base or an extra)."""
    import ast
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    declared = {_canon(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for reqs in _declared().values() for r in reqs}
    ros = {"rclpy", "warpd_ros", "ament_index_python"}  # warpd_core imports ROS only inside warpd_ros calls
    missing = {}
    for path in (REPO / "warpd_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ros or top == "warpd_core":
                    continue
                if not any(_canon(d) in declared for d in dists.get(top, [top])):
                    missing.setdefault(top, set()).add(str(path.relative_to(REPO)))
    assert not missing, f"imports whose distribution no extra declares: {missing}"


def test_lock_pins_every_declared_requirement_within_its_range():
    from packaging.requirements import Requirement

    pins = _lock_pins()
    for extra, reqs in _declared().items():
        for text in reqs:
            req = Requirement(text)
            name = _canon(req.name)
            assert name in pins, f"requirements.lock does not pin {req.name} ([{extra or 'base'}])"
            assert any(req.specifier.contains(v.split("+")[0], prereleases=True) for v in pins[name]), \
                f"requirements.lock pins {req.name}=={pins[name]} outside {req.specifier} ([{extra or 'base'}])"
    # one onnxruntime: the CPU build the extras declare (both install the same module)
    assert "onnxruntime" in pins and "onnxruntime-gpu" not in pins
    top = {_canon(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in _requirement_lines(REPO / "requirements.txt")}
    assert top <= set(pins), f"requirements.txt names packages the lock does not pin: {sorted(top - set(pins))}"


def test_distribution_requirements_have_no_ros_wheels_and_no_colcon():
    lines = _requirement_lines(REPO / "requirements-distro.txt")
    names = {_canon(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in lines}
    assert not {n for n in names if n.startswith(("ros-", "colcon"))}, names
    assert not names & {"osrf-pycommon", "catkin-pkg", "empy", "lark-parser"}  # the distribution's own
    assert not any(ln.startswith(("-e", ".")) for ln in lines)  # colcon installs warpd_core itself
    # everything the library declares (but the test runner's own extra) is there
    wanted = {_canon(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for e, reqs in _declared().items() if e for r in reqs}
    wanted -= {"opencv-python", "mujoco", "numcodecs"}  # come with gym-pusht / robosuite / zarr
    assert not wanted - names, f"requirements-distro.txt lacks {sorted(wanted - names)}"


# -- a fresh virtualenv -----------------------------------------------------------------------
class FreshVenv:
    def __init__(self, root: Path):
        self.root = root
        self.venv = root / "venv"
        self.work = root / "work"  # cwd of every command: nothing importable from the checkout
        self.work.mkdir()
        self.installed: list[str] = []
        self.wheel: Path | None = None
        keep = ("HOME", "TMPDIR", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY",
                "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        self.env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
        self.env.update(PATH=f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", PYTHONNOUSERSITE="1",
                        OMP_NUM_THREADS="1", MPLBACKEND="Agg")

    def run(self, *cmd, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=self.work, env=self.env,
                           timeout=timeout)
        if check:
            assert r.returncode == 0, f"{' '.join(map(str, cmd))} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
        return r

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def warpd(self, *args, **kw) -> subprocess.CompletedProcess:
        return self.run(self.venv / "bin" / "warpd", *args, **kw)

    def pip_install(self, extra: str) -> None:
        target = f"{self.wheel}[{extra}]" if extra else str(self.wheel)
        # --no-compile: byte-compiling all of torch costs more than the rest of the install
        self.run(self.python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-compile", "-c", LOCK,
                 target, timeout=600)
        self.run(self.python, "-m", "pip", "check")  # the extras' requirements agree with each other
        self.installed.append(extra)

    def has(self, dist: str) -> bool:
        return self.run(self.python, "-m", "pip", "show", "-q", dist, check=False).returncode == 0

    def py(self, code: str, **kw) -> subprocess.CompletedProcess:
        return self.run(self.python, "-c", code, **kw)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> FreshVenv:
    root = tmp_path_factory.mktemp("packaging")
    v = FreshVenv(root)
    # build from a copy: an in-tree build would write build/ and *.egg-info into the checkout
    src = root / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "install", "log", "results", "runs", "__pycache__",
                                  "*.egg-info", ".pytest_cache", ".hypothesis")
    shutil.copytree(REPO, src, ignore=skip, symlinks=True)
    v.run(sys.executable, "-m", "venv", v.venv)
    v.run(v.python, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--no-deps", "-w", root / "dist", src)
    (v.wheel,) = (root / "dist").glob("warpd-*.whl")
    assert v.wheel.name.startswith(f"warpd-{VERSION}-py3-none-any")
    v.pip_install("")
    return v


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory) -> Path:
    """An exported PushT-shaped bundle with ONNX graphs, written by the dev environment."""
    out = tmp_path_factory.mktemp("onnx_bundle") / "b"
    subprocess.run([sys.executable, "-m", "warpd_core", "export", "init", "--obs-dim", "5", "--act-dim", "2",
                    "--hidden", "32", "32", "--decoder", "xs", "--unet", "xs", "--latent-dim", "64", "--latent-shape",
                    "8", "8", "--onnx", "--out", str(out)], check=True, cwd=REPO, capture_output=True)
    return out


RUNTIME = """
import sys
import numpy as np
from warpd_core.assets import SHIPPED_PUSHT_MODEL
from warpd_core.export.bundle_format import bundle_provenance, read_bundle
from warpd_core.runtime import ControllerConfig, ControllerCore
meta = read_bundle(SHIPPED_PUSHT_MODEL)  # the shipped model is in the wheel, its sha256 list holds
assert meta["obs_dim"] == 5 and bundle_provenance(meta)["kind"] == "checkpoints"
core = ControllerCore(ControllerConfig(obs_dim=5, act_dim=2))
out = core.step(np.zeros(5, np.float32))
assert out.action.shape == (2,)
assert np.__version__.startswith("1."), np.__version__
assert "torch" not in sys.modules
print("runtime ok")
"""


def test_fresh_venv_base_install(fresh):
    assert fresh.warpd("--version").stdout.strip() == f"warpd {VERSION}"  # from the metadata; no checkout
    help_text = fresh.warpd("--help").stdout
    for command in ("demo", "train", "export", "eval", "bench"):  # their heavy imports wait for the command
        assert re.search(rf"^\s+{command}\s", help_text, re.MULTILINE), help_text
    assert "runtime ok" in fresh.py(RUNTIME).stdout
    loc = fresh.py("import warpd_core; print(warpd_core.__file__)").stdout.strip()
    assert loc.startswith(str(fresh.venv)), loc  # the installed wheel, not the checkout
    assert not fresh.has("torch") and not fresh.has("zarr")


def test_fresh_venv_onnx_extra_runs_the_generator_without_torch(fresh, onnx_bundle):
    code = f"""
import sys
import numpy as np
from warpd_core.export.bundle import load_generator
gen = load_generator({str(onnx_bundle)!r}, backend="onnx", seed=0)
w = gen.generate(np.zeros((1, 5), np.float32))
assert w.shape[0] == 1 and np.all(np.isfinite(w)), w.shape
assert "torch" not in sys.modules
print("onnx ok")
"""
    if "onnx" not in fresh.installed:
        assert fresh.py(code, check=False).returncode != 0  # base alone has no onnxruntime
    fresh.pip_install("onnx")
    assert "onnx ok" in fresh.py(code).stdout
    assert not fresh.has("torch")
    # the extra's command: time the bundle's generator on ONNX Runtime, torch absent
    out = fresh.venv.parent / "bench_onnx"
    fresh.warpd("bench", "generator", "--quick", "--bundle", onnx_bundle, "--out", out)
    doc = json.loads((out / "generator.json").read_text())
    assert {r["backend"] for r in doc["results"]} == {"onnx", "onnx_1thread"}, doc["results"]
    assert all(r["median_ms"] > 0 for r in doc["results"])


def test_fresh_venv_data_extra_lists_and_runs_the_data_commands(fresh):
    if "data" not in fresh.installed:
        assert "warpd_core.data.cli" in fresh.warpd("--help").stdout  # reported unavailable without it
    fresh.pip_install("data")
    help_text = fresh.warpd("--help").stdout
    assert "unavailable" not in help_text, help_text  # data and record (warpd_core.data) listed now
    for command in ("data", "record"):
        assert re.search(rf"^\s+{command}\s", help_text, re.MULTILINE), help_text
    out = fresh.work / "tiny.zarr"
    fresh.warpd("data", "convert", LEROBOT, out, "--overwrite")  # LeRobot parquet -> zarr 2
    text = fresh.warpd("data", "inspect", out).stdout
    assert "episodes: 3" in text and "control rate: 12 Hz" in text, text
    fresh.warpd("data", "convert", out, fresh.work / "tiny.hdf5", "--overwrite")  # -> robomimic hdf5
    fresh.warpd("data", "inspect", fresh.work / "tiny.hdf5")
    if "torch" not in fresh.installed:
        assert not fresh.has("torch")


def test_fresh_venv_torch_extra_exports_an_initialised_bundle(fresh):
    fresh.pip_install("torch")
    out = fresh.work / "init_bundle"
    fresh.warpd("export", "init", "--obs-dim", "5", "--act-dim", "2", "--hidden", "32", "32", "--decoder", "xs",
                "--unet", "xs", "--latent-dim", "64", "--latent-shape", "8", "8", "--out", out)
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["provenance"] == {"kind": "init", "seed": 0, "git": None}  # an installed wheel: no checkout


def test_fresh_venv_train_extra_trains_both_stages_and_exports(fresh):
    vae, dif, bundle = fresh.work / "vae", fresh.work / "dif", fresh.work / "bundle"
    args = ["train", "vae", "--config", CONFIGS / "synthetic_vae.yaml", "--out", vae, "--set", "epochs=1",
            "--set", "snippet_stride=8", "--set", "trajectory_length=24", "--no-progress"]
    fresh.pip_install("train")
    fresh.warpd(*args, timeout=600)
    fresh.warpd("train", "diffusion", "--config", CONFIGS / "synthetic_diffusion.yaml", "--vae", vae, "--out", dif,
                "--set", "epochs=1", "--no-progress", timeout=600)
    fresh.warpd("export", "--vae", vae, "--diffusion", dif, "--out", bundle, "--onnx")
    text = (bundle / "bundle.json").read_text()
    assert str(fresh.root) not in text  # no absolute path of this machine
    prov = json.loads(text)["provenance"]
    assert prov["kind"] == "checkpoints" and prov["git"] is None
    assert prov["training"]["vae"]["config"]["trajectory_length"] == 24
    assert prov["training"]["diffusion"]["config"]["epochs"] == 1 and prov["training"]["vae"]["epoch"] == 1
    code = f"""
import numpy as np
from warpd_core.export.bundle import load_generator
obs = np.array([[0.2, -0.3]], np.float32)
a = load_generator({str(bundle)!r}, backend="torch", seed=0).generate(obs)
b = load_generator({str(bundle)!r}, backend="onnx", seed=0).generate(obs)
np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
print("backends agree")
"""
    assert "backends agree" in fresh.py(code).stdout


def test_fresh_venv_sim_extra_runs_the_scripted_expert(fresh):
    fresh.pip_install("sim")
    text = fresh.warpd("expert", "pusht-eval", "--episodes", "1", "--max-steps", "20", "--workers", "1",
                       "--no-progress").stdout
    assert "score" in text.lower(), text


def test_fresh_venv_eval_extra_evaluates_a_bundle(fresh):
    fresh.pip_install("eval")
    bundle = fresh.work / "init_bundle"
    if not bundle.exists():
        fresh.warpd("export", "init", "--obs-dim", "5", "--act-dim", "2", "--hidden", "32", "32", "--decoder", "xs",
                    "--unet", "xs", "--latent-dim", "64", "--latent-shape", "8", "8", "--out", bundle)
    out = fresh.work / "eval"
    fresh.warpd("eval", "pusht", "--model", bundle, "--profile", "quick", "--seeds", "1", "--repeats", "1",
                "--horizons", "8", "--magnitudes", "0", "--max-steps", "16", "--no-gif", "--no-progress", "--out", out)
    results = json.loads((out / "results.json").read_text())
    assert len(results["episodes"]) == 1 and (out / "summary.md").exists()
