"""Offline training of WARPD: stage 1 (VAE + world model, paper eq. 5) and stage 2 (latent
diffusion), with checkpoints that resume bit-for-bit. Entry points: ``warpd train vae`` and
``warpd train diffusion`` (:mod:`warpd_core.train.cli`)."""
