"""ONNX export of the denoiser and the hypernetwork (TorchScript-based exporter,
``dynamo=False``: the traced graphs are small and static apart from the batch axis)."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from warpd_core.export.specialize import specialize_conv1d
from warpd_core.models.denoiser import LatentDenoiser
from warpd_core.models.hypernet import HyperDecoder


class _DenoiserGraph(nn.Module):
    """Positional inputs in a fixed order: sample, timestep[, state][, task]."""

    def __init__(self, denoiser: LatentDenoiser):
        super().__init__()
        self.d = denoiser

    def forward(self, sample, timestep, *cond):
        i = 0
        state = task = None
        if self.d.uses_state:
            state, i = cond[i], i + 1
        if self.d.uses_task:
            task = cond[i]
        return self.d(sample, timestep, state, task)


def _export(module: nn.Module, args: tuple, path: str, inputs: list[str], outputs: list[str], opset: int) -> None:
    axes = {name: {0: "batch"} for name in inputs + outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=opset, dynamo=False, do_constant_folding=True)


def export_denoiser(denoiser: LatentDenoiser, path: str, opset: int = 18) -> None:
    """The graph runs a copy specialised to the bundle's latent length (dead taps trimmed,
    1-D convolutions as 2-D ones; see :mod:`warpd_core.export.specialize`)."""
    d = copy.deepcopy(denoiser).cpu().eval()
    B = 2
    args = [torch.zeros(B, *d.latent_shape), torch.full((B,), 10.0)]
    names = ["sample", "timestep"]
    if d.uses_state:
        args.append(torch.zeros(B, d.state_dim))
        names.append("state")
    if d.uses_task:
        args.append(torch.zeros(B, dtype=torch.long))
        names.append("task")
    graph = _DenoiserGraph(d)
    specialize_conv1d(graph, tuple(args), as_conv2d=True)
    _export(graph, tuple(args), path, names, ["eps"], opset)


def export_hypernet(hypernet: HyperDecoder, path: str, opset: int = 18) -> None:
    h = hypernet.cpu().eval()
    _export(h, (torch.zeros(2, h.latent_dim),), path, ["z"], ["weights"], opset)
