"""Spike generation: the stochastic SpikeSampler and the LIF baseline.

SpikeSampler (P-SpikeSSM): ``S = 1[u < y]`` with ``u ~ U[0,1)``, which is a Bernoulli draw with
``p = clamp(y, 0, 1)``. Backward: ``dS/dy = 1[0 <= y <= 1]``, the derivative of
``E[S] = clamp(y, 0, 1)``.

LIF baseline (the paper's sequential comparison): ``v[t] = beta v[t-1] + y[t]``,
``S[t] = 1[v[t] > theta]``, reset by subtraction ``v[t] <- v[t] - theta S[t]``; backward through
a boxcar ``1[|v - theta| < 1/2]``. It needs a loop over time, the stochastic sampler does not.

A *noise source* supplies the uniform numbers: any callable
``noise(site, shape, device, dtype) -> Tensor`` in [0, 1), ``shape = (B, L, H)``; ``site`` names
the sampling site (layer and position in the block) so that common-random-number generators can
give every site its own stream. ``None`` means ``torch.rand``.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

NoiseSource = Callable[[int, tuple, torch.device, torch.dtype], torch.Tensor]


class _BernoulliSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(y)
        return (u < y).to(y.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        return grad * ((y >= 0) & (y <= 1)).to(grad.dtype), None


class _BoxcarSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() < 0.5).to(grad.dtype)


def bernoulli_spike(y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``1[u < y]`` with the expectation surrogate ``1[0 <= y <= 1]`` as its gradient."""
    return _BernoulliSpike.apply(y, u)


def boxcar_spike(x: torch.Tensor) -> torch.Tensor:
    """``1[x > 0]`` with the boxcar surrogate ``1[|x| < 1/2]`` as its gradient."""
    return _BoxcarSpike.apply(x)


def draw_uniform(noise: Optional[NoiseSource], site: int, like: torch.Tensor) -> torch.Tensor:
    if noise is None:
        return torch.rand_like(like)
    u = noise(site, tuple(like.shape), like.device, like.dtype)
    if u.shape != like.shape:
        raise ValueError(f"noise source gave shape {tuple(u.shape)} for site {site}, expected {tuple(like.shape)}")
    return u


class SiteMemo:
    """A noise source that draws ``torch.rand`` once per site and returns the same uniforms to every
    sampler of that site (samplers that share uniforms, as the P-SpikeSSM authors' LRA blocks do)."""

    def __init__(self):
        self.drawn: dict = {}

    def __call__(self, site: int, shape: tuple, device, dtype) -> torch.Tensor:
        if site not in self.drawn:
            self.drawn[site] = torch.rand(shape, device=device, dtype=dtype)
        return self.drawn[site]


class SpikeSampler(nn.Module):
    """Stochastic sampler: spikes with probability ``clamp(y, 0, 1)``, parallel over time."""

    def forward(self, y: torch.Tensor, site: int, noise: Optional[NoiseSource] = None) -> torch.Tensor:
        return bernoulli_spike(y, draw_uniform(noise, site, y))


class LIFSampler(nn.Module):
    """Deterministic LIF spike generation over (B, L, H), sequential in time (the baseline)."""

    def __init__(self, beta: float = 0.9, threshold: float = 1.0):
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"LIF beta must be in [0, 1], got {beta}")
        if threshold <= 0:
            raise ValueError(f"LIF threshold must be positive, got {threshold}")
        self.beta, self.threshold = beta, threshold

    def forward(self, y: torch.Tensor, site: int = 0, noise: Optional[NoiseSource] = None) -> torch.Tensor:
        v = torch.zeros_like(y[:, 0])
        spikes = []
        for t in range(y.shape[1]):
            v = self.beta * v + y[:, t]
            s = boxcar_spike(v - self.threshold)
            v = v - self.threshold * s
            spikes.append(s)
        return torch.stack(spikes, 1)
