"""One control step in process: observation -> action for a generated MLP.

Implementations side by side on the same weights and observations:

* ``numpy_mlp``       -- :meth:`warpd_core.policy.MLPPolicy.act` (the controller's forward).
* ``controller_core`` -- :meth:`warpd_core.runtime.ControllerCore.step`: install check,
  observation check, the forward, finiteness check, clamp (what the node calls).
* ``ros_node_callback`` -- the controller node's ``SimIO.on_observation`` in a child process with real
  rclpy messages (frombuffer, step, Action fill, publish to no subscriber); see
  ``bench/ros_nodes.py`` ``nodestep``. Skipped without ROS.
* ``torch``           -- ``nn.Sequential`` of Linear/ReLU, ``torch.no_grad()`` entered per
  call, one intra-op thread, input copied into a preallocated tensor.
* ``onnxruntime``     -- the same MLP exported with ``torch.onnx`` (CPU provider, one thread,
  sequential): ``session.run`` and a preallocated I/O binding (``run_with_iobinding``).

Latency: ``time.perf_counter_ns`` around each call, garbage collector on (as in the node).
Back-to-back calls keep weights and interpreter paths in cache, which a node woken once per
observation does not have: ``cold_*`` columns (in-process rows) time calls made
right after writing to a buffer larger than this core's L2 cache (``EVICT_BYTES``).
Allocations: for a separate pass, ``tracemalloc`` peak above the traced level just before a
call (bytes a call allocates, even if it frees them before returning); the share of calls
that allocate at all is reported too. numpy, torch and onnxruntime register their data
buffers with tracemalloc; native allocations of torch/onnxruntime kernels are not seen.
"""

from __future__ import annotations

import gc
import os
import subprocess
import tempfile
import time
import tracemalloc
from typing import Callable

import numpy as np

from warpd_core.bench.common import (
    LoadMonitor,
    Target,
    bench_node_cmd,
    progress,
    ros_available,
    ros_env,
    summarize_ns,
    write_section,
)
from warpd_core.policy.spec import MLPPolicy, PolicySpec
from warpd_core.runtime.controller import ControllerConfig, ControllerCore, PolicyCandidate

# name -> (obs_dim, hidden, act_dim). arm7: q, qd (7 + 7) and end-effector position + quaternion (7).
SIZES = {"pusht_5x256x256x2": (5, (256, 256), 2), "arm7_21x256x256x7": (21, (256, 256), 7)}
COLUMNS = ["size", "impl", "n", "median_us", "p99_us", "p999_us", "max_us", "cold_median_us", "cold_p99_us",
           "alloc_bytes_per_call", "allocating_calls_pct"]
EVICT_BYTES = 8 << 20  # > the 2 MB L2 per core here; one write per 64-byte line before each cold call


def make_policy(obs_dim: int, hidden: tuple, act_dim: int, seed: int = 0) -> tuple[PolicySpec, np.ndarray]:
    """A 2x256 ReLU MLP with Kaiming-scaled random weights (latency does not depend on values)."""
    spec = PolicySpec(obs_dim, hidden, act_dim, "relu")
    rng = np.random.default_rng(seed)
    layers = [(rng.standard_normal((o, i)) * np.sqrt(2.0 / i), rng.standard_normal(o) * 0.01)
              for i, o in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:])]
    return spec, spec.flatten(layers)


def time_calls(fn: Callable[[np.ndarray], object], inputs: list[np.ndarray], n: int, warmup: int) -> np.ndarray:
    """Durations (ns) of ``n`` calls of ``fn(inputs[i % len(inputs)])`` after ``warmup`` calls."""
    m = len(inputs)
    for i in range(warmup):
        fn(inputs[i % m])
    out = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        x = inputs[i % m]
        t0 = clock()
        fn(x)
        out[i] = clock() - t0
    return out


def time_cold_calls(fn: Callable[[np.ndarray], object], inputs: list[np.ndarray], n: int) -> dict[str, float]:
    """Median / p99 (us) of ``n`` calls, each right after a write to every cache line of an
    ``EVICT_BYTES`` buffer (the call's data and code paths start out of L1/L2)."""
    junk = np.zeros(EVICT_BYTES, np.uint8)
    m = len(inputs)
    out = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        junk[::64] += 1
        x = inputs[i % m]
        t0 = clock()
        fn(x)
        out[i] = clock() - t0
    return {"cold_median_us": round(float(np.median(out)) / 1e3, 2), "cold_p99_us": round(float(np.percentile(out, 99)) / 1e3, 2)}


def alloc_per_call(fn: Callable[[np.ndarray], object], inputs: list[np.ndarray], n: int) -> dict[str, float]:
    """tracemalloc peak above the level before each call: median bytes, share of allocating calls."""
    m = len(inputs)
    for i in range(50):
        fn(inputs[i % m])
    noop_peaks = []
    peaks = np.empty(n, dtype=np.int64)
    tracemalloc.start()
    try:
        # what the measuring itself shows on a call that does nothing (subtracted)
        for i in range(200):
            x = inputs[i % m]
            tracemalloc.reset_peak()
            c0 = tracemalloc.get_traced_memory()[0]
            _noop(x)
            noop_peaks.append(tracemalloc.get_traced_memory()[1] - c0)
        base = int(np.median(noop_peaks))
        for i in range(n):
            x = inputs[i % m]
            tracemalloc.reset_peak()
            c0 = tracemalloc.get_traced_memory()[0]
            fn(x)
            peaks[i] = tracemalloc.get_traced_memory()[1] - c0 - base
    finally:
        tracemalloc.stop()
    peaks = np.maximum(peaks, 0)
    return {"alloc_bytes_per_call": float(np.median(peaks)), "allocating_calls_pct": round(100.0 * float(np.mean(peaks > 0)), 2)}


def _noop(x):
    return x


def _timer_overhead_ns(n: int) -> float:
    return float(np.median(time_calls(_noop, [np.zeros(1)], n, 100)))


def _impls(spec: PolicySpec, flat: np.ndarray) -> dict[str, Callable | str]:
    """name -> callable(obs) or a string saying why it is unavailable."""
    impls: dict[str, Callable | str] = {}
    pol = MLPPolicy(spec, flat)
    impls["numpy_mlp"] = pol.act

    core = ControllerCore(ControllerConfig(spec.in_dim, spec.out_dim, action_low=[-1e6], action_high=[1e6],
                                           max_policy_age=2**62))
    reason = core.offer_policy(PolicyCandidate("bench", 1, 1, spec.layer_sizes, spec.activation, flat, horizon=16))
    assert not reason, reason
    impls["controller_core"] = core.step

    try:
        impls.update(_torch_impls(spec, flat))
    except ImportError as e:
        impls["torch"] = f"unavailable ({e})"
    return impls


def _torch_impls(spec: PolicySpec, flat: np.ndarray) -> dict[str, Callable | str]:
    import torch  # noqa: PLC0415 - optional, heavy
    from torch import nn  # noqa: PLC0415

    torch.set_num_threads(1)
    mods: list[nn.Module] = []
    for i, (w, b) in enumerate(spec.unflatten(flat)):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        mods.append(lin)
        if i < len(spec.hidden):
            mods.append(nn.ReLU())
    model = nn.Sequential(*mods).eval()
    x_t = torch.zeros(1, spec.in_dim)
    x_np = x_t.numpy()  # shares memory with x_t

    def torch_step(obs: np.ndarray):
        np.copyto(x_np[0], obs, casting="unsafe")
        with torch.no_grad():
            return model(x_t)

    out: dict[str, Callable | str] = {"torch": torch_step}
    try:
        out.update(_onnx_impls(spec, model))
    except ImportError as e:
        out["onnxruntime"] = f"unavailable ({e})"
    return out


def _onnx_impls(spec: PolicySpec, model) -> dict[str, Callable]:
    import warnings  # noqa: PLC0415

    import onnxruntime as ort  # noqa: PLC0415
    import torch  # noqa: PLC0415

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="warpd-bench-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "mlp.onnx")
        torch.onnx.export(model, (torch.zeros(1, spec.in_dim),), path, input_names=["obs"], output_names=["action"],
                          opset_version=18, dynamo=False)
        sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    x = np.zeros((1, spec.in_dim), np.float32)
    feed = {"obs": x}

    def ort_run(obs: np.ndarray):
        np.copyto(x[0], obs, casting="unsafe")
        return sess.run(None, feed)[0]

    y = np.zeros((1, spec.out_dim), np.float32)
    binding = sess.io_binding()
    binding.bind_ortvalue_input("obs", ort.OrtValue.ortvalue_from_numpy(x))  # shares x's memory
    binding.bind_ortvalue_output("action", ort.OrtValue.ortvalue_from_numpy(y))

    def ort_iobinding(obs: np.ndarray):
        np.copyto(x[0], obs, casting="unsafe")
        sess.run_with_iobinding(binding)
        return y

    return {"onnxruntime_run": ort_run, "onnxruntime_iobinding": ort_iobinding}


def _ros_node_rows(n: int, n_alloc: int, bar) -> list[dict]:
    ok, why = ros_available()
    if not ok:
        bar.update(len(SIZES))
        return [{"size": name, "impl": "ros_node_callback", "note": f"skipped: {why}"} for name in SIZES]
    rows = []
    for name, (obs_dim, hidden, act_dim) in SIZES.items():
        cmd = bench_node_cmd("nodestep", "--obs-dim", str(obs_dim), "--act-dim", str(act_dim),
                             "--hidden", *map(str, hidden), "--steps", str(n), "--alloc-steps", str(n_alloc))
        r = subprocess.run(cmd, capture_output=True, text=True, env=ros_env(), timeout=300)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if r.returncode != 0 or not lines:
            rows.append({"size": name, "impl": "ros_node_callback", "note": f"failed: {r.stderr.strip()[-300:]}"})
            bar.update()
            continue
        import json  # noqa: PLC0415

        rows.append({"size": name, "impl": "ros_node_callback", **json.loads(lines[-1])})
        bar.update()
    return rows


def run(quick: bool, out_dir: str) -> dict:
    n = 5_000 if quick else 100_000
    n_alloc = 500 if quick else 10_000
    load = LoadMonitor()
    rows: list[dict] = []
    overhead = _timer_overhead_ns(20_000)
    rng = np.random.default_rng(1)
    bar = progress(2 * len(SIZES), "controller", "policy sizes x (in process, ROS node)")
    for name, (obs_dim, hidden, act_dim) in SIZES.items():
        spec, flat = make_policy(obs_dim, hidden, act_dim)
        # 256 distinct observations (float64, as they arrive in an Observation message)
        inputs = [np.ascontiguousarray(o) for o in rng.uniform(-1, 1, (256, obs_dim))]
        for impl, fn in _impls(spec, flat).items():
            if isinstance(fn, str):
                rows.append({"size": name, "impl": impl, "note": fn})
                continue
            # same numbers for every implementation (agreement check, not a benchmark)
            ref = np.asarray(MLPPolicy(spec, flat).act(inputs[0]), dtype=np.float64).copy()
            got = fn(inputs[0].copy())
            got = got.action if hasattr(got, "action") else got  # StepOutput
            got = np.asarray(got.numpy() if hasattr(got, "numpy") else got)  # torch tensor
            agree = bool(np.allclose(got.ravel(), ref, rtol=1e-4, atol=1e-4))
            gc.collect()
            t = time_calls(fn, inputs, n, warmup=min(2000, n // 5))
            row = {"size": name, "impl": impl, **summarize_ns(t), **alloc_per_call(fn, inputs, n_alloc),
                   "agrees_with_numpy": agree}
            row.update(time_cold_calls(fn, inputs, n_alloc))
            rows.append(row)
            bar.write(f"  {name:20s} {impl:22s} median {row['median_us']:7.2f} us  p99 {row['p99_us']:7.2f} us  "
                      f"p99.9 {row['p999_us']:7.2f} us  alloc {row['alloc_bytes_per_call']:.0f} B/call")
        bar.update()
    rows += _ros_node_rows(n, n_alloc, bar)
    bar.close()

    def get(size: str, impl: str, key: str):
        for r in rows:
            if r["size"] == size and r["impl"] == impl:
                return r.get(key)
        return None

    size = "pusht_5x256x256x2"
    med, p99 = get(size, "controller_core", "median_us"), get(size, "controller_core", "p99_us")
    np_alloc = get(size, "numpy_mlp", "alloc_bytes_per_call")
    targets = [
        Target("controller step median (ControllerCore.step, 5-256-256-2)", "<= 15 us", med, None if med is None else med <= 15),
        Target("controller step p99 (ControllerCore.step, 5-256-256-2)", "<= 50 us", p99, None if p99 is None else p99 <= 50),
        Target("numpy MLP forward allocations", "0 bytes/call", np_alloc, None if np_alloc is None else np_alloc == 0),
    ]
    notes = [
        f"{n} timed calls per row after {min(2000, n // 5)} warm-up calls; timer overhead {overhead:.0f} ns per call is "
        "included in every number (not subtracted).",
        f"cold_*: {n_alloc} calls, each after writing one byte per cache line of a {EVICT_BYTES >> 20} MB buffer "
        "(what a node woken once per observation meets; the ROS loop's controller-vs-echo gap).",
        f"Allocations: tracemalloc peak over {n_alloc} separate calls, median bytes per call; 'allocating_calls_pct' "
        "is the share of calls that allocated anything.",
        "torch: torch.no_grad() entered per call, torch.set_num_threads(1). onnxruntime: CPU provider, "
        "1 intra/inter-op thread, sequential execution.",
        "ros_node_callback: the controller node's SimIO.on_observation(msg) called directly in a child process (real rclpy "
        "messages, publish with no subscriber); OPENBLAS_NUM_THREADS=1.",
    ]
    config = {"n_timed": n, "n_alloc": n_alloc, "timer_overhead_ns": overhead, "sizes": {k: list(map(str, v)) for k, v in SIZES.items()}}
    return write_section(out_dir, "controller", quick, config, rows, COLUMNS + ["agrees_with_numpy"], targets, load.result(),
                         notes, title="Controller step in process (obs -> action)")

