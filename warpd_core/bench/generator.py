"""Generator latency, observation -> policy weights (what the generator node calls per horizon).

Each configuration is a bundle written by ``export_init`` (the learning core's own
constructors, random init: latency does not depend on the weight values) and loaded with
:func:`warpd_core.export.bundle.load_generator`, so the timed call is exactly the node's:
``PolicyGenerator.generate(obs (1, obs_dim))`` = reverse diffusion over the 256-d latent
(numpy scheduler + denoiser per step) + hypernetwork decode + folding the normalisation
into the generated MLP. Backends: ``torch`` (CPU) and ``onnx`` (onnxruntime CPU provider,
the bundle loader's default session options). ``decode_ms`` is the hypernetwork + fold part.

Threads: torch runs with ``torch.set_num_threads(threads)`` (default 1). On this 2-core
machine with other work running, torch's default of 2 intra-op threads made one DDIM-10
generation take 0.6-9 s instead of ~50 ms (OpenMP workers waiting on a core held by
another process), so a generator sharing 2 cores with a controller should run 1 thread.
``onnx_1thread`` rows rebuild the bundle's sessions with one intra-op thread and spinning
off, for comparison with the loader's defaults (all cores, spinning workers).

With ``--bundle`` torch is optional: an install with the ``[onnx]`` extra only (a robot that runs
the generator on ONNX Runtime) times the bundle's ONNX backends; without torch and without ONNX
graphs in the bundle there is nothing to time, and the error says how to add them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from warpd_core.bench.common import LATENTS, LoadMonitor, Target, progress, write_section

OBS_DIM, ACT_DIM, HIDDEN, HORIZON = 5, 2, (256, 256), 16
COLUMNS = ["unet", "decoder", "latent", "sampler", "steps", "backend", "reps", "median_ms", "p90_ms", "min_ms",
           "decode_ms", "denoiser_params_m", "hypernet_params_m"]
HEADLINE = ("m", "s", "ddim", 10)


def plan(quick: bool) -> list[tuple[str, str, str, int, str]]:
    """(unet, decoder, sampler, steps, latent) in run order, without duplicates."""
    if quick:
        return [("xs", "xs", "ddim", 10, "256")]
    rows = [("m", "s", "ddpm", 100, "256"), ("m", "s", "ddim", 10, "256"), ("m", "s", "ddim", 16, "256")]
    rows += [(u, "s", "ddim", 10, "256") for u in ("xs", "s", "m", "l")]
    rows += [("m", d, "ddim", 10, "256") for d in ("xs", "s", "m", "l")]
    rows += [(u, "s", "ddim", 10, "pca8") for u in ("s", "m")]
    seen, out = set(), []
    for r in rows:
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def _time(fn, min_reps: int, budget_s: float, max_reps: int = 200) -> np.ndarray:
    fn()  # warm-up (first call pays allocations / graph preparation)
    fn()
    times = []
    t_end = time.perf_counter() + budget_s
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() < t_end):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.asarray(times) * 1e3


def _onnx_one_thread(gen) -> None:
    """Replace the loaded generator's onnxruntime sessions by single-threaded, non-spinning ones."""
    import onnxruntime as ort  # noqa: PLC0415

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    for key in list(gen._impl.sessions):
        path = str(Path(gen.meta["_dir"]) / gen.meta["onnx"][key])
        gen._impl.sessions[key] = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def _torch_or_none():
    try:
        import torch  # noqa: PLC0415 - heavy, only for this section
    except ImportError:
        return None
    return torch


def run(quick: bool, out_dir: str, configs: list[tuple[str, str, str, int, str]] | None = None,
        backends: tuple[str, ...] | None = None, threads: int = 1, bundle: str | None = None) -> dict:
    """``bundle``: time that bundle (torch, and ONNX Runtime when it has the graphs) instead of
    the grid of freshly initialised bundles; its ``latent`` column is ``<dim> (<model_id>)``.
    Without torch installed only a bundle's ONNX backends can run."""
    from warpd_core.config import DECODER_SIZES  # noqa: PLC0415
    from warpd_core.export.bundle import load_generator  # noqa: PLC0415
    from warpd_core.export.bundle_format import BundleError, read_bundle  # noqa: PLC0415

    torch = _torch_or_none()
    if torch is None and not bundle:
        raise RuntimeError("warpd bench generator: the grid of initialised bundles needs torch "
                           "(pip install 'warpd[torch]'); with --bundle DIR an ONNX-only install times that bundle")
    load = LoadMonitor()
    if torch is not None:
        torch.set_num_threads(threads)
    configs = configs or plan(quick)
    backends = backends or (("torch",) if quick else ("torch", "onnx", "onnx_1thread"))
    min_reps, budget = (3, 1.0) if quick else (5, 4.0)
    rows: list[dict] = []
    obs_dim, task = OBS_DIM, None
    bundles: dict[tuple[str, str, str], str] = {}
    if bundle:
        meta = read_bundle(bundle)
        layers = list(meta["decoder"]["layers"])
        dec = next((k for k, v in DECODER_SIZES.items() if list(v) == layers), str(layers))
        key = (meta["denoiser"]["unet_size"], dec, f"{meta['latent_dim']} ({meta['model_id']})")
        bundles[key] = str(bundle)
        configs = [(key[0], dec, meta["sampler"]["kind"], int(meta["sampler"]["steps"]), key[2])]
        backends = (("torch",) if torch is not None else ()) + (("onnx", "onnx_1thread") if meta["onnx"] else ())
        if not backends:
            raise BundleError(f"{bundle}: has no ONNX graphs and torch is not installed, so no backend can run it; "
                              f"add the graphs with `warpd export --bundle {bundle} --out DIR --onnx` where torch "
                              "is installed, or pip install 'warpd[torch]'")
        obs_dim = int(meta["obs_dim"])
        task = np.zeros(1, np.int64) if meta["n_tasks"] else None
    obs = np.random.default_rng(0).uniform(-1, 1, (1, obs_dim)).astype(np.float32)
    bar = progress(len(configs) * len(backends), "generator", "timings")
    with tempfile.TemporaryDirectory(prefix="warpd-bench-gen-") as tmp:
        for unet, dec, sampler, steps, latent in configs:
            key = (unet, dec, latent)
            if key not in bundles:
                from warpd_core.export.writer import export_init  # noqa: PLC0415 - needs torch

                path = str(Path(tmp) / f"u{unet}_d{dec}_l{latent}")
                latent_dim, latent_shape = LATENTS[latent]
                export_init(path, OBS_DIM, ACT_DIM, list(HIDDEN), HORIZON, dec, unet, latent_dim=latent_dim,
                            latent_shape=latent_shape, onnx=any(b.startswith("onnx") for b in backends))
                bundles[key] = path
            for backend in backends:
                gen = load_generator(bundles[key], backend=backend.split("_")[0], sampler=sampler, steps=steps, seed=0)
                if backend == "onnx_1thread":
                    _onnx_one_thread(gen)
                t = _time(lambda: gen.generate(obs, task), min_reps, budget)
                z = gen.sample_latents(obs, task)
                td = _time(lambda: gen.decode(z), min_reps, min(budget, 1.0))
                row = {"unet": unet, "decoder": dec, "latent": latent, "sampler": sampler, "steps": steps, "backend": backend,
                       "reps": int(t.size), "median_ms": round(float(np.median(t)), 2),
                       "p90_ms": round(float(np.percentile(t, 90)), 2), "min_ms": round(float(t.min()), 2),
                       "decode_ms": round(float(np.median(td)), 2)}
                if backend == "torch":
                    impl = gen._impl
                    row["denoiser_params_m"] = round(sum(p.numel() for p in impl.denoiser.parameters()) / 1e6, 3)
                    row["hypernet_params_m"] = round(sum(p.numel() for p in impl.hypernet.parameters()) / 1e6, 3)
                rows.append(row)
                bar.update()
                bar.write(f"  unet {unet:2s} decoder {dec:2s} latent {latent:4s} {sampler} {steps:3d} {backend:5s}: median {row['median_ms']:8.2f} ms "
                          f"(decode {row['decode_ms']:.2f} ms, {row['reps']} reps)")
                del gen
    bar.close()
    targets = []
    for latent in LATENTS:
        head = [r for r in rows if (r["unet"], r["decoder"], r["sampler"], r["steps"]) == HEADLINE and r["latent"] == latent]
        if head:
            best = min(head, key=lambda r: r["median_ms"])
            targets.append(Target(f"generation DDIM 10, UNet m, decoder s, latent {latent} (best backend, median)",
                                  "<= 30 ms", f"{best['median_ms']} ({best['backend']})", best["median_ms"] <= 30))
    torch_threads = torch.get_num_threads() if torch is not None else None
    notes = [f"torch intra-op threads: {torch_threads or '(torch not installed)'}; onnxruntime: default session options, CPU provider.",
             f"Bundle {bundle}: its own policy, latent and sampler; batch 1." if bundle else
             f"Policy 5-256-256-2 ({(5 * 256 + 256) + (256 * 256 + 256) + (256 * 2 + 2)} weights); latent 256 = the "
             "VAE latent as (16, 16), pca8 = its top-8 principal-component coordinates as (8, 1) (the shipped PushT "
             "configuration); condition = state; batch 1.",
             "ONNX graphs are exported specialised to the latent length (warpd_core.export.specialize: kernel taps that "
             "only see padding trimmed, 1-D convolutions run as 2-D ones); torch runs the modules as trained.",
             f"Each row: 2 warm-up calls, then at least {min_reps} timed calls or {budget:.0f} s."]
    config = {"obs_dim": OBS_DIM, "act_dim": ACT_DIM, "hidden": list(HIDDEN), "horizon": HORIZON,
              "torch_threads": torch_threads, "backends": list(backends), "bundle": bundle}
    return write_section(out_dir, "generator", quick, config, rows, COLUMNS, targets, load.result(), notes,
                         title="Generator latency (observation -> policy weights)")

