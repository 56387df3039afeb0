"""Fold a trained float model into a float graph: the node types' float parameters, exact in float
arithmetic (docs/numerics.md §3, §5). Quantization (quant/quantize.py) then turns the float graph into
the integer netlist, one path for every model family; ``FOLDERS`` says how each family folds.

P-SpikeSSM:

* input sampler: ``p_in = alpha * x + beta`` (pre-BatchNorm and ``a_in, b_in`` merged);
* SSM neuron: modes rescaled so that ``|Bbar| = 1``; the readout ``C' = 2 |a_out| C |Bbar|``,
  ``D' = |a_out| D`` gives ``q = sign * phi(Re(sum C' z') + D' s) + b_out`` directly in
  probability units (``sign = sign(a_out)``, which only matters for phi = relu; for identity the
  sign is folded into C' and D' and ``sign = 1``);
* ClampFuse: ``x_next = post_scale * (x + psi(W o + c)) + post_offset`` (post-BatchNorm folded; the
  identity for pre-norm models);
* final norm and mean-pool readout: ``logits = W_r' mean_t(x_M) + b_r'`` (an integrator whose sum
  over the valid steps has the same argmax).

SiLIF / C-SiLIF: BatchNorm ``g (W x) + h`` with ``g = gamma / sqrt(var + eps)``, ``h = beta - mean g``;
``dt`` disappears into the decays. SiLIF: synapse ``diag(g) W``, bias ``h``. C-SiLIF: the real input
gain ``b`` joins the synapse, ``diag(b g) W`` and bias ``b h``. Readout: ``(1 - alpha_r)`` joins the
synapse, ``diag((1 - alpha_r) g_r) W_r`` and bias ``(1 - alpha_r) h_r``.

What the integer path cannot represent is refused here with a message naming the layer and fix.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from ..graph import Edge, Netlist
from ..models import SNN, GraphModel, ModelConfig, PSpikeSSM
from ..models.pspike import SequenceNorm
from ..models.silif import CSiLIFLayer
from ..nodes import FloatNode
from ..nodes.clamp_fuse import ClampFuse
from ..nodes.csilif_neuron import CSiLIFNeuron
from ..nodes.graded_input import GradedInput
from ..nodes.leaky_readout import LeakyReadout
from ..nodes.readout_integrator import ReadoutIntegrator
from ..nodes.silif_neuron import SiLIFNeuron
from ..nodes.spike_input import SpikeInput
from ..nodes.ssm_neuron import SSMNeuron
from ..nodes.synapses import DenseSynapse, SparseSynapse

SITES_PER_LAYER = 4  # sampling sites 4 * layer + k (models/pspike.py)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _batchnorm_affine(norm: SequenceNorm, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``BN(x) = scale * x + offset`` at inference; the identity when there is no norm."""
    if norm.kind == "none":
        return np.ones(width), np.zeros(width)
    bn = norm.norm
    inv_std = 1.0 / np.sqrt(_np(bn.running_var) + bn.eps)
    gamma = _np(bn.weight) if bn.affine else np.ones(width)
    shift = _np(bn.bias) if bn.affine else np.zeros(width)
    scale = gamma * inv_std
    return scale, shift - scale * _np(bn.running_mean)


def check_deployable(cfg: ModelConfig) -> None:
    """Refuse, with one line naming the layer and the fix, what the integer path cannot carry."""
    if cfg.bidirectional:
        raise UserError("layer 0: bidirectional blocks are not causal and cannot stream on chip; "
                        "retrain without --bidirectional")
    if cfg.norm == "layer":
        raise UserError("layer 0: LayerNorm needs a mean and variance across neurons every step, which "
                        "the integer path cannot represent; retrain with --norm batch")
    if cfg.phi == "gelu":
        raise UserError("layer 0: phi=gelu (after the SSM) has no integer form; retrain with --phi identity "
                        "or --phi relu")
    if cfg.psi == "gelu":
        raise UserError("layer 0: psi=gelu (after the SpikeMixer) has no integer form; retrain with "
                        "--psi identity or --psi relu")
    if cfg.sampler != "stochastic":
        raise UserError(f"layer 0: sampler={cfg.sampler} is the float LIF baseline, not a P-SpikeSSM; "
                        "export a model trained with --sampler stochastic")


def _encoder_floats(encoder: torch.nn.Module) -> dict:
    if isinstance(encoder, torch.nn.Embedding):
        return {"embedding": _np(encoder.weight)}
    return {"encoder_weight": _np(encoder.weight), "encoder_bias": _np(encoder.bias)}


def fold_pspike(model: PSpikeSSM, prob_bits: int) -> Netlist:
    """A P-SpikeSSM as a float graph: input -> (neuron -> mixer -> fuse) per block -> readout."""
    cfg = model.cfg
    check_deployable(cfg)
    h = cfg.d_model
    nodes = [FloatNode(GradedInput, "input", {"n": h}, _encoder_floats(model.encoder))]
    edges = [Edge("input", "neuron0"), Edge("input", "fuse0", dst_port="residual")]
    with torch.no_grad():
        for l, block in enumerate(model.blocks):
            pre_scale, pre_offset = _batchnorm_affine(block.norm_pre, h)
            a_in, b_in = _np(block.a_in), _np(block.b_in)
            lam, bbar, c = (t.detach().cpu().to(torch.complex128).numpy() for t in block.ssm.discrete())
            mag = np.abs(bbar)
            if np.any(mag == 0):
                raise UserError(f"layer {block.layer}: an SSM mode has Bbar = 0 and receives no input; "
                                "retrain or prune the mode")
            a_out = _np(block.a_out)
            if cfg.phi == "relu":
                sign, gain = np.where(a_out < 0, -1.0, 1.0), np.abs(a_out)
            else:
                sign, gain = np.ones(h), a_out
            b_unit, c_fold = bbar / mag, 2 * gain[:, None] * c * mag
            post_scale, post_offset = _batchnorm_affine(block.norm_post, h)
            nodes += [
                FloatNode(SSMNeuron, f"neuron{l}",
                          dict(layer=l, n=h, n_modes=lam.shape[1], prob_bits=prob_bits, site_in=SITES_PER_LAYER * l,
                               site_out=SITES_PER_LAYER * l + 1, phi=cfg.phi),
                          dict(alpha=a_in * pre_scale, beta=a_in * pre_offset + b_in, lam_re=lam.real, lam_im=lam.imag,
                               b_unit_re=b_unit.real, b_unit_im=b_unit.imag, c_re=c_fold.real, c_im=c_fold.imag,
                               d=gain * _np(block.ssm.D), b_out=_np(block.b_out), out_sign=sign)),
                FloatNode(SparseSynapse, f"mixer{l}", dict(n_in=h, n_out=h), dict(weight=_np(block.mixer.weight))),
                FloatNode(ClampFuse, f"fuse{l}", dict(layer=l, n=h, psi=cfg.psi, residual=cfg.residual),
                          dict(bias=_np(block.mixer.bias), post_scale=post_scale, post_offset=post_offset)),
            ]
            edges += [Edge(f"neuron{l}", f"mixer{l}"), Edge(f"mixer{l}", f"fuse{l}", dst_port="mixer")]
            if l + 1 < cfg.n_layers:
                edges += [Edge(f"fuse{l}", f"neuron{l + 1}"), Edge(f"fuse{l}", f"fuse{l + 1}", dst_port="residual")]
        fin_scale, fin_offset = _batchnorm_affine(model.final_norm, h)
        w_r, b_r = _np(model.readout.weight), _np(model.readout.bias)
    nodes += [FloatNode(DenseSynapse, "readout_synapse", dict(n_in=h, n_out=cfg.n_classes),
                        dict(weight=w_r * fin_scale[None, :])),
              FloatNode(ReadoutIntegrator, "readout", dict(n=cfg.n_classes), dict(bias=w_r @ fin_offset + b_r))]
    edges += [Edge(f"fuse{cfg.n_layers - 1}", "readout_synapse"), Edge("readout_synapse", "readout")]
    return Netlist(meta={}, nodes={n.name: n for n in nodes}, edges=edges)


def _bn_affine(norm: torch.nn.BatchNorm1d) -> tuple[np.ndarray, np.ndarray]:
    g = _np(norm.weight) / np.sqrt(_np(norm.running_var) + norm.eps)
    return g, _np(norm.bias) - _np(norm.running_mean) * g


def _finite(name: str, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, np.ndarray) and not np.all(np.isfinite(value)):
            raise UserError(f"{name}: {key} has NaN or infinite values; the checkpoint cannot be deployed")


def fold_snn(model: SNN, prob_bits: int) -> Netlist:
    """A SiLIF / C-SiLIF network as a float graph: input -> (synapse -> neurons) per layer -> readout."""
    nodes = [FloatNode(SpikeInput, "input", {"n": model.cfg.d_input}, {})]
    edges, prev = [], "input"
    with torch.no_grad():
        for l, layer in enumerate(model.layers):
            g, h = _bn_affine(layer.norm)
            w = _np(layer.linear.weight)
            if isinstance(layer, CSiLIFLayer):
                lam, b = layer.coefficients()
                lam = lam.detach().to(torch.complex128).numpy()
                b = _np(b)
                weight = (b * g)[:, None] * w
                neuron = FloatNode(CSiLIFNeuron, f"neuron{l}", dict(layer=l, n=len(g)),
                                   dict(lam_re=lam.real.copy(), lam_im=lam.imag.copy(), bias=b * h))
            else:
                alpha, beta, a, b = (_np(t) for t in layer.coefficients())
                weight = g[:, None] * w
                neuron = FloatNode(SiLIFNeuron, f"neuron{l}", dict(layer=l, n=len(g)),
                                   dict(alpha=alpha, beta=beta, a=a, b=b, bias=h))
            _finite(f"layer {l}", {**neuron.floats, "weight": weight})
            nodes += [FloatNode(DenseSynapse, f"synapse{l}", dict(n_in=w.shape[1], n_out=w.shape[0]),
                                dict(weight=weight)), neuron]
            edges += [Edge(prev, f"synapse{l}"), Edge(f"synapse{l}", f"neuron{l}")]
            prev = f"neuron{l}"
        g, h = _bn_affine(model.readout.norm)
        alpha = _np(model.readout.clamped_alpha())
        w = _np(model.readout.linear.weight)
        weight, bias = ((1 - alpha) * g)[:, None] * w, (1 - alpha) * h
    _finite("readout", {"weight": weight, "bias": bias})
    nodes += [FloatNode(DenseSynapse, "readout_synapse", dict(n_in=w.shape[1], n_out=w.shape[0]), dict(weight=weight)),
              FloatNode(LeakyReadout, "readout", dict(n=len(alpha)), dict(alpha=alpha, bias=bias))]
    edges += [Edge(prev, "readout_synapse"), Edge("readout_synapse", "readout")]
    return Netlist(meta={}, nodes={n.name: n for n in nodes}, edges=edges)


def fold_graph(model: GraphModel, prob_bits: int) -> Netlist:
    """An imported graph: its discretized float graph (models/nir_steps.py)."""
    return model.to_float_graph()


#: how each model family becomes a float graph
FOLDERS = {PSpikeSSM: fold_pspike, SNN: fold_snn, GraphModel: fold_graph}


def fold(model: torch.nn.Module, prob_bits: int = 16) -> Netlist:
    """The float graph of ``model``; a model class without a folder is refused by name."""
    folder = FOLDERS.get(type(model))
    if folder is None:
        raise UserError(f"a {type(model).__name__} model has no deployment path (no folder in quant.fold.FOLDERS)")
    graph = folder(model.eval(), prob_bits)
    graph.validate(require_meta=False)
    return graph
