"""Spike samplers: Bernoulli rate, surrogate gradient, injected noise, the LIF baseline trace."""

import math

import pytest
import torch

from pspike_neuro.models.sampler import LIFSampler, SpikeSampler, bernoulli_spike


def test_firing_rate_matches_clamped_probability():
    torch.manual_seed(0)
    n = 200_000
    sampler = SpikeSampler()
    ys = [-0.3, 0.0, 0.05, 0.25, 0.5, 0.9, 1.0, 1.7]
    y = torch.tensor(ys).repeat(n, 1)[:, None, :]  # (n, 1, 8)
    rate = sampler(y, site=0).mean(dim=(0, 1))
    for got, value in zip(rate.tolist(), ys):
        p = min(max(value, 0.0), 1.0)
        # tolerance: 5 binomial standard errors (false alarm < 1e-6 per point), exact at 0 and 1
        tol = 5 * math.sqrt(p * (1 - p) / n)
        assert abs(got - p) <= tol, (value, got)


def test_surrogate_gradient_is_indicator_of_unit_interval():
    y = torch.tensor([-0.5, 0.0, 0.3, 1.0, 1.5], requires_grad=True)
    u = torch.full_like(y, 0.5)
    s = bernoulli_spike(y, u)
    (s * torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
    assert y.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 0.0]


def test_injected_uniforms_decide_every_spike():
    y = torch.tensor([[[0.2, 0.2, 0.7, 0.7]]])
    u = torch.tensor([[[0.1, 0.3, 0.69, 0.71]]])
    s = SpikeSampler()(y, site=3, noise=lambda site, shape, device, dtype: u)
    assert s.tolist() == [[[1.0, 0.0, 1.0, 0.0]]]


def test_noise_source_with_wrong_shape_is_refused():
    y = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="shape"):
        SpikeSampler()(y, 0, lambda site, shape, device, dtype: torch.zeros(3))


def test_lif_baseline_trace_by_hand():
    # beta 0.5, theta 1: v = 0.6, 0.9, 1.05 -> spike, reset to 0.05, 0.025, 1.2125 -> spike
    y = torch.tensor([0.6, 0.6, 0.6, 0.0, 1.2])[None, :, None]
    s = LIFSampler(beta=0.5, threshold=1.0)(y)
    assert s[0, :, 0].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]


def test_lif_surrogate_is_boxcar_around_threshold():
    y = torch.tensor([[[0.7], [0.0]]], requires_grad=True)  # v = 0.7 (inside), then 0.7 (no new input)
    s = LIFSampler(beta=1.0, threshold=1.0)(y)
    s[:, 0].sum().backward()
    assert y.grad[0, 0, 0].item() == 1.0  # |0.7 - 1| < 0.5
    y2 = torch.tensor([[[0.2]]], requires_grad=True)
    LIFSampler(beta=1.0, threshold=1.0)(y2).sum().backward()
    assert y2.grad.item() == 0.0  # |0.2 - 1| >= 0.5


def test_lif_parameters_are_checked():
    with pytest.raises(ValueError, match=r"LIF beta must be in \[0, 1\], got 1.5"):
        LIFSampler(beta=1.5)
    with pytest.raises(ValueError, match="LIF threshold must be positive, got 0"):
        LIFSampler(threshold=0)
    assert (LIFSampler(beta=0.0).beta, LIFSampler(beta=1.0).beta) == (0.0, 1.0)   # both ends allowed
