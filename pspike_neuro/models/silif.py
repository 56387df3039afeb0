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

CadLIF (constrained adLIF, Deckers et al. 2024; the authors' ``CadLIFLayer``): SiLIF's recurrence
with ``alpha``, ``beta`` stored directly and clamped, ``alpha in [0.36, 0.96]``, ``beta in [0.96, 0.99]``.

RF (resonate-and-fire, Higuchi et al. 2024; the authors' ``ResonateFireLayer``), forward Euler at a
fixed ``dt`` (0.004 s, not trained)::

    lambda_c = min(alpha_real, -0.1) + i alpha_im
    u_t = u_{t-1} + dt (lambda_c u_{t-1} + I_t) - s_{t-1}      (reset after the step, not decayed)
    s_t = 1[Re(u_t) - 1 > 0]

All spike through the boxcar surrogate (gradient ``1[|x| < 1/2]``). The readout is a leaky
integrator ``r_t = alpha_r r_{t-1} + (1 - alpha_r) BN(W x_t)`` with ``alpha_r`` clamped to
``[e^{-1/5}, e^{-1/25}]``; the network's output is ``sum_t softmax(r_t)``, which the authors feed to
the cross-entropy loss as logits.

Deviation from the authors: states start at zero in training too (the authors draw them from
``U[0, 1)``); a deployed network starts from zero, and training the same way keeps the two
comparable (anchors.md §1.2). ``forward(..., init=generator)`` draws the authors' initial states
instead, to measure what zeros change (the SiLIF-repository importer does).
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

SNN_KINDS = ("silif", "csilif", "cadlif", "rf")
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
    rf_dt: float = 0.004          # RF: the fixed forward-Euler step (s), not trained
    input_counts: bool = False    # inputs are event counts per step (0, 1, 2, ...), deployed as graded messages

    def __post_init__(self):
        if self.kind not in SNN_KINDS:
            raise UserError(f"model config: kind={self.kind!r} is not one of {', '.join(SNN_KINDS)}")
        check_sizes(self, {"d_input": 1 << 20, "n_classes": 1 << 16, "d_hidden": 1 << 16, "n_layers": 256})
        check_types(self, reals=("dropout", "dt_init", "dt_min", "dt_max", "rf_dt"), flags=("input_counts",))
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"model config: dropout must be in [0, 1), got {self.dropout}")
        if not (self.dt_init > 0 and 0 < self.dt_min <= self.dt_max and self.rf_dt > 0):
            raise UserError("model config: need dt_init > 0, rf_dt > 0 and 0 < dt_min <= dt_max")
        if self.input_kind != "real":
            raise UserError("model config: SiLIF networks take real-valued (spike) inputs, not tokens")


def initial_state(init: Optional[torch.Generator], like: torch.Tensor, n: int, complex_state: bool = False):
    """A (batch, n) state at the first step: zeros (ours), or with a generator ``init`` the authors'
    ``U[0, 1)`` draws (real and imaginary parts each, for a complex state)."""
    batch, dtype = like.shape[0], like.dtype
    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
    if init is None:
        return torch.zeros(batch, n, dtype=cdt if complex_state else dtype, device=like.device)
    draw = lambda: torch.rand(batch, n, generator=init, dtype=dtype).to(like.device)  # noqa: E731
    return torch.complex(draw(), draw()) if complex_state else draw()


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

    def dynamics(self, current: torch.Tensor, probe: Optional[dict] = None, name: str = "",
                 init: Optional[torch.Generator] = None) -> torch.Tensor:
        alpha, beta, a, b = self.coefficients()
        batch, steps, n = current.shape
        u, w, s = (initial_state(init, current, n) for _ in range(3))
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

    def forward(self, x, probe=None, name="", init=None):
        i = self.current(x)
        s = self.dynamics(i, probe, name, init)
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

    def dynamics(self, current: torch.Tensor, probe: Optional[dict] = None, name: str = "",
                 init: Optional[torch.Generator] = None) -> torch.Tensor:
        lam, gain = self.coefficients()
        batch, steps, n = current.shape
        u = initial_state(init, current, n, complex_state=True)
        lam = lam.to(u.dtype)
        s = initial_state(init, current, n)
        spikes, us = [], []
        for t in range(steps):
            u, s = self.step(u, s, current[:, t], lam, gain)
            spikes.append(s)
            us.append(u)
        out = torch.stack(spikes, 1)
        if probe is not None:
            probe[f"{name}.u"] = torch.stack(us, 1).detach()
        return out

    @staticmethod
    def step(u, s, current, lam, b):
        """One step of the complex state: reset by 0.5 before the decay, spike at ``2 Re(u) > 1``."""
        u = lam * (u - 0.5 * s) + b * current
        return u, boxcar_spike(2 * u.real - 1.0)


class CadLIFLayer(SiLIFLayer):
    """Linear (no bias) -> BatchNorm -> CadLIF neurons -> dropout: SiLIF's recurrence, ``alpha`` and
    ``beta`` stored directly and clamped (the authors' initialization and clamps)."""

    ALPHA_RANGE = (0.36, 0.96)
    BETA_RANGE = (0.96, 0.99)

    def __init__(self, n_in: int, n_out: int, cfg: SNNConfig):
        nn.Module.__init__(self)
        self.linear = nn.Linear(n_in, n_out, bias=False)
        nn.init.xavier_uniform_(self.linear.weight)
        self.norm = nn.BatchNorm1d(n_out, momentum=0.05)
        self.alpha = nn.Parameter(torch.empty(n_out).uniform_(*self.ALPHA_RANGE))
        self.beta = nn.Parameter(torch.empty(n_out).uniform_(*self.BETA_RANGE))
        self.a = nn.Parameter(torch.rand(n_out))
        self.b = nn.Parameter(torch.rand(n_out) * 2)
        self.dropout = nn.Dropout(cfg.dropout)

    def coefficients(self):
        return (self.alpha.clamp(*self.ALPHA_RANGE), self.beta.clamp(*self.BETA_RANGE), self.a.clamp(0, 1),
                self.b.clamp(0, 2))


class RFLayer(CSiLIFLayer):
    """Linear (no bias) -> BatchNorm -> resonate-and-fire neurons (forward Euler, fixed dt) -> dropout."""

    ALPHA_REAL_MAX = -0.1

    def __init__(self, n_in: int, n_out: int, cfg: SNNConfig):
        nn.Module.__init__(self)
        self.linear = nn.Linear(n_in, n_out, bias=False)
        self.norm = nn.BatchNorm1d(n_out, momentum=0.05)
        self.alpha_real = nn.Parameter(torch.empty(n_out).uniform_(-10.0, -1.0))
        self.alpha_im = nn.Parameter(torch.empty(n_out).uniform_(5.0, 10.0))
        self.dt = cfg.rf_dt
        self.dropout = nn.Dropout(cfg.dropout)

    def coefficients(self):
        """The continuous eigenvalue ``lambda_c`` (real part clamped) and the fixed step ``dt``; the
        discrete step multiplies the state by ``1 + dt lambda_c``."""
        return torch.complex(self.alpha_real.clamp(max=self.ALPHA_REAL_MAX), self.alpha_im), self.dt

    @staticmethod
    def step(u, s, current, lam_c, dt):
        """One forward-Euler step, reset by 1 after it; spike at ``Re(u) > 1``."""
        u = u + dt * (lam_c * u + current) - s
        return u, boxcar_spike(u.real - 1.0)


#: neuron layer class of each kind
LAYERS = {"silif": SiLIFLayer, "csilif": CSiLIFLayer, "cadlif": CadLIFLayer, "rf": RFLayer}


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

    def forward(self, x, init: Optional[torch.Generator] = None):
        i = self.norm(self.linear(x).transpose(1, 2)).transpose(1, 2)
        alpha = self.clamped_alpha()
        r = initial_state(init, i, i.shape[2])
        out = []
        for t in range(i.shape[1]):
            r = alpha * r + (1 - alpha) * i[:, t]
            out.append(r)
        return torch.stack(out, 1)


class SNN(nn.Module):
    """Input spikes or counts (B, T, d_input) -> ``n_layers`` neuron layers -> leaky readout -> sum_t softmax."""

    def __init__(self, cfg: SNNConfig):
        super().__init__()
        self.cfg = cfg
        layer = LAYERS[cfg.kind]
        sizes = [cfg.d_input] + [cfg.d_hidden] * cfg.n_layers
        self.layers = nn.ModuleList(layer(sizes[i], sizes[i + 1], cfg) for i in range(cfg.n_layers))
        self.readout = LeakyReadout(cfg.d_hidden, cfg.n_classes)

    @property
    def model_type(self) -> str:
        return self.cfg.kind

    def forward(self, x, lengths=None, noise=None, probe: Optional[dict] = None,
                init: Optional[torch.Generator] = None):
        """``noise`` is accepted for a common interface and unused: these neurons are deterministic.

        With ``lengths``, steps past a sequence's end get zero input and are left out of the sum. With
        ``init``, every state starts from the authors' ``U[0, 1)`` draws instead of zero.
        """
        mask = None
        if lengths is not None:
            mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths.to(x.device)[:, None])[..., None]
            x = x * mask
        h = x
        for l, layer in enumerate(self.layers):
            h = layer(h, probe, f"layer{l}", init)
            if mask is not None:
                h = h * mask
        r = self.readout(h, init)
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
