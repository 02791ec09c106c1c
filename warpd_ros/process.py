"""How a node process starts and ends: every warpd node's ``main`` is :func:`run_node`.

What a user depends on: a configuration error (a bad parameter, a broken bundle) ends the
process with exit code 2 and one line on stderr, ``NAME: configuration error: ...``; Ctrl-C (SIGINT, to the whole process group, as a terminal or
``ros2 launch`` sends it) and SIGTERM end every node, mid-episode or idle, with exit code 0 and
nothing on stderr; a lifecycle ``shutdown`` transition ends the process too.

Why this needs care with rclpy: its signal handler shuts the context down (``spin`` then raises
ExternalShutdownException) and *then calls the handler that was installed before it*. For
SIGINT that is Python's default one, which raises KeyboardInterrupt wherever the main thread
happens to be -- inside ``destroy_node``, or inside a callback the C++ EventsExecutor is running
(pybind11 then calls ``terminate``). :func:`init` installs a handler that only takes note, and
rclpy's is installed on top of it (chaining to it) only when start-up is done and the node
starts serving (:func:`spin`). A signal during start-up -- the generator loading its model in
``configure``, 15 s and more on the loaded machine -- ends the process at once with exit code 0:
nothing is being commanded yet, and waiting for the load outlasted ros2 launch's SIGKILL (a
context shut down mid-configure also failed it with an RCLError). After that the context
shutdown is the only effect of a signal. After the first
signal, and at interpreter exit, further ones are ignored: the second SIGINT ``ros2 launch``
sends would otherwise find Python's finalisation, which restores the default action, and kill
the process (exit code -2) while torch tears down.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time

import rclpy
import rclpy.exceptions
import rclpy.executors
from rclpy.signals import SignalHandlerOptions, install_signal_handlers

_signals: list[int] = []
_serving = False


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _note(signum, frame) -> None:
    # serving: rclpy's handler has already shut the context down, the process is stopping
    _signals.append(signum)
    _ignore_signals()
    if not _serving:
        exit_now(0)  # start-up: nothing to stop cleanly yet


def init(args=None) -> None:
    """``rclpy.init`` so that SIGINT / SIGTERM only shut the context down (see the module docstring)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _note)
    atexit.register(_ignore_signals)  # registered before rclpy's exit handlers, so it runs after them
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def stopping() -> bool:
    """A signal has arrived (during start-up, or rclpy has shut the context down since)."""
    return bool(_signals) or not rclpy.ok()


def serve() -> None:
    """Start-up is over: from now on a signal shuts the context down (spin returns) instead of
    ending the process at once. :func:`spin` calls it; a process that spins otherwise calls it."""
    global _serving
    if not _serving:
        _serving = True
        install_signal_handlers(SignalHandlerOptions.ALL)  # rclpy's, chaining to _note


def spin(spin_once, stop=lambda: False, timeout: float = 0.5) -> None:
    """Call ``spin_once(timeout)`` until the context shuts down (a signal) or ``stop()`` is true
    (a lifecycle ``shutdown`` transition). A callback that raced the shutdown -- a publish on a
    context the signal had just invalidated -- ends the loop quietly: the process is stopping.
    Returns at once when a signal came during start-up."""
    if stopping():
        return
    serve()
    try:
        while not stopping() and not stop():  # a noted signal ends the loop even if the context is still up
            spin_once(timeout)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise


def exit_now(code: int) -> None:
    """End the process at once, skipping Python's finalisation: every node calls it after the
    node is destroyed and rclpy shut down. With torch and diffusers loaded (about 220,000 objects,
    1,400 modules) finalisation is a garbage collection that took 5 to more than 15 s on the loaded
    2-core machine -- past ros2 launch's SIGINT -> SIGTERM -> SIGKILL escalation (5 s + 10 s), so a
    clean stop was reported as 'process has died [exit code -9]'. Even the PushT sim (no torch)
    spent 1.6 s in finalisation after its own clean-up took 0.06 s, and once in CI it was still
    running 20 s after SIGTERM."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def linger(spin_once, seconds: float = 0.3) -> None:
    """Keep serving for ``seconds`` after a lifecycle ``shutdown``: the transition's service
    response (and the last safe action) must leave the process before its publishers go."""
    end = time.monotonic() + seconds
    spin(spin_once, stop=lambda: time.monotonic() > end, timeout=0.05)


def run_node(make_node, name: str, args=None, *, errors: tuple = (ValueError, rclpy.exceptions.ParameterException),
             ready=None, executor=None, stop=None, timeout: float = 0.5, linger_s: float = 0.3, finish=None,
             release=None) -> int:
    """The ``main`` of a node process; the hooks get the node.

    1. :func:`init`, ``make_node()``. One of ``errors`` while building it: one line
       ``NAME: configuration error: ...`` on stderr, return 2.
    2. A node whose ``autostart`` is true is configured -- failing, the same line with its
       ``config_error`` and return 2 -- and activated unless a signal came meanwhile.
    3. ``ready()`` (CPU placement), then serve ``executor()`` (default: a SingleThreadedExecutor)
       until a signal or ``stop()`` (a lifecycle shutdown, the last episode). After ``stop()``
       keep serving ``linger_s`` seconds, then ``finish()``.
    4. ``release()``, ``destroy_node``, rclpy shutdown, and :func:`exit_now` with 0.
    """
    init(args)
    try:
        node = make_node()
    except errors as e:
        return _config_error(name, str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}")
    if getattr(node, "autostart", False):
        node.trigger_configure()
        if node.config_error:
            node.destroy_node()
            return _config_error(name, node.config_error)
        if not stopping():  # not if a signal came during configure (a model loading)
            node.trigger_activate()
    if ready is not None:
        ready(node)
    ex = executor(node) if executor is not None else rclpy.executors.SingleThreadedExecutor()
    ex.add_node(node)
    spin_once = lambda t: ex.spin_once(timeout_sec=t)  # noqa: E731
    done = (lambda: stop(node)) if stop is not None else (lambda: False)
    try:
        spin(spin_once, done, timeout)
        if done():
            linger(spin_once, linger_s)
            if finish is not None:
                finish(node)
    finally:
        if release is not None:
            release(node)
        node.destroy_node()
        rclpy.try_shutdown()
    exit_now(0)


def _config_error(name: str, text: str) -> int:
    print(f"{name}: configuration error: {text}", file=sys.stderr)
    rclpy.try_shutdown()
    return 2
