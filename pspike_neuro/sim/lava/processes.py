"""Lava Processes of the deployed P-SpikeSSM (interfaces only; behaviour is in ``models.py``).

Each process gets its parameters through ``proc_params``: ``params`` (the netlist node's integer
fields), ``floats`` (its folded float parameters), and run settings: ``seed``, ``samples`` (the
sample ids the random generator uses, one per sample of the batch), ``length`` (model steps of a
sequence), ``valid_lengths`` (unpadded steps of each sample), ``period`` (Lava steps per sample:
``length`` plus the pipeline latency), ``num_steps`` (Lava steps of the run, ``samples * period``),
``record_path`` (where the process saves what it recorded at the last step).
"""

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class GradedSource(AbstractProcess):
    """Sends ``data[j, t]`` of ``data`` (samples, length, n) at Lava step ``j * period + t + 1``
    (zeros in the gap after each sample)."""

    def __init__(self, *, data, **run):
        super().__init__(data=data, **run)
        self.s_out = OutPort(shape=(data.shape[2],))


class SSMNeuron(AbstractProcess):
    """Input sampler, SSM modes and output sampler of one block (docs/numerics.md §3, steps 1-3).

    Block ``l`` handles model time ``t = k - 1 - l`` of sample ``j`` at Lava step ``j * period + k``.
    """

    def __init__(self, *, n, **params):
        super().__init__(n=n, **params)
        self.a_in = InPort(shape=(n,))
        self.s_out = OutPort(shape=(n,))
        self.spike_count = Var(shape=(n,), init=0)


class ClampFuse(AbstractProcess):
    """Residual join (step 5): ``residual`` arrives with no latency and is delayed inside, ``mixer``
    arrives one step later through the Sparse synapse. Handles model time ``t = k - 2 - l``."""

    def __init__(self, *, n, **params):
        super().__init__(n=n, **params)
        self.residual = InPort(shape=(n,))
        self.mixer = InPort(shape=(n,))
        self.x_out = OutPort(shape=(n,))


class ReadoutIntegrator(AbstractProcess):
    """Accumulates the readout synapse's output over the valid model steps (``t = k - 2 - n_layers``)."""

    def __init__(self, *, n, **params):
        super().__init__(n=n, **params)
        self.a_in = InPort(shape=(n,))
        self.acc = Var(shape=(n,), init=0)
