"""The bit-exact reference simulator: the integer network of any netlist in numpy (and numba), run
by the graph executor (``graph/execute.py``) with every node type's integer step.

Nodes outside loops run over whole sequences, vectorized over samples, neurons and modes (over time
too where they have no state); loops step through time. Time here is model time ``t``; in Lava a
node sees model time ``t`` some steps later (``graph.lava_latency``), which changes nothing in the
values: the two give identical spikes for the same seed.
"""

from __future__ import annotations

from ..graph import Netlist, RunResult, run


def simulate(netlist: Netlist, x, seed: int, samples=None, lengths=None, record_states: bool = False,
             integer: bool = True) -> RunResult:
    """Run ``netlist`` on raw inputs ``x`` (what its source takes); ``integer=False`` runs the float
    parameters instead (the folded network the integers approximate)."""
    return run(netlist, x, integer=integer, seed=seed, samples=samples, lengths=lengths, record_states=record_states)
