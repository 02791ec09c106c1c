"""Networks of WARPD (torch): VAE encoder, hypernetwork decoder, Gaussian world model,
ConditionalUnet1D latent denoiser, and the batched forward of generated policies.

Import the submodules directly; this package ``__init__`` imports nothing so that the numpy-only
:mod:`warpd_core.models.schedulers` stays importable without torch.
"""
