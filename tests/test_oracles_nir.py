"""Independent oracles for the integer steps of the imported-graph node types (docs/numerics.md §6):
LIFNeuron (and IF, alpha = 4096), LINeuron, CubaLIFNeuron, CubaLINeuron, ThresholdNode, DelayNode,
OutputSink.

Expected integers are hand-derived from the equations of docs/numerics.md §6 (written out in each
docstring) and cross-checked by a pure-Python loop written from the same equations (Python ints, no
package code). Each node runs through the reference simulator's path (``sim.reference.simulate`` on a
tiny netlist: GradedInput -> node -> OutputSink) and through its ``int_step`` one step at a time (what
the Lava fixed-point model calls).
"""

import numpy as np
import pytest

from pspike_neuro.nodes.cuba_lif import CubaLIFNeuron, CubaLINeuron
from pspike_neuro.nodes.delay import DelayNode
from pspike_neuro.nodes.li import LINeuron
from pspike_neuro.nodes.lif import LIFNeuron
from pspike_neuro.nodes.output import OutputSink
from pspike_neuro.nodes.threshold import ThresholdNode

from .oracle_helpers import LIMIT, run_graph, sat, step_by_step, trunc_shift

# --- LIF / IF ----------------------------------------------------------------------------------------

LIF = dict(n=3, state_frac_bits=0, alpha=np.array([3000, 4096, 0]), bias=np.array([-5, 0, 1]),
           v_th=np.array([100, 1000, 0]), v_reset=np.array([-50, 7, 0]))
LIF_A = [[105, 999, LIMIT - 1], [10, 1, LIMIT], [50, 1, -1], [0, -LIMIT, -2], [-3, -LIMIT, 5]]


def lif_oracle(v, rows):
    """docs §6: v' = sat(shr_trunc(alpha v, 12) + a + bias); s = 1[v' > v_th]; v' = v_reset where s."""
    n = v["n"]
    mem, trace, events = [0] * n, [], 0
    for row in rows:
        spikes = []
        for h in range(n):
            mem[h], e = sat(trunc_shift(int(v["alpha"][h]) * mem[h], 12) + row[h] + int(v["bias"][h]))
            events += e
            spikes.append(int(mem[h] > int(v["v_th"][h])))
            if spikes[-1]:
                mem[h] = int(v["v_reset"][h])
        trace.append((list(mem), spikes))
    return trace, events


def test_lif_and_if_by_hand():
    """n0 (alpha = 3000, bias -5, v_th 100, reset -50): t0 ``v = 105 - 5 = 100 = v_th``: no spike (strict ``>``);
    t1 ``shr_trunc(300000, 12) + 10 - 5 = 73 + 5 = 78``; t2 ``57 + 50 - 5 = 102 > 100``: spike, ``v = -50``;
    t3 ``shr_trunc(-150000, 12) - 5 = -36 - 5 = -41`` (floor: -37); t4 ``shr_trunc(-123000, 12) - 3 - 5 = -30 - 8 = -38``.

    n1 (IF: alpha = 4096 keeps v exactly; v_th 1000, reset 7): 999; 1000 (= v_th, none); 1001: spike, 7;
    ``7 - (2^23 - 1)``; then ``-(2^23 - 8) - (2^23 - 1)``: clipped to ``-(2^23 - 1)`` (event).

    n2 (alpha 0, bias 1, v_th 0): ``(2^23 - 2) + 1 = 2^23 - 1`` exactly (no event): spike, reset 0;
    ``2^23``: clipped (event), spike; ``-1 + 1 = 0``: none (strict); -1: none; 6: spike. 2 events.
    The sink's scores are the spike counts (OutputSink, frac_bits 0).
    """
    trace, events = lif_oracle(LIF, LIF_A)
    assert [(v[0], s[0]) for v, s in trace] == [(100, 0), (78, 0), (-50, 1), (-41, 0), (-38, 0)]
    assert [(v[1], s[1]) for v, s in trace] == [(999, 0), (1000, 0), (7, 1), (7 - LIMIT, 0), (-LIMIT, 0)]
    assert [(v[2], s[2]) for v, s in trace] == [(0, 1), (0, 1), (0, 0), (-1, 0), (0, 1)]
    assert events == 2
    node = LIFNeuron("lif", LIF)
    result = run_graph(node, LIF_A)
    assert result.outputs["lif"][0].astype(int).tolist() == [s for _, s in trace]
    assert result.records["lif"]["state"][0].tolist() == [v for v, _ in trace]
    assert result.saturation["lif.state"] == 2
    assert result.scores[0].tolist() == [1.0, 1.0, 3.0]
    steps, sat_counts = step_by_step(node, LIF_A)
    assert [(rec["state"][0].tolist(), out["out"][0].astype(int).tolist()) for out, rec in steps] == trace
    assert sat_counts == {"lif.state": 2}


def test_li_by_hand():
    """``v' = sat(shr_trunc(alpha v, 12) + a + bias)``, the output.

    n0 (alpha 0.5, bias -3): ``7 - 3 = 4``; ``2 - 20 - 3 = -21``; ``shr_trunc(-43008, 12) - 3 = -10 - 3 = -13``
    (floor: -11); ``-6 + 1 - 3 = -8``. n1 (alpha 4096, bias 2): ``2^23 - 1`` exactly (no event); ``2^23 + 1``
    and ``2^23 + 2``: clipped (2 events); ``(2^23 - 1) - (2^23 - 1) + 2 = 2``."""
    values = dict(n=2, state_frac_bits=0, alpha=np.array([2048, 4096]), bias=np.array([-3, 2]))
    rows = [[7, LIMIT - 2], [-20, 0], [0, 1], [1, -LIMIT]]
    want, mem, events = [], [0, 0], 0
    for row in rows:
        for h in range(2):
            mem[h], e = sat(trunc_shift(int(values["alpha"][h]) * mem[h], 12) + row[h] + int(values["bias"][h]))
            events += e
        want.append(list(mem))
    assert want == [[4, LIMIT], [-21, LIMIT], [-13, LIMIT], [-8, 2]] and events == 2
    node = LINeuron("li", values)
    result = run_graph(node, rows)
    assert result.outputs["li"][0].tolist() == want and result.saturation["li.state"] == 2
    steps, sat_counts = step_by_step(node, rows)
    assert [out["out"][0].tolist() for out, _ in steps] == want and sat_counts == {"li.state": 2}


# --- CUBA LIF / LI -----------------------------------------------------------------------------------

CUBA = dict(n=2, state_frac_bits=0, alpha_syn=np.array([2048, 3000]), alpha_mem=np.array([4000, 4096]),
            gain_m=np.array([3, -5]), gain_shift=2, bias_syn=np.array([1, -1]), bias_mem=np.array([-2, 0]))
CUBA_SPIKE = dict(v_th=np.array([50, 0]), v_reset=np.array([-10, 5]))
CUBA_A = [[20, LIMIT], [-30, -LIMIT], [40, 3], [0, 0], [25, -2], [2, 0]]


def cuba_oracle(v, rows, spiking: bool):
    """docs §6: i' = sat(shr_trunc(alpha_syn i, 12) + a + bias_syn);
    v' = sat(shr_trunc(alpha_mem v, 12) + shr_trunc(gain_m i', gain_shift) + bias_mem);
    s = 1[v' > v_th], v' = v_reset where s (CubaLIF); CubaLI outputs v'."""
    n = v["n"]
    cur, mem, trace, events = [0] * n, [0] * n, [], 0
    for row in rows:
        spikes = []
        for h in range(n):
            cur[h], e1 = sat(trunc_shift(int(v["alpha_syn"][h]) * cur[h], 12) + row[h] + int(v["bias_syn"][h]))
            mem[h], e2 = sat(trunc_shift(int(v["alpha_mem"][h]) * mem[h], 12)
                             + trunc_shift(int(v["gain_m"][h]) * cur[h], v["gain_shift"]) + int(v["bias_mem"][h]))
            events += e1 + e2
            spikes.append(int(spiking and mem[h] > int(v["v_th"][h])))
            if spikes[-1]:
                mem[h] = int(v["v_reset"][h])
        trace.append((list(cur), list(mem), spikes))
    return trace, events


@pytest.mark.parametrize("spiking", [True, False])
def test_cuba_lif_and_li_by_hand(spiking):
    """n0 (alpha_syn 0.5, alpha_mem 4000, gain 3 >> 2, bias_syn 1, bias_mem -2, v_th 50, reset -10):

    * t0: ``i = 21``; ``v = shr_trunc(63, 2) - 2 = 15 - 2 = 13``.
    * t1: ``i = shr_trunc(43008, 12) - 30 + 1 = 10 - 29 = -19``; ``v = shr_trunc(52000, 12) + shr_trunc(-57, 2) - 2
      = 12 - 14 - 2 = -4`` (floor: -15).
    * t2: ``i = -9 + 41 = 32``; ``v = shr_trunc(-16000, 12) + 24 - 2 = -3 + 22 = 19``. t3: ``i = 17``;
      ``v = 18 + 12 - 2 = 28``.
    * t4: ``i = 8 + 26 = 34``; ``v = shr_trunc(112000, 12) + shr_trunc(102, 2) - 2 = 27 + 25 - 2 = 50 = v_th``: no spike.
    * t5: ``i = 17 + 3 = 20``; ``v = 48 + 15 - 2 = 61 > 50``: spike, ``v = -10`` (CubaLI: 61, no reset).

    n1 (IF membrane, gain -5 >> 2): t0 ``i = (2^23 - 1) - 1`` (no event),
    ``v = shr_trunc(-5 (2^23 - 2), 2) = -10485757``: clipped to ``-(2^23 - 1)`` (the only event); never above 0.
    """
    values = dict(CUBA, **(CUBA_SPIKE if spiking else {}))
    trace, events = cuba_oracle(dict(CUBA, **CUBA_SPIKE), CUBA_A, spiking)
    assert [(i[0], v[0], s[0]) for i, v, s in trace] == [(21, 13, 0), (-19, -4, 0), (32, 19, 0), (17, 28, 0), (34, 50, 0),
                                                        (20, -10 if spiking else 61, int(spiking))]
    assert trace[0][0][1] == LIMIT - 1 and trace[0][1][1] == -LIMIT and events == 1
    node = (CubaLIFNeuron if spiking else CubaLINeuron)("cuba", values)
    result = run_graph(node, CUBA_A)
    want_out = [s for _, _, s in trace] if spiking else [v for _, v, _ in trace]
    assert result.outputs["cuba"][0].astype(int).tolist() == want_out
    assert result.records["cuba"]["state"][0].tolist() == [[[i[h], v[h]] for h in range(2)] for i, v, _ in trace]
    assert result.saturation["cuba.state"] == 1
    steps, sat_counts = step_by_step(node, CUBA_A)
    assert [out["out"][0].astype(int).tolist() for out, _ in steps] == want_out and sat_counts == {"cuba.state": 1}


# --- Threshold, Delay, OutputSink --------------------------------------------------------------------


def test_threshold_by_hand():
    """``s = 1[a + bias > theta]``, bias (0, -5, 10), theta (5, 0, -3): a + bias = (5, 1, -3) -> (0, 1, 0): both
    equalities give no spike (strict); (6, 0, -4) -> (1, 0, 0); (-100, -1, 10) -> (0, 0, 1)."""
    node = ThresholdNode("thr", dict(n=3, frac_bits=0, bias=np.array([0, -5, 10]), theta=np.array([5, 0, -3])))
    rows = [[5, 6, -13], [6, 5, -14], [-100, 4, 0]]
    want = [[int(row[h] + (0, -5, 10)[h] > (5, 0, -3)[h]) for h in range(3)] for row in rows]
    assert want == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert run_graph(node, rows).outputs["thr"][0].astype(int).tolist() == want
    steps, _ = step_by_step(node, rows)
    assert [out["out"][0].astype(int).tolist() for out, _ in steps] == want


DELAYS = [0, 1, 3]
DELAY_IN = [[1, 2, -3], [4, 5, -6], [7, 8, -9], [10, 11, -12], [13, 14, -15]]
DELAY_OUT = [[1, 0, 0], [4, 2, 0], [7, 5, 0], [10, 8, -3], [13, 11, -6]]  # out_t = in_(t - delay), zeros before


def test_delay_by_hand():
    """``out_t = in_(t - delay)`` per channel (delays 0, 1, 3), zeros before; values pass unchanged."""
    assert [[DELAY_IN[t - d][h] if t >= d else 0 for h, d in enumerate(DELAYS)] for t in range(5)] == DELAY_OUT
    node = DelayNode("delay", dict(n=3, delay=np.array(DELAYS)), {"delay": np.array(DELAYS, np.float64)})
    assert run_graph(node, DELAY_IN).outputs["delay"][0].tolist() == DELAY_OUT
    steps, _ = step_by_step(node, DELAY_IN)
    assert [out["out"][0].tolist() for out, _ in steps] == DELAY_OUT


def test_delay_integer_step_uses_the_integer_field():
    node = DelayNode("delay", dict(n=3, delay=np.array(DELAYS)))  # no float parameters
    steps, _ = step_by_step(node, DELAY_IN)
    assert [out["out"][0].tolist() for out, _ in steps] == DELAY_OUT


def test_output_sink_sums_valid_steps_only():
    """``y = a + bias`` recorded every step; scores ``2^-F sum_t y`` over the valid steps (F = 2, bias (3, -1)).

    Sample 0 (3 valid): y = (4, 1), (-2, 3), (3, -1): sums (5, 3) -> (1.25, 0.75), prediction 0.
    Sample 1 (1 valid): y = (3, 4) -> (0.75, 1.0), prediction 1; its padded steps carry y = (103, -1) twice:
    counted, they would make class 0 the prediction."""
    node = OutputSink("out", dict(n=2, frac_bits=2, bias=np.array([3, -1])))
    x = [[[1, 2], [-5, 4], [0, 0]], [[0, 5], [100, 0], [100, 0]]]
    result = run_graph(node, x, lengths=[3, 1])
    assert result.records["out"]["y"].tolist() == [[[4, 1], [-2, 3], [3, -1]], [[3, 4], [103, -1], [103, -1]]]
    assert result.scores.tolist() == [[1.25, 0.75], [0.75, 1.0]]
    assert result.predictions.tolist() == [0, 1]
