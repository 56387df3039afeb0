"""Build and run the Lava process graph of a quantized network, one fresh graph per sample.

Input: the ``net`` dict of :func:`pspike_neuro.quant.quantize.quantize_network` (plain dict records)
or the same view of a netlist (:func:`pspike_neuro.export.build.as_layers`, Node records)::

    GradedSource ─► SSMNeuron_0 ─► Sparse (mixer_0) ─► ClampFuse_0.mixer ─► SSMNeuron_1 ...
          └─────────────────────────────────────────► ClampFuse_0.residual ─► ClampFuse_1.residual ...
    ClampFuse_last ─► Dense (readout, num_message_bits=24) ─► ReadoutIntegrator

Lava executes every module of this folder while it compiles a graph (looking for process models),
so this module only defines functions and uses absolute imports.

Lava's own synapses are used as they are. Their fixed-point arithmetic equals the integer contract
(``fixed.synaptic_input``, int64) with one exception: ``a_out`` of the bit-accurate Dense/Sparse
models is an ``np.int32`` port, so a synaptic sum outside the int32 range would wrap silently on
its way to the next process. (The accumulation itself runs in int64, because our processes send
int64 and Lava computes ``int32 weights . input`` in the input's dtype.) :func:`int32_bounds` gives
the worst case of every synapse and the builder refuses a network whose worst case does not fit.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
from scipy import sparse

from pspike_neuro.errors import UserError
from pspike_neuro.quant.fixed import SaturationCounter, lava_effective_weights, saturate, shift
from pspike_neuro.sim.reference import NeuronParams, ReferenceResult

BACKEND_TAGS = ("fixed_pt", "floating_pt")
INT32_MAX = 2**31 - 1
STATE_MAX = 2**23 - 1


# ------------------------------------------------------------------------------------------------
# records
# ------------------------------------------------------------------------------------------------

def _fields(rec) -> dict:
    """Fields of a record: a plain dict (quantize_network) or a netlist Node (``.values``)."""
    return dict(rec) if isinstance(rec, dict) else dict(rec.values)


def _weights(syn) -> np.ndarray:
    if isinstance(syn, dict):
        return np.asarray(syn["weights"], np.int64)
    return np.asarray(syn.to_dense(), np.int64)


def _neuron_floats(blk) -> dict:
    """Float parameters of one SSM population from a FoldedBlock."""
    lam, b_unit, c = (np.asarray(getattr(blk, k), np.complex128) for k in ("lam", "b_unit", "c"))
    return {"alpha": np.asarray(blk.alpha, float), "beta": np.asarray(blk.beta, float),
            "lam_re": lam.real, "lam_im": lam.imag, "b_unit_re": b_unit.real, "b_unit_im": b_unit.imag,
            "c_re": c.real, "c_im": c.imag, "d": np.asarray(blk.d, float),
            "b_out": np.asarray(blk.b_out, float), "out_sign": np.asarray(blk.out_sign, float)}


def float_params(net: dict, folded=None) -> list[dict]:
    """Per layer ``{"neuron", "mixer", "fuse"}`` float parameters, then ``{"weight", "bias"}`` of the
    readout: from ``folded`` (a FoldedNetwork) or from netlist Nodes' ``floats``."""
    if folded is not None:
        layers = [{"neuron": _neuron_floats(blk), "mixer": np.asarray(blk.w_mix, float),
                   "fuse": {"bias": np.asarray(blk.c_mix, float), "post_scale": np.asarray(blk.post_scale, float),
                            "post_offset": np.asarray(blk.post_offset, float)}} for blk in folded.blocks]
        return layers + [{"weight": np.asarray(folded.w_readout, float), "bias": np.asarray(folded.b_readout, float)}]
    try:
        layers = [{"neuron": blk["neuron"].floats, "mixer": blk["mixer"].floats["weight"],
                   "fuse": blk["fuse"].floats} for blk in net["blocks"]]
        ro = net["readout"]
        return layers + [{"weight": ro["synapse"].floats["weight"], "bias": ro["integrator"].floats["bias"]}]
    except (AttributeError, KeyError, TypeError):
        raise UserError("floating_pt needs the folded float parameters: pass folded= (a FoldedNetwork) "
                        "or a netlist whose nodes carry float parameters") from None


def int32_bounds(net: dict) -> dict[str, int]:
    """Worst-case magnitude of every Lava synapse output (what travels in Lava's int32 ``a_out``).

    Mixers read binary spikes: per row, the larger of the sums of the positive and of the negative
    effective weights, shifted by ``weight_exp``. The readout reads graded 24-bit values:
    ``sum_j |W_ij| (2^23 - 1)``, shifted.
    """
    out = {}
    for l, blk in enumerate(net["blocks"]):
        syn = _fields(blk["mixer"])
        w = lava_effective_weights(_weights(blk["mixer"]), syn["num_weight_bits"])
        worst = np.maximum(np.where(w > 0, w, 0).sum(1), -np.where(w < 0, w, 0).sum(1))
        out[f"mixer{l}"] = int(shift(worst, syn["weight_exp"]).max(initial=0))
    syn = _fields(net["readout"]["synapse"])
    w = lava_effective_weights(_weights(net["readout"]["synapse"]), syn["num_weight_bits"])
    worst = np.abs(w).sum(1) * STATE_MAX
    out["readout_synapse"] = int(np.abs(shift(-worst, syn["weight_exp"])).max(initial=0))  # floor: -x is the larger
    return out


def check_network(net: dict) -> None:
    """Refuse, in one line, what this Lava graph cannot run exactly (before any process starts)."""
    for l, blk in enumerate(net["blocks"]):
        try:
            NeuronParams(blk["neuron"])
        except Exception as exc:  # noqa: BLE001 - a malformed record, reported by name
            raise UserError(f"layer {l}: the SSM neuron record is malformed ({type(exc).__name__}: {exc})") from None
        syn = _fields(blk["mixer"])
        if syn.get("num_message_bits", 0) != 0:
            raise UserError(f"mixer{l}: num_message_bits must be 0 (binary spikes), got {syn['num_message_bits']}")
        w = _weights(blk["mixer"])
        if not np.array_equal(lava_effective_weights(w, syn["num_weight_bits"]), w):
            raise UserError(f"mixer{l}: weights are not on Lava's {syn['num_weight_bits']}-bit grid; "
                            "Lava would clip or truncate them")
    syn = _fields(net["readout"]["synapse"])
    if syn["num_message_bits"] <= 0:
        raise UserError("readout synapse: num_message_bits must be > 0 to carry the graded residual stream")
    w = _weights(net["readout"]["synapse"])
    if not np.array_equal(lava_effective_weights(w, syn["num_weight_bits"]), w):
        raise UserError(f"readout synapse: weights are not on Lava's {syn['num_weight_bits']}-bit grid")
    for name, bound in int32_bounds(net).items():
        if bound > INT32_MAX:
            raise UserError(f"{name}: the synaptic sum can reach {bound} (> 2^31 - 1) and Lava's int32 a_out "
                            "would wrap it silently; lower the weight exponent")


# ------------------------------------------------------------------------------------------------
# one graph
# ------------------------------------------------------------------------------------------------

def build_graph(net: dict, x_sample: np.ndarray, sample: int, seed: int, valid_length: int, tag: str,
                folder: Path, floats: list | None = None):
    """The processes of one sample's graph; returns ``(source, procs, num_steps)``."""
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    from pspike_neuro.sim.lava.processes import ClampFuse, GradedSource, ReadoutIntegrator, SSMNeuron

    length = x_sample.shape[0]
    blocks = net["blocks"]
    num_steps = length + len(blocks) + 1  # latency_steps = n_layers + 1 (docs/numerics.md §4)
    run = dict(seed=int(seed), sample=int(sample), length=int(length), valid_length=int(valid_length),
               num_steps=int(num_steps))
    source = GradedSource(data=x_sample, **run)
    stream = source.s_out
    procs = {"source": source}
    for l, blk in enumerate(blocks):
        nrn_f, syn_f, fuse_f = _fields(blk["neuron"]), _fields(blk["mixer"]), _fields(blk["fuse"])
        fl = floats[l] if floats is not None else {"neuron": {}, "fuse": {}}
        nrn = SSMNeuron(n=int(nrn_f["n"]), layer=l, params=nrn_f, floats=fl["neuron"], record_states=True,
                        record_path=str(folder / f"neuron{l}.npz"), **run)
        if tag == "fixed_pt":
            syn = Sparse(weights=sparse.csr_matrix(_weights(blk["mixer"])), weight_exp=int(syn_f["weight_exp"]),
                         num_weight_bits=int(syn_f["num_weight_bits"]), num_message_bits=0)
        else:  # float weights through Lava's floating_pt Sparse model: same graph in both precisions
            syn = Sparse(weights=sparse.csr_matrix(fl["mixer"]), num_message_bits=0)
        fz = ClampFuse(n=int(fuse_f["n"]), layer=l, params=fuse_f, floats=fl["fuse"],
                       record_path=str(folder / f"fuse{l}.npz"), **run)
        stream.connect(nrn.a_in)
        stream.connect(fz.residual)
        nrn.s_out.connect(syn.s_in)
        syn.a_out.connect(fz.mixer)
        stream = fz.x_out
        procs.update({f"neuron{l}": nrn, f"mixer{l}": syn, f"fuse{l}": fz})
    syn_f, integ_f = _fields(net["readout"]["synapse"]), _fields(net["readout"]["integrator"])
    if tag == "fixed_pt":
        dense = Dense(weights=_weights(net["readout"]["synapse"]).astype(np.int32),
                      weight_exp=int(syn_f["weight_exp"]), num_weight_bits=int(syn_f["num_weight_bits"]),
                      num_message_bits=int(syn_f["num_message_bits"]))
        integ_floats = {}
    else:
        dense = Dense(weights=floats[-1]["weight"], num_message_bits=24)
        integ_floats = {"bias": floats[-1]["bias"]}
    readout = ReadoutIntegrator(n=int(integ_f["n"]), layer=len(blocks), params=integ_f, floats=integ_floats,
                                record_path=str(folder / "readout.npz"), **run)
    stream.connect(dense.s_in)
    dense.a_out.connect(readout.a_in)
    procs.update({"readout_synapse": dense, "readout": readout})
    return source, procs, num_steps


def _alive(actor) -> bool:
    try:
        return actor.is_alive()
    except ValueError:  # a joined SystemProcess is closed
        return False


def _terminate(runtime) -> None:
    """Last resort for a run that stopped answering: end its own actors (by object, not by name)."""
    infra = getattr(runtime, "_messaging_infrastructure", None)
    for actor in list(getattr(infra, "actors", []) or []):
        try:
            if _alive(actor):
                actor.terminate()
                multiprocessing.Process.join(actor, 5)
        except Exception:  # noqa: BLE001
            pass
    for stop in (lambda: infra._smm.shutdown(), lambda: runtime._watchdog_manager.stop()):
        try:
            stop()
        except Exception:  # noqa: BLE001
            pass
    runtime._is_started = runtime._is_running = False  # Runtime.__del__ would otherwise wait for them


def _stop(source, timeout_s: float = 30.0) -> None:
    """Stop the runtime and its forked processes whatever happened; never raises, never hangs."""
    runtime = getattr(source, "runtime", None)
    if runtime is None:
        return
    if not getattr(runtime, "_is_started", False):  # initialised, never started: its actors
        _terminate(runtime)                         # wait for a command that will not come
        return

    def stop():
        try:
            source.stop()
        except Exception:  # noqa: BLE001 - stopping is best effort; the run's own error matters
            pass

    worker = threading.Thread(target=stop, name="lava-stop", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive() or any(_alive(a) for a in getattr(runtime._messaging_infrastructure, "actors", [])):
        _terminate(runtime)


def run_graph(source, num_steps: int, tag: str, sample: int, timeout_s: float | None) -> None:
    """Compile and run one graph under ``Loihi2SimCfg(select_tag=tag)``, then stop it; any failure
    (including a run that does not finish within ``timeout_s``) becomes a one-line UserError."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    cfg = Loihi2SimCfg(select_tag=tag)
    outcome: dict = {}

    def target():
        try:
            source.run(condition=RunSteps(num_steps=num_steps), run_cfg=cfg)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc

    try:
        try:
            source.create_runtime(run_cfg=cfg)  # compile and fork here, run in a watched thread
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc
        else:
            worker = threading.Thread(target=target, name=f"lava-sample{sample}", daemon=True)
            worker.start()
            worker.join(timeout_s)
            if worker.is_alive():
                _terminate(source.runtime)
                raise UserError(f"Lava simulation of sample {sample} did not finish within {timeout_s:g} s; "
                                "its processes were terminated")
    finally:
        if "error" in outcome or not getattr(source, "runtime", None) or source.runtime._is_started:
            _stop(source)
    if "error" in outcome:
        exc = outcome["error"]
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"Lava simulation of sample {sample} failed: {type(exc).__name__}: {reason}")


def _run_one(net, x_sample, sample, seed, valid_length, tag, folder: Path, floats, timeout_s) -> dict:
    source, _, num_steps = build_graph(net, x_sample, sample, seed, valid_length, tag, folder, floats)
    if timeout_s is None:
        timeout_s = 120.0 + 0.05 * num_steps * (3 * len(net["blocks"]) + 3)
    run_graph(source, num_steps, tag, sample, timeout_s)
    errors = sorted(folder.glob("*.error"))
    if errors:
        name = errors[0].name.split(".")[0]
        reason = " ".join(errors[0].read_text().split())[:200]
        raise UserError(f"Lava simulation of sample {sample} failed in {name}: {reason}")
    n_layers = len(net["blocks"])
    try:
        return {"neurons": [dict(np.load(folder / f"neuron{l}.npz")) for l in range(n_layers)],
                "fuses": [dict(np.load(folder / f"fuse{l}.npz")) for l in range(n_layers)],
                "readout": dict(np.load(folder / "readout.npz"))}
    except OSError as exc:
        raise UserError(f"Lava simulation of sample {sample}: a process saved no recordings ({exc})") from None


# ------------------------------------------------------------------------------------------------
# public entry point
# ------------------------------------------------------------------------------------------------

def build_and_run(net: dict, x0_float: np.ndarray, sample_ids, seed: int, lengths=None,
                  backend_tag: str = "fixed_pt", record_dir=None, folded=None,
                  timeout_s: float | None = None) -> ReferenceResult:
    """Simulate host-encoded inputs ``x0_float`` (B, L, H) in Lava, one fresh graph per sample.

    Returns what :func:`pspike_neuro.sim.reference.simulate` returns with ``record_states=True``:
    ``spikes_in``/``spikes_out`` (B, L, H) bool; ``residual`` (B, L, H), the stream entering each
    layer; ``states`` (B, L, H, M, 2) (fixed_pt: integer ``zr, zi``; floating_pt: ``Re z, Im z``);
    ``logits`` (fixed_pt: the integer accumulators; floating_pt: the sum over valid steps divided by
    their number, as :func:`pspike_neuro.quant.fold.float_forward` returns); ``saturation`` counts.
    ``residual_out`` (extra attribute) is the stream leaving the last block.

    ``record_dir``, if given, keeps each sample's recordings (``.npz`` per process) in
    ``record_dir/sample<id>/``. ``folded`` (a FoldedNetwork) supplies the float parameters for
    ``floating_pt``. ``timeout_s`` bounds one sample's run (default: generous, from its size).
    """
    if backend_tag not in BACKEND_TAGS:
        raise UserError(f"Lava backend tag must be one of {', '.join(BACKEND_TAGS)}, got {backend_tag!r}")
    x0_float = np.asarray(x0_float)
    if x0_float.ndim != 3:
        raise UserError(f"inputs must be (batch, length, width), got shape {x0_float.shape}")
    batch, length, width = x0_float.shape
    inp = _fields(net["input"])
    if width != inp["n"]:
        raise UserError(f"inputs have width {width}, the network takes {inp['n']}")
    sample_ids = np.asarray(sample_ids).reshape(-1)
    if sample_ids.shape[0] != batch:
        raise UserError(f"{sample_ids.shape[0]} sample ids for a batch of {batch}")
    lengths = np.full(batch, length) if lengths is None else np.asarray(lengths).reshape(-1)
    check_network(net)
    floats = float_params(net, folded) if backend_tag == "floating_pt" else None
    sat = SaturationCounter()
    per_sample = []
    for b in range(batch):
        sample = int(sample_ids[b])
        if backend_tag == "fixed_pt":  # reference.quantize_input, one sample
            x_sample, n_sat = saturate(np.rint(x0_float[b] * 2.0 ** inp["frac_bits"]).astype(np.int64))
            sat.add("input", n_sat)
        else:
            x_sample = x0_float[b].astype(np.float64)
        args = (net, x_sample, sample, seed, int(lengths[b]), backend_tag)
        if record_dir is not None:
            folder = Path(record_dir) / f"sample{sample}"
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            rec = _run_one(*args, folder, floats, timeout_s)
        else:
            with tempfile.TemporaryDirectory(prefix="pspike-lava-") as tmp:
                rec = _run_one(*args, Path(tmp), floats, timeout_s)
        for part in rec["neurons"] + rec["fuses"] + [rec["readout"]]:
            for key, value in part.items():
                if key.startswith("sat:"):
                    sat.add(key[4:], int(value))
        per_sample.append(rec)
    return _stack(per_sample, sat, backend_tag, lengths)


def _stack(per_sample: list, sat: SaturationCounter, tag: str, lengths: np.ndarray) -> ReferenceResult:
    n_layers = len(per_sample[0]["neurons"])
    acc = np.stack([s["readout"]["acc"][-1] for s in per_sample])
    logits = acc / np.maximum(lengths, 1)[:, None] if tag == "floating_pt" else acc.astype(np.int64)
    result = ReferenceResult(logits=logits, predictions=logits.argmax(-1), saturation=sat.as_dict())
    for l in range(n_layers):
        result.spikes_in.append(np.stack([s["neurons"][l]["s"] for s in per_sample]).astype(bool))
        result.spikes_out.append(np.stack([s["neurons"][l]["o"] for s in per_sample]).astype(bool))
        result.residual.append(np.stack([s["neurons"][l]["x"] for s in per_sample]))
        if "state" in per_sample[0]["neurons"][l]:
            result.states.append(np.stack([s["neurons"][l]["state"] for s in per_sample]))
    result.residual_out = np.stack([s["fuses"][-1]["x_out"] for s in per_sample])
    return result
