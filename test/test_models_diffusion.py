"""ConditionalUnet1D shapes, the numpy sampler against diffusers, the EMA schedule against
diffusers' EMAModel."""

import numpy as np
import pytest
import torch

from warpd_core.config import UNET_SIZES
from warpd_core.models.denoiser import LatentDenoiser
from warpd_core.models.schedulers import NumpySampler
from warpd_core.models.unet1d import ConditionalUnet1D
from warpd_core.train.ema import EMA


@pytest.mark.parametrize("size", ["xs", "s", "m"])
def test_unet_shapes_for_paper_sizes(size):
    step_dim, down = UNET_SIZES[size]
    torch.manual_seed(0)
    net = ConditionalUnet1D(16, 7, step_dim, down, kernel_size=5, n_groups=8)
    x = torch.randn(3, 16, 16)
    out = net(x, torch.tensor([0, 5, 99]), torch.randn(3, 7))
    assert out.shape == x.shape and torch.isfinite(out).all()
    # the condition changes the output (FiLM is wired in)
    out2 = net(x, torch.tensor([0, 5, 99]), torch.randn(3, 7))
    assert not torch.allclose(out, out2)


def test_denoiser_conditions():
    for cond, kw in (("none", {}), ("state", {}), ("task", {"n_tasks": 3}), ("state+task", {"n_tasks": 3})):
        d = LatentDenoiser(32, (8, 4), cond, state_dim=5, unet_size="xs", **kw)
        out = d(torch.randn(2, 8, 4), torch.tensor([1.0, 2.0]), torch.randn(2, 5), torch.tensor([0, 2]))
        assert out.shape == (2, 8, 4)
    with pytest.raises(ValueError, match="latent_shape"):
        LatentDenoiser(32, (16, 4), "none", 5)
    with pytest.raises(ValueError, match="n_tasks"):
        LatentDenoiser(32, (8, 4), "task", 5)


@pytest.mark.parametrize("kind,steps", [("ddpm", 100), ("ddpm", 10), ("ddim", 10), ("ddim", 4)])
def test_numpy_sampler_matches_diffusers(kind, steps):
    from diffusers import DDIMScheduler, DDPMScheduler

    cls = DDPMScheduler if kind == "ddpm" else DDIMScheduler
    ref = cls(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", clip_sample=True, prediction_type="epsilon")
    ref.set_timesteps(steps)
    ours = NumpySampler(100, "squaredcos_cap_v2", kind, steps)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    np.testing.assert_allclose(ours.alphas_cumprod, ref.alphas_cumprod.numpy(), rtol=1e-6)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 4)).astype(np.float32)
    x_ref = torch.from_numpy(x.copy())
    for t in ours.timesteps:
        eps = (0.5 * rng.standard_normal(x.shape)).astype(np.float32)
        g = torch.Generator().manual_seed(int(t))
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(t))).numpy()
        x_ref = ref.step(torch.from_numpy(eps), int(t), x_ref, generator=g).prev_sample
        x = ours.step(eps, int(t), x, None, noise=noise)
        np.testing.assert_allclose(x, x_ref.numpy(), rtol=1e-4, atol=1e-5)


def test_ema_decay_matches_diffusers_emamodel():
    from diffusers.training_utils import EMAModel

    model = torch.nn.Linear(3, 3)
    ours = EMA(model, power=0.75, max_decay=0.9999)
    ref = EMAModel(model.parameters(), decay=0.9999, use_ema_warmup=True, power=0.75)
    for step in (1, 2, 3, 10, 1000, 10**7):
        assert ours.decay(step) == pytest.approx(ref.get_decay(step), abs=1e-12)
    # and the update itself
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
        ours.update(model)
        ref.step(model.parameters())
    for p_ours, p_ref in zip(ours.model.parameters(), ref.shadow_params):
        torch.testing.assert_close(p_ours, p_ref, rtol=1e-6, atol=1e-7)
