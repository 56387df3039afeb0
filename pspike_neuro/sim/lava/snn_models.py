"""ProcessModels of a deployed SiLIF / C-SiLIF network. ``fixed_pt`` models call the integer step
functions of ``pspike_neuro.sim.snn_reference``; ``floating_pt`` models run the folded float
network (the checkpoint's float model with BatchNorm and dt folded). Like the P-SpikeSSM models,
they never raise: an error is written next to the recordings and reported by the builder.

Several samples run back to back in one network, ``length`` Lava steps each: a process's view of
sample ``i`` starts ``offset`` steps after the source sent that sample's first row (one step per
Dense synapse), and the process resets its state there. Nothing crosses from one sample to the
next: every process sends zeros outside its samples and a Dense synapse holds only one step.
"""

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from pspike_neuro.quant.fixed import SaturationCounter
from pspike_neuro.sim.lava.snn_processes import LeakyReadoutProcess, SNNNeuron, SpikeSource
from pspike_neuro.sim.snn_reference import SNNParams, csilif_step, readout_leaky_step, silif_step


class _Recorder(PyLoihiProcessModel):
    """Model time of this step, recordings saved at the last step, errors reported not raised."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.p = proc_params
        self.length = proc_params["length"]
        self.n_samples = proc_params["n_samples"]
        self.offset = 2 + proc_params["layer"]
        self.records: dict = {}
        self.sat = SaturationCounter()
        self.failed = False

    def guarded(self, compute, fallback, *args):
        try:
            return compute(*args)
        except Exception as exc:  # noqa: BLE001 - reported through the .error file
            if not self.failed and self.p.get("record_path"):
                with open(self.p["record_path"] + ".error", "w") as fh:
                    fh.write(f"{type(exc).__name__}: {exc}")
            self.failed = True
            return fallback

    def model_time(self):
        """``(sample, t)`` this step handles, or None outside every sample."""
        g = self.time_step - self.offset
        if g < 0 or g >= self.n_samples * self.length:
            return None
        return divmod(g, self.length)

    def record(self, name, where, value):
        if name not in self.records:
            self.records[name] = np.zeros((self.n_samples, self.length) + np.shape(value), np.asarray(value).dtype)
        self.records[name][where] = value

    def finish_if_last(self):
        if self.time_step == self.p["num_steps"] and self.p.get("record_path"):
            np.savez(self.p["record_path"], **self.records,
                     **{f"sat:{k}": v for k, v in self.sat.as_dict().items()})


@implements(proc=SpikeSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class SpikeSourceModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=1)

    def run_spk(self):
        data = self.proc_params["data"]                    # (samples, length, n)
        sample, t = divmod(self.time_step - 1, data.shape[1])
        row = data[sample, t] if sample < data.shape[0] else np.zeros(data.shape[2], data.dtype)
        self.s_out.send(row.astype(np.int64))


@implements(proc=SpikeSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class SpikeSourceFloatModel(SpikeSourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


class _NeuronModel(_Recorder):
    a_in: PyInPort
    s_out: PyOutPort

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.n = proc_params["n"]
        self.setup()

    def run_spk(self):
        current = self.a_in.recv()
        where = self.model_time()
        s = np.zeros(self.n, np.int64)
        if where is not None:
            if where[1] == 0:
                self.guarded(self.reset, None)         # a new sample: zero states
            s = self.guarded(self.step, s, current)
            self.record("s", where, s.astype(bool))
        self.s_out.send(s)
        self.finish_if_last()


@implements(proc=SNNNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class SNNNeuronFixed(_NeuronModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64, precision=1)

    def setup(self):
        self.params = SNNParams(self.p["params"], self.p["kind"] == "csilif")
        self.reset()

    def reset(self):
        self.x = np.zeros(self.n, np.int64)
        self.y = np.zeros(self.n, np.int64)
        self.s = np.zeros(self.n, np.int64)

    def step(self, current):
        step = csilif_step if self.params.complex else silif_step
        self.s, self.x, self.y, n_sat = step(self.params, np.asarray(current, np.int64), self.x, self.y, self.s)
        self.sat.add(f"layer{self.p['layer']}.state", n_sat)
        return self.s


@implements(proc=SNNNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class SNNNeuronFloat(_NeuronModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def setup(self):
        self.f = self.p["floats"]
        self.reset()

    def reset(self):
        self.u = np.zeros(self.n, complex if self.p["kind"] == "csilif" else float)
        self.w = np.zeros(self.n)
        self.s = np.zeros(self.n)

    def step(self, current):
        f = self.f
        drive = np.asarray(current, float) + f["bias"]
        if self.p["kind"] == "csilif":
            self.u = (f["lam_re"] + 1j * f["lam_im"]) * (self.u - 0.5 * self.s) + drive
            self.s = (2 * self.u.real - 1 > 0).astype(float)
        else:
            self.w = f["beta"] * self.w + f["a"] * self.u + f["b"] * self.s
            self.u = f["alpha"] * (self.u - self.s) + (1 - f["alpha"]) * (drive - self.w)
            self.s = (self.u - 1 > 0).astype(float)
        return self.s


class _ReadoutModel(_Recorder):
    a_in: PyInPort

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.n = proc_params["n"]
        self.r = np.zeros(self.n, self.dtype)

    def run_spk(self):
        current = self.a_in.recv()
        where = self.model_time()
        if where is not None:
            if where[1] == 0:
                self.r = np.zeros(self.n, self.dtype)  # a new sample
            self.r = self.guarded(self.step, self.r, current)
            self.record("r", where, self.r)
        self.finish_if_last()


@implements(proc=LeakyReadoutProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class LeakyReadoutFixed(_ReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    dtype = np.int64

    def step(self, current):
        v = self.p["params"]
        r, n_sat = readout_leaky_step(v["alpha"].astype(np.int64), v["bias"].astype(np.int64), self.r,
                                      np.asarray(current, np.int64))
        self.sat.add("readout", n_sat)
        return r


@implements(proc=LeakyReadoutProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class LeakyReadoutFloat(_ReadoutModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    dtype = float

    def step(self, current):
        f = self.p["floats"]
        return f["alpha"] * self.r + np.asarray(current, float) + f["bias"]
