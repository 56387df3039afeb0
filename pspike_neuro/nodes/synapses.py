"""Synapses: ``SparseSynapse`` (``lava.proc.sparse.Sparse``, CSR) and ``DenseSynapse``
(``lava.proc.dense.Dense``).

Integer step, as Lava's fixed-point models compute it: ``a = shift(W @ x, weight_exp)`` with the
weights on Lava's 8-bit grid; ``x`` is read as binary when ``num_message_bits == 0`` (spikes) and as
24-bit graded values otherwise. Float step: ``a = W_float @ x``. In Lava a synapse adds one step of
latency; the model time of the simulators does not (docs/numerics.md §4).

Quantization: the synapse delivers the format its consumer asks for. With input format ``2^-f_in``
(0 for spikes) and output format ``2^-f_out``, ``W_int 2^weight_exp ~= W_float 2^(f_out - f_in)``.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..errors import UserError
from ..numerics.fixed import prune_to_density, quantize_weights, synaptic_input
from .base import A, Activity, I, NodeType, OpCounts, QuantContext, register

#: a sparse synapse multiplies as a dense matrix up to this many weights
DENSE_LIMIT = 1 << 22


class _Synapse(NodeType):
    ROLE = "synapse"
    STATELESS = True
    ATTRS = ("n_in", "n_out")
    FLOATS = ("weight",)

    @classmethod
    def width(cls, values, port, side):
        return int(values["n_in"] if side == "in" else values["n_out"])

    def int_step(self, state, inputs, t, ctx):
        x = inputs["in"]
        lead = np.shape(x)[:-1]
        a = synaptic_input(self.matrix(), np.reshape(x, (-1, self.n_in)), self.weight_exp, self.num_message_bits)
        return {"out": a.reshape(lead + (self.n_out,))}, None, {}

    def float_step(self, state, inputs, t, ctx):
        x = np.asarray(inputs["in"], np.float64)
        return {"out": x @ self.floats["weight"].T}, None, {}

    @classmethod
    def quantize(cls, q: QuantContext) -> "_Synapse":
        node, qc = q.node, q.qc
        fmt_in = q.in_formats["in"]
        if q.out_format is None or q.out_format.binary:
            raise UserError(f"synapse {node.name}: its destination takes no graded input")
        w = node.floats["weight"]
        if cls.PRUNE and qc.density is not None:
            w = prune_to_density(w, qc.density)
        try:
            w_int, w_exp = quantize_weights(w * 2.0 ** (q.out_format.frac_bits - (0 if fmt_in.binary else fmt_in.frac_bits)),
                                            qc.weight_bits)
        except ValueError as exc:
            raise UserError(f"synapse {node.name}: {exc}") from None
        if not -24 <= w_exp <= 24:
            raise UserError(f"synapse {node.name}: weight exponent {w_exp} is outside Lava's range [-24, 24] (a trained "
                            "value too large or too small for the chip's fixed-point ranges)")
        return cls.from_dense(node.name, w_int, w_exp, qc.weight_bits, 0 if fmt_in.binary else fmt_in.message_bits,
                              dict(node.floats))

    def messages(self, act: Activity) -> OpCounts:
        return OpCounts()  # a synapse lives on its destination's core: its sums are not messages

    def ops(self, act: Activity) -> OpCounts:
        """Binary input: one accumulate per arriving spike and non-zero weight of its column;
        graded input: one multiply-accumulate per stored weight per step, or per arriving message and
        non-zero weight when the source sends only non-zero values (``EVENT_DRIVEN``: its events are
        in ``act.inputs``)."""
        x = act.inputs["in"] if self.num_message_bits == 0 else act.inputs.get("in")
        if x is None:
            return OpCounts(graded_synops=act.steps * self.stored())
        events = float((np.asarray(x, bool).sum(axis=tuple(range(x.ndim - 1))) * self.fanout()).sum())
        return OpCounts(ac=events) if self.num_message_bits == 0 else OpCounts(graded_synops=events)

    def dense_ops(self, steps: float) -> OpCounts:
        return OpCounts(graded_synops=steps * self.n_in * self.n_out)

    def bits(self) -> dict:
        return {"weight": self.num_weight_bits, "message": self.num_message_bits or 1}

    def describe(self) -> dict:
        return {"shape": [self.n_out, self.n_in], "nonzeros": self.nonzeros(), "weight_exp": self.weight_exp}

    def lava_latency(self) -> int:
        return 1

    def lava_ports(self, process):
        return {"in": process.s_in}, {"out": process.a_out}


@register
class SparseSynapse(_Synapse):
    __doc__ = __doc__
    DOC_EQUATION = ("SpikeMixer as ``lava.proc.sparse.Sparse`` (CSR rows = outputs): ``a = shift(W @ s, weight_exp)``, "
                    "binary input when ``num_message_bits == 0``; one step latency in Lava.")
    PRUNE = True  # --density prunes these (the P-SpikeSSM mixers)
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

    def setup(self) -> None:
        v = self.values
        self._csr = sparse.csr_matrix((v["weights"].astype(np.int32), v["indices"], v["indptr"]),
                                      shape=(v["n_out"], v["n_in"]))
        self._dense = None

    def matrix(self):
        """The weights the step multiplies with: dense while that is small (BLAS on a dense matrix is
        several times faster than sparse products here; the sums are the same integers)."""
        if self.n_in * self.n_out > DENSE_LIMIT:
            return self._csr
        if self._dense is None:
            self._dense = self._csr.toarray().astype(np.int64)
        return self._dense

    def to_dense(self) -> np.ndarray:
        return self._csr.toarray().astype(np.int64)

    def __getstate__(self):
        return {"name": self.name, "values": self.values, "floats": self.floats}

    def fanout(self) -> np.ndarray:
        """Stored weights per input (column)."""
        return np.bincount(self.indices, minlength=self.n_in)

    def stored(self) -> int:
        return self.nnz

    def nonzeros(self) -> int:
        return self.nnz

    def synapse_memory(self):
        return self.nnz, self.num_weight_bits, self.n_in, True

    @classmethod
    def from_dense(cls, name, w_int, weight_exp, num_weight_bits, num_message_bits, floats=None):
        csr = sparse.csr_matrix(np.asarray(w_int, np.int64))
        csr.eliminate_zeros()
        return cls(name, dict(n_in=csr.shape[1], n_out=csr.shape[0], nnz=int(csr.nnz),
                              indptr=csr.indptr, indices=csr.indices, weights=csr.data,
                              weight_exp=weight_exp, num_weight_bits=num_weight_bits,
                              num_message_bits=num_message_bits), floats or {})

    def lava_library(self, tag: str):
        from lava.proc.sparse.process import Sparse

        if tag == "fixed_pt":
            return Sparse(weights=self._csr, weight_exp=self.weight_exp, num_weight_bits=self.num_weight_bits,
                          num_message_bits=self.num_message_bits)
        return Sparse(weights=sparse.csr_matrix(self.floats["weight"]), num_message_bits=self.num_message_bits)


@register
class DenseSynapse(_Synapse):
    __doc__ = __doc__
    DOC_EQUATION = ("Synapse as ``lava.proc.dense.Dense``: ``a = shift(W @ x, weight_exp)``, graded input (the "
                    "P-SpikeSSM readout) or binary input (``num_message_bits == 0``); one step latency in Lava.")
    PRUNE = False
    FIELDS = (
        I("n_in", 1, 2**20, "inputs"),
        I("n_out", 1, 2**20, "outputs"),
        A("weights", "int16", ("n_out", "n_in"), -256, 255, "Lava 8-bit weight values"),
        I("weight_exp", -24, 24, "shift of the accumulated sum"),
        I("num_weight_bits", 1, 8, "Lava num_weight_bits"),
        I("num_message_bits", 0, 24, "0: binary input; >0: graded"),
    )

    def setup(self) -> None:
        self._w = self.values["weights"].astype(np.int64)

    def matrix(self):
        return self._w

    def to_dense(self) -> np.ndarray:
        return self._w

    def fanout(self) -> np.ndarray:
        return np.count_nonzero(self._w, axis=0)

    def stored(self) -> int:
        return self.n_in * self.n_out

    def nonzeros(self) -> int:
        return int(np.count_nonzero(self._w))

    def synapse_memory(self):
        return self.nonzeros(), self.num_weight_bits, self.n_in, False

    @classmethod
    def from_dense(cls, name, w_int, weight_exp, num_weight_bits, num_message_bits, floats=None):
        w = np.asarray(w_int, np.int64)
        return cls(name, dict(n_in=w.shape[1], n_out=w.shape[0], weights=w, weight_exp=weight_exp,
                              num_weight_bits=num_weight_bits, num_message_bits=num_message_bits), floats or {})

    def lava_library(self, tag: str):
        from lava.proc.dense.process import Dense

        if tag == "fixed_pt":
            return Dense(weights=self._w.astype(np.int32), weight_exp=self.weight_exp,
                         num_weight_bits=self.num_weight_bits, num_message_bits=self.num_message_bits)
        return Dense(weights=self.floats["weight"], num_message_bits=self.num_message_bits or 0)
