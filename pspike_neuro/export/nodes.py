"""Typed node records of the netlist. Each type declares its fields once; the declaration drives
construction checks, the HDF5 writer and reader, and the schema tables of docs/netlist-format.md.

Equations (docs/numerics.md §3) are in each type's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import sparse

STATE = 2**23 - 1  # 24-bit signed magnitude limit


@dataclass(frozen=True)
class Field:
    """One field: ``kind`` is ``array`` (integer ndarray), ``int``, ``str`` or ``bool``."""

    name: str
    kind: str
    doc: str
    dtype: str | None = None
    shape: tuple = ()
    lo: int | None = None
    hi: int | None = None
    choices: tuple = ()

    def describe_type(self) -> str:
        if self.kind == "array":
            return f"{self.dtype} ({', '.join(self.shape)})"
        return self.kind

    def describe_range(self) -> str:
        if self.choices:
            return " \\| ".join(str(c) for c in self.choices)
        if self.lo is not None or self.hi is not None:
            return f"[{self.lo}, {self.hi}]"
        return ""


def A(name, dtype, shape, lo, hi, doc):  # noqa: N802 - a compact table constructor
    return Field(name, "array", doc, dtype, tuple(shape), lo, hi)


def I(name, lo, hi, doc):  # noqa: N802, E743
    return Field(name, "int", doc, lo=lo, hi=hi)


def S(name, choices, doc):  # noqa: N802
    return Field(name, "str", doc, choices=tuple(choices))


def B(name, doc):  # noqa: N802
    return Field(name, "bool", doc)


class NodeError(ValueError):
    """A node whose fields violate its declaration; the message names node and field."""


@dataclass
class Node:
    """Base of every node type: a name, declared fields and optional float shadow parameters.

    ``floats`` holds the folded float parameters (float64 arrays) that the floating-point backends
    use; the integer fields are what the fixed-point backends and the chip use.
    """

    name: str
    values: dict
    floats: dict = field(default_factory=dict)

    FIELDS: ClassVar[tuple] = ()
    IN_PORTS: ClassVar[tuple] = ("in",)
    OUT_PORTS: ClassVar[tuple] = ("out",)

    def __post_init__(self):
        self.check()

    def __getattr__(self, key):
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"{type(self).__name__} has no field {key!r}")

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def dims(self) -> dict:
        """Symbolic dimensions bound from the node's scalar fields."""
        return {f.name: self.values[f.name] for f in self.FIELDS if f.kind == "int"}

    def fail(self, fld: str, problem: str):
        raise NodeError(f"node {self.name} ({self.type_name()}): field {fld}: {problem}")

    def check(self) -> None:
        names = {f.name for f in self.FIELDS}
        missing = [n for n in names if n not in self.values]
        if missing:
            self.fail(sorted(missing)[0], "missing")
        extra = sorted(set(self.values) - names)
        if extra:
            self.fail(extra[0], "not a field of this node type")
        for f in self.FIELDS:
            if f.kind != "array":
                self._check_scalar(f, self.values[f.name])
        dims = self.dims()
        for f in self.FIELDS:
            if f.kind == "array":
                self.values[f.name] = self._check_array(f, self.values[f.name], dims)
        for key, value in self.floats.items():
            arr = np.asarray(value)
            if arr.dtype != np.float64:
                self.fail(f"float/{key}", f"dtype {arr.dtype}, expected float64")
            if not np.all(np.isfinite(arr)):
                self.fail(f"float/{key}", "NaN or infinite values")
        self.extra_checks()

    def extra_checks(self) -> None:
        """Type-specific consistency checks beyond single fields."""

    def _check_scalar(self, f: Field, value) -> None:
        if f.kind == "int":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                self.fail(f.name, f"expected an integer, got {type(value).__name__}")
            if (f.lo is not None and value < f.lo) or (f.hi is not None and value > f.hi):
                self.fail(f.name, f"value {value} outside [{f.lo}, {f.hi}]")
            self.values[f.name] = int(value)
        elif f.kind == "str":
            if value not in f.choices:
                self.fail(f.name, f"{value!r} is not one of {', '.join(f.choices)}")
        elif f.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                self.fail(f.name, f"expected a boolean, got {type(value).__name__}")
            self.values[f.name] = bool(value)

    def _check_array(self, f: Field, value, dims: dict) -> np.ndarray:
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.integer):
            self.fail(f.name, f"dtype {arr.dtype}, expected {f.dtype}")
        shape = tuple(dims[d] if isinstance(d, str) else d for d in f.shape)
        if arr.shape != shape:
            self.fail(f.name, f"shape {arr.shape}, expected {shape} ({', '.join(f.shape)})")
        if arr.size and (int(arr.min()) < f.lo or int(arr.max()) > f.hi):
            self.fail(f.name, f"values outside [{f.lo}, {f.hi}] (min {int(arr.min())}, max {int(arr.max())})")
        return arr.astype(f.dtype)


class GradedInput(Node):
    """Host source: the encoder output ``x0`` streamed as 24-bit graded messages,
    ``x0_int = sat(round(x0 * 2^frac_bits))``."""

    FIELDS = (I("n", 1, 2**20, "width of the residual stream (H)"),
              I("frac_bits", 0, 23, "fraction bits X_0 of the graded input"))
    IN_PORTS = ()


class SSMNeuron(Node):
    """One block's neuron population: input sampler, SSM modes, output sampler.

    ``q_in = clamp(shr_trunc(alpha_m x, alpha_shift) + beta, 0, 2^P)``, ``s = 1[r1 < q_in]``;
    ``z' = sat(lam z + s (b << b_exp))`` per mode with ``lava.proc.rf``'s rounding;
    ``v = sat(shr_trunc(sum_k Re(c z), c_shift) + s shift(d, d_exp) + b_out)``;
    ``o = 1[r2 < clamp(phi(v), 0, 2^P)]`` with ``phi(v) = v`` or ``out_sign max(v, 0)``.
    """

    FIELDS = (
        I("layer", 0, 4096, "block index"),
        I("n", 1, 2**20, "neurons (H)"),
        I("n_modes", 1, 1024, "complex modes per neuron (N/2)"),
        I("prob_bits", 1, 24, "P: probability 1.0 is 2^P"),
        I("site_in", 0, 2**32 - 1, "RNG site of the input sampler"),
        I("site_out", 0, 2**32 - 1, "RNG site of the output sampler"),
        S("phi", ("identity", "relu"), "activation after the SSM"),
        I("in_frac_bits", 0, 23, "fraction bits of the incoming residual stream"),
        I("state_frac_bits", -8, 23, "fraction bits Z of the SSM state"),
        A("alpha_m", "int32", ("n",), -STATE, STATE, "input-sampler scale mantissa"),
        I("alpha_shift", 0, 40, "input-sampler scale shift"),
        A("beta", "int32", ("n",), -STATE, STATE, "input-sampler offset, units 2^-P"),
        A("decay_re", "int16", ("n", "n_modes"), -4095, 4095, "Re(lambda) * 4096"),
        A("decay_im", "int16", ("n", "n_modes"), -4095, 4095, "Im(lambda) * 4096"),
        A("b_re", "int32", ("n", "n_modes"), -STATE, STATE, "Re(Bbar) mantissa"),
        A("b_im", "int32", ("n", "n_modes"), -STATE, STATE, "Im(Bbar) mantissa"),
        I("b_exp", 0, 23, "left shift of Bbar into state units"),
        A("c_re", "int32", ("n", "n_modes"), -STATE, STATE, "Re(C) mantissa"),
        A("c_im", "int32", ("n", "n_modes"), -STATE, STATE, "Im(C) mantissa"),
        A("c_shift", "int8", ("n",), 0, 48, "per-neuron right shift of the mode sum into units 2^-P"),
        A("d", "int32", ("n",), -STATE, STATE, "feed-through mantissa"),
        I("d_exp", -24, 23, "feed-through exponent"),
        A("b_out", "int32", ("n",), -STATE, STATE, "output-sampler bias, units 2^-P"),
        A("out_sign", "int8", ("n",), -1, 1, "sign of a_out (phi = relu)"),
    )

    def extra_checks(self) -> None:
        if np.any(self.values["out_sign"] == 0):
            self.fail("out_sign", "values must be -1 or 1")


class SparseSynapse(Node):
    """SpikeMixer as ``lava.proc.sparse.Sparse`` (CSR rows = outputs):
    ``a = shift(W @ s, weight_exp)``, binary input when ``num_message_bits == 0``; one step latency."""

    FIELDS = (
        I("n_in", 1, 2**20, "inputs"),
        I("n_out", 1, 2**20, "outputs"),
        I("nnz", 0, 2**31 - 1, "stored (non-zero) weights"),
        A("indptr", "int32", ("n_out+1",), 0, 2**31 - 1, "CSR row pointers"),
        A("indices", "int32", ("nnz",), 0, 2**20, "CSR column indices"),
        A("weights", "int16", ("nnz",), -256, 255, "Lava 8-bit weight values"),
        I("weight_exp", -24, 24, "shift of the accumulated sum"),
        I("num_weight_bits", 1, 8, "Lava num_weight_bits"),
        I("num_message_bits", 0, 24, "0: binary input; >0: graded"),
    )

    def dims(self) -> dict:
        dims = super().dims()
        dims["n_out+1"] = dims["n_out"] + 1
        return dims

    def extra_checks(self) -> None:
        indptr, indices = self.values["indptr"], self.values["indices"]
        if indptr[0] != 0 or indptr[-1] != self.values["nnz"] or np.any(np.diff(indptr) < 0):
            self.fail("indptr", "must start at 0, never decrease and end at nnz")
        if indices.size and int(indices.max()) >= self.values["n_in"]:
            self.fail("indices", f"column {int(indices.max())} is not below n_in={self.values['n_in']}")

    def to_scipy(self) -> sparse.csr_matrix:
        v = self.values
        return sparse.csr_matrix((v["weights"].astype(np.int32), v["indices"], v["indptr"]),
                                 shape=(v["n_out"], v["n_in"]))

    def to_dense(self) -> np.ndarray:
        return self.to_scipy().toarray().astype(np.int64)

    @classmethod
    def from_dense(cls, name, w_int, weight_exp, num_weight_bits, num_message_bits, floats=None):
        csr = sparse.csr_matrix(np.asarray(w_int, np.int64))
        csr.eliminate_zeros()
        return cls(name, dict(n_in=csr.shape[1], n_out=csr.shape[0], nnz=int(csr.nnz),
                              indptr=csr.indptr, indices=csr.indices, weights=csr.data,
                              weight_exp=weight_exp, num_weight_bits=num_weight_bits,
                              num_message_bits=num_message_bits), floats or {})


class DenseSynapse(Node):
    """Synapse as ``lava.proc.dense.Dense``: ``a = shift(W @ x, weight_exp)``, graded input (the
    P-SpikeSSM readout) or binary input (``num_message_bits == 0``, SiLIF layers); one step latency."""

    FIELDS = (
        I("n_in", 1, 2**20, "inputs"),
        I("n_out", 1, 2**20, "outputs"),
        A("weights", "int16", ("n_out", "n_in"), -256, 255, "Lava 8-bit weight values"),
        I("weight_exp", -24, 24, "shift of the accumulated sum"),
        I("num_weight_bits", 1, 8, "Lava num_weight_bits"),
        I("num_message_bits", 0, 24, "0: binary input; >0: graded"),
    )

    def to_dense(self) -> np.ndarray:
        return self.values["weights"].astype(np.int64)


class ClampFuse(Node):
    """Residual join: ``x' = sat(shr_trunc(post_scale_m (x_delayed + psi(a + bias)), post_shift) + post_offset)``
    (without residual: ``x_delayed`` is dropped). The residual input is delayed ``residual_delay``
    steps to meet the mixer path."""

    FIELDS = (
        I("layer", 0, 4096, "block index"),
        I("n", 1, 2**20, "neurons (H)"),
        S("psi", ("identity", "relu"), "activation after the mixer"),
        B("residual", "add the residual stream"),
        A("bias", "int32", ("n",), -STATE, STATE, "mixer bias c, units 2^-in_frac_bits"),
        I("in_frac_bits", 0, 23, "fraction bits of the incoming stream"),
        I("out_frac_bits", 0, 23, "fraction bits of the outgoing stream"),
        A("post_scale_m", "int32", ("n",), -STATE, STATE, "post-norm scale mantissa"),
        I("post_shift", 0, 40, "post-norm scale shift"),
        A("post_offset", "int32", ("n",), -STATE, STATE, "post-norm offset, units 2^-out_frac_bits"),
        I("residual_delay", 0, 8, "steps the residual input is delayed"),
    )
    IN_PORTS = ("residual", "mixer")


class ReadoutIntegrator(Node):
    """Class scores: ``acc = sat(acc + a + bias)`` over the valid steps; the prediction is argmax."""

    FIELDS = (
        I("n", 1, 2**16, "classes"),
        I("acc_frac_bits", -8, 23, "fraction bits of the accumulator"),
        A("bias", "int32", ("n",), -STATE, STATE, "per-step bias"),
    )
    OUT_PORTS = ()


class SpikeInput(Node):
    """Host source of a SiLIF network: row ``t`` of the binary input spike train at step ``t``."""

    FIELDS = (I("n", 1, 2**20, "input channels"),)
    IN_PORTS = ()


class SiLIFNeuron(Node):
    """SiLIF population (docs/numerics.md §5), states in units ``2^-F``, threshold ``2^F``:
    ``w' = sat(shr_trunc(beta w, 12) + shr_trunc(a u, 12) + s b)``;
    ``u' = sat(shr_trunc(alpha (u - s 2^F), 12) + shr_trunc(one_minus_alpha (I + bias - w'), 12))``;
    ``s' = 1[u' > 2^F]``; ``s`` is the previous step's spike, ``I`` the synaptic input."""

    FIELDS = (
        I("layer", 0, 4096, "layer index"),
        I("n", 1, 2**20, "neurons"),
        I("state_frac_bits", 0, 22, "F: fraction bits of u and w; the threshold 1.0 is 2^F"),
        A("alpha", "int16", ("n",), 0, 4096, "membrane decay * 4096 (dt folded in)"),
        A("beta", "int16", ("n",), 0, 4096, "adaptation decay * 4096 (dt folded in)"),
        A("one_minus_alpha", "int16", ("n",), 0, 4096, "(1 - alpha) * 4096"),
        A("a", "int16", ("n",), 0, 4096, "sub-threshold coupling u -> w, * 4096"),
        A("b", "int32", ("n",), 0, STATE, "spike-triggered adaptation, units 2^-F"),
        A("bias", "int32", ("n",), -STATE, STATE, "BatchNorm offset of the input current, units 2^-F"),
    )


class CSiLIFNeuron(Node):
    """C-SiLIF population (docs/numerics.md §5): a ``lava.proc.rf`` rotation of the complex state
    ``(ur, ui)`` in units ``2^-F``: ``(ur', ui') = rf(ur - s 2^(F-1), ui; decay) + (I + bias, 0)``;
    ``s' = 1[2 ur' > 2^F]``; ``s`` is the previous step's spike."""

    FIELDS = (
        I("layer", 0, 4096, "layer index"),
        I("n", 1, 2**20, "neurons"),
        I("state_frac_bits", 1, 22, "F: fraction bits of the state; the reset 0.5 is 2^(F-1)"),
        A("decay_re", "int16", ("n",), -4095, 4095, "Re(lambda) * 4096 (dt folded in)"),
        A("decay_im", "int16", ("n",), -4095, 4095, "Im(lambda) * 4096"),
        A("bias", "int32", ("n",), -STATE, STATE, "b times the BatchNorm offset, units 2^-F"),
    )


class LeakyReadout(Node):
    """Leaky-integrator readout of a SiLIF network: ``r' = sat(shr_trunc(alpha r, 12) + a + bias)``;
    the host decodes ``argmax_c sum_t softmax(r_t 2^-F)``."""

    FIELDS = (
        I("n", 1, 2**16, "classes"),
        I("state_frac_bits", -8, 23, "F: fraction bits of r"),
        A("alpha", "int16", ("n",), 0, 4096, "readout decay * 4096"),
        A("bias", "int32", ("n",), -STATE, STATE, "(1 - alpha) times the BatchNorm offset, units 2^-F"),
    )
    OUT_PORTS = ()


NODE_TYPES: dict[str, type[Node]] = {cls.__name__: cls for cls in
                                      (GradedInput, SSMNeuron, SparseSynapse, DenseSynapse, ClampFuse,
                                       ReadoutIntegrator, SpikeInput, SiLIFNeuron, CSiLIFNeuron, LeakyReadout)}


def schema_markdown() -> str:
    """The field tables of docs/netlist-format.md, generated from the declarations."""
    out = []
    for name, cls in NODE_TYPES.items():
        out.append(f"### `{name}`\n\n{' '.join(cls.__doc__.split())}\n")
        out.append(f"In ports: {', '.join(cls.IN_PORTS) or 'none'}; out ports: {', '.join(cls.OUT_PORTS) or 'none'}.\n")
        out.append("| field | type | range | meaning |\n|---|---|---|---|")
        for f in cls.FIELDS:
            out.append(f"| `{f.name}` | {f.describe_type()} | {f.describe_range()} | {f.doc} |")
        out.append("")
    return "\n".join(out)
