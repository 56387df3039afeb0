"""Independent oracles for the SiLIF family's integer steps (docs/numerics.md §5): SiLIFNeuron,
CSiLIFNeuron, LeakyReadout.

Expected integers are hand-derived from the equations of docs/numerics.md §5 (written out in each
docstring) and cross-checked by a pure-Python loop written from the same equations (Python ints, no
package code). Each node runs through the reference simulator's path (``sim.reference.simulate`` on a
tiny netlist: GradedInput -> node -> sink) and through its ``int_step`` one step at a time (what the
Lava fixed-point model calls).
"""

import math

import numpy as np

from pspike_neuro.nodes.csilif_neuron import CSiLIFNeuron
from pspike_neuro.nodes.leaky_readout import LeakyReadout
from pspike_neuro.nodes.silif_neuron import SiLIFNeuron

from .oracle_helpers import LIMIT, run_graph, sat, step_by_step, trunc_shift

# --- SiLIF -------------------------------------------------------------------------------------------

F = 10  # threshold 2^F = 1024
SILIF = dict(layer=0, n=3, state_frac_bits=F, alpha=np.array([2048, 0, 3000]), beta=np.array([3072, 4096, 1000]),
             one_minus_alpha=np.array([2048, 4096, 1096]), a=np.array([1024, 4096, 500]), b=np.array([256, 1, 100]),
             bias=np.array([0, 1, -7]))
SILIF_I = [[2048, LIMIT, -5000], [2100, 0, 9000], [-3001, -LIMIT, 30000], [0, -LIMIT, -777], [500, 5, 0]]


def silif_oracle(v, rows):
    """docs §5: w' = sat(shr_trunc(beta w, 12) + shr_trunc(a u, 12) + s b);
    u' = sat(shr_trunc(alpha (u - s 2^F), 12) + shr_trunc((1 - alpha)(I + bias - w'), 12)); s' = 1[u' > 2^F]."""
    n, one = v["n"], 1 << v["state_frac_bits"]
    u, w, s = [0] * n, [0] * n, [0] * n
    trace, events = [], 0
    for row in rows:
        for h in range(n):
            w[h], e1 = sat(trunc_shift(int(v["beta"][h]) * w[h], 12) + trunc_shift(int(v["a"][h]) * u[h], 12)
                           + s[h] * int(v["b"][h]))
            u[h], e2 = sat(trunc_shift(int(v["alpha"][h]) * (u[h] - s[h] * one), 12)
                           + trunc_shift(int(v["one_minus_alpha"][h]) * (row[h] + int(v["bias"][h]) - w[h]), 12))
            s[h] = int(u[h] > one)
            events += e1 + e2
        trace.append((list(u), list(w), list(s)))
    return trace, events


def test_silif_by_hand():
    """n0 (alpha = 0.5, beta = 0.75, a = 0.25, b = 256, bias 0), F = 10:

    * t0: ``w = 0``; ``u = shr_trunc(2048 * 2048, 12) = 1024 = 2^F``: no spike (strict ``>``).
    * t1: ``w = shr_trunc(1024 * 1024, 12) = 256``; ``u = 512 + shr_trunc(2048 * (2100 - 256), 12) = 512 + 922 = 1434``: spike.
    * t2 (reset, adaptation jump): ``w = shr_trunc(3072 * 256, 12) + shr_trunc(1024 * 1434, 12) + 256 = 192 + 358 + 256 = 806``;
      ``u = shr_trunc(2048 * (1434 - 1024), 12) + shr_trunc(2048 * (-3001 - 806), 12) = 205 - 1903 = -1698``
      (floor would give -1904).
    * t3: ``w = shr_trunc(3072 * 806, 12) + shr_trunc(1024 * -1698, 12) = 604 - 424 = 180`` (floor: -425);
      ``u = -849 + shr_trunc(2048 * -180, 12) = -849 - 90 = -939``.
    * t4: ``w = 135 + shr_trunc(-961536, 12) = 135 - 234 = -99``; ``u = shr_trunc(-1923072, 12) + shr_trunc(2048 * 599, 12)
      = -469 + 299 = -170``.

    n1 (alpha = 0, beta = a = 1, b = 1, bias 1): t0 ``u = I + 1 - 0 = 2^23``: clipped to ``2^23 - 1`` (event), spike;
    t1 ``w = 0 + (2^23 - 1) + 1 = 2^23``: clipped (event), ``u = 0 + 1 - (2^23 - 1) = -(2^23 - 2)``; t2 ``w = 1``,
    ``u = -(2^23 - 1) + 1 - 1``: exactly the negative limit (no event); t3 ``w = -(2^23 - 2)``, ``u = 0``;
    t4 ``u = 5 + 1 + (2^23 - 2) = 2^23 + 4``: clipped (event), spike. 3 events.
    """
    trace, events = silif_oracle(SILIF, SILIF_I)
    assert [(u[0], w[0], s[0]) for u, w, s in trace] == [(1024, 0, 0), (1434, 256, 1), (-1698, 806, 0), (-939, 180, 0),
                                                        (-170, -99, 0)]
    assert [(u[1], w[1], s[1]) for u, w, s in trace] == [(LIMIT, 0, 1), (-(LIMIT - 1), LIMIT, 0), (-LIMIT, 1, 0),
                                                        (0, -(LIMIT - 1), 0), (LIMIT, -(LIMIT - 1), 1)]
    assert events == 3
    node = SiLIFNeuron("silif", SILIF)
    result = run_graph(node, SILIF_I)
    assert result.outputs["silif"][0].astype(int).tolist() == [s for _, _, s in trace]
    assert result.records["silif"]["state"][0].tolist() == [[[u[h], w[h]] for h in range(3)] for u, w, _ in trace]
    assert result.saturation["silif.state"] == 3
    steps, sat_counts = step_by_step(node, SILIF_I, states=True)
    for (out, rec, _), (u, w, s) in zip(steps, trace):
        assert out["out"][0].astype(int).tolist() == s
        assert rec["state"][0].tolist() == [[u[h], w[h]] for h in range(3)]
    assert sat_counts == {"silif.state": 3}


# --- C-SiLIF -----------------------------------------------------------------------------------------

CSILIF = dict(layer=0, n=2, state_frac_bits=F, decay_re=np.array([2048, -3000]), decay_im=np.array([1024, 2500]),
              bias=np.array([0, 1]))
CSILIF_I = [[512, LIMIT], [600, 0], [-1001, -5], [77, 0], [0, -LIMIT]]


def csilif_oracle(v, rows):
    """docs §5: (ur', ui') = rf(ur - s 2^(F-1), ui; decay) + (I + bias, 0), lava.proc.rf's rotation
    ``re' = shr_trunc(dr re) - shr_trunc(di im) + in``, ``im' = shr_trunc(di re) + shr_trunc(dr im)``,
    each saturated; s' = 1[2 ur' > 2^F]."""
    n, half, one = v["n"], 1 << (v["state_frac_bits"] - 1), 1 << v["state_frac_bits"]
    ur, ui, s = [0] * n, [0] * n, [0] * n
    trace, events = [], 0
    for row in rows:
        for h in range(n):
            re, im = ur[h] - s[h] * half, ui[h]
            dr, di = int(v["decay_re"][h]), int(v["decay_im"][h])
            (ur[h], e1) = sat(trunc_shift(dr * re, 12) - trunc_shift(di * im, 12) + row[h] + int(v["bias"][h]))
            (ui[h], e2) = sat(trunc_shift(di * re, 12) + trunc_shift(dr * im, 12))
            s[h] = int(2 * ur[h] > one)
            events += e1 + e2
        trace.append((list(ur), list(ui), list(s)))
    return trace, events


def test_csilif_by_hand():
    """n0 (lambda = 0.5 + 0.25i, bias 0), F = 10 (reset 2^(F-1) = 512, spike where ``2 ur > 1024``):

    * t0: ``ur = 512``: ``2 * 512 = 1024``, no spike (strict ``>``).
    * t1: ``ur = shr_trunc(2048 * 512, 12) + 600 = 856``, ``ui = shr_trunc(1024 * 512, 12) = 128``: spike.
    * t2 (reset to 856 - 512 = 344): ``ur = 172 - shr_trunc(1024 * 128, 12) - 1001 = 172 - 32 - 1001 = -861``,
      ``ui = 86 + 64 = 150``.
    * t3: ``ur = shr_trunc(2048 * -861, 12) - shr_trunc(1024 * 150, 12) + 77 = -430 - 37 + 77 = -390`` (floor: -431),
      ``ui = shr_trunc(-881664, 12) + 75 = -215 + 75 = -140``.
    * t4: ``ur = -195 - shr_trunc(-143360, 12) = -195 + 35 = -160``, ``ui = shr_trunc(-399360, 12) - 70 = -97 - 70 = -167``.

    n1 (negative Re(lambda)): t0 ``ur = (2^23 - 1) + 1 = 2^23``: clipped to ``2^23 - 1`` (event), spike; the state
    rotates; t4 pushes ``ur`` below ``-(2^23 - 1)`` (event): 2 events.
    """
    trace, events = csilif_oracle(CSILIF, CSILIF_I)
    assert [(ur[0], ui[0], s[0]) for ur, ui, s in trace] == [(512, 0, 0), (856, 128, 1), (-861, 150, 0), (-390, -140, 0),
                                                            (-160, -167, 0)]
    assert trace[0][0][1] == LIMIT and trace[4][0][1] == -LIMIT and events == 2
    node = CSiLIFNeuron("csilif", CSILIF)
    result = run_graph(node, CSILIF_I)
    assert result.outputs["csilif"][0].astype(int).tolist() == [s for _, _, s in trace]
    assert result.records["csilif"]["state"][0].tolist() == [[[ur[h], ui[h]] for h in range(2)] for ur, ui, _ in trace]
    assert result.saturation["csilif.state"] == 2
    steps, sat_counts = step_by_step(node, CSILIF_I, states=True)
    for (out, rec, _), (ur, ui, s) in zip(steps, trace):
        assert out["out"][0].astype(int).tolist() == s
        assert rec["state"][0].tolist() == [[ur[h], ui[h]] for h in range(2)]
    assert sat_counts == {"csilif.state": 2}


# --- LeakyReadout ------------------------------------------------------------------------------------

LEAKY = dict(n=3, state_frac_bits=4, alpha=np.array([4000, 2048, 0]), bias=np.array([3, -5, 1]))
LEAKY_A = [[[100, -7, LIMIT - 1], [-300, 20, LIMIT], [0, -3, -LIMIT], [0, 50, 0], [7, 0, -4]],
           [[40, 0, 0], [40, 0, 0], [0, LIMIT // 4, 0], [0, LIMIT // 4, 0], [0, LIMIT // 4, 0]]]


def test_leaky_readout_by_hand():
    """``r' = sat(shr_trunc(alpha r, 12) + a + bias)``; scores ``sum_t softmax(r_t 2^-4)`` over the valid steps.

    Sample 0, class 0 (alpha 4000, bias 3): 103; ``shr_trunc(412000, 12) = 100``, ``100 - 300 + 3 = -197``;
    ``shr_trunc(-788000, 12) = -192`` (floor -193) ``+ 3 = -189``; ``-184 + 3 = -181``; ``-176 + 7 + 3 = -166``.
    Class 1 (alpha 0.5, bias -5): -12; ``-6 + 20 - 5 = 9``; ``4 - 3 - 5 = -4``; ``-2 + 50 - 5 = 43``; ``21 - 5 = 16``.
    Class 2 (alpha 0, bias 1): ``2^23 - 1`` (exactly the limit), ``2^23`` (clipped: one event), ``-(2^23 - 2)``, 1, -3.
    Sample 1 has 2 valid steps (class 0 leads: 43, 84 against -5, -7 and 1, 1); its 3 padded steps drive class 1 to
    millions: counted, they would make class 1 the prediction.
    """
    node = LeakyReadout("readout", LEAKY)
    want_r = []
    for rows in LEAKY_A:
        r, trace = [0, 0, 0], []
        for row in rows:
            r = [sat(trunc_shift(int(LEAKY["alpha"][c]) * r[c], 12) + row[c] + int(LEAKY["bias"][c]))[0] for c in range(3)]
            trace.append(r)
        want_r.append(trace)
    assert [row[0] for row in want_r[0]] == [103, -197, -189, -181, -166]
    assert [row[1] for row in want_r[0]] == [-12, 9, -4, 43, 16]
    assert [row[2] for row in want_r[0]] == [LIMIT, LIMIT, -(LIMIT - 1), 1, -3]
    assert want_r[1][:2] == [[43, -5, 1], [84, -7, 1]]
    lengths = [5, 2]

    def softmax(row):
        z = [v / 16 for v in row]
        e = [math.exp(v - max(z)) for v in z]
        return [v / sum(e) for v in e]

    want_scores = [[sum(softmax(want_r[b][t])[c] for t in range(lengths[b])) for c in range(3)] for b in range(2)]
    result = run_graph(node, LEAKY_A, lengths=lengths)
    assert result.records["readout"]["r"].tolist() == want_r
    np.testing.assert_allclose(result.scores, want_scores, rtol=1e-12)
    # sample 0: class 2 wins t0, t1, class 1 wins t2-t4 (1.0, 1.0, e / (e + e^-0.19 + ...) = 0.77); sample 1: class 0
    assert [max(range(3), key=row.__getitem__) for row in want_scores] == [1, 0]
    assert result.predictions.tolist() == [1, 0]
    assert result.saturation["readout.r"] == 1
    steps, sat_counts = step_by_step(node, LEAKY_A[0], states=True)
    assert [rec["r"][0].tolist() for _, rec, _ in steps] == want_r[0] and sat_counts == {"readout.r": 1}
