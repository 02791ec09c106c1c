"""Helpers for tests that drive real ROS 2 processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager


@contextmanager
def processes(*cmds, log_dir=None, env=None):
    """Start commands in their own sessions; SIGINT then SIGKILL them on exit."""
    procs = []
    try:
        for i, cmd in enumerate(cmds):
            out = open(os.path.join(log_dir, f"proc{i}.log"), "w") if log_dir else subprocess.DEVNULL
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env))
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def spin_until(node, predicate, timeout: float) -> bool:
    import rclpy

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
        if predicate():
            return True
    return predicate()
