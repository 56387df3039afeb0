"""Lava Processes of a deployed netlist (interfaces only; behaviour is in ``models.py``).

One Process class per registered node type (``NodeProcess_<Type>``, generated from the registry so
that a new node type needs nothing here), with one InPort per in port and one OutPort per out port
of its type, named ``in_<port>`` and ``out_<port>``; and ``ReplaySource``, which sends precomputed
rows. Every process gets its settings through ``proc_params``: ``node`` (type name, integer fields
and float parameters), ``latency`` (Lava steps from the source to this node's view of a model
step), ``delays`` (extra steps per in port that align inputs of different latency), ``seed``,
``samples`` (sample ids, one per sample of the run), ``length`` (model steps per sample), ``period``
(Lava steps per sample), ``valid_lengths``, ``num_steps`` and ``record_path``.
"""

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess

from pspike_neuro.nodes import REGISTRY


class NodeProcess(AbstractProcess):
    """A netlist node; ``in_ports`` and ``out_ports`` map our port names to their widths."""

    def __init__(self, *, in_ports: dict, out_ports: dict, **params):
        super().__init__(in_ports=in_ports, out_ports=out_ports, **params)
        for port, width in in_ports.items():
            setattr(self, f"in_{port}", InPort(shape=(width,)))
        for port, width in out_ports.items():
            setattr(self, f"out_{port}", OutPort(shape=(width,)))


PROCESSES = {name: type(f"NodeProcess_{name}", (NodeProcess,),
                        {"__module__": __name__, "__doc__": f"A {name} node (see nodes/)."})
             for name in REGISTRY}
globals().update({cls.__name__: cls for cls in PROCESSES.values()})


class ReplaySource(AbstractProcess):
    """Sends ``data[j, t]`` of ``data`` (samples, length, n) at Lava step ``j * period + t + 1``
    (zeros between samples and after the last)."""

    def __init__(self, *, data, **run):
        super().__init__(data=data, **run)
        self.out_out = OutPort(shape=(data.shape[2],))
