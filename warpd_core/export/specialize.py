"""Exact rewrites of a module's 1-D convolutions for the fixed sequence lengths it runs at.

A bundle's denoiser always sees the same latent length (only the batch varies), and the
UNet halves it at every level, so the bottom levels of a short latent run at length 1 or 2.
There, a 'same'-padded kernel of 5 taps only ever multiplies padding with its outer taps.
:func:`specialize_conv1d` rewrites a copy of the module so that what runs matches what
matters, with outputs unchanged up to float summation order:

* **dead taps trimmed**: a stride-1, zero-padded, centred ``Conv1d`` of kernel ``k`` at input
  length ``T`` keeps the taps at offsets ``|o| <= T - 1`` (kernel ``min(k, 2T - 1)``), so the
  (8, 1) latent of the shipped PushT model drops 40 % of the weights of its length-2 level;
* **as 2-D convolutions** (``as_conv2d``): every ``Conv1d`` runs as a ``Conv2d`` over
  ``(B, C, 1, T)``, which onnxruntime's CPU provider maps to its blocked (NCHWc) convolution
  kernels; its generic 1-D path is an im2col + GEMM that is about twice as slow at these
  sizes (``warpd bench generator`` shows both).

The ONNX export applies both. The torch backend runs the modules as trained; it is the
reference the ONNX graphs are tested against.
"""

from __future__ import annotations

import torch
from torch import nn


class Conv1dAs2d(nn.Module):
    """A ``Conv1d`` computed as a ``Conv2d`` with kernel (1, k) over ``(B, C, 1, T)``."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]), stride=(1, conv.stride[0]),
                              padding=(0, conv.padding[0]), dilation=(1, conv.dilation[0]), groups=conv.groups,
                              bias=conv.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight.unsqueeze(2))
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.unsqueeze(2)).squeeze(2)


def _trimmed(conv: nn.Conv1d, length: int) -> nn.Conv1d | None:
    """The same convolution without the taps that only ever see padding at ``length``, or None."""
    k, half = conv.kernel_size[0], conv.kernel_size[0] // 2
    same = (conv.stride[0] == 1 and conv.dilation[0] == 1 and k % 2 == 1 and conv.padding[0] == half
            and conv.padding_mode == "zeros")
    keep = length - 1
    if not same or keep >= half:
        return None
    new = nn.Conv1d(conv.in_channels, conv.out_channels, 2 * keep + 1, padding=keep, groups=conv.groups,
                    bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight[:, :, half - keep: half + keep + 1])
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


@torch.no_grad()
def specialize_conv1d(module: nn.Module, example_args: tuple, as_conv2d: bool = False) -> dict:
    """Rewrite ``module``'s ``Conv1d`` layers in place for the input lengths seen while running
    ``module(*example_args)`` (run once, under ``no_grad``; a layer run at several lengths is
    trimmed for the longest); returns ``{"trimmed": n, "as_conv2d": m}``.

    Only valid while the module keeps running at those lengths (a bundle's fixed latent shape).
    """
    lengths: dict[str, int] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, args, name=name: lengths.__setitem__(
                 name, max(lengths.get(name, 0), int(args[0].shape[-1]))))
             for name, m in module.named_modules() if isinstance(m, nn.Conv1d)]
    try:
        module(*example_args)
    finally:
        for h in hooks:
            h.remove()
    counts = {"trimmed": 0, "as_conv2d": 0}
    for name, length in lengths.items():
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        conv = getattr(parent, attr)
        new = _trimmed(conv, length)
        if new is not None:
            conv = new
            counts["trimmed"] += 1
        if as_conv2d:
            conv = Conv1dAs2d(conv)
            counts["as_conv2d"] += 1
        setattr(parent, attr, conv)
    return counts


__all__ = ["Conv1dAs2d", "specialize_conv1d"]
