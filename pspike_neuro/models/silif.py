"""SiLIF and C-SiLIF neurons (Fabre et al., arXiv 2506.06374) in a feed-forward spiking network.

Equations as the authors' code computes them (``Maxtimer97/SSM-inspired-LIF``, ``models/snns.py``;
``shared/reference/anchors.md`` part 1), per neuron, ``I_t = BN(W x_t)``:

SiLIF (two real states, adaptation ``w``)::

    dt = exp(log_dt);  alpha = exp(-exp(theta_alpha) dt);  beta = exp(-exp(theta_beta) dt)
    a = clamp(a, 0, 1);  b = clamp(b, 0, 2)
    w_t = beta w_{t-1} + a u_{t-1} + b s_{t-1}
    u_t = alpha (u_{t-1} - s_{t-1}) + (1 - alpha) (I_t - w_t)
    s_t = 1[u_t - 1 > 0]

C-SiLIF (one complex state, S4D-Lin initialization)::

    lambda = exp((-exp(theta_re) + i theta_im) dt)
    u_t = lambda (u_{t-1} - 0.5 s_{t-1}) + b I_t
    s_t = 1[2 Re(u_t) - 1 > 0]

Both spike through the boxcar surrogate (gradient ``1[|x| < 1/2]``). The readout is a leaky
integrator ``r_t = alpha_r r_{t-1} + (1 - alpha_r) BN(W x_t)`` with ``alpha_r`` clamped to
``[e^{-1/5}, e^{-1/25}]``; the network's output is ``sum_t softmax(r_t)``, which the authors feed to
the cross-entropy loss as logits.

Deviation from the authors: states start at zero in training too (the authors draw them from
``U[0, 1)``); a deployed network starts from zero, and training the same way keeps the two
comparable (anchors.md §1.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .config import ConfigDict, check_sizes, check_types
from .sampler import boxcar_spike

SNN_KINDS = ("silif", "csilif")
READOUT_ALPHA_RANGE = (math.exp(-1 / 5), math.exp(-1 / 25))


@dataclass
class SNNConfig(ConfigDict):
    """A feed-forward network of SiLIF or C-SiLIF layers and a leaky-integrator readout."""

    kind: str = "silif"
    d_input: int = 32
    n_classes: int = 10
    d_hidden: int = 128
    n_layers: int = 2
    dropout: float = 0.1
    dt_init: float = 0.004        # SiLIF: initial dt (s)
    dt_min: float = 0.01          # C-SiLIF: log-uniform dt range (anchors.md §1.4)
    dt_max: float = 0.5
    input_kind: str = "real"

    def __post_init__(self):
        if self.kind not in SNN_KINDS:
            raise UserError(f"model config: kind={self.kind!r} is not one of {', '.join(SNN_KINDS)}")
        check_sizes(self, {"d_input": 1 << 20, "n_classes": 1 << 16, "d_hidden": 1 << 16, "n_layers": 256})
        check_types(self, reals=("dropout", "dt_init", "dt_min", "dt_max"))
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model config: dropout must be in [0, 1), got {self.dropout}")
        if not (self.dt_init > 0 and 0 < self.dt_min <= self.dt_max):
            raise UserError("model config: need dt_init > 0 and 0 < dt_min <= dt_max")
        if self.input_kind != "real":
            raise UserError("model config: SiLIF networks take real-valued (spike) inputs, not tokens")


class SiLIFLayer(nn.Module):
    """Linear (no bias) -> BatchNorm -> SiLIF neurons -> dropout."""

    def __init__(self, n_in: int, n_out: int, cfg: SNNConfig):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, bias=False)
        nn.init.xavier_uniform_(self.linear.weight)  # the authors' SiLIF init (C-SiLIF keeps torch's default)
        self.norm = nn.BatchNorm1d(n_out, momentum=0.05)
        self.log_dt = nn.Parameter(torch.full((n_out,), math.log(cfg.dt_init)))
        self.theta_alpha = nn.Parameter(torch.empty(n_out).uniform_(math.log(10.0), math.log(250.0)))
        self.theta_beta = nn.Parameter(torch.empty(n_out).uniform_(math.log(2.5), math.log(10.0)))
        self.a = nn.Parameter(torch.rand(n_out))
        self.b = nn.Parameter(torch.rand(n_out) * 2)
        self.dropout = nn.Dropout(cfg.dropout)

    def coefficients(self):
        """``alpha, beta, a, b`` as the recurrence uses them (dt folded in, clamps applied)."""
        dt = self.log_dt.exp()
        alpha = torch.exp(-self.theta_alpha.exp() * dt)
        beta = torch.exp(-self.theta_beta.exp() * dt)
        return alpha, beta, self.a.clamp(0, 1), self.b.clamp(0, 2)

    def current(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)                                     # (B, T, H)
        return self.norm(z.transpose(1, 2)).transpose(1, 2)

    def dynamics(self, current: torch.Tensor, probe: Optional[dict] = None, name: str = "") -> torch.Tensor:
        alpha, beta, a, b = self.coefficients()
        batch, steps, n = current.shape
        u = current.new_zeros(batch, n)
        w = current.new_zeros(batch, n)
        s = current.new_zeros(batch, n)
        spikes, us, ws = [], [], []
        for t in range(steps):
            w = beta * w + a * u + b * s
            u = alpha * (u - s) + (1 - alpha) * (current[:, t] - w)
            s = boxcar_spike(u - 1.0)
            spikes.append(s)
            us.append(u)
            ws.append(w)
        out = torch.stack(spikes, 1)
        if probe is not None:
            probe[f"{name}.u"] = torch.stack(us, 1).detach()
            probe[f"{name}.w"] = torch.stack(ws, 1).detach()
        return out

    def forward(self, x, probe=None, name=""):
        i = self.current(x)
        s = self.dynamics(i, probe, name)
        if probe is not None:
            probe[f"{name}.i"] = i.detach()
            probe[f"{name}.s"] = s.detach()
        return self.dropout(s)


class CSiLIFLayer(SiLIFLayer):
    """Linear (no bias) -> BatchNorm -> C-SiLIF neurons -> dropout."""

    def __init__(self, n_in: int, n_out: int, cfg: SNNConfig):
        nn.Module.__init__(self)
        self.linear = nn.Linear(n_in, n_out, bias=False)
        self.norm = nn.BatchNorm1d(n_out, momentum=0.05)
        self.log_dt = nn.Parameter(torch.empty(n_out).uniform_(math.log(cfg.dt_min), math.log(cfg.dt_max)))
        self.theta_re = nn.Parameter(torch.full((n_out,), math.log(0.5)))
        self.theta_im = nn.Parameter(torch.full((n_out,), math.pi))
        self.b = nn.Parameter(torch.rand(n_out))
        self.dropout = nn.Dropout(cfg.dropout)

    def coefficients(self):
        """The discrete eigenvalue ``lambda`` (complex) and the input gain ``b``."""
        dt = self.log_dt.exp()
        lam = torch.exp(torch.complex(-self.theta_re.exp() * dt, self.theta_im * dt))
        return lam, self.b

    def dynamics(self, current: torch.Tensor, probe: Optional[dict] = None, name: str = "") -> torch.Tensor:
        lam, b = self.coefficients()
        batch, steps, n = current.shape
        cdt = torch.complex128 if current.dtype == torch.float64 else torch.complex64
        lam = lam.to(cdt)
        u = torch.zeros(batch, n, dtype=cdt, device=current.device)
        s = current.new_zeros(batch, n)
        spikes, us = [], []
        for t in range(steps):
            u = lam * (u - 0.5 * s) + b * current[:, t]
            s = boxcar_spike(2 * u.real - 1.0)
            spikes.append(s)
            us.append(u)
        out = torch.stack(spikes, 1)
        if probe is not None:
            probe[f"{name}.u"] = torch.stack(us, 1).detach()
        return out


class LeakyReadout(nn.Module):
    """``r_t = alpha r_{t-1} + (1 - alpha) BN(W x_t)``; returns all ``r_t`` (B, T, classes)."""

    def __init__(self, n_in: int, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(n_in, n_classes, bias=False)
        self.norm = nn.BatchNorm1d(n_classes, momentum=0.05)
        lo, hi = READOUT_ALPHA_RANGE
        self.alpha = nn.Parameter(torch.empty(n_classes).uniform_(lo, hi))

    def clamped_alpha(self) -> torch.Tensor:
        lo, hi = READOUT_ALPHA_RANGE
        return self.alpha.clamp(lo, hi)

    def forward(self, x):
        i = self.norm(self.linear(x).transpose(1, 2)).transpose(1, 2)
        alpha = self.clamped_alpha()
        r = i.new_zeros(i.shape[0], i.shape[2])
        out = []
        for t in range(i.shape[1]):
            r = alpha * r + (1 - alpha) * i[:, t]
            out.append(r)
        return torch.stack(out, 1)


class SNN(nn.Module):
    """Input spikes (B, T, d_input) -> ``n_layers`` neuron layers -> leaky readout -> sum_t softmax."""

    def __init__(self, cfg: SNNConfig):
        super().__init__()
        self.cfg = cfg
        layer = SiLIFLayer if cfg.kind == "silif" else CSiLIFLayer
        sizes = [cfg.d_input] + [cfg.d_hidden] * cfg.n_layers
        self.layers = nn.ModuleList(layer(sizes[i], sizes[i + 1], cfg) for i in range(cfg.n_layers))
        self.readout = LeakyReadout(cfg.d_hidden, cfg.n_classes)

    @property
    def model_type(self) -> str:
        return self.cfg.kind

    def forward(self, x, lengths=None, noise=None, probe: Optional[dict] = None):
        """``noise`` is accepted for a common interface and unused: these neurons are deterministic.

        With ``lengths``, steps past a sequence's end get zero input and are left out of the sum.
        """
        mask = None
        if lengths is not None:
            mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths.to(x.device)[:, None])[..., None]
            x = x * mask
        h = x
        for l, layer in enumerate(self.layers):
            h = layer(h, probe, f"layer{l}")
            if mask is not None:
                h = h * mask
        r = self.readout(h)
        if probe is not None:
            probe["readout.r"] = r.detach()
        p = torch.softmax(r, -1)
        if mask is not None:
            p = p * mask
        return p.sum(1)

    @torch.no_grad()
    def layer_activity(self, x, lengths=None, noise=None) -> dict:
        """Float64 class scores and every layer's input and output spikes (B, T, n) as numpy arrays;
        the neurons are deterministic, so their spike "probabilities" are the spikes themselves."""
        probe: dict = {}
        scores = self.double()(x.double(), lengths, probe=probe)
        s_out = [probe[f"layer{l}.s"].numpy().astype(bool) for l in range(self.cfg.n_layers)]
        s_in = [x.numpy() != 0] + s_out[:-1]
        return {"scores": scores.numpy(), "spikes_in": s_in, "spikes_out": s_out,
                "prob_in": [s.astype(np.float64) for s in s_in], "prob_out": [s.astype(np.float64) for s in s_out]}

    def ssm_parameters(self):
        """No separate optimizer group: the authors train every parameter with one Adam."""
        return iter(())
