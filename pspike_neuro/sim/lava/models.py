"""ProcessModels of a deployed netlist: for every node type, a ``fixed_pt`` model that runs the
type's integer step (the contract of docs/numerics.md, defined once in ``nodes/``) and a
``floating_pt`` model that runs its float step; both draw their random numbers from the
counter-based generator, so runs are reproducible spike by spike.

One network runs a batch of samples back to back: sample ``j`` occupies Lava steps
``j * period + 1 .. (j + 1) * period`` at the source, and every process sees it ``latency`` steps
later. A process resets its state where its own view of a sample begins and sends zeros outside it,
so each sample runs as in a fresh network, with its own sample id for the random generator. An in
port whose inputs arrive earlier than the process's view waits ``delay`` steps in a buffer.

Models never raise: in Lava 0.10 a process that raises leaves the others blocked on their ports, so
an error is written next to the recordings (first line: the sample id) and the builder raises it.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from pspike_neuro.nodes import REGISTRY, RunContext
from pspike_neuro.numerics.fixed import SaturationCounter
from pspike_neuro.sim.lava.processes import PROCESSES, ReplaySource


class NodeModel(PyLoihiProcessModel):
    """Runs one node's step per Lava step inside its window, records, saves at the last step."""

    integer = True

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.p = proc_params
        spec = proc_params["node"]
        self.failed = False
        self.error = None
        try:
            self.node = REGISTRY[spec["type"]](spec["name"], spec["values"], spec["floats"])
        except Exception as exc:  # noqa: BLE001 - reported at the first step, like a step's error
            self.node, self.error = None, exc
        self.in_widths, self.out_widths = proc_params["in_ports"], proc_params["out_ports"]
        self.latency = proc_params["latency"]
        self.length, self.period = proc_params["length"], proc_params["period"]
        self.samples = np.asarray(proc_params["samples"])
        self.valid_lengths = np.asarray(proc_params["valid_lengths"])
        self.delays = proc_params["delays"]
        self.buffers = {port: [] for port in self.in_widths}
        self.sat = SaturationCounter()
        self.records: dict = {}
        self.keep = ("out",) + (tuple(self.node.LAVA_RECORDS) if self.node is not None else ())
        self.dtype = np.int64 if self.integer else np.float64
        self.zeros = {port: np.zeros(width, self.dtype) for port, width in self.out_widths.items()}
        self.state = None
        self.ctx = None

    def window(self):
        """``(j, t)``, sample index and model time this step handles, or None outside every window."""
        g = self.time_step - 1 - self.latency
        if g < 0:
            return None
        j, t = divmod(g, self.period)
        if j >= len(self.samples) or t >= self.length:
            return None
        return j, t

    def report(self, j, exc):
        if not self.failed and self.p.get("record_path"):
            with open(self.p["record_path"] + ".error", "w") as fh:
                fh.write(f"{int(self.samples[j])}\n{type(exc).__name__}: {exc}")
        self.failed = True

    def run_spk(self):
        inputs = {}
        for port in self.in_widths:
            value = getattr(self, f"in_{port}").recv()
            buffer = self.buffers[port]
            buffer.append(value)
            inputs[port] = buffer.pop(0) if len(buffer) > self.delays.get(port, 0) else np.zeros_like(value)
        where = self.window()
        outputs = self.zeros
        if where is not None and self.error is not None:
            self.report(where[0], self.error)
        if where is not None and not self.failed:
            j, t = where
            try:
                if t == 0:  # a new sample: zero state, its own random stream
                    valid = np.arange(self.length)[None] < self.valid_lengths[j]
                    self.ctx = RunContext(seed=self.p["seed"], samples=self.samples[j:j + 1], valid=valid,
                                          sat=self.sat, record_states=self.p.get("record_states", False))
                    self.state = self.node.int_init(1) if self.integer else self.node.float_init(1)
                step = self.node.int_step if self.integer else self.node.float_step
                out, self.state, rec = step(self.state, {k: np.asarray(v, self.dtype)[None] for k, v in inputs.items()},
                                            t, self.ctx)
                outputs = {port: np.asarray(out[port][0], self.dtype) for port in self.out_widths}
                for key, value in {**{k: v for k, v in out.items() if k in self.keep}, **rec}.items():
                    self.record(key, j, t, value[0])
            except Exception as exc:  # noqa: BLE001 - reported through the .error file
                self.report(j, exc)
        for port in self.out_widths:
            getattr(self, f"out_{port}").send(outputs[port])
        if self.time_step == self.p["num_steps"] and self.p.get("record_path"):
            np.savez(self.p["record_path"], **self.records, **{f"sat:{k}": v for k, v in self.sat.as_dict().items()})

    def record(self, name, j, t, value):
        if name not in self.records:
            self.records[name] = np.zeros((len(self.samples), self.length) + np.shape(value), np.asarray(value).dtype)
        self.records[name][j, t] = value


def _model(name: str, precision: str, integer: bool):
    node_type = REGISTRY[name]
    port_type = np.int64 if integer else float
    attrs = {"integer": integer, "__module__": __name__,
             "__doc__": f"{precision} model of {name}: its {'integer' if integer else 'float'} step."}
    for port in node_type.IN_PORTS:
        attrs[f"in_{port}"] = LavaPyType(PyInPort.VEC_DENSE, port_type, precision=24) if integer else \
            LavaPyType(PyInPort.VEC_DENSE, port_type)
    for port in node_type.OUT_PORTS:
        attrs[f"out_{port}"] = LavaPyType(PyOutPort.VEC_DENSE, port_type, precision=24) if integer else \
            LavaPyType(PyOutPort.VEC_DENSE, port_type)
    cls = type(f"{name}{'Fixed' if integer else 'Float'}Model", (NodeModel,), attrs)
    cls = tag(precision)(requires(CPU)(implements(proc=PROCESSES[name], protocol=LoihiProtocol)(cls)))
    return cls


MODELS = {(name, precision): _model(name, precision, precision == "fixed_pt")
          for name in REGISTRY for precision in ("fixed_pt", "floating_pt")}
globals().update({cls.__name__: cls for cls in MODELS.values()})


@implements(proc=ReplaySource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class ReplaySourceModel(PyLoihiProcessModel):
    out_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.data = proc_params["data"]  # (samples, length, n)
        self.period = proc_params["period"]
        self.zeros = np.zeros(self.data.shape[2], self.data.dtype)

    def run_spk(self):
        j, t = divmod(self.time_step - 1, self.period)
        self.out_out.send(self.data[j, t] if j < self.data.shape[0] and t < self.data.shape[1] else self.zeros)


@implements(proc=ReplaySource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class ReplaySourceFloatModel(ReplaySourceModel):
    out_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
