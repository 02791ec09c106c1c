"""Hypernetwork decoder: latent z (B, latent_dim) -> flat policy weights (B, n_weights).

The network is hypnettorch's ``HMLP`` exactly as the paper configures it
(``uncond_in_size=0, cond_in_size=latent_dim, num_cond_embs=0, no_cond_weights=True``), sizes
from Table 8. The generated policy works in *normalised* space (obs and actions in [-1, 1]);
the export folds the normalisation into the first and last layer.

Initial scale (our choice; the paper is silent): hyperfan-in initialisation
(``apply_hyperfan_init(method='in')``, Chang et al. 2020, shipped with hypnettorch) makes the
generated *weights* Kaiming-scaled for a unit-variance input, so a generated ReLU MLP neither
explodes nor vanishes at init. Hyperfan-in gives generated *biases* unit variance, which puts
the initial actions around +-1 with an arbitrary offset per output; we multiply the output
rows of the hypernetwork that produce biases by ``bias_init_scale`` (0.1), the analogue of
the usual near-zero bias init. Measured: initial normalised actions have std ~0.3-1
(checked in test_models_vae.py).
"""

from __future__ import annotations

import torch
from torch import nn

from warpd_core.policy import PolicySpec

_HMLP = None


def _hmlp_class():
    # hypnettorch imports matplotlib at import time: keep it off the module import path.
    global _HMLP
    if _HMLP is None:
        from hypnettorch.hnets import HMLP

        _HMLP = HMLP
    return _HMLP


class HyperDecoder(nn.Module):
    def __init__(self, spec: PolicySpec, latent_dim: int, layers: tuple[int, ...], bias_init_scale: float = 0.1):
        super().__init__()
        self.spec = spec
        self.latent_dim = int(latent_dim)
        self.layers = tuple(int(n) for n in layers)
        self.hnet = _hmlp_class()(
            spec.target_shapes,
            uncond_in_size=0,
            cond_in_size=self.latent_dim,
            layers=list(layers),
            num_cond_embs=0,
            no_cond_weights=True,
            verbose=False,
        )
        self._init_scale(bias_init_scale)

    @torch.no_grad()
    def _init_scale(self, bias_init_scale: float) -> None:
        self.hnet.apply_hyperfan_init(method="in", use_xavier=False, cond_var=1.0)
        w_out, b_out = self.hnet.layer_weight_tensors[-1], self.hnet.layer_bias_vectors[-1]
        off = 0
        for shape in self.spec.target_shapes:
            n = 1
            for d in shape:
                n *= d
            if len(shape) == 1:  # a bias of the generated MLP
                w_out[off : off + n] *= bias_init_scale
                b_out[off : off + n] *= bias_init_scale
            off += n

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> flat weights (B, n_weights) in normalised space."""
        return self.hnet.forward(cond_input=z, ret_format="flattened")
