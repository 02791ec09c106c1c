"""The batched torch forward of generated policies agrees with the controller's numpy forward."""

import numpy as np
import pytest
import torch

from warpd_core.models.policy_torch import policy_forward, split_flat
from warpd_core.policy import ACTIVATIONS, MLPPolicy, PolicySpec


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_batched_forward_matches_numpy_float64(activation):
    spec = PolicySpec(5, (16, 8), 2, activation)
    rng = np.random.default_rng(0)
    B, T = 4, 3
    flat = rng.standard_normal((B, spec.n_weights)) * 0.3
    obs = rng.standard_normal((B, T, spec.in_dim))
    out = policy_forward(spec, torch.from_numpy(flat), torch.from_numpy(obs)).numpy()
    assert out.shape == (B, T, 2)
    for b in range(B):
        # reference in float64 from the numpy layout (PolicySpec.unflatten)
        x = obs[b]
        layers = spec.unflatten(flat[b])
        for i, (w, bias) in enumerate(layers):
            x = x @ w.T + bias
            if i < len(layers) - 1:
                x = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "identity": lambda v: v,
                     "elu": lambda v: np.where(v > 0, v, np.expm1(v)),
                     "gelu_tanh": lambda v: 0.5 * v * (1 + np.tanh(0.7978845608028654 * (v + 0.044715 * v**3)))}[activation](x)
        np.testing.assert_allclose(out[b], x, rtol=0, atol=1e-10)


def test_batched_forward_matches_mlppolicy_float32():
    spec = PolicySpec(5, (256, 256), 2)
    rng = np.random.default_rng(1)
    flat = (rng.standard_normal((3, spec.n_weights)) * 0.05).astype(np.float32)
    obs = rng.standard_normal((3, spec.in_dim)).astype(np.float32)
    out = policy_forward(spec, torch.from_numpy(flat), torch.from_numpy(obs)).numpy()
    assert out.shape == (3, 2)
    for b in range(3):
        np.testing.assert_allclose(out[b], MLPPolicy(spec, flat[b]).act(obs[b]), rtol=0, atol=1e-6)


def test_split_flat_is_the_spec_layout():
    spec = PolicySpec(3, (4,), 2)
    flat = np.arange(spec.n_weights, dtype=np.float64)[None]
    for (wt, bt), (w, b) in zip(split_flat(spec, torch.from_numpy(flat)), spec.unflatten(flat[0])):
        np.testing.assert_array_equal(wt[0].numpy(), w)
        np.testing.assert_array_equal(bt[0].numpy(), b)
    with pytest.raises(ValueError, match="flat weights"):
        split_flat(spec, torch.zeros(1, spec.n_weights + 1))


def test_gradients_flow_to_flat_weights():
    spec = PolicySpec(2, (8,), 2)
    flat = torch.randn(2, spec.n_weights, requires_grad=True)
    policy_forward(spec, flat, torch.randn(2, 5, 2)).sum().backward()
    assert flat.grad is not None and torch.count_nonzero(flat.grad) > 0
