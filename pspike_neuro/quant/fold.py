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
gain ``b`` joins the synapse, ``diag(b g) W`` and bias ``b h``. CadLIF: SiLIF's node with its clamped
``alpha, beta``. RF: the Euler step becomes one complex decay ``1 + dt lambda_c``; ``dt`` joins the
synapse, ``diag(dt g) W`` and bias ``dt h``. Readout: ``(1 - alpha_r)`` joins the synapse,
``diag((1 - alpha_r) g_r) W_r`` and bias ``(1 - alpha_r) h_r``. Inputs are spikes (``SpikeInput``), or
event counts (``CountInput``) for a network trained on counts (``input_counts``).

What the integer path cannot represent is refused here with a message naming the layer and fix.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..errors import UserError
from ..graph import Edge, Netlist
from ..models import SNN, GraphModel, ModelConfig, PSpikeSSM
from ..models.pspike import SequenceNorm
from ..models.silif import CSiLIFLayer, RFLayer
from ..nodes import FloatNode
from ..nodes.clamp_fuse import ClampFuse
from ..nodes.count_input import CountInput
from ..nodes.csilif_neuron import CSiLIFNeuron
from ..nodes.graded_input import GradedInput
from ..nodes.leaky_readout import LeakyReadout
from ..nodes.readout_integrator import ReadoutIntegrator
from ..nodes.rf_neuron import RFNeuron
from ..nodes.silif_neuron import SiLIFNeuron
from ..nodes.spike_input import SpikeInput
from ..nodes.ssm_gelu_neuron import SSMGeluNeuron
from ..nodes.ssm_neuron import SSMNeuron
from ..nodes.synapses import DenseSynapse, SparseSynapse


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


def check_deployable(cfg: ModelConfig, gelu: str = "none") -> None:
    """Refuse, with one line naming the layer and the fix, what the integer path cannot carry
    (``gelu="table"``: GELU by the piecewise-linear table of docs/numerics.md §7)."""
    if cfg.bidirectional and cfg.branch_order != "same":
        raise UserError("layer 0: bidirectional blocks are not causal and cannot stream on chip; "
                        "retrain without --bidirectional")
    if cfg.two_sided:
        raise UserError("layer 0: two-sided SSM kernels read future inputs (their anti-causal half) and cannot "
                        "stream on chip; import the checkpoint without --two-sided (the causal import)")
    if cfg.norm == "layer":
        raise UserError("layer 0: LayerNorm needs a mean and variance across neurons every step, which "
                        "the integer path cannot represent; retrain with --norm batch")
    if cfg.phi == "gelu" and gelu != "table":
        raise UserError("layer 0: phi=gelu (after the SSM) has no integer form among the neuron's operations; "
                        "retrain with --phi identity or --phi relu, or export with --gelu table (a lookup table)")
    if cfg.psi == "gelu" and gelu != "table":
        raise UserError("layer 0: psi=gelu (after the SpikeMixer) has no integer form among the neuron's operations; "
                        "retrain with --psi identity or --psi relu, or export with --gelu table (a lookup table)")
    if cfg.sampler != "stochastic":
        raise UserError(f"layer 0: sampler={cfg.sampler} is the float LIF baseline, not a P-SpikeSSM; "
                        "export a model trained with --sampler stochastic")


def _encoder_floats(encoder: torch.nn.Module) -> dict:
    if isinstance(encoder, torch.nn.Embedding):
        return {"embedding": _np(encoder.weight)}
    return {"encoder_weight": _np(encoder.weight), "encoder_bias": _np(encoder.bias)}


def _neuron_node(cfg: ModelConfig, block, name: str, k: int, prob_bits: int, branch: dict) -> FloatNode:
    """The float SSM population of one branch of ``block`` (k = 0 its own branch, 2 the second one):
    ``branch`` holds its ``ssm``, input affine ``alpha, beta`` and output affine ``a_out, b_out``."""
    h = cfg.d_model
    lam, bbar, c = (t.detach().cpu().to(torch.complex128).numpy() for t in branch["ssm"].discrete())
    mag = np.abs(bbar)
    if np.any(mag == 0):
        raise UserError(f"layer {block.layer}: an SSM mode has Bbar = 0 and receives no input; "
                        "retrain or prune the mode")
    a_out = branch["a_out"]
    if cfg.phi == "relu":
        sign, gain = np.where(a_out < 0, -1.0, 1.0), np.abs(a_out)
    elif cfg.phi == "gelu":  # a_out acts after the GELU: SSMGeluNeuron's out_scale
        sign, gain = None, np.ones(h)
    else:
        sign, gain = np.ones(h), a_out
    b_unit, c_fold = bbar / mag, 2 * gain[:, None] * c * mag
    floats = dict(alpha=branch["alpha"], beta=branch["beta"], lam_re=lam.real, lam_im=lam.imag, b_unit_re=b_unit.real,
                  b_unit_im=b_unit.imag, c_re=c_fold.real, c_im=c_fold.imag, d=gain * _np(branch["ssm"].D),
                  b_out=branch["b_out"])
    floats.update(out_scale=a_out) if sign is None else floats.update(out_sign=sign)
    return FloatNode(SSMGeluNeuron if cfg.phi == "gelu" else SSMNeuron, name,
                     dict(layer=block.layer, n=h, n_modes=lam.shape[1], prob_bits=prob_bits, site_in=block.site(k),
                          site_out=block.site(k + 1), phi=cfg.phi), floats)


def fold_pspike(model: PSpikeSSM, prob_bits: int, gelu: str = "none") -> Netlist:
    """A P-SpikeSSM as a float graph: input -> (neuron -> mixer -> fuse) per block -> readout. A block with
    two branches over the same time order (the authors' LRA blocks) has two SSM populations, ``neuron{l}``
    and ``neuron{l}_rev``, whose mixers ``mixer{l}`` and ``mixer{l}_rev`` (the two halves of the 2H -> H
    mixer) add up in ``fuse{l}``."""
    cfg = model.cfg
    check_deployable(cfg, gelu)
    h = cfg.d_model
    two = cfg.bidirectional
    nodes = [FloatNode(GradedInput, "input", {"n": h}, _encoder_floats(model.encoder))]
    edges = [Edge("input", "neuron0"), Edge("input", "fuse0", dst_port="residual")] + \
        ([Edge("input", "neuron0_rev")] if two else [])
    with torch.no_grad():
        for l, block in enumerate(model.blocks):
            pre_scale, pre_offset = _batchnorm_affine(block.norm_pre, h)
            a_in, b_in = _np(block.a_in), _np(block.b_in)
            branches = [("", 0, dict(ssm=block.ssm, alpha=a_in * pre_scale, beta=a_in * pre_offset + b_in,
                                     a_out=_np(block.a_out), b_out=_np(block.b_out)))]
            if two:  # the second branch reads the block input before the pre-norm
                branches.append(("_rev", 2, dict(ssm=block.ssm_rev, alpha=_np(block.a_in_rev), beta=_np(block.b_in_rev),
                                                 a_out=_np(block.a_out_rev), b_out=_np(block.b_out_rev))))
            weight = _np(block.mixer.weight)
            post_scale, post_offset = _batchnorm_affine(block.norm_post, h)
            nodes += [_neuron_node(cfg, block, f"neuron{l}{suffix}", k, prob_bits, branch)
                      for suffix, k, branch in branches]
            nodes += [FloatNode(SparseSynapse, f"mixer{l}{suffix}", dict(n_in=h, n_out=h),
                                dict(weight=np.ascontiguousarray(weight[:, i * h:(i + 1) * h])))
                      for i, (suffix, _, _) in enumerate(branches)]
            nodes.append(FloatNode(ClampFuse, f"fuse{l}", dict(layer=l, n=h, psi=cfg.psi, residual=cfg.residual),
                                   dict(bias=_np(block.mixer.bias), post_scale=post_scale, post_offset=post_offset)))
            for suffix, _, _ in branches:
                edges += [Edge(f"neuron{l}{suffix}", f"mixer{l}{suffix}"),
                          Edge(f"mixer{l}{suffix}", f"fuse{l}", dst_port="mixer")]
            if l + 1 < cfg.n_layers:
                edges += [Edge(f"fuse{l}", f"neuron{l + 1}"), Edge(f"fuse{l}", f"fuse{l + 1}", dst_port="residual")] + \
                    ([Edge(f"fuse{l}", f"neuron{l + 1}_rev")] if two else [])
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
    """A SiLIF / C-SiLIF / CadLIF / RF network as a float graph: input -> (synapse -> neurons) per layer ->
    readout."""
    source = CountInput if model.cfg.input_counts else SpikeInput
    nodes = [FloatNode(source, "input", {"n": model.cfg.d_input}, {})]
    model = copy.deepcopy(model).double()  # decays, clamps and the readout's alpha in float64, as verify runs it
    edges, prev = [], "input"
    with torch.no_grad():
        for l, layer in enumerate(model.layers):
            g, h = _bn_affine(layer.norm)
            w = _np(layer.linear.weight)
            if isinstance(layer, RFLayer):
                lam_c, dt = layer.coefficients()
                lam = 1 + dt * lam_c.detach().to(torch.complex128).numpy()
                weight = (dt * g)[:, None] * w
                neuron = FloatNode(RFNeuron, f"neuron{l}", dict(layer=l, n=len(g)),
                                   dict(lam_re=lam.real.copy(), lam_im=lam.imag.copy(), bias=dt * h))
            elif isinstance(layer, CSiLIFLayer):
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


def fold(model: torch.nn.Module, prob_bits: int = 16, gelu: str = "none") -> Netlist:
    """The float graph of ``model``; a model class without a folder is refused by name. ``gelu``
    ("none" or "table") says whether a P-SpikeSSM's GELUs may deploy as the table of docs/numerics.md."""
    folder = FOLDERS.get(type(model))
    if folder is None:
        raise UserError(f"a {type(model).__name__} model has no deployment path (no folder in quant.fold.FOLDERS)")
    graph = folder(model.eval(), prob_bits, gelu=gelu) if folder is fold_pspike else folder(model.eval(), prob_bits)
    graph.validate(require_meta=False)
    return graph
