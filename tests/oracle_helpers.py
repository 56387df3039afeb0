"""Helpers shared by the hand-worked oracle tests: the 24-bit primitives written out in Python ints, a
node run alone in a graph, and its integer step called step by step."""

from __future__ import annotations

import numpy as np

from pspike_neuro.graph import Edge, Netlist
from pspike_neuro.nodes import RunContext
from pspike_neuro.nodes.graded_input import GradedInput
from pspike_neuro.nodes.output import OutputSink
from pspike_neuro.sim.reference import simulate

LIMIT = 2**23 - 1  # sat(a, 24) clips to [-(2^23 - 1), 2^23 - 1]


def trunc_shift(a: int, n: int) -> int:
    """docs/numerics.md §1 shr_trunc: sign(a) * (|a| >> n), rounds toward zero."""
    return (abs(a) >> n) if a >= 0 else -(abs(a) >> n)


def sat(a: int) -> tuple[int, int]:
    """docs/numerics.md §1 sat(a, 24), and 1 if it clipped (one saturation event)."""
    clipped = max(-LIMIT, min(LIMIT, a))
    return clipped, int(clipped != a)


def run_graph(node, rows, lengths=None):
    """GradedInput (frac_bits 0: integers pass unchanged) -> node [-> OutputSink unless node is a sink];
    ``rows`` (T, n) for one sample or (B, T, n)."""
    x = np.asarray(rows, np.float64)
    x = x[None] if x.ndim == 2 else x
    nodes = {"src": GradedInput("src", dict(n=x.shape[-1], frac_bits=0)), node.name: node}
    edges = [Edge("src", node.name)]
    if node.TYPE.ROLE != "sink":
        nodes["sink"] = OutputSink("sink", dict(n=node.n, frac_bits=0, bias=np.zeros(node.n, np.int64)))
        edges.append(Edge(node.name, "sink"))
    return simulate(Netlist({}, nodes, edges), x, seed=0, lengths=lengths, record_states=True)


def step_by_step(node, rows, states: bool = False):
    """The node's int_step over (T, n) rows, batch 1: per step (outputs, records) or, with ``states``,
    (outputs, records, state); and the saturation counts."""
    ctx = RunContext(seed=0, samples=np.zeros(1, np.int64), valid=np.ones((1, len(rows)), bool), record_states=True)
    state, steps = node.int_init(1), []
    for t, row in enumerate(rows):
        out, state, rec = node.int_step(state, {"in": np.array([row])}, t, ctx)
        steps.append((out, rec, state) if states else (out, rec))
    return steps, ctx.sat.as_dict()
