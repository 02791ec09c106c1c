"""Process-level scheduling options shared by the nodes: CPU affinity, nice, SCHED_FIFO.

All three are off by default. Each applies to every thread of the calling process that
exists at the time (the executor thread and the DDS threads) and is inherited by threads
started later, so call it once the node and its executor exist. Without permission (no
CAP_SYS_NICE / rtprio limit for SCHED_FIFO or a negative nice) the option is skipped with a
warning and the process runs as before: a robot must not refuse to start because of a
tuning knob.

Recommended split on a small machine (BENCHMARKS.md, "isolated" rows): controller (and the
robot driver) on one core, optionally SCHED_FIFO; the generator on the other core(s) with a
positive nice, so a generation never takes the controller's core. ``middleware_affinity``
goes one step further: only the calling thread (the one that runs the executor) stays on
``cpu_affinity``, every other thread of the process (the DDS middleware's receive and event
threads) moves to the given CPUs, so receiving a 270 kB policy does not take the control core.
Use it with SCHED_FIFO: at normal priority those threads wait behind a busy generator.
"""

from __future__ import annotations

import os
import threading
from typing import Callable


def parse_cpus(text: str, name: str = "cpu_affinity") -> set[int]:
    """'0', '1,3' or '0-2' -> a set of CPU indices; '' -> empty set (= do not pin). Errors name
    the parameter ``name``."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a CPU list like '1', '0,1' or '0-3'") from None
        if a < 0 or b < a:
            raise ValueError(f"{name}: bad range {part!r} in {text!r}")
        cpus.update(range(a, b + 1))
    return cpus


def apply_scheduling(cpu_affinity: str = "", nice: int = 0, fifo_priority: int = 0,
                     info: Callable[[str], None] = print, warn: Callable[[str], None] = print,
                     middleware_affinity: str = "") -> dict:
    """Apply the options to every thread of this process; returns what was applied.

    ``middleware_affinity`` (with ``cpu_affinity``): the threads other than the calling one
    go to these CPUs instead.

    ``nice`` and SCHED_FIFO are exclusive in effect (nice only matters under SCHED_OTHER); a
    process given both gets SCHED_FIFO.
    """
    applied: dict = {}
    tids = [int(t) for t in os.listdir("/proc/self/task")]
    cpus = parse_cpus(cpu_affinity)
    others = parse_cpus(middleware_affinity, "middleware_cpu_affinity")
    if others and not cpus:
        warn(f"middleware_cpu_affinity {middleware_affinity!r} not applied: it needs cpu_affinity for the executor thread")
        others = set()
    me = threading.get_native_id()
    if cpus:
        try:
            for tid in tids:
                os.sched_setaffinity(tid, others if others and tid != me else cpus)
            applied["cpu_affinity"] = sorted(cpus)
            if others:
                applied["middleware_affinity"] = sorted(others)
                info(f"cpu_affinity: the executor thread pinned to CPUs {sorted(cpus)}, "
                     f"{len(tids) - 1} other threads to CPUs {sorted(others)}")
            else:
                info(f"cpu_affinity: {len(tids)} threads pinned to CPUs {sorted(cpus)}")
        except OSError as e:
            warn(f"cpu_affinity {cpu_affinity!r} not applied: {e}")
    if nice:
        try:
            for tid in tids:  # Linux: nice is per thread
                os.setpriority(os.PRIO_PROCESS, tid, int(nice))
            applied["nice"] = int(nice)
            info(f"nice: {len(tids)} threads at nice {int(nice)}")
        except OSError as e:
            warn(f"nice {nice} not applied (a negative nice needs CAP_SYS_NICE): {e}")
    prio = min(int(fifo_priority), 99)
    if prio > 0:
        try:
            for tid in tids:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(prio))
            applied["sched_fifo_priority"] = prio
            info(f"sched_fifo_priority: {len(tids)} threads run SCHED_FIFO {prio}")
        except (OSError, AttributeError) as e:
            warn(f"sched_fifo_priority {prio} not applied (needs CAP_SYS_NICE / an rtprio limit): {e}")
    return applied
