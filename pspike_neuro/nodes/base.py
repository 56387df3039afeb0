"""What a node type is: one registered class that declares everything about one kind of node.

A node type (``nodes/<type>.py``, one module each) holds, in one place:

* its **record**: the integer fields with their ranges (``FIELDS``), its ports, and the names of its
  float parameters (``FLOATS``) and structural attributes (``ATTRS``, the fields that exist before
  quantization: sizes, layer, activation names); the record drives construction checks, the HDF5
  writer and reader and the tables of docs/netlist-format.md;
* its **integer step** (the contract of docs/numerics.md) and its **float step** (the folded float
  network the fixed-point one approximates), both vectorized over leading dimensions;
* its **quantizer**: float parameters and calibration statistics in, integer fields out;
* its **Lava process**: the generic process of ``sim/lava`` runs its integer or float step, unless
  the type names a library process of Lava itself (``Dense``, ``Sparse``: ``lava_library``);
* its **operation counts** for the energy model, spiking and non-spiking.

The executors (``graph/execute.py``, ``sim/lava_backend.py``) know nothing about any node type:
they walk the graph and call these methods. A type missing from the registry is an error, never a
fallback.
"""

from __future__ import annotations

import types
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np

from ..numerics.fixed import STATE_BITS, SaturationCounter

STATE = 2 ** (STATE_BITS - 1) - 1  # 24-bit signed magnitude limit


# --- fields -------------------------------------------------------------------------------------


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
    default: object = None  # optional field: ``default(values)`` when a record (or an older netlist) leaves it out

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


def A(name, dtype, shape, lo, hi, doc, default=None):  # noqa: N802 - a compact table constructor
    return Field(name, "array", doc, dtype, tuple(shape), lo, hi, default=default)


def I(name, lo, hi, doc, default=None):  # noqa: N802, E743
    return Field(name, "int", doc, lo=lo, hi=hi, default=default)


def S(name, choices, doc):  # noqa: N802
    return Field(name, "str", doc, choices=tuple(choices))


def B(name, doc):  # noqa: N802
    return Field(name, "bool", doc)


class NodeError(ValueError):
    """A node whose fields violate its declaration; the message names node and field."""


# --- signals between nodes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """The integer format of the values on an edge: binary spikes, or graded values in units of
    ``2^-frac_bits`` carried in ``message_bits``-bit signed messages (24, or fewer for small counts)."""

    binary: bool
    frac_bits: int = 0
    message_bits: int = 24

    def describe(self) -> str:
        return "binary" if self.binary else f"graded, 2^-{self.frac_bits}"


BINARY = Format(True)


# --- operation counts (priced by energy/costs.py) ------------------------------------------------

OP_FIELDS = ("mac", "ac", "graded_synops", "add", "rng", "neuron_updates", "active_neuron_updates",
             "binary_messages", "graded_messages")


@dataclass
class OpCounts:
    """Operations of one node over a run (docs/energy-model.md defines each kind)."""

    mac: float = 0.0
    ac: float = 0.0
    graded_synops: float = 0.0
    add: float = 0.0
    rng: float = 0.0
    neuron_updates: float = 0.0
    active_neuron_updates: float = 0.0
    binary_messages: float = 0.0
    graded_messages: float = 0.0

    def __add__(self, other: "OpCounts") -> "OpCounts":
        return OpCounts(*(getattr(self, f) + getattr(other, f) for f in OP_FIELDS))

    def scaled(self, factor: float) -> "OpCounts":
        return OpCounts(*(getattr(self, f) * factor for f in OP_FIELDS))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Activity:
    """What one node did in a run, for its operation counts: ``steps`` valid steps summed over
    samples; ``inputs`` per in port the (B, T, n) spikes that arrived (bool, padded steps cleared;
    graded inputs are not listed); ``output`` what it sent; ``records`` its step records."""

    steps: float
    inputs: dict
    output: np.ndarray | None
    records: dict = field(default_factory=dict)


# --- run contexts ---------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What a step needs besides its inputs: the random stream, the valid steps, counters.

    ``samples`` are the sample ids the counter-based generator is keyed with; ``valid`` (B, T) marks
    unpadded steps; ``t0`` is the model time of the first step handed over (a step-by-step caller
    passes one step at a time); ``stats`` collects calibration statistics in float runs.
    """

    seed: int
    samples: np.ndarray
    valid: np.ndarray
    sat: SaturationCounter = field(default_factory=SaturationCounter)
    stats: dict | None = None
    record_states: bool = False
    prob_stats: dict | None = None  # per node each neuron's output probability statistics (stat_probability)
    _random_cache: dict = field(default_factory=dict)

    def randoms(self, site: int, n: int, prob_bits: int, t: int | None = None, ids: np.ndarray | None = None) -> np.ndarray:
        """P-bit random integers of one site: (B, T, n) for the whole run, or (B, n) at step ``t``;
        with ``ids``, those of neurons ``ids`` of the site (a pruned population keeps its neurons' numbers).

        Drawn for the whole run once per site, so a step-by-step caller pays one draw per sample."""
        from ..numerics.rng import random_block

        key = (site, n, prob_bits) if ids is None else (site, prob_bits, np.asarray(ids).tobytes())
        block = self._random_cache.get(key)
        if block is None:
            width = n if ids is None else int(np.max(ids, initial=-1)) + 1
            block = random_block(self.seed, site, width, self.valid.shape[1], prob_bits, self.samples)
            if ids is not None:
                block = np.ascontiguousarray(block[..., np.asarray(ids)])
            self._random_cache[key] = block
        return block if t is None else block[:, t]

    def stat_max(self, node: str, key: str, value: float) -> None:
        """Keep the largest ``value`` seen for ``node``'s statistic ``key`` (calibration)."""
        if self.stats is not None:
            entry = self.stats.setdefault(node, {})
            entry[key] = max(entry.get(key, 0.0), float(value))

    def stat_probability(self, node: str, prob: np.ndarray, t: int) -> None:
        """Accumulate each neuron's output probability ``prob`` (B, n) at step ``t`` over the valid
        samples (calibration): ``prob_sum``, ``prob_count`` (valid steps), ``prob_min``, ``prob_max``;
        the mean is what ``export --prune-silent`` compares with its threshold."""
        if self.prob_stats is None:
            return
        valid = self.valid[:, t]
        if not valid.any():
            return
        p = np.asarray(prob, np.float64)[valid]
        entry = self.prob_stats.setdefault(node, {})
        if "prob_sum" not in entry:
            entry.update(prob_sum=np.zeros(p.shape[1]), prob_count=0.0, prob_min=np.full(p.shape[1], np.inf),
                         prob_max=np.zeros(p.shape[1]))
        entry["prob_sum"] = entry["prob_sum"] + p.sum(0)
        entry["prob_count"] += float(p.shape[0])
        entry["prob_min"] = np.minimum(entry["prob_min"], p.min(0))
        entry["prob_max"] = np.maximum(entry["prob_max"], p.max(0))


@dataclass
class QuantContext:
    """What a node's quantizer gets: its float node, its calibration statistics, the formats of its
    inputs, the format its consumer needs of its output (synapses), and the quantization settings."""

    node: "FloatNode"
    stats: dict
    in_formats: dict
    qc: object
    out_format: Format | None = None


# --- the registry ---------------------------------------------------------------------------------

REGISTRY: dict[str, type["NodeType"]] = {}


def register(cls: type["NodeType"]) -> type["NodeType"]:
    if cls.__name__ in REGISTRY:
        raise RuntimeError(f"node type {cls.__name__} registered twice")
    REGISTRY[cls.__name__] = cls
    return cls


def node_type(name: str) -> type["NodeType"]:
    """The registered type called ``name``; an unknown name is an error naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise NodeError(f"unknown node type {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


# --- node records ---------------------------------------------------------------------------------


class GraphNode:
    """What graphs need of any node, float or integer: name, type class, port widths."""

    name: str
    TYPE: type["NodeType"]

    def type_name(self) -> str:
        return self.TYPE.__name__

    @property
    def IN_PORTS(self):  # noqa: N802 - mirrors the class constant
        return self.TYPE.IN_PORTS

    @property
    def OUT_PORTS(self):  # noqa: N802
        return self.TYPE.OUT_PORTS

    def in_width(self, port: str = "in") -> int:
        return self.TYPE.width(self.attrs_view(), port, "in")

    def out_width(self, port: str = "out") -> int:
        return self.TYPE.width(self.attrs_view(), port, "out")

    def attrs_view(self) -> dict:
        raise NotImplementedError


@dataclass
class FloatNode(GraphNode):
    """A node before quantization: its type, structural attributes and float parameters."""

    TYPE: type
    name: str
    attrs: dict
    floats: dict

    def attrs_view(self) -> dict:
        return self.attrs

    def __getattr__(self, key):
        """Structural attributes by name, and the type's behaviour bound to this float node (its float
        steps use only ``floats`` and attributes, so they run before quantization too)."""
        attrs = self.__dict__.get("attrs", {})
        if key in attrs:
            return attrs[key]
        cls = self.__dict__.get("TYPE")
        if cls is not None and not key.startswith("__") and hasattr(cls, key):
            value = getattr(cls, key)
            return types.MethodType(value, self) if isinstance(value, types.FunctionType) else value
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('name')} has no attribute {key!r}")


class NodeType(GraphNode):
    """Base of every node type: a validated record of integer fields and float parameters, and the
    behaviour every executor calls (see the module docstring). Subclasses override what applies."""

    FIELDS: ClassVar[tuple] = ()
    ATTRS: ClassVar[tuple] = ("n",)   # fields that exist before quantization
    FLOATS: ClassVar[tuple] = ()      # float parameters (the floating-point backends and calibration)
    IN_PORTS: ClassVar[tuple] = ("in",)
    OUT_PORTS: ClassVar[tuple] = ("out",)
    SUMMING: ClassVar[bool] = False   # an in port may be fed by several edges, summed (NIR semantics)
    SUMMING_PORTS: ClassVar[tuple] = ()  # in ports that sum several synapses (and only synapses)
    ROLE: ClassVar[str] = "neuron"    # source | synapse | neuron | junction | sink
    BINARY_OUT: ClassVar[bool] = False
    STATELESS: ClassVar[bool] = False  # no state: a whole sequence is one vectorized step
    EVENT_DRIVEN: ClassVar[bool] = False  # graded messages sent only where non-zero (counted per event)
    DOC_EQUATION: ClassVar[str] = ""

    def __init__(self, name: str, values: dict, floats: dict | None = None):
        self.name = name
        self.values = dict(values)
        self.floats = dict(floats or {})
        self.check()
        self.setup()

    @property
    def TYPE(self):  # noqa: N802
        return type(self)

    def attrs_view(self) -> dict:
        return self.values

    def __getattr__(self, key):
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"{type(self).__name__} has no field {key!r}")

    def __getstate__(self):
        return {"name": self.name, "values": self.values, "floats": self.floats}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.setup()

    # -- the record --

    @classmethod
    def width(cls, values: dict, port: str, side: str) -> int:
        """Values per step on ``port`` (``side`` in/out); most types carry ``n`` everywhere."""
        return int(values["n"])

    def float_node(self) -> FloatNode:
        """This node as it was before quantization (its float parameters and structure)."""
        return FloatNode(type(self), self.name, {k: self.values[k] for k in self.ATTRS}, dict(self.floats))

    def dims(self) -> dict:
        """Symbolic dimensions bound from the node's scalar fields."""
        return {f.name: self.values[f.name] for f in self.FIELDS if f.kind == "int"}

    def fail(self, fld: str, problem: str):
        raise NodeError(f"node {self.name} ({self.type_name()}): field {fld}: {problem}")

    def check(self) -> None:
        names = {f.name for f in self.FIELDS}
        for f in sorted(self.FIELDS, key=lambda f: f.kind == "array"):  # optional fields; scalars first
            if f.default is not None and f.name not in self.values:
                try:
                    self.values[f.name] = f.default(self.values)
                except KeyError:
                    pass  # a field its default needs is missing: named below
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

    def setup(self) -> None:
        """Unpack parameters once for the steps (called after construction and unpickling)."""

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

    # -- integer semantics (docs/numerics.md) --

    def int_init(self, batch: int):
        """The zero state of ``batch`` samples (None for stateless types)."""
        return None

    def int_step(self, state, inputs: dict, t: int, ctx: RunContext):
        """One step: ``inputs`` maps in ports to (B, n) int64 values (binary spikes as 0/1) at model
        time ``t``; returns (``outputs`` by out port, new state, ``records`` of this step)."""
        raise NotImplementedError(f"{type(self).__name__} has no integer step")

    def int_sequence(self, inputs: dict, ctx: RunContext) -> tuple[dict, dict]:
        """Every step of (B, T, n) inputs from the zero state; returns outputs and records, (B, T, ...)
        each. Stateless types take the whole sequence in one vectorized step."""
        return _sequence(self, self.int_init, self.int_step, inputs, ctx)

    # -- float semantics (the folded float network; calibration statistics) --

    def float_init(self, batch: int):
        return None

    def float_step(self, state, inputs: dict, t: int, ctx: RunContext):
        raise NotImplementedError(f"{type(self).__name__} has no float step")

    def float_sequence(self, inputs: dict, ctx: RunContext) -> tuple[dict, dict]:
        return _sequence(self, self.float_init, self.float_step, inputs, ctx)

    # -- decoding (sinks) --

    def scores(self, records: dict, ctx: RunContext, integer: bool) -> np.ndarray:
        """Class scores (B, classes) of a sink from what it recorded; argmax is the prediction."""
        raise NotImplementedError(f"{type(self).__name__} is not a readout")

    # -- quantization --

    @classmethod
    def out_format(cls, q: QuantContext) -> Format:
        """The format of this node's output (chosen from its statistics); binary for spiking types."""
        return BINARY

    @classmethod
    def needs_formats(cls, q: QuantContext) -> dict:
        """Formats this node requires on in ports fed by synapses (they are quantized to deliver it)."""
        return {}

    @classmethod
    def quantize(cls, q: QuantContext) -> "NodeType":
        raise NotImplementedError(f"{cls.__name__} has no quantizer")

    # -- energy and resources --

    def ops(self, act: Activity) -> OpCounts:
        return OpCounts()

    def dense_ops(self, steps: float) -> OpCounts:
        """Operations of the non-spiking counterpart (real-valued activations instead of spikes)."""
        return OpCounts()

    def messages(self, act: Activity) -> OpCounts:
        """Messages this node sends: its spikes, or one graded message per neuron per step."""
        if not self.OUT_PORTS:
            return OpCounts()
        if self.BINARY_OUT:
            return OpCounts(binary_messages=float(np.count_nonzero(act.output)) if act.output is not None else 0.0)
        return OpCounts(graded_messages=act.steps * self.out_width())

    def compartments(self) -> int:
        """Loihi compartments this node occupies (0: it lives with its destination or on the host)."""
        return 0

    def synapse_memory(self) -> tuple[int, int, int, bool] | None:
        """(non-zeros, weight bits, fan-in, sparse) of a synapse; None for other types."""
        return None

    def bits(self) -> dict:
        """Bit widths ``pspike inspect`` shows."""
        return {}

    def describe(self) -> dict:
        """Size entries of ``pspike inspect``."""
        return {"neurons": int(self.values.get("n", 0))}

    # -- Lava --

    LAVA_RECORDS: ClassVar[tuple] = ()  # names of step records the Lava model keeps besides the output

    def lava_library(self, tag: str):
        """A process of Lava's own library that computes this node (synapses: ``Dense``, ``Sparse``),
        or None: the builder then runs this node's steps in the generic process of ``sim/lava``."""
        return None

    def lava_latency(self) -> int:
        """Lava steps between this node receiving a value and sending its result (0 for our
        processes, 1 for Lava's Dense and Sparse)."""
        return 0

    def lava_ports(self, process) -> tuple[dict, dict]:
        """The process's ports by our port names: (in ports, out ports)."""
        return ({p: getattr(process, p) for p in self.IN_PORTS}, {p: getattr(process, p) for p in self.OUT_PORTS})


def _sequence(node, init, step, inputs: dict, ctx: RunContext) -> tuple[dict, dict]:
    """Run ``step`` over the time axis of (B, T, n) ``inputs``; a stateless node in one call."""
    if node.STATELESS:
        outputs, _, records = step(None, inputs, -1, ctx)
        return outputs, records
    batch, steps = ctx.valid.shape
    state = init(batch)
    outs: dict = {}
    recs: dict = {}
    for t in range(steps):
        out, state, rec = step(state, {k: v[:, t] for k, v in inputs.items()}, t, ctx)
        for store, values in ((outs, out), (recs, rec)):
            for key, value in values.items():
                if key not in store:
                    store[key] = np.zeros((batch, steps) + np.shape(value)[1:], np.asarray(value).dtype)
                store[key][:, t] = value
    return outs, recs
