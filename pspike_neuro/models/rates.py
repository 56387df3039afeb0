"""Spike-rate regularization: the expected firing probability of every sampler (P-SpikeSSM) or neuron
layer (SiLIF, C-SiLIF, CadLIF, RF) in a forward pass, and the penalty training adds to its loss.

For sample ``b``, site ``s`` (a P-SpikeSSM block's input and output samplers, sites ``4 l + k``; a
SiLIF-family layer's spikes) and neuron ``h``, the mean expected probability over the valid steps::

    pbar[b, s, h] = sum_t valid[b, t] E[S[b, t, h]] / sum_t valid[b, t]

with ``E[S] = clamp(y, 0, 1)`` for a stochastic sampler of input ``y`` (its surrogate gradient is that
of the clamp) and ``E[S] = S`` for deterministic neurons (the LIF baseline, SiLIF: the spike, with its
boxcar surrogate). The penalty of one sample is::

    R_b = (1 / |sites|) sum_s (1 / H_s) sum_h f(pbar[b, s, h] - target[layer(s)])
    form "mean":   f(x) = max(x, 0)                          an equal push on every neuron's rate
    form "neuron": f(x) = sqrt(max(x, 0) + eps) - sqrt(eps)  concave: quiet neurons are pushed hardest,
                                                             so whole neurons fall silent (prunable)

and training adds ``lambda * sum_b R_b * share`` (``share`` as in ``training.batch_loss``: a sum over
the samples, so that ranks under torchrun add up to the global batch's mean). With target 0 and form
"mean" the penalty is ``lambda * mean(clamp(p, 0, 1))`` over every sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .sampler import SpikeSampler

FORMS = ("mean", "neuron")
#: which sites carry the penalty: every sampler, or only the ones whose spikes leave a neuron (a P-SpikeSSM's output
#: samplers; every SiLIF layer): those a pruned network saves, while input samplers only gate accumulates
SITES = ("all", "output")
#: the "neuron" form's smoothing: its gradient at a silent neuron is 1 / (2 sqrt(EPS)) = 50 times the "mean" form's
NEURON_EPS = 1e-4


@dataclass(frozen=True)
class RatePenalty:
    """``weight`` (lambda), ``targets`` (one for every layer, or one per layer), ``form``, ``sites``."""

    weight: float
    targets: tuple = (0.0,)
    form: str = "mean"
    sites: str = "all"

    def target(self, layer: int) -> float:
        return self.targets[0] if len(self.targets) == 1 else self.targets[layer]

    def f(self, excess: torch.Tensor) -> torch.Tensor:
        x = excess.clamp(min=0)
        if self.form == "neuron":
            return (x + NEURON_EPS).sqrt() - math.sqrt(NEURON_EPS)
        return x


def check_rate_settings(weight: float, targets, form: str, n_layers: int | None = None, sites: str = "all") -> None:
    """Refuse a penalty that is negative or not finite, targets outside [0, 1], an unknown form or site
    set, or a number of targets that is neither one nor the number of layers (``UserError``: one line, exit 2)."""
    from ..errors import UserError

    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise UserError(f"--rate-penalty must be a finite number >= 0, got {weight!r}")
    for t in targets:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
            raise UserError(f"--rate-target values must be probabilities in [0, 1], got {t!r}")
    if not targets:
        raise UserError("--rate-target needs at least one value")
    if form not in FORMS:
        raise UserError(f"--rate-penalty-form must be one of {', '.join(FORMS)}, got {form!r}")
    if sites not in SITES:
        raise UserError(f"--rate-sites must be one of {', '.join(SITES)}, got {sites!r}")
    if n_layers is not None and len(targets) not in (1, n_layers):
        raise UserError(f"--rate-target has {len(targets)} values; give one, or one per layer ({n_layers})")


class RateProbe:
    """Forward hooks that record, during one forward pass, every site's expected firing probability
    ``(layer, name, E[S])`` with its gradient. ``close()`` removes the hooks."""

    def __init__(self, model: nn.Module):
        self.records: list[tuple[int, str, torch.Tensor]] = []
        self.handles = []
        blocks = getattr(model, "blocks", None)
        if blocks is not None:  # P-SpikeSSM: the samplers of every block (sites 4 l + k)
            for block in blocks:
                self.handles.append(block.sampler.register_forward_hook(self._sampler_hook))
        else:  # SiLIF family: each layer's spikes, as they enter its dropout
            for l, layer in enumerate(model.layers):
                self.handles.append(layer.dropout.register_forward_pre_hook(self._layer_hook(l)))

    def _sampler_hook(self, module, args, output):
        y, site = args[0], int(args[1])
        expected = y.clamp(0, 1) if isinstance(module, SpikeSampler) else output
        kind = ("input", "output", "input_rev", "output_rev")[site % 4]
        self.records.append((site // 4, kind, expected))

    def _layer_hook(self, layer: int):
        def hook(module, args):
            self.records.append((layer, "spikes", args[0]))
        return hook

    def clear(self) -> None:
        self.records.clear()

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.records.clear()

    def per_sample(self, valid: torch.Tensor | None) -> list[tuple[int, str, torch.Tensor]]:
        """``(layer, name, pbar)`` per recorded site: pbar (B, H), the mean over valid steps (``valid``
        (B, L) bool, or None when every step is valid)."""
        out = []
        for layer, name, e in self.records:
            if valid is None:
                pbar = e.mean(1)
            else:
                w = valid.to(e.dtype)[..., None]
                pbar = (e * w).sum(1) / w.sum(1).clamp(min=1)
            out.append((layer, name, pbar))
        return out


def penalty_sum(settings: RatePenalty, sites: list) -> torch.Tensor:
    """``sum_b R_b`` over the batch (see the module docstring) for ``sites`` from :meth:`RateProbe.per_sample`;
    with ``settings.sites == "output"`` only the output samplers (P-SpikeSSM) count."""
    terms = [settings.f(pbar - settings.target(layer)).mean(-1) for layer, name, pbar in sites
             if settings.sites == "all" or not name.startswith("input")]
    return torch.stack(terms, 0).mean(0).sum()


def site_means(sites: list) -> dict:
    """The batch's mean probability per site, ``"L{layer}.{name}"`` -> (sum over samples, samples)."""
    return {f"L{layer}.{name}": float(pbar.detach().mean(-1).sum()) for layer, name, pbar in sites}
