"""``pspike import CKPT --format pspikessm``: the P-SpikeSSM authors' Lightning checkpoints as our model.

Source: ``NeuroCompLab-psu/PSpikeSSMs`` (Bal & Sengupta, ICLR 2025), whose ``train.py`` saves a PyTorch
Lightning checkpoint: ``state_dict`` under their key names, ``hyper_parameters`` (their whole Hydra
config) and ``pytorch-lightning_version``. The file is read by :mod:`.safe_pickle` (never
``weights_only=False``) in an isolated child. The facts used here are in docs/import.md.

Converted exactly (float64): encoder, decoder, sampler affines (the input affine before their
pre-BatchNorm folded into ours), BatchNorms, mixers, ``D``; each DPLR kernel by the eigen-decomposition
of its full state matrix (``--kernel exact``, :mod:`..models.dplr`), with ``dt = softplus(inv_dt)``,
``Lam = -exp(A_real) - i A_imag``, C recovered from the stored ``C~`` and bilinear discretization. The
anti-causal half of their two-sided kernels is dropped (default, deployable) or kept (``--two-sided``,
float only). ``--kernel refit`` fits each channel's kernel with our model's mode count instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..isolate import run_isolated
from ..models import ModelConfig, PSpikeSSM
from ..models.dplr import DPLRKernel, Modes, dense_kernels, diagonalize, kernel_error, modal_kernels, refit
from .safe_pickle import load_torch_zip

KERNELS = ("exact", "refit")
LIGHTNING_KEYS = ("state_dict", "hyper_parameters", "pytorch-lightning_version")
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "id": "identity", "identity": "identity", None: "identity"}


def read_lightning(path: Path) -> dict:
    """The checkpoint's dict (tensors, plain containers and values), read in an isolated child."""
    obj = run_isolated(load_torch_zip, path, what=f"import {path}",
                       crash_hint="the file is damaged or is not a Lightning checkpoint")
    if not is_lightning(obj):
        keys = ", ".join(sorted(map(str, obj))[:6]) if isinstance(obj, dict) else type(obj).__name__
        raise UserError(f"import {path}: not a Lightning checkpoint (needs {', '.join(LIGHTNING_KEYS)}; found {keys})")
    return obj


def is_lightning(obj) -> bool:
    return isinstance(obj, dict) and all(k in obj for k in LIGHTNING_KEYS)


def _lightning_keys(path: str) -> bool:
    return is_lightning(load_torch_zip(path))


def is_pspikessm_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a Lightning-style checkpoint (read safely; a pickle that names anything we do
    not admit is refused here, in one line)."""
    return run_isolated(_lightning_keys, str(path), what=f"import {path}",
                        crash_hint="the file is damaged or is not a Lightning checkpoint")


# --- their configuration ----------------------------------------------------------------------------


@dataclass
class Layout:
    """What their checkpoint holds, checked: our config fields, each kernel, the other tensors."""

    path: Path
    cfg: dict                   # ModelConfig fields that do not depend on the kernel choice
    kernels: dict               # (layer, branch) -> DPLRKernel; branch "fwd" (their layer) or "rev"
    state: dict                 # their key -> float64 / int64 numpy array
    used: set = field(default_factory=set)
    facts: dict = field(default_factory=dict)


def _get(tree: dict, dotted: str, default=KeyError):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is KeyError:
                raise KeyError(dotted)
            return default
        node = node[part]
    return node


def _name(value):
    return value.get("_name_") if isinstance(value, dict) else value


def _config(path: Path, hp: dict) -> tuple[dict, dict]:
    """Our config fields and their options, from their ``hyper_parameters``; one line for anything the
    importer does not carry."""
    def refuse(key, value, why):
        raise UserError(f"import {path}: hyper_parameters {key}={value!r} is not supported ({why})")

    def need(key, default=KeyError):
        try:
            return _get(hp, key, default)
        except KeyError:
            raise UserError(f"import {path}: hyper_parameters lack {key}; not a P-SpikeSSM Lightning checkpoint") from None

    layer = need("model.layer")
    if not isinstance(layer, dict):
        raise UserError(f"import {path}: hyper_parameters model.layer is not a mapping")
    checks = [
        ("model.layer._name_", layer.get("_name_"), ("pSpikeSSM",), "only their pSpikeSSM block is imported"),
        ("model.layer.layer", layer.get("layer", "fftconv"), ("fftconv",), "only FFTConv kernels"),
        ("model.layer.mode", layer.get("mode", "nplr"), ("nplr", "dplr"), "only the DPLR kernel (mode nplr)"),
        ("model.layer.dt_transform", layer.get("dt_transform", "exp"), ("softplus", "exp"), "dt by softplus or exp"),
        ("model.layer.real_transform", layer.get("real_transform", "exp"), ("exp",), "Re Lam = -exp(A_real)"),
        ("model.layer.imag_transform", layer.get("imag_transform", "none"), ("none",), "Im Lam = -A_imag"),
        ("model.layer.channels", layer.get("channels", 1), (1,), "one output channel per SSM"),
        ("model.layer.gate", layer.get("gate"), (None,), "no gate"),
        ("model.layer.bottleneck", layer.get("bottleneck"), (None,), "no bottleneck"),
        ("model.layer.mult_act", layer.get("mult_act"), (None, "id", "identity"), "no multiplicative activation"),
        ("model.layer.activation", layer.get("activation", "gelu"), tuple(ACTIVATIONS), "gelu, relu or identity"),
        ("model.layer.transposed", layer.get("transposed", False), (False,), "(B, L, H) layout"),
        ("model.norm", _name(need("model.norm", "batch")), ("batch",), "BatchNorm only; the importer does not carry "
                                                                       "their LayerNorm folding"),
        ("model.residual", _name(need("model.residual", None)), (None, "R"), "no skip or the plain residual R"),
        ("model.transposed", need("model.transposed", False), (False,), "(B, L, H) layout"),
        ("decoder.mode", _get(hp, "decoder.mode", "pool"), ("pool",), "a mean-pool decoder"),
        ("encoder", _name(need("encoder")), ("linear", "embedding"), "a Linear or Embedding encoder"),
    ]
    for key, value, allowed, why in checks:
        if value not in allowed:
            refuse(key, value, why)
    pool = need("model.pool", None)
    if pool is not None and not (_name(pool) == "pool" and pool.get("stride", 1) == 1 and pool.get("expand") is None):
        refuse("model.pool", pool, "only the identity pool (stride 1, no expand)")
    for key in ("model.n_layers", "model.d_model", "model.layer.d_state"):
        value = need(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"import {path}: hyper_parameters {key} must be a positive integer, got {value!r}")
    if layer["d_state"] % 2:
        raise UserError(f"import {path}: hyper_parameters model.layer.d_state must be even, got {layer['d_state']}")
    prenorm = need("model.prenorm", False)
    cfg = dict(n_layers=need("model.n_layers"), d_model=need("model.d_model"), prenorm=bool(prenorm),
               residual=_name(need("model.residual", None)) == "R", norm="batch",
               dropout=float(need("model.dropout", 0.0) or 0.0), bidirectional=bool(need("model.bidirectional", False)),
               phi=ACTIVATIONS[layer.get("activation", "gelu")], psi="gelu", init="legs", discretization="bilinear",
               dt_min=float(layer.get("dt_min", 0.001)), dt_max=float(layer.get("dt_max", 0.1)),
               input_kind="tokens" if _name(hp["encoder"]) == "embedding" else "real")
    if cfg["bidirectional"]:
        cfg.update(branch_order="same", shared_uniforms=True)
    facts = {"n_state": layer["d_state"], "two_sided": bool(layer.get("bidirectional", False)),
             "dt_transform": layer.get("dt_transform", "exp"), "rank": layer.get("rank", 1),
             "l_max": layer.get("l_max"), "use_lengths": bool(_get(hp, "decoder.use_lengths", False)),
             "dataset": _name(_get(hp, "dataset", None)), "n_ssm": layer.get("n_ssm", 1)}
    return cfg, facts


# --- their tensors ----------------------------------------------------------------------------------


def _layout(path: Path, ckpt: dict) -> Layout:
    hp = ckpt["hyper_parameters"]
    if not isinstance(hp, dict):
        raise UserError(f"import {path}: hyper_parameters is not a mapping")
    cfg, facts = _config(path, hp)
    raw = ckpt["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise UserError(f"import {path}: state_dict is not a mapping of tensors")
    state = {str(k): v for k, v in raw.items()}
    lay = Layout(path, cfg, {}, {}, facts=facts)
    h, n_layers, n_state = cfg["d_model"], cfg["n_layers"], facts["n_state"]
    m = n_state // 2

    def need(key, shape, kind="float"):
        if key not in state:
            raise UserError(f"import {path}: missing tensor {key} (d_model {h}, {n_layers} layers, d_state {n_state})")
        t = state[key]
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise UserError(f"import {path}: tensor {key} has shape {tuple(t.shape)}, their configuration (d_model {h}, "
                            f"d_state {n_state}) needs {tuple(shape)}")
        if kind == "float" and not t.is_floating_point():
            raise UserError(f"import {path}: tensor {key} has dtype {str(t.dtype).replace('torch.', '')}, expected floats")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise UserError(f"import {path}: tensor {key} has {int((~torch.isfinite(t)).sum())} NaN or infinite value(s)")
        lay.used.add(key)
        value = t.detach().to(torch.float64 if kind == "float" else torch.int64).numpy()
        lay.state[key] = value
        return value

    if cfg["input_kind"] == "tokens":
        emb = need("encoder.0.weight", None)
        if emb.ndim != 2 or emb.shape[1] != h:
            raise UserError(f"import {path}: tensor encoder.0.weight has shape {emb.shape}, an Embedding needs (vocab, {h})")
        cfg["d_input"] = emb.shape[0]
    else:
        enc = need("encoder.0.weight", None)
        if enc.ndim != 2 or enc.shape[0] != h:
            raise UserError(f"import {path}: tensor encoder.0.weight has shape {enc.shape}, a Linear encoder needs "
                            f"({h}, d_input)")
        cfg["d_input"] = enc.shape[1]
        need("encoder.0.bias", (h,))
    dec = need("decoder.0.output_transform.weight", None)
    if dec.ndim != 2 or dec.shape[1] != h:
        raise UserError(f"import {path}: tensor decoder.0.output_transform.weight has shape {dec.shape}, needs (classes, {h})")
    cfg["n_classes"] = dec.shape[0]
    need("decoder.0.output_transform.bias", (dec.shape[0],))

    ch = 2 if facts["two_sided"] else 1
    copies = 1 if facts["n_ssm"] == 1 else h
    if facts["n_ssm"] not in (1, None, h):
        raise UserError(f"import {path}: hyper_parameters model.layer.n_ssm={facts['n_ssm']!r} is not supported (1: "
                        f"shared by all channels, or one per channel)")
    rank = facts["rank"] if isinstance(facts["rank"], int) and facts["rank"] >= 1 else None
    if rank is None:
        raise UserError(f"import {path}: hyper_parameters model.layer.rank must be a positive integer, got {facts['rank']!r}")
    softplus = facts["dt_transform"] == "softplus"
    for l in range(n_layers):
        pre = f"model.layers.{l}"
        branches = [("fwd", f"{pre}.layer.layer")] + ([("rev", f"{pre}.reverse_layer.layer")] if cfg["bidirectional"]
                                                       else [])
        for branch, key in branches:
            inv_dt = need(f"{key}.kernel.inv_dt", (h, 1))[:, 0]
            a_real = need(f"{key}.kernel.A_real", (copies, m))
            a_imag = need(f"{key}.kernel.A_imag", (copies, m))
            cplx = lambda a: a[..., 0] + 1j * a[..., 1]  # noqa: E731
            b = cplx(need(f"{key}.kernel.B", (1, copies, m, 2)))[0]
            p = cplx(need(f"{key}.kernel.P", (rank, copies, m, 2)))
            c = cplx(need(f"{key}.kernel.C", (ch, h, m, 2)))
            l_kernel = int(need(f"{key}.kernel.l_kernel", (), kind="int"))
            need(f"{key}.D", (1, h))
            if l_kernel < 0 or l_kernel > 1 << 22:
                raise UserError(f"import {path}: tensor {key}.kernel.l_kernel is {l_kernel}; expected the length C~ is "
                                "tied to (0: not yet set)")
            dt = np.logaddexp(0.0, inv_dt) if softplus else np.exp(inv_dt)
            lay.kernels[(l, branch)] = DPLRKernel(lam=-np.exp(a_real) - 1j * a_imag, p=p, b=b, dt=dt, c_tilde=c,
                                                  length=l_kernel)
        for name in ("inp_a", "inp_b", "out_a", "out_b") + (("inp2_a", "inp2_b") if cfg["bidirectional"] else ()):
            need(f"{pre}.{name}", (h,))
        if cfg["bidirectional"]:
            need(f"{pre}.bidirectional_linear.weight", (h, 2 * h))
            need(f"{pre}.bidirectional_linear.bias", (h,))
        else:
            need(f"{pre}.bidirectional_linear1.weight", (h, h))
            need(f"{pre}.bidirectional_linear1.bias", (h,))
        for name in ("weight", "bias", "running_mean", "running_var"):
            need(f"{pre}.norm.norm.{name}", (h,))
    if cfg["prenorm"]:
        for name in ("weight", "bias", "running_mean", "running_var"):
            need(f"model.norm.norm.{name}", (h,))
    if any(np.any(lay.state[k] <= 0) for k in lay.state if k.endswith("running_var")):
        raise UserError(f"import {path}: a BatchNorm running_var is not positive; the checkpoint is damaged")
    lengths = {k.length for k in lay.kernels.values()}
    facts["l_kernel"] = sorted(lengths)
    return lay


# --- our model ----------------------------------------------------------------------------------------


@dataclass
class Conversion:
    """Both diagonal forms of every kernel and their errors against the dense reference."""

    exact: dict
    refit: dict
    errors: list


def convert_kernels(lay: Layout, refit_modes: int | None) -> Conversion:
    exact, fitted, rows = {}, {}, []
    for key, k in lay.kernels.items():
        length = k.length or lay.facts.get("l_max") or 0
        if not isinstance(length, int) or length < 1:
            raise UserError(f"import {lay.path}: layer {key[0]} has l_kernel 0 and no model.layer.l_max; the kernel "
                            "length is unknown")
        reference = dense_kernels(k, length)
        ex = diagonalize(k)
        n_fit = refit_modes or k.lam.shape[1]
        rf = refit(k, ex, min(n_fit, ex.mu.shape[1]), reference)
        exact[key], fitted[key] = ex, rf
        row = {"layer": key[0], "branch": key[1], "length": length, "modes_exact": ex.info["modes"],
               "real_eigenvalues": ex.info["real_eigenvalues"], "cond_V": ex.info["cond_V"],
               "eig_real_range": ex.info["eig_real_range"], "eig_imag_max": ex.info["eig_imag_max"],
               "modes_refit": rf.info["modes"]}
        for name, modes in (("exact", ex), ("refit", rf)):
            got = modal_kernels(modes, k.dt, length)
            row[f"kernel_error_{name}"] = {half: kernel_error(got[c], reference[c])
                                           for c, half in enumerate(("causal", "anticausal")[: reference.shape[0]])}
        if reference.shape[0] == 2:
            row["anticausal_to_causal_max"] = float(np.abs(reference[1]).max() / max(np.abs(reference[0]).max(), 1e-300))
        rows.append(row)
    return Conversion(exact, fitted, rows)


def build_model(lay: Layout, modes: dict, two_sided: bool) -> PSpikeSSM:
    """Our float64 model from their tensors and the chosen diagonal form of each kernel."""
    width = max(m.mu.shape[1] for m in modes.values())
    copies = next(iter(modes.values())).mu.shape[0]
    cfg = ModelConfig(**lay.cfg, d_state=2 * width, share_ab=copies == 1, two_sided=two_sided, param_dtype="float64")
    model = PSpikeSSM(cfg).eval()
    st = lay.state
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        if cfg.input_kind == "tokens":
            model.encoder.weight.copy_(t(st["encoder.0.weight"]))
        else:
            model.encoder.weight.copy_(t(st["encoder.0.weight"]))
            model.encoder.bias.copy_(t(st["encoder.0.bias"]))
        model.readout.weight.copy_(t(st["decoder.0.output_transform.weight"]))
        model.readout.bias.copy_(t(st["decoder.0.output_transform.bias"]))
        for l, block in enumerate(model.blocks):
            pre = f"model.layers.{l}"
            bn = {k: st[f"{pre}.norm.norm.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}
            a_in, b_in = st[f"{pre}.inp_a"], st[f"{pre}.inp_b"]
            if cfg.prenorm:  # theirs: BN(a x + b) = a [w x / sigma] + [w (b - mean) / sigma + beta]; ours: a_in BN'(x) + b_in
                norm = block.norm_pre.norm
                norm.weight.copy_(t(bn["weight"]))
                norm.bias.zero_()
                norm.running_mean.zero_()
                norm.running_var.copy_(t(bn["running_var"]))
                sigma = np.sqrt(bn["running_var"] + norm.eps)
                b_in = bn["weight"] * (b_in - bn["running_mean"]) / sigma + bn["bias"]
            else:
                norm = block.norm_post.norm
                for k, v in bn.items():
                    getattr(norm, k).copy_(t(v))
            block.a_in.copy_(t(a_in))
            block.b_in.copy_(t(b_in))
            block.a_out.copy_(t(st[f"{pre}.out_a"]))
            block.b_out.copy_(t(st[f"{pre}.out_b"]))
            _set_ssm(block.ssm, modes[(l, "fwd")], lay.kernels[(l, "fwd")], st[f"{pre}.layer.layer.D"][0], two_sided, t)
            if cfg.bidirectional:
                block.a_in_rev.copy_(t(st[f"{pre}.inp2_a"]))
                block.b_in_rev.copy_(t(st[f"{pre}.inp2_b"]))
                block.a_out_rev.fill_(1.0)  # their reverse branch has no output affine
                block.b_out_rev.zero_()
                _set_ssm(block.ssm_rev, modes[(l, "rev")], lay.kernels[(l, "rev")], st[f"{pre}.reverse_layer.layer.D"][0],
                         two_sided, t)
                mixer = "bidirectional_linear"
            else:
                mixer = "bidirectional_linear1"
            block.mixer.weight.copy_(t(st[f"{pre}.{mixer}.weight"]))
            block.mixer.bias.copy_(t(st[f"{pre}.{mixer}.bias"]))
        if cfg.prenorm:
            for k in ("weight", "bias", "running_mean", "running_var"):
                getattr(model.final_norm.norm, k).copy_(t(st[f"model.norm.norm.{k}"]))
    return model


def _set_ssm(ssm, modes: Modes, kernel: DPLRKernel, d: np.ndarray, two_sided: bool, t) -> None:
    width = ssm.n_modes
    mu, b = _widen(modes.mu, width, -1.0 + 0j), _widen(modes.b, width, 1.0 + 0j)
    c = _widen(modes.c, width, 0j)
    ssm.log_dt.copy_(t(np.log(kernel.dt)))
    ssm.log_A_real.copy_(t(np.log(-mu.real)))
    ssm.A_imag.copy_(t(mu.imag))
    ssm.B.copy_(t(np.stack([b.real, b.imag], -1)))
    ssm.C.copy_(t(np.stack([c[0].real, c[0].imag], -1)))
    if two_sided:
        ssm.C_anti.copy_(t(np.stack([c[1].real, c[1].imag], -1)))
    ssm.D.copy_(t(d))


def _widen(a: np.ndarray, width: int, fill) -> np.ndarray:
    """Pad the mode axis (last) to ``width`` with silent modes (readout 0)."""
    if a.shape[-1] == width:
        return a
    pad = np.full(a.shape[:-1] + (width - a.shape[-1],), fill, dtype=a.dtype)
    return np.concatenate([a, pad], -1)


# --- measured effect on the data at hand ------------------------------------------------------------------


def logits_of(model: PSpikeSSM, x: np.ndarray, lengths, noise) -> np.ndarray:
    """float64 logits under ``noise`` (a noise source, the same for every variant)."""
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    with torch.no_grad():
        out = model(tensor if not tensor.is_floating_point() else tensor.double(),
                    None if lengths is None else torch.as_tensor(lengths), noise=noise)
    return out.numpy()


class _Drawn:
    """Counter-based float64 uniforms of ``seed``, drawn once per site and shape (every variant reuses them)."""

    def __init__(self, seed: int):
        from ..numerics.rng import CounterNoise

        self.noise, self.drawn = CounterNoise(seed=seed, prob_bits=24), {}

    def __call__(self, site, shape, device, dtype):
        key = (site, tuple(shape))
        if key not in self.drawn:
            self.drawn[key] = self.noise(site, shape, device, torch.float64)
        return self.drawn[key].to(dtype)


def measure(lay: Layout, conv: Conversion, inputs_path, seed: int) -> dict:
    """Logits of every variant (kernel x causal/two-sided) on the given inputs, each against their own
    function (the exact two-sided model when their kernel is two-sided, else the exact causal one)."""
    from ..data.inputs import load_inputs_file

    given = load_inputs_file(inputs_path)
    cfg = lay.cfg
    if cfg["input_kind"] == "tokens" and given.x.ndim != 2:
        raise UserError(f"inputs {inputs_path}: x has shape {given.x.shape}; this model reads (samples, steps) token ids")
    if cfg["input_kind"] == "real" and (given.x.ndim != 3 or given.x.shape[2] != cfg["d_input"]):
        raise UserError(f"inputs {inputs_path}: x has shape {given.x.shape}; this model reads (samples, steps, "
                        f"{cfg['d_input']})")
    if cfg["input_kind"] == "tokens" and (given.x.min() < 0 or given.x.max() >= cfg["d_input"]):
        raise UserError(f"inputs {inputs_path}: token ids must lie in [0, {cfg['d_input']})")
    sides = (False, True) if lay.facts["two_sided"] else (False,)
    logits, noise = {}, _Drawn(seed)
    for kernel, modes in (("exact", conv.exact), ("refit", conv.refit)):
        for two in sides:
            model = build_model(lay, modes, two)
            logits[f"{kernel}_{'two_sided' if two else 'causal'}"] = logits_of(model, given.x, given.lengths, noise)
    ref_name = "exact_two_sided" if lay.facts["two_sided"] else "exact_causal"
    ref = logits[ref_name]
    out = {"inputs": str(inputs_path), "samples": int(given.x.shape[0]), "steps": int(given.x.shape[1]),
           "uniforms": f"counter-based (seed {seed}, 24-bit), the same for every variant", "reference": ref_name,
           "variants": {}}
    for name, value in logits.items():
        row = {"max_abs_logit_change": float(np.abs(value - ref).max()),
               "argmax_agreement": float((value.argmax(-1) == ref.argmax(-1)).mean())}
        if given.labels is not None:
            row["accuracy"] = float((value.argmax(-1) == given.labels).mean())
        out["variants"][name] = row
    return out


# --- the importer ---------------------------------------------------------------------------------------


def import_pspikessm(path: Path, options: dict):
    kernel = options.get("kernel") or "exact"
    if kernel not in KERNELS:
        raise UserError(f"--kernel must be exact or refit, got {kernel!r}")
    two_sided = bool(options.get("two_sided"))
    refit_modes = options.get("refit_modes")
    if refit_modes is not None and (isinstance(refit_modes, bool) or not isinstance(refit_modes, int) or refit_modes < 1):
        raise UserError(f"--refit-modes must be a positive integer, got {refit_modes!r}")
    if refit_modes is not None and kernel != "refit":
        raise UserError("--refit-modes applies to --kernel refit")
    ckpt = read_lightning(path)
    lay = _layout(path, ckpt)
    if two_sided and not lay.facts["two_sided"]:
        raise UserError(f"import {path}: --two-sided given but the checkpoint's kernels are causal "
                        "(model.layer.bidirectional is false)")
    if refit_modes is not None and refit_modes > lay.facts["n_state"] // 2:
        raise UserError(f"--refit-modes must be at most d_state/2 = {lay.facts['n_state'] // 2}, got {refit_modes}")
    conv = convert_kernels(lay, refit_modes)
    model = build_model(lay, conv.exact if kernel == "exact" else conv.refit, two_sided)
    record = _record(path, ckpt, lay, conv, kernel, two_sided, model)
    if options.get("inputs"):
        record["measured_on_inputs"] = measure(lay, conv, options["inputs"], int(options.get("seed") or 0))
    return model, record


def _record(path, ckpt, lay: Layout, conv: Conversion, kernel: str, two_sided: bool, model: PSpikeSSM) -> dict:
    cfg, facts = model.cfg, lay.facts
    unused = sorted(set(lay_keys(ckpt)) - lay.used)
    n_state = facts["n_state"]
    exact_modes = max(r["modes_exact"] for r in conv.errors)
    summary = (f"{cfg.n_layers} layers, H {cfg.d_model}, {cfg.d_state // 2} modes per neuron ({kernel} kernel), "
               + ("two-sided: float only" if two_sided else "causal"))
    return {
        "format": "pspikessm", "summary": summary,
        "source_kind": f"PyTorch Lightning checkpoint (pytorch-lightning {ckpt.get('pytorch-lightning_version')}) of "
                       "NeuroCompLab-psu/PSpikeSSMs",
        "dataset": facts["dataset"], "kernel": kernel, "two_sided": two_sided,
        "deployable": not two_sided and not (cfg.bidirectional and cfg.branch_order != "same"),
        "model": {"n_layers": cfg.n_layers, "d_model": cfg.d_model, "their_d_state": n_state, "our_d_state": cfg.d_state,
                  "modes_per_neuron": cfg.d_state // 2, "bidirectional_blocks": cfg.bidirectional,
                  "prenorm": cfg.prenorm, "residual": cfg.residual, "l_kernel": facts["l_kernel"],
                  "parameters": "float64"},
        "converted_exactly": [
            "encoder, decoder (readout), mixers (bidirectional_linear / bidirectional_linear1), D, sampler affines",
            "pre-BatchNorm after their input affine folded into ours (eval: a_in = inp_a, b_in = w (inp_b - mean)/sigma"
            " + beta, our BN keeps w/sigma)" if cfg.prenorm else "post-BatchNorm (x + mixer) as ours",
            "dt = softplus(inv_dt)" if facts["dt_transform"] == "softplus" else "dt = exp(inv_dt)",
            "Lam = -exp(A_real) - i A_imag; A = diag(Lam, conj Lam) - p p^H (P kept), bilinear discretization",
            f"C recovered from the stored C~ = C (I - Abar^L), L = l_kernel {facts['l_kernel']}",
            f"--kernel exact: eigen-decomposition of each N x N state matrix in float64 ({exact_modes} modes per "
            f"neuron: one per conjugate pair, one per real eigenvalue)" if kernel == "exact" else
            f"--kernel refit: {cfg.d_state // 2} modes per neuron, dominant exact poles, least-squares readouts",
            "reverse branch: same time order, no norm, no output affine (a_out = 1, b_out = 0); both output samplers "
            "reuse the forward input sampler's uniforms (shared_uniforms)" if cfg.bidirectional else
            "one SSM branch per block",
        ],
        "approximated": ([] if two_sided or not facts["two_sided"] else
                         ["the anti-causal half of every two-sided kernel is dropped (causal import; --two-sided keeps "
                          "it, float only): see kernels[].anticausal_to_causal_max and measured_on_inputs"]) +
                        ([] if kernel == "exact" else ["kernels refitted: see kernels[].kernel_error_refit"]),
        "dropped": [f"{k} (not read by their eval-mode forward)" for k in unused],
        "kernels": conv.errors,
        "notes": ["their kernel is tied to L = l_kernel: inputs longer than L see SSM memory past L here (a recurrence), "
                  "cut off in their FFTConv", "training-mode BatchNorm of the folded pre-norm differs from theirs; the "
                  "import is an eval-mode model",
                  "export: their GELUs need 'pspike export --gelu table'; the exact diagonal form has readouts with "
                  "cancellation (kernels[].cond_V), --ssm-bits 12 keeps them (docs/import.md)"],
    }


def lay_keys(ckpt: dict) -> list:
    return [str(k) for k in ckpt["state_dict"]]
