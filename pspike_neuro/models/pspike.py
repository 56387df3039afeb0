"""The P-SpikeSSM block and network (DESIGN §4), causal form, residual stream ``x`` of width H.

One block::

    p_in = a_in * Norm_pre(x) + b_in           s = 1[u1 < p_in]          (input sampler)
    v    = SSM(s)  (= K * s + D s)                                       (SSM neuron)
    q    = a_out * phi(v) + b_out              o = 1[u2 < q]             (output sampler)
    m    = psi(W o + c)                                                  (SpikeMixer)
    x'   = Norm_post(x + m)   (or Norm_post(m) without residual)        (ClampFuse)

Pre-norm blocks use Norm_pre = norm, Norm_post = identity and the network adds a final norm;
post-norm blocks the other way round. The clamp of ClampFuse is the clamp into a probability at
the next sampler. Sampling sites are numbered ``4 * layer + k`` with k = 0 (input), 1 (output),
2 and 3 (the reverse branch of a bidirectional block); with ``shared_uniforms`` every output sampler
draws site ``4 * layer`` (the P-SpikeSSM authors' LRA blocks reuse the input sampler's uniforms).

A bidirectional block's second branch runs on the time-reversed normalized input
(``branch_order="reversed"``), or, as the authors' ``reverse_layer`` does (``"same"``), over the same
time order on the block input before the pre-norm.

Network: encoder (Linear for real inputs, Embedding for tokens) -> blocks -> [final norm] ->
mean over valid time steps -> Linear readout.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .sampler import LIFSampler, NoiseSource, SiteMemo, SpikeSampler
from .ssm import DiagonalSSM

SITES_PER_LAYER = 4


def activation(name: str):
    return {"identity": lambda x: x, "relu": F.relu, "gelu": F.gelu}[name]


class SequenceNorm(nn.Module):
    """BatchNorm over channels of (B, L, H) inputs, LayerNorm over H, or nothing."""

    def __init__(self, kind: str, width: int):
        super().__init__()
        self.kind = kind
        if kind == "batch":
            self.norm = nn.BatchNorm1d(width)
        elif kind == "layer":
            self.norm = nn.LayerNorm(width)
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "batch":
            return self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.norm(x)


def make_sampler(cfg: ModelConfig) -> nn.Module:
    if cfg.sampler == "lif":
        return LIFSampler(cfg.lif_beta, cfg.lif_threshold)
    return SpikeSampler()


def time_mask(lengths: Optional[torch.Tensor], length: int, device) -> Optional[torch.Tensor]:
    """(B, L, 1) mask of valid steps, or None when every sequence is full length."""
    if lengths is None:
        return None
    return (torch.arange(length, device=device)[None, :] < lengths[:, None].to(device))[..., None]


class PSpikeBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        h = cfg.d_model
        self.layer = layer
        self.prenorm, self.residual, self.bidirectional = cfg.prenorm, cfg.residual, cfg.bidirectional
        self.same_order, self.shared_uniforms = cfg.branch_order == "same", cfg.shared_uniforms
        self.phi, self.psi = activation(cfg.phi), activation(cfg.psi)
        self.norm_pre = SequenceNorm(cfg.norm if cfg.prenorm else "none", h)
        self.norm_post = SequenceNorm("none" if cfg.prenorm else cfg.norm, h)
        self.a_in, self.b_in = nn.Parameter(torch.ones(h)), nn.Parameter(torch.zeros(h))
        self.a_out, self.b_out = nn.Parameter(torch.ones(h)), nn.Parameter(torch.zeros(h))
        ssm_args = dict(init=cfg.init, discretization=cfg.discretization, dt_min=cfg.dt_min,
                        dt_max=cfg.dt_max, share_ab=cfg.share_ab, two_sided=cfg.two_sided)
        self.ssm = DiagonalSSM(h, cfg.d_state, **ssm_args)
        if cfg.bidirectional:
            self.a_in_rev, self.b_in_rev = nn.Parameter(torch.ones(h)), nn.Parameter(torch.zeros(h))
            self.a_out_rev, self.b_out_rev = nn.Parameter(torch.ones(h)), nn.Parameter(torch.zeros(h))
            self.ssm_rev = DiagonalSSM(h, cfg.d_state, **ssm_args)
        self.sampler = make_sampler(cfg)
        self.mixer = nn.Linear(h * (2 if cfg.bidirectional else 1), h)
        self.dropout = nn.Dropout(cfg.dropout)

    def site(self, k: int) -> int:
        """The random-number site of sampler ``k`` (0/1 input/output, 2/3 the second branch's)."""
        if self.shared_uniforms and k in (1, 3):
            k = 0
        return SITES_PER_LAYER * self.layer + k

    def _branch(self, xn, a_in, b_in, ssm, a_out, b_out, k, mask, noise, probe, name):
        p_in = a_in * xn + b_in
        s = self.sampler(p_in, self.site(k), noise)
        if mask is not None:
            s = s * mask
        v = ssm(s)
        q = a_out * self.phi(v) + b_out
        o = self.sampler(q, self.site(k + 1), noise)
        if probe is not None:
            pre = f"layer{self.layer}.{name}"
            probe.update({f"{pre}p_in": p_in.detach(), f"{pre}s_in": s.detach(), f"{pre}v": v.detach(),
                          f"{pre}q": q.detach(), f"{pre}o": o.detach()})
        return o

    def forward(self, x, mask=None, noise: Optional[NoiseSource] = None, probe: Optional[dict] = None):
        if self.shared_uniforms and noise is None:
            noise = SiteMemo()  # one torch.rand draw per site, reused by the samplers that share it
        xn = self.norm_pre(x)
        o = self._branch(xn, self.a_in, self.b_in, self.ssm, self.a_out, self.b_out, 0, mask, noise,
                         probe, "")
        if self.bidirectional and self.same_order:
            rev = self._branch(x, self.a_in_rev, self.b_in_rev, self.ssm_rev, self.a_out_rev, self.b_out_rev, 2,
                               mask, noise, probe, "rev.")
            o = torch.cat([o, rev], -1)
        elif self.bidirectional:
            rev = self._branch(xn.flip(1), self.a_in_rev, self.b_in_rev, self.ssm_rev, self.a_out_rev,
                               self.b_out_rev, 2, None if mask is None else mask.flip(1), noise, probe,
                               "rev.")
            o = torch.cat([o, rev.flip(1)], -1)
        m = self.dropout(self.psi(self.mixer(o)))
        out = self.norm_post(x + m if self.residual else m)
        if probe is not None:
            probe[f"layer{self.layer}.m"] = m.detach()
            probe[f"layer{self.layer}.x"] = out.detach()
        return out


class PSpikeSSM(nn.Module):
    """Encoder, ``n_layers`` P-SpikeSSM blocks, mean-pool readout."""

    model_type = "pspike"

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.input_kind == "tokens":
            self.encoder = nn.Embedding(cfg.d_input, cfg.d_model, padding_idx=0)
        else:
            self.encoder = nn.Linear(cfg.d_input, cfg.d_model)
        self.blocks = nn.ModuleList(PSpikeBlock(cfg, i) for i in range(cfg.n_layers))
        self.final_norm = SequenceNorm(cfg.norm if cfg.prenorm else "none", cfg.d_model)
        self.readout = nn.Linear(cfg.d_model, cfg.n_classes)
        if cfg.param_dtype == "float64":
            self.double()

    def features(self, x, lengths=None, noise=None, probe=None) -> torch.Tensor:
        """The residual stream after the last block (and final norm), (B, L, H)."""
        if x.is_floating_point():
            x = x.to(self.readout.weight.dtype)
        h = self.encoder(x)
        mask = time_mask(lengths, h.shape[1], h.device)
        for block in self.blocks:
            h = block(h, mask, noise, probe)
        return self.final_norm(h)

    def forward(self, x, lengths=None, noise: Optional[NoiseSource] = None, probe: Optional[dict] = None):
        h = self.features(x, lengths, noise, probe)
        mask = time_mask(lengths, h.shape[1], h.device)
        if mask is None:
            pooled = h.mean(1)
        else:
            pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.readout(pooled)

    @torch.no_grad()
    def layer_activity(self, x, lengths=None, noise=None) -> dict:
        """Float64 class scores, and per block the input- and output-sampler spikes and their
        probabilities ``clamp(p, 0, 1)`` (B, L, H) as numpy arrays, for verify and the report (a block with
        two branches over the same time order gives two populations, the forward one first)."""
        probe: dict = {}
        model = self.double()
        scores = model(x.double() if x.is_floating_point() else x, lengths, noise=noise, probe=probe)
        branches = ("", "rev.") if self.cfg.bidirectional and self.cfg.branch_order == "same" else ("",)
        grab = lambda key, fn: [fn(probe[f"layer{l}.{b}{key}"].numpy())  # noqa: E731
                                for l in range(self.cfg.n_layers) for b in branches]
        return {"scores": scores.numpy(), "spikes_in": grab("s_in", lambda a: a.astype(bool)),
                "spikes_out": grab("o", lambda a: a.astype(bool)),
                "prob_in": grab("p_in", lambda a: np.clip(a, 0, 1)), "prob_out": grab("q", lambda a: np.clip(a, 0, 1))}

    def ssm_parameters(self):
        """Parameters of the SSM kernels that get their own optimizer group."""
        for module in self.modules():
            if isinstance(module, DiagonalSSM):
                for name in DiagonalSSM.ssm_parameter_names:
                    yield getattr(module, name)
