"""Benchmarks of the real-time runtime and the learning core (``warpd bench``).

Each section is a module with ``run(quick: bool, out_dir: str) -> dict`` that prints its
numbers and writes ``<out_dir>/<section>.json`` and ``<out_dir>/<section>.md``:

* :mod:`~warpd_core.bench.controller` -- one control step in process (numpy, ControllerCore,
  torch, ONNX Runtime), latency percentiles and allocations per step.
* :mod:`~warpd_core.bench.ros_loop` -- observation -> action through real rclpy across
  processes (controller node, generator beside it, a plain echo node as the transport floor).
* :mod:`~warpd_core.bench.generator` -- observation -> policy weights latency.
* :mod:`~warpd_core.bench.dp` -- WARPD vs Diffusion Policy: latency and FLOPs per control step.
* :mod:`~warpd_core.bench.memory` -- resident memory of controller and generator processes.
* :mod:`~warpd_core.bench.train` -- training throughput of both stages.

Benchmarks measure and report; they assert nothing about the numbers (the targets are
compared in the written tables, pass or fail). This package imports no ROS: the ROS
sections start the nodes and the checkout's ``bench/ros_nodes.py`` as separate processes.
"""
