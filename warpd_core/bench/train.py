"""Training throughput (samples/s) of both stages on this machine's CPU.

Each row runs the learning core's own trainer (:class:`~warpd_core.train.vae_trainer.VAETrainer`,
:class:`~warpd_core.train.diffusion_trainer.DiffusionTrainer`) for two short epochs on
PushT-shaped data (5-d state, 2-d action, random values: throughput does not depend on them)
and times the second epoch: samples/s = trajectory windows (or latents) / epoch seconds. The
VAE runs the full loss (L_BC + L_RO + L_TF + L_KL, world model on: ``ro_warmup_epochs = 0``),
at trajectory length 16 and, in the full run, 256 (the PushT config's; episodes of 160 steps,
so the windows are truncated as on the real data, where the world model only runs on the
real steps).
Threads: all cores (``torch.set_num_threads(os.cpu_count())``), as a training run uses them.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from warpd_core.bench.common import LoadMonitor, progress, write_section

COLUMNS = ["stage", "model", "trajectory_length", "batch", "steps_per_epoch", "samples_per_s", "s_per_step"]


def _dataset(n_episodes: int, length: int, seed: int = 0):
    from warpd_core.data.episodes import EpisodeDataset  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    n = n_episodes * length
    states = rng.uniform(-1, 1, (n, 5)).astype(np.float32)
    actions = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    ends = np.arange(1, n_episodes + 1) * length
    return EpisodeDataset(states, actions, ends, None, source="<bench:random pusht-shaped>")


def _time_epochs(trainer) -> float:
    trainer.run_epoch()  # first epoch: allocator and thread-pool warm-up
    trainer.epoch += 1
    t0 = time.perf_counter()
    trainer.run_epoch()
    return time.perf_counter() - t0


def run(quick: bool, out_dir: str) -> dict:
    import torch  # noqa: PLC0415

    from warpd_core.config import DiffusionTrainConfig, VAETrainConfig  # noqa: PLC0415
    from warpd_core.train.diffusion_trainer import DiffusionTrainer  # noqa: PLC0415
    from warpd_core.train.vae_trainer import VAETrainer  # noqa: PLC0415

    torch.set_num_threads(os.cpu_count() or 1)  # other sections of `warpd bench all` set 1
    load = LoadMonitor()
    rows: list[dict] = []
    batch = 32 if quick else 256  # 32: the paper's batch; 256: the synthetic and older PushT configs
    steps = 2 if quick else 6
    length = 160  # steps per episode (PushT demonstrations: 49-246)
    cases = [("xs", 16)] if quick else [("xs", 16), ("s", 16), ("s", 256)]
    unets = ["s"] if quick else ["s", "m"]
    bar = progress(len(cases) + len(unets), "train", "models")
    with tempfile.TemporaryDirectory(prefix="warpd-bench-train-") as tmp:
        for dec, traj in cases:
            b = batch if traj <= 16 else 32  # the PushT length-256 config's batch
            n_episodes = int(np.ceil(steps * b / length))  # one window per step of an episode
            ds = _dataset(n_episodes, length)
            cfg = VAETrainConfig(trajectory_length=traj, horizon=16, batch_size=b, epochs=2, ro_warmup_epochs=0)
            cfg.model.decoder_size = dec
            tr = VAETrainer(cfg, f"{tmp}/vae_{dec}_{traj}", dataset=ds, show_progress=False)
            secs = _time_epochs(tr)
            n = len(tr.index)
            n_steps = int(np.ceil(n / b))
            rows.append({"stage": "vae", "model": f"decoder {dec}, encoder 3x512, WM 2x1024", "trajectory_length": traj,
                         "batch": b, "steps_per_epoch": n_steps, "samples_per_s": round(n / secs, 1),
                         "s_per_step": round(secs / n_steps, 3)})
            bar.update()
            bar.write(f"  vae decoder {dec}, length {traj}: {n / secs:8.1f} windows/s ({secs / n_steps:.3f} s/step)")
        n_lat = steps * batch
        rng = np.random.default_rng(0)
        latents = {"latents": rng.standard_normal((n_lat, 256)).astype(np.float32),
                   "states_n": rng.uniform(-1, 1, (n_lat, 5)).astype(np.float32),
                   "task_ids": np.zeros(n_lat, np.int64)}
        for unet in unets:
            cfg = DiffusionTrainConfig(unet_size=unet, batch_size=batch, epochs=2)
            tr = DiffusionTrainer(cfg, f"{tmp}/diff_{unet}", None, latents=latents, show_progress=False)
            secs = _time_epochs(tr)
            rows.append({"stage": "diffusion", "model": f"UNet {unet}, latent (16, 16), EMA", "trajectory_length": "",
                         "batch": batch,
                         "steps_per_epoch": steps, "samples_per_s": round(n_lat / secs, 1), "s_per_step": round(secs / steps, 3)})
            bar.update()
            bar.write(f"  diffusion unet {unet}: {n_lat / secs:8.1f} latents/s ({secs / steps:.3f} s/step)")
    bar.close()
    notes = [f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, CPU; "
             "policy 5-256-256-2 (67,842 generated weights), latent 256.",
             "Second of two epochs timed (the first warms up)."]
    config = {"batch": batch, "steps_per_epoch": steps, "torch_threads": torch.get_num_threads()}
    return write_section(out_dir, "train", quick, config, rows, COLUMNS, [], load.result(), notes,
                         title="Training throughput (CPU)")

