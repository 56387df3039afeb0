"""Bit-exact reference simulator of SiLIF / C-SiLIF netlists (docs/numerics.md §5), in numpy.

Layer by layer over the whole sequence: the Dense synapse is vectorized over time, the neuron steps
through time vectorized over samples and neurons. The step functions here are what the Lava
fixed-point models call. The readout's potentials are decoded on the host:
``scores = sum_t softmax(r_t 2^-F)``, the float model's output.
"""

from __future__ import annotations

import numpy as np

from ..export.netlist import Netlist
from ..export.nodes import CSiLIFNeuron
from ..quant.fixed import DECAY_BITS, SaturationCounter, rf_step, saturate, shr_trunc, synaptic_input
from .reference import ReferenceResult


class SNNParams:
    """Integer parameters of one SiLIF or C-SiLIF population, as int64."""

    def __init__(self, values: dict, complex_state: bool):
        v = values
        self.layer, self.n, self.frac_bits = v["layer"], v["n"], v["state_frac_bits"]
        self.complex = complex_state
        self.one = 1 << self.frac_bits
        self.bias = v["bias"].astype(np.int64)
        if self.complex:
            self.dr, self.di = v["decay_re"].astype(np.int64), v["decay_im"].astype(np.int64)
            self.half = 1 << (self.frac_bits - 1)
        else:
            self.alpha, self.beta = v["alpha"].astype(np.int64), v["beta"].astype(np.int64)
            self.oma, self.a, self.b = (v["one_minus_alpha"].astype(np.int64), v["a"].astype(np.int64),
                                        v["b"].astype(np.int64))


def params_of(node) -> SNNParams:
    return SNNParams(node.values, isinstance(node, CSiLIFNeuron))


def silif_step(p: SNNParams, current, u, w, s_prev):
    """One SiLIF step; returns ``s, u, w, saturations``."""
    w, n_w = saturate(shr_trunc(p.beta * w, DECAY_BITS) + shr_trunc(p.a * u, DECAY_BITS) + s_prev * p.b)
    u, n_u = saturate(shr_trunc(p.alpha * (u - s_prev * p.one), DECAY_BITS)
                      + shr_trunc(p.oma * (current + p.bias - w), DECAY_BITS))
    return (u > p.one).astype(np.int64), u, w, n_w + n_u


def csilif_step(p: SNNParams, current, ur, ui, s_prev):
    """One C-SiLIF step (``lava.proc.rf``'s rotation after the reset); returns ``s, ur, ui, saturations``."""
    ur, ui, n_sat = rf_step(ur - s_prev * p.half, ui, p.dr, p.di, current + p.bias, 0)
    return (2 * ur > p.one).astype(np.int64), ur, ui, n_sat


def neuron_layer(p: SNNParams, currents: np.ndarray, sat: SaturationCounter, record_states: bool = False):
    """A population over a sequence: integer currents (B, T, n) -> spikes (B, T, n) bool."""
    batch, steps, n = currents.shape
    x = np.zeros((batch, n), np.int64)
    y = np.zeros((batch, n), np.int64)
    s = np.zeros((batch, n), np.int64)
    spikes = np.zeros((batch, steps, n), bool)
    states = np.zeros((batch, steps, n, 2), np.int64) if record_states else None
    step = csilif_step if p.complex else silif_step
    n_sat = 0
    for t in range(steps):
        s, x, y, k = step(p, currents[:, t], x, y, s)
        n_sat += k
        spikes[:, t] = s
        if record_states:
            states[:, t, :, 0], states[:, t, :, 1] = x, y
    sat.add(f"layer{p.layer}.state", n_sat)
    return spikes, states


def readout_leaky_step(alpha, bias, r, current):
    """``r' = sat(shr_trunc(alpha r, 12) + a + bias)``; returns ``r'`` and its saturations."""
    return saturate(shr_trunc(alpha * r, DECAY_BITS) + current + bias)


def decode_scores(potentials: np.ndarray, frac_bits: int) -> np.ndarray:
    """Host decoding of the readout potentials (B, T, C): ``sum_t softmax(r_t 2^-F)``."""
    z = potentials.astype(np.float64) * 2.0 ** -frac_bits
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(-1, keepdims=True)).sum(1)


def simulate_snn(netlist: Netlist, spikes: np.ndarray, record_states: bool = False) -> ReferenceResult:
    """Run the integer network on input spike trains (B, T, d_input)."""
    x = np.asarray(spikes) != 0
    batch, steps, _ = x.shape
    sat = SaturationCounter()
    result = ReferenceResult(logits=None, predictions=None)
    for layer in netlist.snn_layers():
        syn, p = layer["synapse"], params_of(layer["neuron"])
        currents = synaptic_input(syn.to_dense(), x.reshape(batch * steps, -1), syn.weight_exp, 0)
        out, states = neuron_layer(p, currents.reshape(batch, steps, -1), sat, record_states)
        result.spikes_in.append(x)
        result.spikes_out.append(out)
        if record_states:
            result.states.append(states)
        x = out
    syn, ro = netlist.nodes["readout_synapse"], netlist.nodes["readout"]
    currents = synaptic_input(syn.to_dense(), x.reshape(batch * steps, -1), syn.weight_exp, 0).reshape(batch, steps, -1)
    alpha, bias = ro.alpha.astype(np.int64), ro.bias.astype(np.int64)
    r = np.zeros((batch, ro.n), np.int64)
    potentials = np.zeros((batch, steps, ro.n), np.int64)
    n_sat = 0
    for t in range(steps):
        r, k = readout_leaky_step(alpha, bias, r, currents[:, t])
        n_sat += k
        potentials[:, t] = r
    sat.add("readout", n_sat)
    result.residual_out = potentials
    result.logits = decode_scores(potentials, ro.state_frac_bits)
    result.predictions = result.logits.argmax(-1)
    result.saturation = sat.as_dict()
    return result
