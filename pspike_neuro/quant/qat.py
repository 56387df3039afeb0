"""Fake quantization of synaptic weights in the torch model, with straight-through gradients.

Each SpikeMixer and the readout get a parametrization that replaces ``W`` in the forward pass by
its value on Lava's weight grid (``quantize_weights``: one exponent per layer, ``num_weight_bits``
of mantissa, the LSB Lava drops for mixed signs) while the gradient flows to the float ``W``
unchanged (straight-through estimator). The grid is relative to the layer's largest weight, so it
is the same grid export uses: export scales weights by a power of two first.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models import PSpikeSSM
from ..numerics.fixed import quantize_weights


def lava_grid(w: torch.Tensor, num_weight_bits: int) -> torch.Tensor:
    """``w`` rounded onto Lava's weight grid for its layer (values only, no gradient)."""
    w_np = w.detach().cpu().double().numpy()
    w_int, exp = quantize_weights(w_np, num_weight_bits)
    return torch.from_numpy(w_int * 2.0 ** exp).to(w.dtype).to(w.device)


class FakeQuant(nn.Module):
    def __init__(self, num_weight_bits: int):
        super().__init__()
        self.num_weight_bits = num_weight_bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (lava_grid(w, self.num_weight_bits) - w).detach()


def synaptic_layers(model: PSpikeSSM) -> list[nn.Linear]:
    """The layers that become Lava synapses: every SpikeMixer and the readout."""
    return [block.mixer for block in model.blocks] + [model.readout]


def add_fake_quant(model: PSpikeSSM, num_weight_bits: int) -> None:
    for layer in synaptic_layers(model):
        parametrize.register_parametrization(layer, "weight", FakeQuant(num_weight_bits))


def remove_fake_quant(model: PSpikeSSM) -> None:
    """Drop the parametrizations, keeping the float weights (export re-quantizes them identically)."""
    for layer in synaptic_layers(model):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)


@contextlib.contextmanager
def fake_quantized(model: PSpikeSSM, num_weight_bits: int):
    add_fake_quant(model, num_weight_bits)
    try:
        yield model
    finally:
        remove_fake_quant(model)
