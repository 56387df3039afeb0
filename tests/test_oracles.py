"""Independent oracles for the integer steps of the P-SpikeSSM node types (docs/numerics.md §1-§4).

Every expected integer below is derived by hand from the equations of docs/numerics.md (the key steps
are written out in each test's docstring) and, for the longer traces, by a small pure-Python loop in
this file written from the same equations: Python ints, no numpy arithmetic, no package code. Only the
random numbers come from the package (``numerics.rng``, tested on its own in tests/test_rng.py); the
arithmetic that uses them is hand-derived. Each node runs through the path the reference simulator
takes (``sim.reference.simulate`` on a tiny netlist, i.e. ``graph.execute.run`` and the node's
``int_sequence``: the compiled numba kernels where the type has them) and through its ``int_step``
(what the Lava fixed-point models call every step).

Node types here: SSMNeuron (both samplers, all four arithmetic paths), ClampFuse (numpy and numba),
ReadoutIntegrator (padded steps), SparseSynapse / DenseSynapse, GradedInput, SpikeInput. The SiLIF
family is in tests/test_oracles_snn.py, the NIR node types in tests/test_oracles_nir.py.
"""

import math

import numpy as np
import pytest

from pspike_neuro.graph import Edge, Netlist
from pspike_neuro.nodes import RunContext, ssm_neuron
from pspike_neuro.nodes.clamp_fuse import ClampFuse
from pspike_neuro.nodes.graded_input import GradedInput
from pspike_neuro.nodes.output import OutputSink
from pspike_neuro.nodes.readout_integrator import ReadoutIntegrator
from pspike_neuro.nodes.spike_input import SpikeInput
from pspike_neuro.nodes.ssm_neuron import SSMNeuron
from pspike_neuro.nodes.synapses import DenseSynapse, SparseSynapse
from pspike_neuro.numerics import kernels
from pspike_neuro.numerics.rng import uniform_int
from pspike_neuro.sim.reference import simulate

from .oracle_helpers import LIMIT, sat, trunc_shift

# --- the primitives of docs/numerics.md §1, in plain Python ints (independent of numerics/fixed.py) ---


def lava_shift(a: int, e: int) -> int:
    """Lava's weight_exp: a << e for e > 0, else a >> -e (arithmetic: rounds toward minus infinity)."""
    return a << e if e > 0 else a >> -e


def tiny_netlist(*nodes, edges=None) -> Netlist:
    """Nodes in a chain (``out`` -> ``in``) unless ``edges`` are given."""
    if edges is None:
        edges = [Edge(a.name, b.name) for a, b in zip(nodes, nodes[1:])]
    return Netlist({}, {n.name: n for n in nodes}, edges)


def graded_source(n: int, frac_bits: int = 0) -> GradedInput:
    return GradedInput("src", dict(n=n, frac_bits=frac_bits))


def sink(n: int) -> OutputSink:
    return OutputSink("sink", dict(n=n, frac_bits=0, bias=np.zeros(n, np.int64)))


def as_x(rows) -> np.ndarray:
    """(T, n) Python rows -> (1, T, n) float inputs (GradedInput with frac_bits 0 passes integers through)."""
    return np.asarray(rows, np.float64)[None]


# --- SSMNeuron ---------------------------------------------------------------------------------------

SEED, P = 2, 8  # prob_bits 8: probability 1.0 is 256
SSM_VALUES = dict(
    layer=0, n=3, n_modes=2, prob_bits=P, site_in=0, site_out=1, phi="identity", in_frac_bits=0, state_frac_bits=0,
    alpha_m=np.array([3, -5, 0]), alpha_shift=2, beta=np.array([50, 100, 256]),
    decay_re=np.array([[-3000, 0], [3500, -2000], [4095, 0]]), decay_im=np.array([[2000, 0], [-1500, 3000], [0, 0]]),
    b_re=np.array([[100, 2**19], [-60, 90], [1, 0]]), b_im=np.array([[-50, -(2**19)], [70, 25], [0, 0]]), b_exp=4,
    c_re=np.array([[-7, 1], [5, -3], [0, 0]]), c_im=np.array([[3, 0], [2, 6], [0, 0]]), c_shift=np.array([16, 6, 0]),
    d=np.array([-9, 5, 3]), d_exp=-1, b_out=np.array([118, 359, LIMIT]), out_sign=np.array([1, 1, 1]),
)
SSM_X = [[-10, 9, 0], [64, -100, 0], [400, 21, 0], [-100, -95, 0], [0, 0, 0]]  # (T, n) residual stream
# the draws of sample 0 (seed 2): R1[t][h] = rng(seed, site_in, h, t), R2 from site_out
R1 = [[42, 44, 227], [98, 198, 158], [139, 73, 227], [120, 218, 59], [39, 93, 181]]
R2 = [[255, 141, 157], [201, 215, 29], [240, 124, 57], [239, 243, 105], [253, 221, 18]]
# hand-derived expectations (see test_ssm_neuron_by_hand)
SSM_S = [[1, 1, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1], [1, 1, 1]]
SSM_O = [[0, 1, 1], [0, 0, 1], [0, 1, 1], [0, 1, 1], [0, 0, 1]]
SSM_STATE_T0 = [[(1600, -800), (LIMIT, -LIMIT)], [(-960, 1120), (1440, 400)], [(16, 0), (0, 0)]]
SSM_STATE_T1 = [[(-781, 1366), (0, 0)], [(-1370, 2428), (445, 1259)], [(31, 0), (0, 0)]]
SSM_STATE_T2 = [[(1506, -2181), (LIMIT, -LIMIT)], [(-1241, 3695), (301, 111)], [(46, 0), (0, 0)]]


def gelu_by_hand(v: int, f: int) -> int:
    """docs/numerics.md §7 in Python ints: knots ``x_i = -6 + i 2^-g`` (g = min(F, 6)), ``T[i] = rint(gelu(x_i)
    2^F)`` with gelu(x) = x (1 + erf(x / sqrt 2)) / 2 (math.erf), linear interpolation with a floor shift s = F - g."""
    g = min(f, 6)
    shift, lo = f - g, 6 << f

    def knot(i):
        x = -6 + i / (1 << g)
        return int(np.rint(0.5 * x * (1 + math.erf(x / math.sqrt(2))) * (1 << f)))

    if v <= -lo:
        return 0
    if v >= lo:
        return v
    u = v + lo
    i = u >> shift
    return knot(i) + (((knot(i + 1) - knot(i)) * (u - (i << shift))) >> shift)


def ssm_oracle(v: dict, x, valid, r1, r2):
    """docs/numerics.md §3 steps 1-3 for one sample, in Python ints.

    Returns per step the input spikes s, output spikes o, states [(zr, zi) per mode] per neuron, and
    the numbers of state and output saturation events."""
    n, m, one = v["n"], v["n_modes"], 1 << v["prob_bits"]
    zr = [[0] * m for _ in range(n)]
    zi = [[0] * m for _ in range(n)]
    S, O, Z, n_state, n_out = [], [], [], 0, 0
    for t in range(len(x)):
        s_t, o_t, z_t = [], [], []
        for h in range(n):
            q_in = min(max(trunc_shift(int(v["alpha_m"][h]) * x[t][h], v["alpha_shift"]) + int(v["beta"][h]), 0), one)
            s = int(bool(valid[t]) and r1[t][h] < q_in)
            acc = 0
            for k in range(m):
                lr, li = int(v["decay_re"][h][k]), int(v["decay_im"][h][k])
                new_r = trunc_shift(lr * zr[h][k], 12) - trunc_shift(li * zi[h][k], 12) + s * (int(v["b_re"][h][k]) << v["b_exp"])
                new_i = trunc_shift(li * zr[h][k], 12) + trunc_shift(lr * zi[h][k], 12) + s * (int(v["b_im"][h][k]) << v["b_exp"])
                (zr[h][k], e1), (zi[h][k], e2) = sat(new_r), sat(new_i)
                n_state += e1 + e2
                acc += int(v["c_re"][h][k]) * zr[h][k] - int(v["c_im"][h][k]) * zi[h][k]
            relu = v["phi"] == "relu"  # relu: b_out is added after the activation (q = a_out relu(v) + b_out)
            gelu = v["phi"] == "gelu"  # gelu: q = shr_trunc(out_scale_m gelu_table(v), out_shift) + b_out
            bias = 0 if relu or gelu else int(v["b_out"][h])
            out, e = sat(trunc_shift(acc, int(v["c_shift"][h])) + s * lava_shift(int(v["d"][h]), v["d_exp"]) + bias)
            n_out += e
            if gelu:
                g = trunc_shift(int(v["out_scale_m"][h]) * gelu_by_hand(out, v["v_frac_bits"]), v["out_shift"])
                g += int(v["b_out"][h])
            else:
                g = int(v["out_sign"][h]) * max(out, 0) + int(v["b_out"][h]) if relu else out
            o_t.append(int(r2[t][h] < min(max(g, 0), one)))
            s_t.append(s)
            z_t.append([(zr[h][k], zi[h][k]) for k in range(m)])
        S.append(s_t)
        O.append(o_t)
        Z.append(z_t)
    return S, O, Z, n_state, n_out


def draws(seed: int, site: int, n: int, steps: int, sample: int = 0):
    return [[int(uniform_int(seed, site, h, t, P, sample=sample)) for h in range(n)] for t in range(steps)]


SSM_PATHS = ["step_int64", "step_float64", "kernel_int64", "kernel_float64"]


@pytest.fixture(params=SSM_PATHS)
def make_ssm(request, monkeypatch):
    """Builds an SSMNeuron that runs on one of its four arithmetic paths: the numpy step in int64
    (``step_int``) or in float64 (``step_int_as_float``), the numba kernel in int64 or in float64."""
    kernel, int64 = request.param.startswith("kernel"), request.param.endswith("int64")
    if kernel and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(ssm_neuron, "USE_KERNELS", kernel)
    monkeypatch.setattr(kernels, "FLOAT_PATH", True)

    def make(values):
        node = SSMNeuron("ssm", values)
        assert node.p.float_exact  # small C: the float64 paths are taken unless switched off here
        if int64:
            node.p.float_exact = False
        return node

    return make


def run_ssm(node, x_rows, samples=(0,), lengths=None):
    x = np.repeat(as_x(x_rows), len(samples), 0)
    net = tiny_netlist(graded_source(node.n), node, sink(node.n))
    return simulate(net, x, seed=SEED, samples=np.asarray(samples), lengths=lengths, record_states=True)


def test_ssm_draws_are_the_ones_the_hand_derivation_uses():
    assert draws(SEED, 0, 3, 5) == R1 and draws(SEED, 1, 3, 5) == R2


def test_ssm_neuron_by_hand(make_ssm):
    """Identity output, one sample, seed 2, P = 8 (one = 256), b_exp = 4, d_exp = -1.

    Input sampler ``q = clamp(shr_trunc(alpha_m x, 2) + beta, 0, 256)``, ``s = 1[r1 < q]``:

    * n0 t0: ``3 * -10 = -30``, ``shr_trunc(-30, 2) = -7`` (floor would give -8), ``q = 43 > r1 = 42``: s = 1
      (with floor q = 42: no spike). t1: ``3 * 64 >> 2 = 48``, ``q = 98 = r1``: s = 0 (strict ``<``).
      t2: ``q = clamp(300 + 50) = 256``: s = 1. t3: ``q = clamp(-75 + 50) = 0``: s = 0. t4: ``q = 50 > 39``.
    * n1 t2: ``-5 * 21 = -105``, ``shr_trunc(-105, 2) = -26`` (floor -27), ``q = 74 > r1 = 73``: s = 1 (floor: 73, no).
      t3: ``-5 * -95 = 475 >> 2 = 118``, ``q = 218 = r1``: s = 0 (strict).
    * n2: ``beta = 256``: always a spike.

    SSM modes ``zr' = sat(shr_trunc(lr zr, 12) - shr_trunc(li zi, 12) + s (b_re << 4))`` (and ``zi'``):

    * n0 mode 0 (lr, li = -3000, 2000): t0 ``(100 << 4, -50 << 4) = (1600, -800)``;
      t1 (s = 0) ``zr = shr_trunc(-4800000, 12) - shr_trunc(-1600000, 12) = -1171 + 390 = -781`` (floor: -1172 + 391),
      ``zi = shr_trunc(3200000, 12) + shr_trunc(2400000, 12) = 781 + 585 = 1366``;
      t2 ``zr = 572 - 666 + 1600 = 1506``, ``zi = shr_trunc(-1562000, 12) + shr_trunc(-4098000, 12) - 800
      = -381 - 1000 - 800 = -2181``.
    * n0 mode 1 (decay 0): ``b << 4 = +-2^23``, one past the limit: ``+-(2^23 - 1)``, two saturation events
      per input spike (3 spikes: 6 state events).
    * n1 t0 ``(-960, 1120), (1440, 400)``; n2 mode 0 (lr = 4095): ``16``, ``shr_trunc(4095 * 16, 12) + 16 = 31``, ``46``.

    Output ``v = sat(shr_trunc(sum_k c_re zr - c_im zi, c_shift) + s shift(d, -1) + b_out)``, ``o = 1[r2 < clamp(v)]``:

    * n0 t2: sum ``-7 * 1506 - 3 * -2181 + 8388607 = 8384608``, ``>> 16 = 127``; ``shift(-9, -1) = -5`` (floor; trunc
      would give -4); ``v = 127 - 5 + 118 = 240 = r2``: no spike (strict ``<``, and trunc would give 241: spike).
      t0: ``8379807 >> 16 = 127``, ``v = 240 < r2 = 255``: none.
    * n1 t0: sum ``5 * -960 - 2 * 1120 - 3 * 1440 - 6 * 400 = -13760 = -215 * 64``; ``v = -215 + 2 + 359 = 146 > 141``.
      t2: sum ``-15164``, ``shr_trunc(-15164, 6) = -236`` (floor -237), ``v = -236 + 2 + 359 = 125 > r2 = 124``: spike
      (floor: 124, none).
    * n2: ``v = 0 + shift(3, -1) + (2^23 - 1) = 2^23``: clipped to ``2^23 - 1`` (5 output events), always a spike.
    """
    node = make_ssm(SSM_VALUES)
    S, O, Z, n_state, n_out = ssm_oracle(SSM_VALUES, SSM_X, [1] * 5, R1, R2)
    assert (S, O, n_state, n_out) == (SSM_S, SSM_O, 6, 5)  # the loop agrees with the hand derivation
    assert (Z[0], Z[1], Z[2]) == (SSM_STATE_T0, SSM_STATE_T1, SSM_STATE_T2)

    result = run_ssm(node, SSM_X)
    assert result.records["ssm"]["s_in"][0].astype(int).tolist() == SSM_S
    assert result.outputs["ssm"][0].astype(int).tolist() == SSM_O
    state = result.records["ssm"]["state"][0]  # (T, n, M, 2)
    assert [[[tuple(int(c) for c in mode) for mode in neuron] for neuron in step] for step in state] == Z
    assert result.saturation["ssm.state"] == 6 and result.saturation["ssm.output"] == 5


def test_ssm_neuron_int_step_by_hand():
    """The per-step function the Lava fixed-point model calls, both numpy paths, one step at a time."""
    for float_exact in (True, False):
        node = SSMNeuron("ssm", SSM_VALUES)
        node.p.float_exact = float_exact
        ctx = RunContext(seed=SEED, samples=np.zeros(1, np.int64), valid=np.ones((1, 5), bool), record_states=True)
        state = node.int_init(1)
        for t, row in enumerate(SSM_X):
            out, state, rec = node.int_step(state, {"in": np.array([row])}, t, ctx)
            assert rec["s_in"][0].astype(int).tolist() == SSM_S[t]
            assert out["out"][0].astype(int).tolist() == SSM_O[t]
            if t == 2:
                assert [[tuple(int(c) for c in m) for m in h] for h in rec["state"][0]] == SSM_STATE_T2
        assert ctx.sat.as_dict() == {"ssm.state": 6, "ssm.output": 5}


def test_ssm_padded_steps_draw_no_input_spike(make_ssm):
    """Two copies of the sample (same id, same draws), the second padded after 3 steps: on its padded
    steps ``s = 0`` even where ``q = 256`` (n2), so its modes only decay: n2's state goes 46 ->
    ``shr_trunc(4095 * 46, 12) = 45`` -> 44, and its output ``v = 0 + 0 + (2^23 - 1)`` no longer saturates
    (3 output events instead of 5 for that copy)."""
    node = make_ssm(SSM_VALUES)
    result = run_ssm(node, SSM_X, samples=(0, 0), lengths=[5, 3])
    want_full = ssm_oracle(SSM_VALUES, SSM_X, [1] * 5, R1, R2)
    want_pad = ssm_oracle(SSM_VALUES, SSM_X, [1, 1, 1, 0, 0], R1, R2)
    assert [z[2][0][0] for z in want_pad[2]] == [16, 31, 46, 45, 44]
    assert want_pad[0][3:] == [[0, 0, 0], [0, 0, 0]] and want_pad[4] == 3
    for b, (S, O, Z, _, _) in enumerate((want_full, want_pad)):
        assert result.records["ssm"]["s_in"][b].astype(int).tolist() == S
        assert result.outputs["ssm"][b].astype(int).tolist() == O
        assert result.records["ssm"]["state"][b].tolist() == [[[list(m) for m in h] for h in step] for step in Z]
    assert result.saturation["ssm.state"] == want_full[3] + want_pad[3]
    assert result.saturation["ssm.output"] == 5 + 3


def test_ssm_relu_output_sampler(make_ssm):
    """phi = relu: ``g = out_sign * max(v, 0) + b_out`` with ``v`` the readout without ``b_out`` (docs §3
    step 3; the float model's ``q = a_out relu(v) + b_out``). Here ``v`` is, per step:
    n0 122, 0, 122, 0, 123 (>= 0, out_sign 1): ``g = v + 118``, as with identity, never above its r2;
    n1 -213, -319, -234, -94, -159 (out_sign -1): relu gives 0, ``g = b_out = 359``, clamped to 256,
    so it fires at every step, where its identity twin (``g = v + 359``) fires at t0, t2 and t3 only;
    n2 1: ``g = 1 + (2^23 - 1)`` clamps to 256, it fires at every step."""
    values = dict(SSM_VALUES, phi="relu", out_sign=np.array([1, -1, 1]))
    node = make_ssm(values)
    S, O, _, _, _ = ssm_oracle(values, SSM_X, [1] * 5, R1, R2)
    assert O == [[0, 1, 1]] * 5 and S == SSM_S
    result = run_ssm(node, SSM_X)
    assert result.outputs["ssm"][0].astype(int).tolist() == O


def test_ssm_relu_output_bias_is_added_after_the_activation():
    """Float model (models/pspike.py): ``q = a_out relu(v) + b_out``. A neuron with ``C = D = 0`` has ``v = 0``:
    ``q = b_out = 0.5`` whatever the sign of ``a_out``, so it fires with probability 1/2. The integer step
    computes ``out_sign * max(0 + b_out, 0) = -128`` for ``out_sign = -1``: it never fires."""
    values = dict(SSM_VALUES, n=1, phi="relu", alpha_m=np.array([0]), beta=np.array([0]),
                  decay_re=np.array([[0, 0]]), decay_im=np.array([[0, 0]]), b_re=np.array([[0, 0]]),
                  b_im=np.array([[0, 0]]), c_re=np.array([[0, 0]]), c_im=np.array([[0, 0]]),
                  c_shift=np.array([0]), d=np.array([0]), b_out=np.array([128]), out_sign=np.array([-1]))
    steps = 40
    r2 = [row[0] for row in draws(SEED, 1, 1, steps)]
    want = [int(r < 128) for r in r2]  # q = 0.5 * 256
    assert 10 < sum(want) < 30
    result = run_ssm(SSMNeuron("ssm", values), [[0]] * steps)
    assert result.outputs["ssm"][0, :, 0].astype(int).tolist() == want


# --- ClampFuse ---------------------------------------------------------------------------------------

FUSE_VALUES = dict(layer=0, n=3, psi="relu", residual=True, bias=np.array([-7, 100, 0]), in_frac_bits=4,
                   out_frac_bits=4, post_scale_m=np.array([3, -5, 1]), post_shift=2,
                   post_offset=np.array([10, -3, LIMIT - 1]))
FUSE_X = [[1, 0, 8], [-21, 3, 4], [5, -2, 9]]  # residual stream (T, n)
FUSE_A = [[0, -100, 0], [4, -101, 0], [-10, 50, -1]]  # mixer sums (T, n)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("psi,residual,want,events", [
    # y = sat(shr_trunc(post_m (x + relu(a + bias)), 2) + post_offset):
    # n0: relu(a - 7) = 0, 0, 0; 3 x = 3, -63, 15 -> 0, -15 (floor: -16), 3 -> +10
    # n1: relu(a + 100) = 0, 0, 150; -5 (x + m) = 0, -15, -740 -> 0, -3 (floor: -4), -185 -> -3
    # n2: x + relu(a) = 8, 4, 9 -> 2, 1, 2 -> + 2^23 - 2 = 2^23 (clipped), 2^23 - 1 (not), 2^23 (clipped)
    ("relu", True, [[10, -3, LIMIT], [-5, -6, LIMIT], [13, -188, LIMIT]], 2),
    # identity: n0 x + a - 7 = -6, -24, -12 -> 3 * = -18, -72, -36 -> -4 (floor -5), -18, -9 -> +10
    # n1: x + a + 100 = 0, 2, 148 -> -5 * = 0, -10, -740 -> 0, -2 (floor -3), -185 -> -3
    # n2: 8, 4, 8 -> 2, 1, 2 -> clipped, not, clipped
    ("identity", True, [[6, -3, LIMIT], [-8, -5, LIMIT], [1, -188, LIMIT]], 2),
    # no residual, relu: n0 m = 0, 0, 0 -> 10; n1 m = 0, 0, 150 -> -750 / 4 = -187 (floor -188) -> -190;
    # n2 m = 0, 0, 0 -> 2^23 - 2
    ("relu", False, [[10, -3, LIMIT - 1], [10, -3, LIMIT - 1], [10, -190, LIMIT - 1]], 0),
])
def test_clamp_fuse_by_hand(compiled, psi, residual, want, events, monkeypatch):
    """ClampFuse: ``x' = sat(shr_trunc(post_scale_m (x + psi(a + bias)), post_shift) + post_offset)``
    (docs §3 step 5; expected values derived in the parameter comments), numba and numpy."""
    if compiled and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(kernels, "AVAILABLE", compiled)
    node = ClampFuse("fuse", dict(FUSE_VALUES, psi=psi, residual=residual))
    # the independent loop agrees with the hand values
    loop = []
    for x_row, a_row in zip(FUSE_X, FUSE_A):
        row = []
        for h in range(3):
            m = a_row[h] + int(FUSE_VALUES["bias"][h])
            m = max(m, 0) if psi == "relu" else m
            y = x_row[h] + m if residual else m
            row.append(sat(trunc_shift(int(FUSE_VALUES["post_scale_m"][h]) * y, 2) + int(FUSE_VALUES["post_offset"][h]))[0])
        loop.append(row)
    assert loop == want
    # the graph path: a 6-wide source, two selecting synapses (weights 1, exponent 0: the values pass
    # unchanged) deliver the residual stream and the mixer sums
    x = np.concatenate([np.asarray(FUSE_X, np.float64), np.asarray(FUSE_A, np.float64)], -1)[None]
    eye = np.eye(3, dtype=np.int64)
    pick_x = DenseSynapse.from_dense("pick_x", np.hstack([eye, 0 * eye]), 0, 8, 24)
    pick_a = DenseSynapse.from_dense("pick_a", np.hstack([0 * eye, eye]), 0, 8, 24)
    net = tiny_netlist(graded_source(6), pick_x, pick_a, node, sink(3), edges=[
        Edge("src", "pick_x"), Edge("src", "pick_a"), Edge("pick_x", "fuse", dst_port="residual"),
        Edge("pick_a", "fuse", dst_port="mixer"), Edge("fuse", "sink")])
    result = simulate(net, x, seed=0)
    assert result.outputs["fuse"][0].tolist() == want and result.saturation["fuse.out"] == events
    for t in range(3):  # the step the Lava model calls, one step at a time
        ctx = RunContext(seed=0, samples=np.zeros(1, np.int64), valid=np.ones((1, 3), bool))
        got, _, _ = node.int_step(None, {"residual": np.array([FUSE_X[t]]), "mixer": np.array([FUSE_A[t]])}, t, ctx)
        assert got["out"][0].tolist() == want[t]


# --- ReadoutIntegrator -------------------------------------------------------------------------------


def test_readout_integrator_padded_steps_leave_the_accumulator_and_the_prediction():
    """``acc = sat(acc + a + bias)`` on valid steps only; scores = the last acc; prediction argmax.

    bias = (1, -2, 0). Sample 0 (5 valid steps), inputs a_t per class:
    class 0: 2^23 - 3, 0, 0, -5, 0 -> acc 2^23 - 2, 2^23 - 1 (exactly the limit: no event), 2^23 (clipped
    to 2^23 - 1: one event), 2^23 - 5, 2^23 - 4;
    class 1: -3, -4, 10, 0, 0 -> -5, -11, -3, -5, -7; class 2: 0 -> 0.
    Sample 1 (3 valid steps, then 2 padded steps): class 0: 1, 1, 1 -> 2, 4, 6; class 1: 5, 5, 5 -> 3, 6, 9;
    class 2: 0, 0, 0 -> 0; the padded steps carry a = 2^23 - 1 into class 2 and -100 into class 1: accumulated,
    they would clip class 2 (one more event) and win the argmax. They must leave acc at (6, 9, 0): prediction 1.
    """
    node = ReadoutIntegrator("readout", dict(n=3, acc_frac_bits=0, bias=np.array([1, -2, 0])))
    x = np.array([[[LIMIT - 2, -3, 0], [0, -4, 0], [0, 10, 0], [-5, 0, 0], [0, 0, 0]],
                  [[1, 5, 0], [1, 5, 0], [1, 5, 0], [0, -100, LIMIT], [0, -100, LIMIT]]], np.float64)
    want_acc = [[[LIMIT - 1, -5, 0], [LIMIT, -11, 0], [LIMIT, -3, 0], [LIMIT - 4, -5, 0], [LIMIT - 3, -7, 0]],
                [[2, 3, 0], [4, 6, 0], [6, 9, 0], [6, 9, 0], [6, 9, 0]]]
    # the independent loop
    loop = []
    events = 0
    for b in range(2):
        acc, rows = [0, 0, 0], []
        for t in range(5):
            if t < (5, 3)[b]:
                for c in range(3):
                    acc[c], e = sat(acc[c] + int(x[b, t, c]) + (1, -2, 0)[c])
                    events += e
            rows.append(list(acc))
        loop.append(rows)
    assert loop == want_acc and events == 1
    result = simulate(tiny_netlist(graded_source(3), node), x, seed=0, lengths=[5, 3])
    assert result.records["readout"]["acc"].tolist() == want_acc
    assert result.scores.tolist() == [want_acc[0][-1], want_acc[1][-1]]
    assert result.predictions.tolist() == [0, 1]
    assert result.saturation["readout.acc"] == 1
    # the step function the Lava model calls, with the same valid mask
    ctx = RunContext(seed=0, samples=np.arange(2), valid=np.arange(5)[None] < np.array([[5], [3]]))
    acc = node.int_init(2)
    for t in range(5):
        _, acc, rec = node.int_step(acc, {"in": x[:, t].astype(np.int64)}, t, ctx)
        assert rec["acc"].tolist() == [want_acc[0][t], want_acc[1][t]]
    assert ctx.sat.as_dict() == {"readout.acc": 1}


# --- synapses ----------------------------------------------------------------------------------------

W = np.array([[6, -4, 2], [-256, 254, 0]])  # mixed signs: even values in [-256, 254] (Lava's 8-bit grid)


@pytest.mark.parametrize("kind", [DenseSynapse, SparseSynapse])
def test_synapse_graded_input_by_hand(kind):
    """Graded input (num_message_bits 24), ``a = shift(W x, weight_exp)``, floor for a negative exponent:

    * x = (3, -5, 1), weight_exp -2: ``18 + 20 + 2 = 40 >> 2 = 10``; ``-768 - 1270 = -2038 >> 2 = -510``
      (-509.5: truncation would give -509).
    * x = (-1, 0, 1): ``-6 + 2 = -4 >> 2 = -1``; ``256 >> 2 = 64``. x = (1, 1, 1): ``4 >> 2 = 1``; ``-2 >> 2 = -1``
      (trunc: 0).
    * weight_exp +3: the sums times 8: ``(320, -16304)``, ``(-32, 2048)``, ``(32, -16)``.
    """
    x = [[3, -5, 1], [-1, 0, 1], [1, 1, 1]]
    loop = {e: [[lava_shift(sum(int(W[o, i]) * row[i] for i in range(3)), e) for o in range(2)] for row in x]
            for e in (-2, 3)}
    assert loop == {-2: [[10, -510], [-1, 64], [1, -1]], 3: [[320, -16304], [-32, 2048], [32, -16]]}
    for exp, want in loop.items():
        syn = kind.from_dense("syn", W, exp, 8, 24)
        got = syn.int_step(None, {"in": np.array(x)}, -1, None)[0]["out"]
        assert got.tolist() == want
        result = simulate(tiny_netlist(graded_source(3), syn, sink(2)), as_x(x), seed=0)
        assert result.records["sink"]["y"][0].tolist() == want  # a synapse's sums reach the sink


@pytest.mark.parametrize("kind", [DenseSynapse, SparseSynapse])
def test_synapse_binary_input_by_hand(kind):
    """Binary input (num_message_bits 0): any non-zero value is a spike, a negative one too (Lava's
    ``s_in.astype(bool)``). x = (3, -5, 0) -> (1, 1, 0): ``6 - 4 = 2 >> 2 = 0``, ``-256 + 254 = -2 >> 2 = -1``
    (floor; trunc: 0). x = (0, 0, 7) -> ``2 >> 2 = 0``, ``0``. x = (1, 0, 1) -> ``8 >> 2 = 2``, ``-256 >> 2 = -64``."""
    x = [[3, -5, 0], [0, 0, 7], [1, 0, 1]]
    want = [[lava_shift(sum(int(W[o, i]) * int(row[i] != 0) for i in range(3)), -2) for o in range(2)] for row in x]
    assert want == [[0, -1], [0, 0], [2, -64]]
    syn = kind.from_dense("syn", W, -2, 8, 0)
    assert syn.int_step(None, {"in": np.array(x)}, -1, None)[0]["out"].tolist() == want
    spikes = SpikeInput("src", dict(n=3))
    result = simulate(tiny_netlist(spikes, syn, sink(2)), as_x(x), seed=0)
    assert result.records["sink"]["y"][0].tolist() == want  # a synapse's sums reach the sink


# --- sources -----------------------------------------------------------------------------------------


def test_graded_input_rounds_to_nearest_and_saturates():
    """``x_int = sat(round(x0 2^frac_bits))``, frac_bits = 3 (times 8):

    0.3 -> 2.4 -> 2; -0.3 -> -2.4 -> -2 (floor would give -3); -0.325 -> -2.6 -> -3 (trunc would give -2);
    2^20 -> 2^23: clipped to 2^23 - 1 (one event); (2^23 - 1) / 8 -> 2^23 - 1 exactly (no event);
    -2^20 - 0.5 -> -2^23 - 4: clipped to -(2^23 - 1) (one event). With an encoder ``x0 = W x + b``
    (W = [[0.5, -0.25]], b = [0.1]): x = (1, 2) -> 0.1 -> 0.8 -> 1; x = (-3, 1) -> -1.65 -> -13.2 -> -13."""
    node = GradedInput("src", dict(n=3, frac_bits=3))
    x = np.array([[[0.3, -0.3, -0.325], [2.0**20, LIMIT / 8, -(2.0**20) - 0.5]]])
    want = [[2, -2, -3], [LIMIT, LIMIT, -LIMIT]]
    loop = [[sat(math.floor(v * 8 + 0.5))[0] for v in row] for row in x[0].tolist()]  # no ties here
    assert loop == want
    ctx = RunContext(seed=0, samples=np.zeros(1, np.int64), valid=np.ones((1, 2), bool))
    out, _ = node.int_sequence({"external": x}, ctx)
    assert out["out"][0].tolist() == want and ctx.sat.as_dict() == {"src.out": 2}
    result = simulate(tiny_netlist(node, sink(3)), x, seed=0)
    assert result.outputs["src"][0].tolist() == want and result.saturation["src.out"] == 2
    enc = GradedInput("src", dict(n=1, frac_bits=3), {"encoder_weight": np.array([[0.5, -0.25]]),
                                                      "encoder_bias": np.array([0.1])})
    out, _ = enc.int_sequence({"external": np.array([[[1.0, 2.0], [-3.0, 1.0]]])}, ctx)
    assert out["out"][0].tolist() == [[1], [-13]]


def test_spike_input_any_nonzero_is_a_spike_and_padding_is_silent():
    """``s_t = 1[x_t != 0]`` on valid steps, nothing on padded ones: sample 1 has 2 valid steps of 3."""
    node = SpikeInput("src", dict(n=3))
    x = np.array([[[0.0, 0.5, -1.0], [2.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
                  [[1.0, 0.0, -0.25], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]]])
    want = [[[0, 1, 1], [1, 0, 0], [1, 1, 1]], [[1, 0, 1], [0, 1, 0], [0, 0, 0]]]
    result = simulate(tiny_netlist(node, sink(3)), x, seed=0, lengths=[3, 2])
    assert result.outputs["src"].astype(int).tolist() == want
    ctx = RunContext(seed=0, samples=np.arange(2), valid=np.arange(3)[None] < np.array([[3], [2]]))
    assert node.int_sequence({"external": x}, ctx)[0]["out"].astype(int).tolist() == want


def test_count_input_saturates_counts_and_silences_padding():
    """``c_t = min(x_t, 2^count_bits - 1)`` on valid steps, 0 on padded ones; each count above the limit is
    one saturation event. count_bits 3: limit 7; sample 1 has 1 valid step of 2."""
    from pspike_neuro.nodes.count_input import CountInput

    node = CountInput("src", dict(n=3, count_bits=3))
    x = np.array([[[0.0, 1.0, 9.0], [7.0, 8.0, 2.0]], [[3.0, 0.0, 12.0], [5.0, 5.0, 5.0]]])
    want = [[[0, 1, 7], [7, 7, 2]], [[3, 0, 7], [0, 0, 0]]]
    result = simulate(tiny_netlist(node, sink(3)), x, seed=0, lengths=[2, 1])
    assert result.outputs["src"].tolist() == want
    assert result.saturation == {"src.out": 3}       # 9, 8 and 12 (the padded 5s are no events)


def test_gelu_table_by_hand():
    """docs/numerics.md §7 at F = 8: g = 6, s = 2, knots every 1/64 from -6, ``T[i] = rint(gelu(x_i) 2^8)``
    with gelu(x) = x (1 + erf(x / sqrt 2)) / 2 (math.erf here); ``u = v + 6 * 256``, ``i = u >> 2``,
    ``r = u - 4 i``, ``g = T[i] + ((T[i+1] - T[i]) r) >> 2``; 0 at or below -1536, v at or above 1536."""
    from pspike_neuro.numerics.fixed import gelu_fixed

    def knot(i):
        x = -6 + i / 64
        return int(np.rint(0.5 * x * (1 + math.erf(x / math.sqrt(2))) * 256))

    def by_hand(v):
        if v <= -1536:
            return 0
        if v >= 1536:
            return v
        u = v + 1536
        i, r = u >> 2, u - ((u >> 2) << 2)
        return knot(i) + (((knot(i + 1) - knot(i)) * r) >> 2)

    assert knot(448) == 215                               # x = 1: gelu(1) * 256 = 215.38
    vs = [-3000, -1536, -1535, -101, -100, -1, 0, 1, 255, 256, 257, 259, 1535, 1536, 3000]
    got = gelu_fixed(np.array(vs), 8).tolist()
    assert got == [by_hand(v) for v in vs]
    assert got[vs.index(256)] == 215 and got[vs.index(-1536)] == 0 and got[vs.index(3000)] == 3000


def test_ssm_gelu_neuron_by_hand():
    """SSMGeluNeuron: the SSMNeuron case above up to ``v`` (without b_out, read in units 2^-4), then
    ``q = shr_trunc(out_scale_m gelu(v), 2) + b_out`` with the GELU table of docs/numerics.md §7 at F = 4
    (``gelu_by_hand``: it covers the zero side, the curved part and the identity side), and
    ``o = 1[r2 < clamp(q, 0, 256)]``; the oracle computes every step in Python ints."""
    from pspike_neuro.nodes.ssm_gelu_neuron import SSMGeluNeuron

    values = {k: w for k, w in SSM_VALUES.items() if k != "out_sign"}
    values.update(phi="gelu", v_frac_bits=4, out_scale_m=np.array([3, 40, 200]), out_shift=2,
                  b_out=np.array([10, 30, -20]))
    S, O, _, n_state, n_out = ssm_oracle(values, SSM_X, [1] * 5, R1, R2)
    assert S == SSM_S and n_state == 6 and n_out == 0
    node = SSMGeluNeuron("ssm", values)
    result = run_ssm(node, SSM_X)
    assert result.records["ssm"]["s_in"][0].astype(int).tolist() == S
    assert result.outputs["ssm"][0].astype(int).tolist() == O
    assert result.saturation["ssm.state"] == 6
    assert 0 < sum(map(sum, O)) < 15   # some spikes and some silences: the comparison decides something
