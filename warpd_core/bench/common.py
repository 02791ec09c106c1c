"""What every benchmark section shares: percentiles, host/load facts, /proc readings,
child processes, and writing ``<section>.json`` + ``<section>.md``.

Numbers are microseconds (``*_us``) or milliseconds (``*_ms``) as the key says. The JSON
of a section has the keys ``section``, ``quick``, ``host``, ``load``, ``config``,
``results`` (rows), ``targets`` (``name``, ``target``, ``measured``, ``passed``) and
``notes``; the test suite checks that shape.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Diffused latent: the VAE's 256-d latent viewed as (16, 16), or the 8 principal-component
# coordinates viewed as (8, 1) that the PushT configs diffuse (``latent_pca: 8``).
LATENTS = {"256": (256, (16, 16)), "pca8": (8, (8, 1))}


# -- statistics -------------------------------------------------------------------------------
def summarize_ns(samples_ns: np.ndarray) -> dict[str, float]:
    """Per-event durations in nanoseconds -> n, median/p99/p99.9/max/mean in microseconds."""
    x = np.asarray(samples_ns, dtype=np.float64) / 1e3
    if x.size == 0:
        nan = float("nan")
        return {"n": 0, "median_us": nan, "p99_us": nan, "p999_us": nan, "max_us": nan, "mean_us": nan}
    p50, p99, p999 = np.percentile(x, [50, 99, 99.9])
    return {"n": int(x.size), "median_us": round(float(p50), 2), "p99_us": round(float(p99), 2),
            "p999_us": round(float(p999), 2), "max_us": round(float(x.max()), 2), "mean_us": round(float(x.mean()), 2)}


# -- host and load ----------------------------------------------------------------------------
def host_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _cpu_times() -> tuple[float, float]:
    """Machine-wide (busy, total) jiffies from /proc/stat."""
    try:
        f = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = f[3] + (f[4] if len(f) > 4 else 0.0)
    return sum(f) - idle, sum(f)


class LoadMonitor:
    """Machine CPU busy share and load average over a section: other work on a 2-core machine
    moves latency tails, so every result carries the load it was measured under."""

    def __init__(self) -> None:
        self.t0 = _cpu_times()
        self.load0 = os.getloadavg()

    def result(self) -> dict[str, float]:
        b1, t1 = _cpu_times()
        busy = (b1 - self.t0[0]) / max(t1 - self.t0[1], 1e-9)
        return {"machine_cpu_busy_pct": round(100 * busy, 1), "loadavg_1m_start": round(self.load0[0], 2),
                "loadavg_1m_end": round(os.getloadavg()[0], 2)}


# -- /proc ------------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads); nan when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of stat)


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak resident set) in MB (2**20 bytes)."""
    out = {"rss_mb": float("nan"), "hwm_mb": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = round(int(line.split()[1]) / 1024, 1)
            elif line.startswith("VmHWM:"):
                out["hwm_mb"] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def proc_maps_contain(pid: int, needle: str) -> bool | None:
    """Whether a shared object whose path contains ``needle`` is mapped (None: unreadable)."""
    try:
        return needle in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None


# -- child processes --------------------------------------------------------------------------
BENCH_NODES = REPO_ROOT / "bench" / "ros_nodes.py"  # ROS-side helpers: in the checkout, not in any install


def bench_node_cmd(mode: str, *args: str) -> list[str]:
    """Command line running ``bench/ros_nodes.py <mode> <args>`` with this interpreter (its
    ROS imports resolve against the built ``warpd_ros``). RuntimeError outside a checkout."""
    if not BENCH_NODES.is_file():
        raise RuntimeError(f"{BENCH_NODES} not found: the ROS benchmarks run from a warpd checkout")
    return [sys.executable, str(BENCH_NODES), mode, *args]


def ros_env(domain_id: int | None = None) -> dict[str, str]:
    """Environment for benchmark ROS processes: a domain of their own, discovery on this host,
    and one BLAS thread (a matrix-vector product gains nothing from a second one)."""
    env = os.environ.copy()
    env["ROS_DOMAIN_ID"] = str(domain_id if domain_id is not None else 180 + os.getpid() % 50)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = REPO_ROOT / "config" / "fastdds_localhost.xml"
    if profile.exists():
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_process(cmd: Sequence[str], env: dict, log_path: str | os.PathLike | None) -> subprocess.Popen:
    out = open(log_path, "w") if log_path else subprocess.DEVNULL
    return subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_processes(procs: Iterable[subprocess.Popen], timeout: float = 5.0) -> None:
    """SIGINT the process groups we started, then SIGKILL what is still there."""
    procs = [p for p in procs if p is not None]
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def node_executable(name: str) -> str | None:
    """Installed ``lib/warpd_ros/<name>`` launcher, or None without a ROS install."""
    try:
        from ament_index_python.packages import get_package_prefix  # noqa: PLC0415 - ROS-free package

        path = Path(get_package_prefix("warpd_ros")) / "lib" / "warpd_ros" / name
    except Exception:  # noqa: BLE001 - ament_index missing or package not found
        return None
    return str(path) if path.exists() else None


def ros_available() -> tuple[bool, str]:
    """(True, '') when rclpy and the built warpd_ros messages import in a child interpreter."""
    r = subprocess.run([sys.executable, "-c", "import rclpy; from warpd_ros.msg import Observation"],
                       capture_output=True, text=True, env=ros_env())
    return r.returncode == 0, r.stderr.strip().splitlines()[-1] if r.returncode else ""


# -- progress ---------------------------------------------------------------------------------
def progress(total: float, section: str, unit: str):
    """A tqdm bar with an ETA over a section's rows (``update(n)`` after each; ``write(line)``
    prints a row's result above the bar). Updated only between measurements, never inside one:
    tqdm's monitor thread is off so that no extra thread wakes up during a timed loop."""
    from tqdm.auto import tqdm

    tqdm.monitor_interval = 0
    return tqdm(total=total, desc=f"bench {section}", unit=unit, file=sys.stderr, dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}]")


# -- results ----------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    target: str
    measured: Any
    passed: bool | None  # None: not measured in this run


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if abs(v) >= 1e5 or (v != 0 and abs(v) < 1e-2):
            return f"{v:.3g}"
        return f"{v:,.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.1f}"
    if v is None:
        return "–"
    return str(v)


def md_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def targets_table(targets: Sequence[Target]) -> str:
    rows = [{"target": t.name, "required": t.target, "measured": t.measured,
             "result": "–" if t.passed is None else ("PASS" if t.passed else "FAIL")} for t in targets]
    return md_table(rows, ["target", "required", "measured", "result"])


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def write_section(out_dir: str | os.PathLike, section: str, quick: bool, config: dict, rows: list[dict],
                  columns: Sequence[str], targets: Sequence[Target], load: dict, notes: Sequence[str] = (),
                  title: str = "", extra_md: str = "") -> dict:
    """Write ``<section>.json`` and ``<section>.md``, print the markdown, return the JSON dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"section": section, "quick": bool(quick), "host": host_info(), "load": load, "config": config,
           "results": rows, "targets": [asdict(t) for t in targets], "notes": list(notes)}
    doc = _jsonable(doc)
    (out / f"{section}.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = [f"## {title or section}" + (" (quick)" if quick else ""), "",
          f"Host: {doc['host']['cpu']} x{doc['host']['cpus']}, {doc['host']['date_utc']}; machine CPU busy "
          f"{load.get('machine_cpu_busy_pct', '–')}% during the section, load average "
          f"{load.get('loadavg_1m_start', '–')} -> {load.get('loadavg_1m_end', '–')}.", "",
          md_table(rows, columns), ""]
    if extra_md:
        md += [extra_md, ""]
    if targets:
        md += [targets_table(targets), ""]
    md += [f"- {n}" for n in notes]
    text = "\n".join(md).rstrip() + "\n"
    (out / f"{section}.md").write_text(text)
    print(text, flush=True)
    return doc
