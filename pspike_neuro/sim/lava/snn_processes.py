"""Lava Processes of a deployed SiLIF / C-SiLIF network (behaviour in ``snn_models.py``).

Parameters arrive through ``proc_params`` as for the P-SpikeSSM processes: ``params`` (the netlist
node's integer fields), ``floats`` (its folded float parameters), ``layer``, ``length`` (model
steps), ``num_steps`` (Lava steps of the run) and ``record_path``.
"""

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess


class SpikeSource(AbstractProcess):
    """Sends row ``k - 1`` of the binary ``data`` (length, n) at Lava step ``k`` (no spikes past its end)."""

    def __init__(self, *, data, **run):
        super().__init__(data=data, **run)
        self.s_out = OutPort(shape=(data.shape[1],))


class SNNNeuron(AbstractProcess):
    """A SiLIF or C-SiLIF population. Layer ``l`` handles model time ``t = k - 2 - l`` at Lava step
    ``k`` (one step of latency per Dense synapse)."""

    def __init__(self, *, n, **params):
        super().__init__(n=n, **params)
        self.a_in = InPort(shape=(n,))
        self.s_out = OutPort(shape=(n,))


class LeakyReadoutProcess(AbstractProcess):
    """The leaky-integrator readout; records its potential at every model step."""

    def __init__(self, *, n, **params):
        super().__init__(n=n, **params)
        self.a_in = InPort(shape=(n,))
