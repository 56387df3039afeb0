"""Lava Processes of a deployed SiLIF / C-SiLIF network (behaviour in ``snn_models.py``).

Parameters arrive through ``proc_params`` as for the P-SpikeSSM processes: ``params`` (the netlist
node's integer fields), ``floats`` (its folded float parameters), ``layer``, ``length`` (model
steps per sample), ``n_samples`` (samples run back to back), ``num_steps`` (Lava steps of the run)
and ``record_path``.
"""

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess


class SpikeSource(AbstractProcess):
    """Sends the binary ``data`` (samples, length, n) one row per Lava step, the samples back to back
    (row ``t`` of sample ``i`` at step ``i * length + t + 1``; no spikes past the end)."""

    def __init__(self, *, data, **run):
        super().__init__(data=data, **run)
        self.s_out = OutPort(shape=(data.shape[1],))


class SNNNeuron(AbstractProcess):
    """A SiLIF or C-SiLIF population. Layer ``l`` handles step ``g = k - 2 - l`` of the concatenated
    samples at Lava step ``k`` (one step of latency per Dense synapse): sample ``g // length``, model
    time ``g % length``, with zero states at model time 0."""

    def __init__(self, *, n, **params):
        super().__init__(n=n, **params)
        self.a_in = InPort(shape=(n,))
        self.s_out = OutPort(shape=(n,))


class LeakyReadoutProcess(AbstractProcess):
    """The leaky-integrator readout; records its potential at every model step."""

    def __init__(self, *, n, **params):
        super().__init__(n=n, **params)
        self.a_in = InPort(shape=(n,))
