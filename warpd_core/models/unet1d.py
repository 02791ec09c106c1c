"""ConditionalUnet1D as described in Diffusion Policy (Chi et al. 2023), written for warpd.

Input (B, T, C) -> Conv1d over T with C channels. Residual blocks of Conv1d + GroupNorm +
Mish; FiLM conditioning on [step embedding, global condition] with ``cond_predict_scale``
(the condition predicts a per-channel scale and bias); a down path (stride-2 conv) and an up
path (transposed conv) with skip connections; sinusoidal diffusion-step embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalStepEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t (B,) float or int -> (B, dim)."""
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
        args = t.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, n_groups: int):
        super().__init__(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.GroupNorm(n_groups, cout), nn.Mish())


class CondResBlock1D(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, n_groups: int, cond_predict_scale: bool = True):
        super().__init__()
        self.cout = cout
        self.cond_predict_scale = cond_predict_scale
        self.block1 = Conv1dBlock(cin, cout, kernel, n_groups)
        self.block2 = Conv1dBlock(cout, cout, kernel, n_groups)
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, cout * (2 if cond_predict_scale else 1)))
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x (B, cin, T), cond (B, cond_dim) -> (B, cout, T)."""
        out = self.block1(x)
        embed = self.cond_encoder(cond)
        if self.cond_predict_scale:
            scale, bias = embed[:, : self.cout, None], embed[:, self.cout :, None]
            out = scale * out + bias
        else:
            out = out + embed[:, :, None]
        return self.block2(out) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, input_dim: int, global_cond_dim: int, step_embed_dim: int = 256,
                 down_dims: tuple[int, ...] = (256, 512, 1024), kernel_size: int = 5, n_groups: int = 8,
                 cond_predict_scale: bool = True):
        super().__init__()
        self.step_encoder = nn.Sequential(
            SinusoidalStepEmbedding(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        cond_dim = step_embed_dim + global_cond_dim
        dims = [input_dim, *down_dims]
        in_out = list(zip(dims[:-1], dims[1:]))
        kw = dict(cond_dim=cond_dim, kernel=kernel_size, n_groups=n_groups, cond_predict_scale=cond_predict_scale)

        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.down.append(nn.ModuleList([
                CondResBlock1D(cin, cout, **kw),
                CondResBlock1D(cout, cout, **kw),
                nn.Conv1d(cout, cout, 3, 2, 1) if not last else nn.Identity(),
            ]))
        mid = down_dims[-1]
        self.mid = nn.ModuleList([CondResBlock1D(mid, mid, **kw), CondResBlock1D(mid, mid, **kw)])
        self.up = nn.ModuleList()
        for cin, cout in reversed(in_out[1:]):
            # skip connection doubles the channels coming in
            self.up.append(nn.ModuleList([
                CondResBlock1D(cout * 2, cin, **kw),
                CondResBlock1D(cin, cin, **kw),
                nn.ConvTranspose1d(cin, cin, 4, 2, 1),
            ]))
        start = down_dims[0]
        self.final = nn.Sequential(Conv1dBlock(start, start, kernel_size, n_groups), nn.Conv1d(start, input_dim, 1))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, global_cond: torch.Tensor | None = None) -> torch.Tensor:
        """sample (B, T, C), timestep (B,), global_cond (B, G) or None -> (B, T, C)."""
        x = sample.transpose(1, 2)  # (B, C, T)
        if timestep.ndim == 0:
            timestep = timestep.expand(sample.shape[0])
        cond = self.step_encoder(timestep)
        if global_cond is not None:
            cond = torch.cat([cond, global_cond], dim=-1)
        skips = []
        for res1, res2, downsample in self.down:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, cond)
        for res1, res2, upsample in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = upsample(res2(res1(x, cond), cond))
        return self.final(x).transpose(1, 2)
