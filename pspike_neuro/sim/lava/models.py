"""ProcessModels of the deployed network. ``fixed_pt`` models call the integer step functions of
``pspike_neuro.sim.reference`` (the contract of docs/numerics.md, defined once); ``floating_pt``
models follow the folded float network (``pspike_neuro.quant.fold.float_forward``). Both draw their
random numbers from the counter-based generator, so the runs are reproducible spike by spike.

Messages between our processes are int64 in the fixed-point models, so that the readout Dense
synapse accumulates graded 24-bit values without int32 wrap-around (Lava's bit-accurate Dense
computes ``int32 weights . input`` in the dtype of the input it receives; only its ``a_out`` port
is int32, see ``pspike_neuro.sim.lava.builder``).

No model ever raises. In Lava 0.10 an exception in one process (in ``run_spk`` or in the model's
constructor) makes the runtime join every actor while the others wait for that process's
messages: the run never returns. So every model receives on each InPort and sends on each OutPort
every step whatever happens; the first error is written next to the recordings
(``<record_path>.error``), the process then sends zeros, and the builder raises it afterwards.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from pspike_neuro.quant.fixed import SaturationCounter
from pspike_neuro.sim.lava.processes import ClampFuse, GradedSource, ReadoutIntegrator, SSMNeuron
from pspike_neuro.sim.reference import NeuronParams, fuse_forward, neuron_step, readout_step
from pspike_neuro.sim.rng import uniform_int


class _Stepper(PyLoihiProcessModel):
    """Model time of this step, error containment, the recordings and saving them at the last step.

    Subclasses name their ports in ``IN_PORTS``/``OUT_PORTS``, read their parameters in ``setup()``
    and compute one step in ``compute(t, **inputs) -> {out_port: value}``.
    """

    offset = 1  # model time t = time_step - offset - layer
    IN_PORTS: tuple = ()
    OUT_PORTS: tuple = ()

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.p = proc_params
        self.failed = False
        self.records: dict = {}
        self.sat = SaturationCounter()
        self.layer = proc_params.get("layer", 0)
        self.length = proc_params.get("length", 0)
        self.width = int(proc_params.get("n", 0))
        self.guarded(self.setup, None)

    def setup(self):
        """Read parameters (may raise: the error is reported, the process then idles)."""

    def guarded(self, compute, fallback, *args):
        """Run ``compute``; on an exception save it next to the recordings and return ``fallback``."""
        try:
            return compute(*args)
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            if not self.failed and self.p.get("record_path"):
                try:
                    with open(self.p["record_path"] + ".error", "w") as fh:
                        fh.write(f"{type(exc).__name__}: {exc}")
                except OSError:
                    pass
            self.failed = True
            return fallback

    def model_time(self) -> int:
        return self.time_step - self.offset - self.layer

    def record(self, name, t, value, shape=None):
        if name not in self.records:
            self.records[name] = np.zeros((self.length,) + (shape or np.shape(value)), np.asarray(value).dtype)
        self.records[name][t] = value

    def save(self):
        if self.p.get("record_path"):
            np.savez(self.p["record_path"], **self.records,
                     **{f"sat:{k}": v for k, v in self.sat.as_dict().items()})

    def run_spk(self):
        inputs = {name: getattr(self, name).recv() for name in self.IN_PORTS}
        t = self.model_time()
        out = None
        if not self.failed:
            out = self.guarded(self.compute, None, t, *inputs.values())
        for name in self.OUT_PORTS:
            value = out[name] if out is not None else np.zeros(self.width)
            getattr(self, name).send(value)
        if not self.failed and self.time_step == self.p.get("num_steps"):
            self.guarded(self.save, None)

    # kept for the callers of the earlier interface
    def finish_if_last(self):
        if self.time_step == self.p.get("num_steps"):
            self.guarded(self.save, None)


@implements(proc=GradedSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class GradedSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)

    def run_spk(self):
        data = self.proc_params["data"]
        k = self.time_step - 1
        self.s_out.send(data[k] if k < data.shape[0] else np.zeros(data.shape[1], data.dtype))


@implements(proc=GradedSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class GradedSourceFloatModel(GradedSourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


class _NeuronBase(_Stepper):
    """Input sampler + SSM modes + output sampler; model time ``t = k - 1 - layer``."""

    IN_PORTS = ("a_in",)
    OUT_PORTS = ("s_out",)
    a_in: PyInPort
    s_out: PyOutPort
    spike_count: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def setup(self):
        node = self.p["params"]
        self.n, self.m = int(node["n"]), int(node["n_modes"])
        self.prob_bits = int(node["prob_bits"])
        self.site_in, self.site_out = node["site_in"], node["site_out"]
        self.neurons = np.arange(self.n)

    def randoms(self, t):
        seed, sample = self.p["seed"], self.p["sample"]
        return (uniform_int(seed, self.site_in, self.neurons, t, self.prob_bits, sample=sample).astype(np.int64),
                uniform_int(seed, self.site_out, self.neurons, t, self.prob_bits, sample=sample).astype(np.int64))

    def compute(self, t, x):
        o = np.zeros(self.n, np.int64)
        if 0 <= t < self.length:
            valid = np.array([t < self.p.get("valid_length", self.length)])
            s, o_bool = self.step(x, t, valid)
            o = o_bool.astype(np.int64)
            self.spike_count += o
            self.record("x", t, x)
            self.record("s", t, s)
            self.record("o", t, o_bool)
        return {"s_out": o}


@implements(proc=SSMNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class SSMNeuronFixed(_NeuronBase):
    """Exactly one step of ``reference.neuron_forward`` for one sample (``reference.neuron_step``)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=1)

    def setup(self):
        super().setup()
        self.params = NeuronParams(self.p["params"])
        self.zr = np.zeros((self.n, self.m), np.int64)
        self.zi = np.zeros((self.n, self.m), np.int64)

    def step(self, x, t, valid):
        r_in, r_out = self.randoms(t)
        s, o, self.zr, self.zi, n_state, n_out = neuron_step(self.params, x.astype(np.int64), r_in, r_out,
                                                             valid, self.zr, self.zi)
        self.sat.add(f"layer{self.layer}.state", n_state)
        self.sat.add(f"layer{self.layer}.output", n_out)
        if self.p.get("record_states"):
            self.record("state", t, np.stack([self.zr, self.zi], -1))
        return s, o


@implements(proc=SSMNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class SSMNeuronFloat(_NeuronBase):
    """The neuron part of ``fold.float_forward``, uniforms ``uniform_int / 2^P``."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def setup(self):
        super().setup()
        f = self.p["floats"]
        self.f = f
        self.lam = f["lam_re"] + 1j * f["lam_im"]
        self.b_unit = f["b_unit_re"] + 1j * f["b_unit_im"]
        self.c = f["c_re"] + 1j * f["c_im"]
        self.relu = self.p["params"]["phi"] == "relu"
        self.z = np.zeros((self.n, self.m), complex)
        self.scale = 2.0 ** -self.prob_bits

    def step(self, x, t, valid):
        r_in, r_out = self.randoms(t)
        f = self.f
        s = (r_in * self.scale < f["alpha"] * x + f["beta"]) & valid
        self.z = self.lam * self.z + self.b_unit * s[:, None]
        v = (self.c * self.z).sum(-1).real + f["d"] * s
        q = f["out_sign"] * (np.maximum(v, 0) if self.relu else v) + f["b_out"]
        if self.p.get("record_states"):
            self.record("state", t, np.stack([self.z.real, self.z.imag], -1))
        return s, r_out * self.scale < q


class _FuseBase(_Stepper):
    """Residual join; the residual is delayed ``residual_delay`` steps to meet the mixer path.

    Model time ``t = k - 2 - layer``.
    """

    offset = 2
    IN_PORTS = ("residual", "mixer")
    OUT_PORTS = ("x_out",)

    def setup(self):
        self.n = int(self.p["params"]["n"])
        self.delay = int(self.p["params"]["residual_delay"])
        self.buffer = []  # residual values waiting to meet the mixer path

    def compute(self, t, residual, a):
        self.buffer.append(residual)
        delayed = self.buffer.pop(0) if len(self.buffer) > self.delay else np.zeros_like(residual)
        out = np.zeros(self.n, residual.dtype)
        if 0 <= t < self.length:
            out = self.fuse(delayed, a)
            self.record("x_out", t, out)
        return {"x_out": out}


@implements(proc=ClampFuse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class ClampFuseFixed(_FuseBase):
    residual: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    mixer: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)

    def fuse(self, x, a):
        return fuse_forward(self.p["params"], x.astype(np.int64), a.astype(np.int64), self.sat)


@implements(proc=ClampFuse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class ClampFuseFloat(_FuseBase):
    """``post_scale * (x + psi(a + c)) + post_offset``; ``a`` comes from Lava's floating_pt Sparse
    model carrying the float mixer weights, so the graph has the same shape in both precisions."""

    residual: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    mixer: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def fuse(self, x, a):
        f, node = self.p["floats"], self.p["params"]
        m = a + f["bias"]
        if node["psi"] == "relu":
            m = np.maximum(m, 0.0)
        y = x + m if node["residual"] else m
        return f["post_scale"] * y + f["post_offset"]


class _ReadoutBase(_Stepper):
    """``acc <- acc + a + bias`` on valid model steps ``t = k - 2 - n_layers``."""

    offset = 2
    IN_PORTS = ("a_in",)

    def compute(self, t, a):
        if 0 <= t < self.length:
            self.accumulate(a, t < self.p.get("valid_length", self.length))
            self.record("acc", t, self.acc.copy())
        return {}


@implements(proc=ReadoutIntegrator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class ReadoutIntegratorFixed(_ReadoutBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)

    def accumulate(self, a, valid):
        acc, n_sat = readout_step(self.acc.astype(np.int64), a.astype(np.int64),
                                  np.asarray(self.p["params"]["bias"], np.int64), np.array([valid]))
        self.acc[:] = acc
        self.sat.add("readout", n_sat)


@implements(proc=ReadoutIntegrator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class ReadoutIntegratorFloat(_ReadoutBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    acc: np.ndarray = LavaPyType(np.ndarray, float)

    def accumulate(self, a, valid):
        if valid:
            self.acc[:] = self.acc + a + self.p["floats"]["bias"]
