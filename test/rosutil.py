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


def call(node, client, request, timeout: float = 20.0, resend_every: float | None = None):
    """Call a service from `node`; return the answer, or None when none came within `timeout`.

    A request sent the moment the server is discovered can lose its answer: the client has matched
    the server's request reader, but the server has not yet matched the client's response reader,
    and the response is dropped (seen on the loaded 2-core CI machine with Fast DDS). For an
    idempotent request (GetState) pass `resend_every` to send it again until one is answered; a
    non-idempotent one (ChangeState) is sent once, after such a handshake with its node, by when
    discovery between the two has had its time.
    """
    end = time.monotonic() + timeout
    if not client.wait_for_service(timeout_sec=timeout):
        return None
    while True:
        fut = client.call_async(request)
        wait = end - time.monotonic() if resend_every is None else min(resend_every, end - time.monotonic())
        if spin_until(node, fut.done, max(0.0, wait)):
            return fut.result()
        client.remove_pending_request(fut)
        if time.monotonic() >= end:
            return None


def lifecycle_state(node, target: str, timeout: float = 30.0) -> str | None:
    """The lifecycle state label of node `target`, asked until it answers (None after `timeout`)."""
    from lifecycle_msgs.srv import GetState

    client = node.create_client(GetState, f"/{target}/get_state")
    try:
        answer = call(node, client, GetState.Request(), timeout, resend_every=2.0)
        return None if answer is None else answer.current_state.label
    finally:
        node.destroy_client(client)
