"""ProcessModels of the deployed network. ``fixed_pt`` models call the integer step functions of
``pspike_neuro.sim.reference`` (the contract of docs/numerics.md, defined once); ``floating_pt``
models follow the folded float network (``pspike_neuro.quant.fold.float_forward``). Both draw their
random numbers from the counter-based generator, so the runs are reproducible spike by spike.

One network runs a batch of samples back to back: sample ``j`` occupies Lava steps
``j * period + 1 .. (j + 1) * period`` at the source, ``period = length + latency``, and every
process sees it ``offset + layer`` steps later (its pipeline delay). A process resets its state when
its own view of a sample begins and sends zeros in the gap between samples, so each sample runs as
in a fresh network, with its own sample id for the random generator.

Messages between our processes are int64 in the fixed-point models, so that the readout Dense
synapse accumulates graded 24-bit values without int32 wrap-around.
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
from pspike_neuro.sim.reference import (NeuronParams, fuse_forward, neuron_step, neuron_step_float, random_block,
                                        readout_step)


class _Stepper(PyLoihiProcessModel):
    """Which sample and model time this step is, the recordings and saving them at the last step."""

    offset = 1  # model time of the whole run g = time_step - offset - layer; g = j * period + t

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.p = proc_params
        self.layer = proc_params.get("layer", 0)
        self.length = proc_params["length"]
        self.period = proc_params["period"]
        self.samples = np.asarray(proc_params["samples"])
        self.valid_lengths = np.asarray(proc_params["valid_lengths"])
        self.records: dict = {}
        self.sat = SaturationCounter()
        self.sample_index = -1  # index j of the sample being run

    def guarded(self, compute, fallback, *args):
        """Run ``compute``; on an exception save it next to the recordings and return ``fallback``.

        A process that raises leaves the other processes of a Lava 0.10 graph waiting forever for
        its messages, so our models never raise: they report the first error (first line: the
        sample id) and keep the graph stepping to its end, and the builder raises it as a clear
        error afterwards.
        """
        try:
            return compute(*args)
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            if not getattr(self, "failed", False) and self.p.get("record_path"):
                with open(self.p["record_path"] + ".error", "w") as fh:
                    fh.write(f"{int(self.samples[self.sample_index])}\n{type(exc).__name__}: {exc}")
            self.failed = True
            return fallback

    def position(self):
        """``t``, the model time inside the current sample, or -1 outside every sample's window.
        Calls ``begin_sample`` when a sample's window opens."""
        g = self.time_step - self.offset - self.layer
        if g < 0:
            return -1
        j, t = divmod(g, self.period)
        if j >= len(self.samples) or t >= self.length:
            return -1
        if t == 0:
            self.sample_index = j
            self.begin_sample()
        return t

    def begin_sample(self):
        pass

    def valid(self, t) -> bool:
        return t < self.valid_lengths[self.sample_index]

    def record(self, name, t, value, shape=None):
        if name not in self.records:
            shape = (len(self.samples), self.length) + (shape or np.shape(value))
            self.records[name] = np.zeros(shape, np.asarray(value).dtype)
        self.records[name][self.sample_index, t] = value

    def finish_if_last(self):
        if self.time_step == self.p["num_steps"] and self.p.get("record_path"):
            np.savez(self.p["record_path"], **self.records, **{f"sat:{k}": v for k, v in self.sat.as_dict().items()})


@implements(proc=GradedSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class GradedSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.data = proc_params["data"]  # (samples, length, n)
        self.period = proc_params["period"]
        self.zeros = np.zeros(self.data.shape[2], self.data.dtype)

    def run_spk(self):
        j, t = divmod(self.time_step - 1, self.period)
        self.s_out.send(self.data[j, t] if j < self.data.shape[0] and t < self.data.shape[1] else self.zeros)


@implements(proc=GradedSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class GradedSourceFloatModel(GradedSourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


class _NeuronBase(_Stepper):
    a_in: PyInPort
    s_out: PyOutPort
    spike_count: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        node = proc_params["params"]
        self.n, self.m = node["n"], node["n_modes"]
        self.prob_bits = node["prob_bits"]
        self.site_in, self.site_out = node["site_in"], node["site_out"]
        self.r_index = -1  # sample index whose random numbers are in r_in, r_out
        self.zeros = np.zeros(self.n, np.int64)

    def randoms(self, t):
        """This step's random numbers of both samplers, drawn for the whole sample at once."""
        if self.r_index != self.sample_index:
            self.r_index = -1
            sample = self.samples[self.sample_index: self.sample_index + 1]
            self.r_in = random_block(self.p["seed"], self.site_in, self.n, self.length, self.prob_bits, sample)[0]
            self.r_out = random_block(self.p["seed"], self.site_out, self.n, self.length, self.prob_bits, sample)[0]
            self.r_index = self.sample_index
        return self.r_in[t], self.r_out[t]

    def run_spk(self):
        x = self.a_in.recv()
        t = self.position()
        o = self.zeros
        if t >= 0:
            valid = np.array([self.valid(t)])
            s, o_bool = self.guarded(self.step, (np.zeros(self.n, bool), np.zeros(self.n, bool)), x, t, valid)
            o = o_bool.astype(np.int64)
            self.spike_count += o
            self.record("x", t, x)
            self.record("s", t, s)
            self.record("o", t, o_bool)
        self.s_out.send(o)
        self.finish_if_last()


@implements(proc=SSMNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class SSMNeuronFixed(_NeuronBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=1)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.params = NeuronParams(proc_params["params"])
        # the float64 step equals the integer step bit for bit where float_exact (tests/test_fixed_primitives.py)
        self.step_fn = neuron_step_float if self.params.float_exact else neuron_step
        self.state_dtype = np.float64 if self.params.float_exact else np.int64
        self.begin_sample()

    def begin_sample(self):
        self.zr = np.zeros((self.n, self.m), self.state_dtype)
        self.zi = np.zeros((self.n, self.m), self.state_dtype)

    def step(self, x, t, valid):
        r_in, r_out = self.randoms(t)
        s, o, self.zr, self.zi, n_state, n_out = self.step_fn(self.params, x.astype(np.int64), r_in, r_out,
                                                              valid, self.zr, self.zi)
        self.sat.add(f"layer{self.layer}.state", n_state)
        self.sat.add(f"layer{self.layer}.output", n_out)
        if self.p.get("record_states"):
            self.record("state", t, np.stack([self.zr, self.zi], -1).astype(np.int64))
        return s, o


@implements(proc=SSMNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class SSMNeuronFloat(_NeuronBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        f = proc_params["floats"]
        self.f = f
        self.lam = f["lam_re"] + 1j * f["lam_im"]
        self.b_unit = f["b_unit_re"] + 1j * f["b_unit_im"]
        self.c = f["c_re"] + 1j * f["c_im"]
        self.relu = proc_params["params"]["phi"] == "relu"
        self.scale = 2.0 ** -self.prob_bits
        self.begin_sample()

    def begin_sample(self):
        self.z = np.zeros((self.n, self.m), complex)

    def step(self, x, t, valid):
        r_in, r_out = self.randoms(t)
        f = self.f
        s = (r_in * self.scale < f["alpha"] * x + f["beta"]) & valid
        self.z = self.lam * self.z + self.b_unit * s[:, None]
        v = (self.c * self.z).sum(-1).real + f["d"] * s
        q = f["out_sign"] * (np.maximum(v, 0) if self.relu else v) + f["b_out"]
        return s, r_out * self.scale < q


class _FuseBase(_Stepper):
    offset = 2

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.n = proc_params["params"]["n"]
        self.delay = proc_params["params"]["residual_delay"]
        self.buffer = []  # residual values waiting to meet the mixer path

    def run_spk(self):
        residual = self.residual.recv()
        a = self.mixer.recv()
        self.buffer.append(residual)
        delayed = self.buffer.pop(0) if len(self.buffer) > self.delay else np.zeros_like(residual)
        t = self.position()
        out = np.zeros(self.n, residual.dtype)
        if t >= 0:
            out = self.guarded(self.fuse, out, delayed, a)
            self.record("x_out", t, out)
        self.x_out.send(out)
        self.finish_if_last()


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
    offset = 2

    def begin_sample(self):
        self.acc[:] = 0

    def run_spk(self):
        a = self.a_in.recv()
        t = self.position()
        if t >= 0:
            self.guarded(self.accumulate, None, a, self.valid(t))
            self.record("acc", t, self.acc.copy())
        self.finish_if_last()


@implements(proc=ReadoutIntegrator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class ReadoutIntegratorFixed(_ReadoutBase):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)

    def accumulate(self, a, valid):
        acc, n_sat = readout_step(self.acc.astype(np.int64), a.astype(np.int64),
                                  self.p["params"]["bias"].astype(np.int64), np.array([valid]))
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
