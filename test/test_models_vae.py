"""VAE, hypernetwork and world model: shapes, initial scale, eq. (5) loss terms and where their
gradients go."""

import numpy as np
import pytest
import torch

from warpd_core.config import DECODER_SIZES
from warpd_core.models.hypernet import HyperDecoder
from warpd_core.models.vae import PolicyVAE
from warpd_core.models.world_model import GaussianWorldModel, gaussian_kl
from warpd_core.policy import PolicySpec
from warpd_core.train.vae_trainer import rollout_loss, teacher_forcing_loss, vae_losses, wm_windows

SPEC = PolicySpec(5, (32, 32), 2)


def small_models(history=1):
    torch.manual_seed(0)
    vae = PolicyVAE(SPEC, trajectory_length=8, latent_dim=16, encoder_hidden=[64, 64, 64], decoder_layers=(20, 20))
    wm = GaussianWorldModel(5, 2, [64, 64], history=history)
    return vae, wm


def batch(B=4, H=8):
    g = torch.Generator().manual_seed(1)
    s = torch.rand(B, H, 5, generator=g) * 2 - 1
    a = torch.rand(B, H, 2, generator=g) * 2 - 1
    mask = torch.ones(B, H, dtype=torch.bool)
    mask[0, 5:] = False  # one padded snippet
    return s, a, mask


def test_hmlp_output_layout_and_initial_scale():
    spec = PolicySpec(5, (256, 256), 2)
    torch.manual_seed(0)
    dec = HyperDecoder(spec, 256, DECODER_SIZES["xs"])
    theta = dec(torch.randn(64, 256))
    assert theta.shape == (64, spec.n_weights)
    # Generated MLPs act on normalised obs in [-1, 1]: their outputs should be O(1) at init,
    # neither exploding nor collapsing to a constant.
    from warpd_core.models.policy_torch import policy_forward

    obs = torch.rand(64, 32, 5) * 2 - 1
    act = policy_forward(spec, theta, obs)
    assert 0.05 < act.std().item() < 5.0
    assert act.abs().max().item() < 50.0
    # biases scaled down (bias_init_scale): output-layer bias much smaller than weights' effect
    last_b = theta[:, -2:]
    assert last_b.abs().mean().item() < 0.5


def test_rollout_loss_zero_when_policy_action_equals_data():
    _, wm = small_models(history=2)
    s, a, mask = batch()
    hs, ha = wm_windows(s, a, 2)
    a_pi = a[:, :-1].clone().requires_grad_(True)
    loss = rollout_loss(wm, hs, ha, a_pi, mask[:, 1:].float())
    assert loss.item() == 0.0
    # a different action gives a positive KL with a gradient on the action
    a_pi2 = (a[:, :-1] + 0.3).requires_grad_(True)
    loss2 = rollout_loss(wm, hs, ha, a_pi2, mask[:, 1:].float())
    loss2.backward()
    assert loss2.item() > 0 and a_pi2.grad.abs().sum() > 0
    assert all(p.grad is None for p in wm.parameters())


def test_gaussian_kl_closed_form():
    mp, lp, mq, lq = torch.tensor([[0.3]]), torch.tensor([[-1.0]]), torch.tensor([[-0.2]]), torch.tensor([[0.5]])
    vp, vq = np.exp(-1.0), np.exp(0.5)
    expected = 0.5 * (np.log(vq / vp) + (vp + 0.25) / vq - 1)
    assert gaussian_kl(mp, lp, mq, lq).item() == pytest.approx(expected, rel=1e-6)


def test_wm_windows_history_and_padding():
    s = torch.arange(5.0).view(1, 5, 1)
    a = 10 + torch.arange(5.0).view(1, 5, 1)
    hs, ha = wm_windows(s, a, 3)
    assert hs.shape == (1, 4, 3, 1)
    assert hs[0, :, :, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3]]
    assert ha[0, 3, :, 0].tolist() == [11, 12, 13]


@pytest.mark.parametrize("tf_loss", ["nll", "mse"])
def test_gradient_separation(tf_loss):
    vae, wm = small_models()
    s, a, mask = batch()
    noise = torch.randn(4, 16)
    losses = vae_losses(vae, wm, s, a, mask, noise, beta_kl=1e-3, use_ro=True, tf_loss=tf_loss)
    assert losses["l_ro"].item() > 0
    # L_TF reaches the world model only
    losses["l_tf"].backward(retain_graph=True)
    assert all(p.grad is None or not p.grad.any() for p in vae.parameters())
    assert any(p.grad is not None and p.grad.any() for p in wm.parameters())
    wm.zero_grad(set_to_none=True)
    # L_BC, L_RO, L_KL reach the VAE only
    for key in ("l_bc", "l_ro", "l_kl"):
        vae.zero_grad(set_to_none=True)
        losses[key].backward(retain_graph=True)
        assert all(p.grad is None for p in wm.parameters()), key
        assert any(p.grad is not None and p.grad.any() for p in vae.encoder.parameters()), key
        if key != "l_kl":
            assert any(p.grad is not None and p.grad.any() for p in vae.decoder.parameters()), key


def test_policy_states_reach_the_policy_terms_only():
    """``policy_states_n`` (training's noised states) changes what the generated policy acts
    on -- L_BC and L_RO -- and leaves the encoder (L_KL) and the world model's L_TF alone;
    passing the clean states is the default."""
    s, a, mask = batch()
    noise = torch.randn(4, 16)
    vae, wm = small_models()
    base = vae_losses(vae, wm, s, a, mask, noise, 1e-3, True)
    same = vae_losses(vae, wm, s, a, mask, noise, 1e-3, True, policy_states_n=s.clone())
    noised = vae_losses(vae, wm, s, a, mask, noise, 1e-3, True, policy_states_n=s + 0.1 * torch.randn_like(s))
    assert all(torch.equal(base[k], same[k]) for k in base)
    assert torch.equal(base["l_kl"], noised["l_kl"]) and torch.equal(base["l_tf"], noised["l_tf"])
    assert not torch.equal(base["l_bc"], noised["l_bc"]) and not torch.equal(base["l_ro"], noised["l_ro"])


@pytest.mark.parametrize("tf_loss", ["nll", "mse"])
def test_masked_steps_contribute_nothing_to_any_loss(tf_loss):
    """Whatever fills the steps past a window's episode end -- states, actions, both -- no
    loss term and no gradient changes: the encoder zeroes them and every sum is masked."""
    s, a, mask = batch()
    noise = torch.randn(4, 16)

    def losses_and_grads(s_, a_):
        vae, wm = small_models()
        out = vae_losses(vae, wm, s_, a_, mask, noise, 1e-3, True, tf_loss)
        out["total"].backward()
        grads = [p.grad.clone() for p in list(vae.parameters()) + list(wm.parameters()) if p.grad is not None]
        return {k: v.item() for k, v in out.items()}, grads

    base, g0 = losses_and_grads(s, a)
    s2, a2 = s.clone(), a.clone()
    s2[~mask] = 7.0 * torch.randn(int((~mask).sum()), 5)
    a2[~mask] = -3.0
    moved, g1 = losses_and_grads(s2, a2)
    assert moved == base
    assert len(g0) == len(g1) and all(torch.equal(x, y) for x, y in zip(g0, g1))
    # and a real step does matter (the test can fail)
    s3 = s.clone()
    s3[0, 4] += 1.0
    assert losses_and_grads(s3, a)[0]["l_bc"] != base["l_bc"]


def test_packed_world_model_losses_equal_masked_sums():
    """The world-model terms run on valid transitions only; the result is the masked sum of
    the per-transition terms, summed over time and averaged over the batch, as eq. (5)."""
    _, wm = small_models()
    s, a, mask = batch()
    hs, ha = wm_windows(s, a, 1)
    valid = mask[:, 1:].float()
    loss, _ = teacher_forcing_loss(wm, hs, ha, s[:, 1:], valid)
    with torch.no_grad():
        mean, logvar = wm(hs, ha)
    per = 0.5 * (logvar + (s[:, 1:] - mean) ** 2 * torch.exp(-logvar)).sum(-1)
    assert loss.item() == pytest.approx((per * valid).sum(1).mean().item(), rel=1e-6)


def test_no_world_model_ablation_losses():
    vae, _ = small_models()
    s, a, mask = batch()
    losses = vae_losses(vae, None, s, a, mask, torch.randn(4, 16), 1e-6, use_ro=True)
    assert losses["l_ro"].item() == 0.0 and losses["l_tf"].item() == 0.0
    assert losses["total"].item() == pytest.approx((losses["l_bc"] + losses["l_kl"]).item())
