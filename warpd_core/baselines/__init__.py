"""Baselines the paper compares WARPD with (section 4.1), each a :class:`~warpd_core.eval.harness.Method`.

* :mod:`~warpd_core.baselines.mlp` -- behaviour cloning with the generated policy's architecture.
* :mod:`~warpd_core.baselines.diffusion_policy` -- Diffusion Policy: ConditionalUnet1D over an
  action chunk, executed open loop for the action horizon.
* :mod:`~warpd_core.baselines.ldp` -- Latent Diffusion Policy: WARPD's encoder and latent diffusion,
  the latent decoded to an action chunk by an MLP 2 x 256, executed open loop.

Each reports FLOPs per control step with :mod:`warpd_core.models.flops`, as WARPD's bundles do.
Torch is imported by the modules, not by this package, so ``import warpd_core.baselines`` is free.
"""
