"""``pspike import best_model.pth --format silif-repo``: the SiLIF repository's trained networks.

The SiLIF repository (Fabre et al., "Structured State Space Model Dynamics and Parametrization for
Spiking Neural Networks", arXiv 2506.06374; github.com/Maxtimer97/SSM-inspired-LIF, MIT) saves its
networks as a plain state dict: hidden layers ``snn.0.``, ``snn.1.``, ... and the leaky readout as the
last index. Each hidden layer holds ``W.weight`` (no bias), a BatchNorm ``norm.*`` and the neuron's
parameters, which tell the neuron model:

=========  ==========================================  =====================================
model      neuron parameters of ``snn.l.``             ours (``models/silif.py``)
=========  ==========================================  =====================================
SiLIF      ``dt alpha beta a b``                       ``log_dt theta_alpha theta_beta a b``
C-SiLIF    ``log_dt log_log_alpha alpha_img b``        ``log_dt theta_re theta_im b``
CadLIF     ``alpha beta a b``                          ``alpha beta a b``
RF         ``alpha_real alpha_im``                     ``alpha_real alpha_im`` (dt 0.004 fixed)
readout    ``alpha W.weight norm.*``                   ``readout.alpha readout.linear.weight readout.norm.*``
=========  ==========================================  =====================================

Every tensor is copied bit for bit into our ``SNN`` (the same parametrisation, clamps, update order
and readout; docs/import.md, "The SiLIF repository"). The file is read with
``torch.load(weights_only=True)`` in an isolated child: nothing in it runs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..isolate import run_isolated

FORMAT_NAME = "silif-repo"

#: the authors' neuron parameters of each model -> (our kind, the name of the authors' class, our names)
NEURONS = {
    "SiLIF": ("silif", "SiLIFLayer", {"dt": "log_dt", "alpha": "theta_alpha", "beta": "theta_beta", "a": "a", "b": "b"}),
    "C-SiLIF": ("csilif", "CSiLIFLayer", {"log_dt": "log_dt", "log_log_alpha": "theta_re", "alpha_img": "theta_im",
                                          "b": "b"}),
    "CadLIF": ("cadlif", "CadLIFLayer", {"alpha": "alpha", "beta": "beta", "a": "a", "b": "b"}),
    "RF": ("rf", "ResonateFireLayer", {"alpha_real": "alpha_real", "alpha_im": "alpha_im"}),
}
NORM_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
#: the SSC task of the authors' configs: 140 inputs (700 channels / 5), 35 classes
SSC_SHAPE = (140, 35)
#: the authors' dropout on hidden spikes (their SSC configs: pdrop), kept for further training
DROPOUT = {"SiLIF": 0.5, "C-SiLIF": 0.5, "CadLIF": 0.5, "RF": 0.25}
#: seeds of the authors' evaluation over random initial states (their partial_figure3_synops.py)
EFFECT_SEEDS = (13, 42, 73, 128, 268)
_KEY = re.compile(r"snn\.(\d+)\.(.+)")


def _load(path: str):
    """The file's tensors by name, or why not (run in an isolated child)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign pickle raises almost anything
        text = " ".join(str(exc).split())
        return "unreadable", text[:160] or type(exc).__name__
    if not isinstance(payload, dict):
        return "layout", f"holds a {type(payload).__name__}, not a state dict"
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()):
        return "layout", "is a dict of something other than named tensors"
    return "ok", dict(payload)


def is_silif_state_dict(path: Path) -> bool:
    """Whether ``path`` holds a plain state dict keyed ``snn.0.W.weight``, ... (the repository's layout)."""
    status, state = run_isolated(_load, str(path), what=f"import {path}", timeout_s=600)
    return status == "ok" and "snn.0.W.weight" in state


def _fail(path: Path, problem: str):
    raise UserError(f"import {path}: {problem}")


def _layers(path: Path, state: dict) -> dict:
    """Tensors grouped by layer index; anything not under ``snn.<i>.`` is refused by name."""
    layers: dict = {}
    for key, value in state.items():
        m = _KEY.fullmatch(key)
        if m is None:
            _fail(path, f"tensor {key} is not part of a SiLIF-repository network (keys are snn.<layer>.<name>)")
        layers.setdefault(int(m[1]), {})[m[2]] = value
    if not layers:
        _fail(path, "holds no tensors")
    if sorted(layers) != list(range(len(layers))):
        _fail(path, f"layer indices {sorted(layers)} are not 0..{len(layers) - 1}")
    if len(layers) < 2:
        _fail(path, "has one layer; a SiLIF-repository network has hidden layers and a readout (use_readout_layer)")
    return layers


def _neuron_model(path: Path, l: int, params: set) -> str:
    if "V.weight" in params:
        _fail(path, f"layer {l} has a recurrent matrix V (snn.{l}.V.weight); only feed-forward layers are "
                    "imported (our SNN has no recurrent synapses)")
    if "W.bias" in params:
        _fail(path, f"layer {l} has a bias snn.{l}.W.bias (use_bias=True); the networks imported have none")
    own = params - {"W.weight"} - {f"norm.{k}" for k in NORM_KEYS}
    for model, (_, _, names) in NEURONS.items():
        if own == set(names):
            return model
    partial = [(len(names), m, sorted(set(names) - own)) for m, (_, _, names) in NEURONS.items() if own and own < set(names)]
    if partial:
        _, model, missing = min(partial)
        _fail(path, f"missing tensor snn.{l}.{missing[0]} (a {model} layer holds {' '.join(NEURONS[model][2])})")
    known = "; ".join(f"{m}: {' '.join(names)}" for m, (_, _, names) in NEURONS.items())
    _fail(path, f"layer {l}: neuron parameters {' '.join(sorted(own)) or 'none'} are not a known neuron model "
                f"({known})")


def _check(path: Path, key: str, tensor: torch.Tensor, shape: tuple, dtype=torch.float32) -> None:
    if tuple(tensor.shape) != shape:
        _fail(path, f"tensor {key} has shape {tuple(tensor.shape)}, expected {shape}")
    if tensor.dtype != dtype:
        _fail(path, f"tensor {key} has dtype {str(tensor.dtype).replace('torch.', '')}, expected "
                    f"{str(dtype).replace('torch.', '')}")
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        _fail(path, f"tensor {key} has {int((~torch.isfinite(tensor)).sum())} NaN or infinite value(s)")


def _check_norm(path: Path, l: int, params: dict, width: int) -> None:
    missing = [k for k in NORM_KEYS if f"norm.{k}" not in params]
    if missing:
        what = "no BatchNorm (normalization other than batchnorm)" if len(missing) == len(NORM_KEYS) else \
            f"missing snn.{l}.norm.{missing[0]}"
        _fail(path, f"layer {l}: {what}; the networks imported normalize with BatchNorm")
    for k in NORM_KEYS[:4]:
        _check(path, f"snn.{l}.norm.{k}", params[f"norm.{k}"], (width,))
    _check(path, f"snn.{l}.norm.num_batches_tracked", params["norm.num_batches_tracked"], (), torch.int64)
    if (params["norm.running_var"] < 0).any():
        _fail(path, f"tensor snn.{l}.norm.running_var has negative variances")


def read_state(path: Path, state: dict):
    """The network a SiLIF-repository state dict describes: (model name, SNNConfig keywords, our
    state dict, the key map). Refuses, in one line, any layout it does not know."""
    layers = _layers(path, state)
    hidden, readout = [layers[i] for i in range(len(layers) - 1)], layers[len(layers) - 1]
    if "W.weight" not in hidden[0]:
        _fail(path, "missing tensor snn.0.W.weight")
    models = [_neuron_model(path, l, set(p)) for l, p in enumerate(hidden)]
    if len(set(models)) > 1:
        _fail(path, f"hidden layers mix neuron models ({', '.join(models)}); our SNN has one kind per network")
    model = models[0]
    kind, _, names = NEURONS[model]
    w0 = hidden[0]["W.weight"]
    if w0.dim() != 2:
        _fail(path, f"tensor snn.0.W.weight has shape {tuple(w0.shape)}, expected (hidden, inputs)")
    width, d_input = int(w0.shape[0]), int(w0.shape[1])
    ours, keymap = {}, {}
    for l, params in enumerate(hidden):
        n_in = d_input if l == 0 else width
        if "W.weight" not in params:
            _fail(path, f"missing tensor snn.{l}.W.weight")
        if l > 0 and tuple(params["W.weight"].shape) == (width, 2 * width):
            _fail(path, f"layer {l} takes 2 x {width} inputs: a bidirectional network (bidirectional=True), which "
                        "reads the sequence backwards too and cannot stream; only causal networks are imported")
        _check(path, f"snn.{l}.W.weight", params["W.weight"], (width, n_in))
        _check_norm(path, l, params, width)
        for src, dst in names.items():
            _check(path, f"snn.{l}.{src}", params[src], (width,))
            keymap[f"snn.{l}.{src}"] = f"layers.{l}.{dst}"
        keymap[f"snn.{l}.W.weight"] = f"layers.{l}.linear.weight"
        keymap.update({f"snn.{l}.norm.{k}": f"layers.{l}.norm.{k}" for k in NORM_KEYS})
    r = len(hidden)
    own = set(readout) - {"W.weight", "alpha"} - {f"norm.{k}" for k in NORM_KEYS}
    if own or "W.weight" not in readout or "alpha" not in readout:
        _fail(path, f"layer {r} is not the authors' leaky readout (snn.{r}.W.weight, snn.{r}.alpha, snn.{r}.norm.*)"
                    + (f": unexpected {', '.join(sorted(own))}" if own else ""))
    wr = readout["W.weight"]
    if wr.dim() != 2 or wr.shape[1] != width:
        _fail(path, f"tensor snn.{r}.W.weight has shape {tuple(wr.shape)}, expected (classes, {width})")
    n_classes = int(wr.shape[0])
    _check(path, f"snn.{r}.W.weight", wr, (n_classes, width))
    _check(path, f"snn.{r}.alpha", readout["alpha"], (n_classes,))
    _check_norm(path, r, readout, n_classes)
    keymap[f"snn.{r}.W.weight"] = "readout.linear.weight"
    keymap[f"snn.{r}.alpha"] = "readout.alpha"
    keymap.update({f"snn.{r}.norm.{k}": f"readout.norm.{k}" for k in NORM_KEYS})
    ours = {dst: state[src] for src, dst in keymap.items()}
    cfg = dict(kind=kind, d_input=d_input, n_classes=n_classes, d_hidden=width, n_layers=len(hidden),
               input_counts=True, dropout=DROPOUT[model])
    return model, cfg, ours, keymap


def _effect_of_random_initial_states(model, d_input: int) -> dict:
    """What the authors' random initial states change against our zeros, on a probe input (the
    goldens' recipe: 8 x 100 x d_input Bernoulli(0.05) spikes, numpy seed 2026), float32 as their
    evaluation: predictions changed and the largest score change, over their five test seeds."""
    x = torch.from_numpy((np.random.default_rng(2026).random((8, 100, d_input)) < 0.05).astype(np.float32))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            zeros = model(x)
            changed, largest = [], 0.0
            for seed in EFFECT_SEEDS:
                drawn = model(x, init=torch.Generator().manual_seed(seed))
                changed.append(int((drawn.argmax(-1) != zeros.argmax(-1)).sum()))
                largest = max(largest, float((drawn - zeros).abs().max()))
    finally:
        torch.set_num_threads(threads)
    return {"probe": "8 samples x 100 steps of Bernoulli(0.05) spikes (numpy default_rng(2026)), float32",
            "seeds": list(EFFECT_SEEDS), "predictions_changed_of_8": changed, "max_abs_score_change": largest,
            "score_range": [0, 100]}


def import_silif_repo(path: Path, options: dict):
    """A SiLIF-repository checkpoint as our ``SNN`` and its import record."""
    from ..models.silif import SNN, SNNConfig

    status, state = run_isolated(_load, str(path), what=f"import {path}", timeout_s=600)
    if status == "unreadable":
        _fail(path, f"not readable as a PyTorch state dict with weights_only=True ({state})")
    if status != "ok":
        _fail(path, f"{state}; a SiLIF-repository checkpoint is a plain state dict (snn.0.W.weight, ...)")
    model_name, cfg_kw, ours, keymap = read_state(path, state)
    cfg = SNNConfig(**cfg_kw)
    model = SNN(cfg)
    missing = set(model.state_dict()) - set(ours)
    if missing:  # our network grew a tensor the mapping does not fill: a bug here, said plainly
        raise UserError(f"import {path}: internal mapping leaves {', '.join(sorted(missing))} unset")
    model.load_state_dict(ours, strict=True)
    model.eval()
    kind, cls, names = NEURONS[model_name]
    width, n_classes = cfg.d_hidden, cfg.n_classes
    clamped = _clamped_counts(model)
    sizes = " -> ".join(str(v) for v in [cfg.d_input] + [width] * cfg.n_layers + [n_classes])
    record = {
        "format": FORMAT_NAME,
        "summary": f"{model_name} network {sizes}, {len(keymap)} tensors copied exactly",
        "model": model_name,
        "authors_class": cls,
        "model_type": kind,
        "layers": [f"{cfg.d_input} -> {width} ({model_name})"] + [f"{width} -> {width} ({model_name})"] * (cfg.n_layers - 1)
        + [f"{width} -> {n_classes} (leaky readout, sum of per-step softmax)"],
        "tensors": len(keymap),
        "converted": {src: dst for src, dst in keymap.items()},
        "exact": [
            "every tensor copied bit for bit (float32), same parametrisation: " + ", ".join(
                f"{src} -> {dst}" for src, dst in names.items()),
            "BatchNorm in eval mode with its running statistics, eps 1e-5 (num_batches_tracked copied: it counts "
            "training batches and is not used at inference, nor in training with momentum 0.05)",
            "clamps applied at every forward from the raw stored values, as the authors' code does: "
            + ", ".join(f"{k}: {v}" for k, v in clamped.items()),
            "readout: r_t = alpha_r r_(t-1) + (1 - alpha_r) BN(W s_t), alpha_r clamped to [e^-1/5, e^-1/25]; "
            "class scores sum_t softmax(r_t), prediction argmax",
        ],
        "approximated": {
            "initial_states": {
                "authors": "u_0, w_0, s_0 and the readout's r_0 drawn from U[0, 1) at every forward (torch.rand), "
                           "so their evaluation is stochastic",
                "ours": "zeros, as a deployed network starts (and as the repository's golden outputs were made)",
                "measured": _effect_of_random_initial_states(model, cfg.d_input),
            },
        },
        "dropped": "nothing: every tensor of the file has its place in our network",
        "not_in_file": {
            "dropout": f"p = {cfg.dropout} on hidden spikes, from the authors' SSC config (inactive at inference)",
            "task": "the checkpoint does not say what it was trained on; SSC (140 inputs = 700 channels / 5, 35 "
                    "classes, 300 steps of 4 ms) is recorded when the shapes are SSC's",
            "dt": "RF's dt = 0.004 s is a constant of the authors' code, not a tensor" if kind == "rf"
                  else "in the file (trained)"},
        "inputs": "event counts per step (the authors' SSC binning sums events, no clipping): deployed as graded "
                  "messages (CountInput)",
        "refused": [],
    }
    if kind == "cadlif":
        record["not_in_file"]["neuron"] = ("layers holding alpha, beta, a, b are read as the CadLIF layer; the "
                                           "repository's adLIF layer stores the same tensors with other clamps "
                                           "(alpha in [e^-1/5, e^-1/25], beta in [e^-1/30, e^-1/120], a in [-1, 1]) "
                                           "and the file cannot tell them apart: an adLIF file is not supported")
    if kind == "rf":
        record["not_in_file"]["recurrent"] = ("the authors' ResonateFireLayer reads self.recurrent without "
                                              "setting it; the file has no V matrix, so it is the feed-forward "
                                              "layer (recurrent = False)")
    if (cfg.d_input, n_classes) == SSC_SHAPE:
        record["task"] = "ssc"
    return model, record


def _clamped_counts(model) -> dict:
    """How many trained values lie outside each clamp (per layer), for the record."""
    out = {}
    for l, layer in enumerate(model.layers):
        checks = []
        if hasattr(layer, "ALPHA_RANGE"):
            checks += [("alpha", layer.alpha, layer.ALPHA_RANGE), ("beta", layer.beta, layer.BETA_RANGE)]
        if hasattr(layer, "theta_alpha") or hasattr(layer, "ALPHA_RANGE"):
            checks += [("a", layer.a, (0.0, 1.0)), ("b", layer.b, (0.0, 2.0))]
        if hasattr(layer, "alpha_real"):
            checks += [("alpha_real", layer.alpha_real, (-math.inf, layer.ALPHA_REAL_MAX))]
        for name, value, (lo, hi) in checks:
            below, above = int((value < lo).sum()), int((value > hi).sum())
            out[f"layer {l} {name} in [{lo:g}, {hi:g}]"] = f"{below} below, {above} above"
    if not out:
        out["none"] = "this neuron model has no clamps (C-SiLIF)"
    r = model.readout.alpha
    lo, hi = (float(v) for v in (r.min(), r.max()))
    out["readout alpha range of the trained values"] = f"[{lo:.4f}, {hi:.4f}]"
    return out
