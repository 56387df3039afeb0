"""From a SiLIF / C-SiLIF checkpoint to a netlist (docs/numerics.md §5).

Folding (exact in float): BatchNorm ``g (W x) + h`` with ``g = gamma / sqrt(var + eps)``,
``h = beta - mean g``; ``dt`` disappears into the decays. SiLIF: synapse ``diag(g) W``, bias ``h``.
C-SiLIF: the real input gain ``b`` joins the synapse, ``diag(b g) W`` and bias ``b h``. Readout:
``(1 - alpha_r)`` joins the synapse, ``diag((1 - alpha_r) g_r) W_r`` and bias ``(1 - alpha_r) h_r``.

Quantization: one state exponent ``F`` per layer from calibration (the largest ``|I + bias|``,
``|u|``, ``|w|`` with one bit of headroom), synaptic weights on Lava's 8-bit grid with a per-layer
exponent, decays and couplings as 12-bit fractions, ``b`` and biases as integers in state units.

Node names: ``input``; per layer ``synapse{l}`` (Dense, binary input) and ``neuron{l}``;
``readout_synapse`` and ``readout``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import __version__
from ..data import load_recorded_task
from ..errors import UserError
from ..models.silif import SNN, CSiLIFLayer
from ..quant.fixed import DECAY_BITS, quantize_decay, quantize_weights
from ..quant.quantize import QuantConfig, frac_bits_for
from .checkpoint import Checkpoint
from .netlist import FORMAT, FORMAT_VERSION, Edge, Netlist
from .nodes import STATE, CSiLIFNeuron, DenseSynapse, LeakyReadout, SiLIFNeuron, SpikeInput

ONE = 1 << DECAY_BITS


def _bn_affine(norm: torch.nn.BatchNorm1d) -> tuple[np.ndarray, np.ndarray]:
    var, mean = norm.running_var.double(), norm.running_mean.double()
    g = norm.weight.double() / torch.sqrt(var + norm.eps)
    return g.detach().numpy(), (norm.bias.double() - mean * g).detach().numpy()


def fold_snn(model: SNN) -> dict:
    """Float parameters of every layer after folding: synapse weights, biases and dynamics."""
    layers = []
    with torch.no_grad():
        for layer in model.layers:
            g, h = _bn_affine(layer.norm)
            w = layer.linear.weight.double().numpy()
            if isinstance(layer, CSiLIFLayer):
                lam, b = layer.coefficients()
                lam = lam.detach().to(torch.complex128).numpy()
                b = b.double().numpy()
                layers.append({"kind": "csilif", "weight": (b * g)[:, None] * w, "bias": b * h, "lam": lam})
            else:
                alpha, beta, a, b = (t.double().numpy() for t in layer.coefficients())
                layers.append({"kind": "silif", "weight": g[:, None] * w, "bias": h, "alpha": alpha,
                               "beta": beta, "a": a, "b": b})
        g, h = _bn_affine(model.readout.norm)
        alpha = model.readout.clamped_alpha().double().numpy()
        readout = {"weight": ((1 - alpha) * g)[:, None] * model.readout.linear.weight.double().numpy(),
                   "bias": (1 - alpha) * h, "alpha": alpha}
    return {"layers": layers, "readout": readout}


def _finite(name: str, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, np.ndarray) and not np.all(np.isfinite(value)):
            raise UserError(f"{name}: {key} has NaN or infinite values; the checkpoint cannot be deployed")


def calibrate_snn(model: SNN, x: torch.Tensor) -> dict:
    """Largest magnitudes of input currents and states per layer, and of the readout, in float64."""
    probe: dict = {}
    with torch.no_grad():
        model.double()(x.double(), probe=probe)
    model.float()
    stats = {}
    for l, layer in enumerate(model.layers):
        g_max = float(probe[f"layer{l}.i"].abs().max())
        if isinstance(layer, CSiLIFLayer):
            b = layer.b.detach().double().abs().max().item()
            u = probe[f"layer{l}.u"]
            g_max = max(g_max * b, float(u.real.abs().max()), float(u.imag.abs().max()))
        else:
            g_max = max(g_max, float(probe[f"layer{l}.u"].abs().max()), float(probe[f"layer{l}.w"].abs().max()))
        stats[f"layer{l}"] = g_max
    stats["readout"] = float(probe["readout.r"].abs().max())
    return stats


def _int(values, what: str, layer, lo=-STATE, hi=STATE) -> np.ndarray:
    out = np.rint(values).astype(np.int64)
    if np.any(out < lo) or np.any(out > hi):
        raise UserError(f"{layer}: {what} does not fit its integer range [{lo}, {hi}] after scaling; retrain "
                        "with smaller values")
    return out


def _fraction(values, what: str, layer) -> np.ndarray:
    return _int(np.asarray(values) * ONE, what, layer, 0, ONE)


def _synapse(name: str, weight: np.ndarray, frac_bits: int, qc: QuantConfig) -> DenseSynapse:
    w_int, w_exp = quantize_weights(weight * 2.0 ** frac_bits, qc.weight_bits)
    if not -24 <= w_exp <= 24:
        raise UserError(f"{name}: weight exponent {w_exp} is outside Lava's range [-24, 24]")
    return DenseSynapse(name, dict(n_in=weight.shape[1], n_out=weight.shape[0], weights=w_int, weight_exp=w_exp,
                                   num_weight_bits=qc.weight_bits, num_message_bits=0), {"weight": weight})


def build_snn_netlist(ckpt: Checkpoint, qc: QuantConfig, *, data_dir=None) -> tuple[Netlist, dict]:
    from ..sim.snn_reference import simulate_snn

    start = time.perf_counter()
    if not ckpt.task:
        raise UserError(f"checkpoint {ckpt.path}: records no task, so there is no calibration data")
    task = load_recorded_task(ckpt.task, ckpt.task_options, data_dir=data_dir)
    model = ckpt.model.eval()
    folded = fold_snn(model)
    n_calib = min(qc.calib_samples, len(task.train))
    stats = calibrate_snn(model, task.train.x[:n_calib])
    hb = qc.headroom_bits
    nodes = [SpikeInput("input", {"n": model.cfg.d_input})]
    edges = []
    prev = "input"
    for l, fl in enumerate(folded["layers"]):
        name = f"layer {l}"
        _finite(name, fl)
        f_bits = frac_bits_for(stats[f"layer{l}"], hb, lo=1, hi=22)
        syn = _synapse(f"synapse{l}", fl["weight"], f_bits, qc)
        bias = _int(fl["bias"] * 2.0 ** f_bits, "the BatchNorm offset", name)
        if fl["kind"] == "silif":
            values = dict(layer=l, n=len(bias), state_frac_bits=f_bits, alpha=_fraction(fl["alpha"], "alpha", name),
                          beta=_fraction(fl["beta"], "beta", name),
                          one_minus_alpha=_fraction(1 - fl["alpha"], "1 - alpha", name),
                          a=_fraction(fl["a"], "a", name), b=_int(fl["b"] * 2.0 ** f_bits, "b", name, 0, STATE),
                          bias=bias)
            floats = {k: fl[k] for k in ("alpha", "beta", "a", "b", "bias")}
            neuron = SiLIFNeuron(f"neuron{l}", values, floats)
        else:
            try:
                decay_re, decay_im = quantize_decay(fl["lam"][:, None])
            except ValueError as exc:
                raise UserError(f"{name}: {exc}") from None
            values = dict(layer=l, n=len(bias), state_frac_bits=f_bits, decay_re=decay_re[:, 0],
                          decay_im=decay_im[:, 0], bias=bias)
            floats = {"lam_re": fl["lam"].real.copy(), "lam_im": fl["lam"].imag.copy(), "bias": fl["bias"]}
            neuron = CSiLIFNeuron(f"neuron{l}", values, floats)
        nodes += [syn, neuron]
        edges += [Edge(prev, syn.name), Edge(syn.name, neuron.name)]
        prev = neuron.name
    ro = folded["readout"]
    _finite("readout", ro)
    r_bits = frac_bits_for(stats["readout"], hb, lo=-8, hi=23)
    rsyn = _synapse("readout_synapse", ro["weight"], r_bits, qc)
    readout = LeakyReadout("readout", dict(n=len(ro["bias"]), state_frac_bits=r_bits,
                                           alpha=_fraction(ro["alpha"], "readout alpha", "readout"),
                                           bias=_int(ro["bias"] * 2.0 ** r_bits, "the readout offset", "readout")),
                           {"alpha": ro["alpha"], "bias": ro["bias"]})
    nodes += [rsyn, readout]
    edges += [Edge(prev, "readout_synapse"), Edge("readout_synapse", "readout")]
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
        "source_sha256": ckpt.sha256, "model_config": model.cfg.to_dict(), "quant_config": qc.to_dict(),
        "seed": int(qc.seed), "latency_steps": len(folded["layers"]) + 1, "task": ckpt.task,
        "seq_len": int(task.seq_len),
    }
    if ckpt.task_options.get("options"):  # e.g. SHD's binning: simulate and verify must load the same inputs
        meta["task_options"] = dict(ckpt.task_options["options"])
    netlist = Netlist(meta=meta, nodes={n.name: n for n in nodes}, edges=edges)
    netlist.validate()
    check = simulate_snn(netlist, task.train.x[:n_calib].numpy())
    report = {"calibration_samples": n_calib, "export_time_s": time.perf_counter() - start,
              "calibration_saturation_events": int(sum(check.saturation.values())),
              "calibration_saturation": check.saturation,
              "state_frac_bits": [n.state_frac_bits for n in netlist.nodes.values()
                                  if isinstance(n, (SiLIFNeuron, CSiLIFNeuron))]}
    return netlist, report
