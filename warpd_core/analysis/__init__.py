"""Analyses of trained models (no ROS): ``latents`` -- PCA / t-SNE of the VAE's latent space;
``cli`` -- ``warpd analyze ...``."""
