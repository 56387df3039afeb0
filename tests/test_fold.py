"""Folding BatchNorm and affines is exact, and undeployable models are refused by name."""

import numpy as np
import pytest
import torch

from pspike_neuro.errors import UserError
from pspike_neuro.graph import run
from pspike_neuro.models import ModelConfig, PSpikeSSM
from pspike_neuro.numerics.rng import CounterNoise
from pspike_neuro.quant.fold import fold

from .conftest import trained_like


@pytest.mark.parametrize("kw", [
    dict(), dict(prenorm=False), dict(residual=False), dict(phi="relu"), dict(psi="identity"),
    dict(norm="none"), dict(share_ab=True, discretization="bilinear", init="lin"),
])
def test_folded_network_equals_torch_model_under_common_random_numbers(kw):
    cfg = ModelConfig(d_input=2, n_classes=4, d_model=12, d_state=6, n_layers=2, **kw)
    model = trained_like(cfg).double()
    x = torch.rand(5, 30, 2, dtype=torch.float64)
    noise = CounterNoise(seed=11, prob_bits=16)
    with torch.no_grad():
        logits = model(x, noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64))
    out = run(fold(model), x.numpy(), integer=False, seed=11).scores
    np.testing.assert_allclose(out, logits.numpy(), rtol=0, atol=1e-9)


def test_folded_network_respects_padding():
    cfg = ModelConfig(d_input=10, n_classes=3, input_kind="tokens", d_model=8, d_state=4, n_layers=1)
    model = trained_like(cfg).double()
    x = torch.randint(1, 10, (3, 12))
    lengths = torch.tensor([12, 7, 3])
    noise = CounterNoise(seed=2)
    with torch.no_grad():
        logits = model(x, lengths, noise=lambda site, shape, dev, dt: noise(site, shape, dev, torch.float64))
    out = run(fold(model), x.numpy(), integer=False, seed=2, lengths=lengths.numpy()).scores
    np.testing.assert_allclose(out, logits.numpy(), atol=1e-9)


def test_relu_phi_keeps_the_sign_of_a_out():
    cfg = ModelConfig(d_model=4, d_state=2, n_layers=1, phi="relu")
    model = trained_like(cfg)
    with torch.no_grad():
        model.blocks[0].a_out.copy_(torch.tensor([-2.0, 0.5, -0.1, 1.0]))
    assert fold(model).nodes["neuron0"].floats["out_sign"].tolist() == [-1, 1, -1, 1]


@pytest.mark.parametrize("kw, message", [
    (dict(bidirectional=True), "bidirectional blocks .* retrain without --bidirectional"),
    (dict(norm="layer"), "LayerNorm .* retrain with --norm batch"),
    (dict(phi="gelu"), "phi=gelu .* --phi identity"),
    (dict(psi="gelu"), "psi=gelu .* --psi identity"),
    (dict(sampler="lif"), "LIF baseline"),
])
def test_undeployable_models_are_refused(kw, message):
    model = PSpikeSSM(ModelConfig(d_model=4, d_state=2, n_layers=1, **kw))
    with pytest.raises(UserError, match=message):
        fold(model)
