"""Lava's own bit-accurate library processes against our node types' integer steps, side by side.

Our Lava backend runs our own step functions for every neuron type (``sim/lava/models.py``), so
"Lava equals the reference" says nothing about the neuron arithmetic; only the synapses run in
Lava's library processes there (``Dense`` / ``Sparse``, ``nodes/synapses.py`` ``lava_library``).
Here Lava's library models run on the same inputs as our steps and their integer traces must agree:

* ``lava.proc.lif`` (``PyLifModelBitAcc``) vs ``LIFNeuron`` (``du = 4095``: no current state), an IF
  population (``dv = 0``, saturation both ways) and ``CubaLIFNeuron`` (both decays);
* ``lava.proc.dense`` / ``lava.proc.sparse`` (``PyDenseModelBitAcc``, ``PySparseModelBitAcc``) vs
  ``DenseSynapse`` / ``SparseSynapse``, graded and binary input, both signs of ``weight_exp``, and Lava's
  weight grid vs ``numerics.fixed.lava_effective_weights``;
* ``lava.proc.rf`` (``PyRFModelFixed``) vs one-mode ``SSMNeuron`` states (negative decay, saturation,
  gated input) and a ``CSiLIFNeuron`` below threshold.

Parameter mappings are spelled out in each test. Where the arithmetic cannot be made equal it is said
so there (LIF current: Lava wraps at 24 bits, we saturate; RF: its spike rule and single population decay
have no counterpart in our neurons, whose spikes are sampled or thresholded differently).
"""

import numpy as np
from scipy import sparse

from pspike_neuro.nodes import RunContext
from pspike_neuro.nodes.csilif_neuron import CSiLIFNeuron
from pspike_neuro.nodes.cuba_lif import CubaLIFNeuron
from pspike_neuro.nodes.lif import LIFNeuron
from pspike_neuro.nodes.ssm_neuron import SSMNeuron
from pspike_neuro.nodes.synapses import DenseSynapse, SparseSynapse
from pspike_neuro.numerics.fixed import lava_effective_weights

LIMIT = 2**23 - 1


def run_lava(steps: int, feeds, probes=None, sinks=None) -> dict:
    """Run a tiny Lava network under ``Loihi2SimCfg(select_tag="fixed_pt")`` for ``steps`` steps.

    ``feeds``: (data (n, steps), in port or list of in ports) pairs, each fed by a ``lava.proc.io.source.RingBuffer``;
    ``probes``: name -> Var recorded every step by a ``Monitor``; ``sinks``: name -> out port recorded by
    a ``lava.proc.io.sink.RingBuffer``. Returns name -> (steps, n) int64 (a Var after each step; what a
    port sent at each step)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as SinkBuffer
    from lava.proc.io.source import RingBuffer as SourceBuffer
    from lava.proc.monitor.process import Monitor

    sources = []
    for data, ports in feeds:
        src = SourceBuffer(data=np.asarray(data, np.int32))
        for port in ports if isinstance(ports, list) else [ports]:
            src.s_out.connect(port)
        sources.append(src)
    monitors = {}
    for name, var in (probes or {}).items():
        monitor = Monitor()
        monitor.probe(var, steps)
        monitors[name] = (monitor, var)
    buffers = {}
    for name, port in (sinks or {}).items():
        buffers[name] = SinkBuffer(shape=port.shape, buffer=steps)
        port.connect(buffers[name].a_in)
    first = sources[0]
    try:
        first.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = {name: m.get_data()[var.process.name][var.name] for name, (m, var) in monitors.items()}
        out.update({name: b.data.get().T for name, b in buffers.items()})
    finally:
        first.stop()
    return {name: np.rint(value).astype(np.int64) for name, value in out.items()}


def ctx_for(steps: int, seed: int = 0) -> RunContext:
    return RunContext(seed=seed, samples=np.zeros(1, np.int64), valid=np.ones((1, steps), bool), record_states=True)


# --- lava.proc.lif -----------------------------------------------------------------------------------


def test_lava_lif_equals_lif_neuron():
    """Lava's bit-accurate LIF (lava/proc/lif/models.py, ``AbstractPyLifModelFixed.subthr_dynamics``)::

        u' = wrap24(shr_trunc(u (4096 - (du + 1)), 12) + (a << 6))
        v' = clip(shr_trunc(v (4096 - dv), 12) + u' + (bias_mant << bias_exp), -(2^23 - 1), 2^23 - 1)
        s  = 1[v' > vth << 6];   v' = 0 where s

    With ``du = 4095`` the current decays completely (``u' = a << 6``): this is our ``LIFNeuron`` with
    ``alpha = 4096 - dv``, input ``a << 6`` (Lava's 6-bit MSB alignment of the synaptic input),
    ``bias = bias_mant << bias_exp``, ``v_th = vth << 6``, ``v_reset = 0``. dv = 1000 (alpha 3096);
    neuron 2 meets ``v = vth << 6 = 640`` exactly at step 0 (no spike in either: both use ``>``)."""
    from lava.proc.lif.process import LIF

    a = np.array([[5, 20, -3, -40, 7, 0, 30, -1],
                  [-11, 4, 30, 1, -2, 9, 0, -25],
                  [10, 0, 5, -9, 11, 3, -7, 2]])
    bias_mant, bias_exp, vth, dv = np.array([3, -7, 0]), np.array([2, 1, 0]), 10, 1000
    lif = LIF(shape=(3,), du=4095, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp, vth=vth)
    lava = run_lava(a.shape[1], [(a, lif.a_in)], probes={"v": lif.v}, sinks={"s": lif.s_out})

    node = LIFNeuron("lif", dict(n=3, state_frac_bits=0, alpha=np.full(3, 4096 - dv), bias=bias_mant << bias_exp,
                                 v_th=np.full(3, vth << 6), v_reset=np.zeros(3, np.int64)))
    out, rec = node.int_sequence({"in": (a.T << 6)[None]}, ctx_for(a.shape[1]))
    assert lava["v"][0, 2] == 640 and lava["s"][0, 2] == 0
    np.testing.assert_array_equal(out["out"][0].astype(int), lava["s"])
    np.testing.assert_array_equal(rec["state"][0], lava["v"])
    assert lava["s"].sum() >= 3 and (lava["v"] < 0).any()  # spikes, resets and negative truncations happen


def test_lava_if_saturates_as_lif_neuron():
    """IF: ``dv = 0`` (alpha 4096, no leak), ``du = 4095``. Lava's threshold is ``2^17 << 6 = 2^23``, above
    any clipped voltage: no spike; ours ``v_th = 2^23 - 1`` (the largest 24-bit value; ``v' > 2^23 - 1`` is
    impossible after saturation): no spike either. Neuron 0 drives ``-30000 << 6`` per step into the negative
    limit, neuron 1 ``+30000 << 6`` into the positive one, neuron 2 small values: the clipped voltages agree."""
    from lava.proc.lif.process import LIF

    a = np.array([[-30000] * 6, [30000] * 6, [3, -8, 0, 5, -1, 2]])
    lif = LIF(shape=(3,), du=4095, dv=0, bias_mant=np.array([0, 0, 1]), bias_exp=np.array([0, 0, 0]), vth=2**17)
    lava = run_lava(a.shape[1], [(a, lif.a_in)], probes={"v": lif.v}, sinks={"s": lif.s_out})
    node = LIFNeuron("lif", dict(n=3, state_frac_bits=0, alpha=np.full(3, 4096), bias=np.array([0, 0, 1]),
                                 v_th=np.full(3, LIMIT), v_reset=np.zeros(3, np.int64)))
    ctx = ctx_for(a.shape[1])
    out, rec = node.int_sequence({"in": (a.T << 6)[None]}, ctx)
    assert lava["v"][-1].tolist()[:2] == [-LIMIT, LIMIT] and not lava["s"].any()
    np.testing.assert_array_equal(rec["state"][0], lava["v"])
    assert not out["out"].any() and ctx.sat.as_dict()["lif.state"] == 2 * 2  # steps 4 and 5 clip, both signs


def test_lava_cuba_lif_equals_cuba_lif_neuron():
    """Lava's LIF with both decays is our ``CubaLIFNeuron`` with ``alpha_syn = 4096 - du - 1`` (Lava's
    ``ds_offset = 1``), ``alpha_mem = 4096 - dv``, ``gain = 1`` (``gain_m = 1``, ``gain_shift = 0``: Lava adds
    ``u'`` to ``v``), ``bias_syn = 0``, ``bias_mem = bias_mant << bias_exp``, ``v_th = vth << 6``,
    ``v_reset = 0``, input ``a << 6``; the current is updated first, the voltage from the new current, in
    both. Neuron 0 reaches ``v = 50 << 6 = 3200`` exactly at step 0 (``u = 50 << 6``, no bias): no spike in
    either. Not comparable: Lava wraps the current modulo 2^24, ours saturates (kept in range here); our
    ``gain_m``/``gain_shift`` rounding has no Lava counterpart (Lava's gain is 1)."""
    from lava.proc.lif.process import LIF

    a = np.array([[50, -15, 0, 0, 25, -60, 3, 40, 0, 12],
                  [-7, 3, 100, -100, 0, 1, -1, 50, 0, -33]])
    du, dv, bias_mant, bias_exp, vth = 1000, 300, np.array([0, -3]), np.array([3, 2]), 50
    lif = LIF(shape=(2,), du=du, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp, vth=vth)
    lava = run_lava(a.shape[1], [(a, lif.a_in)], probes={"u": lif.u, "v": lif.v}, sinks={"s": lif.s_out})
    node = CubaLIFNeuron("cuba", dict(n=2, state_frac_bits=0, alpha_syn=np.full(2, 4096 - du - 1),
                                      alpha_mem=np.full(2, 4096 - dv), gain_m=np.ones(2, np.int64), gain_shift=0,
                                      bias_syn=np.zeros(2, np.int64), bias_mem=bias_mant << bias_exp,
                                      v_th=np.full(2, vth << 6), v_reset=np.zeros(2, np.int64)))
    out, rec = node.int_sequence({"in": (a.T << 6)[None]}, ctx_for(a.shape[1]))
    np.testing.assert_array_equal(rec["state"][0, :, :, 0], lava["u"])
    np.testing.assert_array_equal(rec["state"][0, :, :, 1], lava["v"])
    np.testing.assert_array_equal(out["out"][0].astype(int), lava["s"])
    assert lava["v"][0, 0] == 3200 and lava["s"][0, 0] == 0
    assert lava["s"].sum() >= 2 and (lava["u"] < 0).any() and (lava["v"] < 0).any()


# --- lava.proc.dense / lava.proc.sparse --------------------------------------------------------------

W = np.array([[6, -4, 2], [-256, 254, 0], [0, 18, -100]])  # mixed signs, even: on Lava's 8-bit grid
W_OFF_GRID = np.array([[7, -5, 3], [-255, 255, 1], [0, 19, -101]])  # odd values Lava truncates


def test_lava_dense_and_sparse_equal_our_synapses():
    """Lava's bit-accurate ``Dense`` / ``Sparse``: ``a_buff = shift(W s, weight_exp)`` (``np.right_shift`` for a
    negative exponent: floor), sent one step later; ``num_message_bits = 0`` reads ``s_in.astype(bool)``.
    Ours (``_Synapse.int_step``): ``shift(W x, weight_exp)`` with the same binary rule, in the same step.
    One source feeds every synapse; each Lava output is compared with ours shifted by Lava's one step.
    Weights off Lava's grid are truncated by Lava (``clip_weights``, ``truncate_weights``): equal to our step
    on ``lava_effective_weights(W)``, not on ``W`` itself (our step takes the stored weights as they are; the
    exporter only writes weights on the grid). The processes our Lava backend builds (``lava_library``) are
    checked the same way."""
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse

    x = np.array([[3, -5, 1, 0, 7, -8, 1, 0],
                  [-1, 0, 1, 4, -6, 2, 1, 0],
                  [1, 1, 1, -2, 0, 9, -3, 0]])  # (n_in, T); Lava runs one step more for its latency
    cases = {  # name: (our synapse, Lava process)
        "dense_graded_neg": (DenseSynapse.from_dense("s", W, -2, 8, 24),
                             Dense(weights=W, weight_exp=-2, num_weight_bits=8, num_message_bits=24)),
        "dense_graded_pos": (DenseSynapse.from_dense("s", W, 3, 8, 24),
                             Dense(weights=W, weight_exp=3, num_weight_bits=8, num_message_bits=24)),
        "dense_binary": (DenseSynapse.from_dense("s", W, -1, 8, 0),
                         Dense(weights=W, weight_exp=-1, num_weight_bits=8, num_message_bits=0)),
        "sparse_binary": (SparseSynapse.from_dense("s", W, -3, 8, 0),
                          Sparse(weights=sparse.csr_matrix(W), weight_exp=-3, num_weight_bits=8, num_message_bits=0)),
        "sparse_graded": (SparseSynapse.from_dense("s", W, -1, 8, 24),
                          Sparse(weights=sparse.csr_matrix(W), weight_exp=-1, num_weight_bits=8, num_message_bits=24)),
        "dense_7bit_off_grid": (DenseSynapse.from_dense("s", lava_effective_weights(W_OFF_GRID, 7), -2, 7, 24),
                                Dense(weights=W_OFF_GRID, weight_exp=-2, num_weight_bits=7, num_message_bits=24)),
        "sparse_off_grid": (SparseSynapse.from_dense("s", lava_effective_weights(W_OFF_GRID), 0, 8, 24),
                            Sparse(weights=sparse.csr_matrix(W_OFF_GRID), weight_exp=0, num_weight_bits=8,
                                   num_message_bits=24)),
    }
    for kind, exp, bits in ((DenseSynapse, -2, 24), (SparseSynapse, -1, 0)):  # the processes our backend builds
        syn = kind.from_dense("s", W, exp, 8, bits)
        cases[f"backend_{kind.__name__}"] = (syn, syn.lava_library("fixed_pt"))
    lava = run_lava(x.shape[1] + 1, [(np.hstack([x, np.zeros((3, 1), np.int64)]), [p.s_in for _, p in cases.values()])],
                    sinks={name: proc.a_out for name, (_, proc) in cases.items()})
    for name, (ours, _) in cases.items():
        got = lava[name][1:]  # Lava's synapse sends step t's sum at step t + 1
        want = ours.int_step(None, {"in": x.T}, -1, None)[0]["out"]
        np.testing.assert_array_equal(got, want, err_msg=name)
    # off-grid weights taken as stored would not be what Lava computes (a netlist carrying them is accepted by
    # the node's checks: only the exporter keeps weights on the grid)
    raw = DenseSynapse.from_dense("s", W_OFF_GRID, -2, 7, 24).int_step(None, {"in": x.T}, -1, None)[0]["out"]
    assert not np.array_equal(raw, lava["dense_7bit_off_grid"][1:])


# --- lava.proc.rf ------------------------------------------------------------------------------------


def test_lava_rf_states_equal_ssm_modes_and_csilif():
    """``lava.proc.rf`` fixed point (``PyRFModelFixed``)::

        re' = clip(shr_trunc(cos re, 12) - shr_trunc(sin im, 12) + (a_re << state_exp))   (im' likewise)

    with one integer (sin_decay, cos_decay) per population, clipped at ``+-(2^23 - 1)``. Mapping:

    * ``SSMNeuron`` with one mode per neuron: ``decay = (cos, sin)``, ``b = drive``, ``b_exp = state_exp``, and
      the input sampler forced by the input (``alpha_m = 1``, ``beta = 0``, ``x = 256 s`` with P = 8:
      ``q = 256`` or ``0``), so Lava's input is ``s_t * drive``. Neuron 2's drive is ``2^20 << 3 = 2^23``:
      clipped on both sides.
    * ``CSiLIFNeuron`` (F = 22, never at threshold here: ``2 ur <= 2^22``): real input ``I + bias = a_re << 3``,
      imaginary input 0.

    Not comparable: RF's spike ``(re >= vth) & (im >= 0) & (im_prev < 0)`` (ours: stochastic output sampler,
    C-SiLIF's ``2 ur > 2^F`` with a reset), and RF's one decay per population (ours: per neuron and mode).
    period 3.3 gives a negative ``cos``, so negative products are truncated toward zero in both."""
    from lava.proc.rf.process import RF

    steps, state_exp = 12, 3
    gate = np.array([[1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1],
                     [1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0],
                     [1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0]])
    drive_re, drive_im = np.array([3000, -70000, 2**20]), np.array([-1200, 500, -(2**20)])
    real_in = np.vstack([gate * drive_re[:, None], [[5000, -3000, 0, 0, 12000, -2500, 800, 0, 0, -9000, 4000, 1]]])
    imag_in = np.vstack([gate * drive_im[:, None], np.zeros((1, steps), np.int64)])
    rf = RF(shape=(4,), period=3.3, alpha=0.02, state_exp=state_exp, decay_bits=12, vth=2**20)
    sin_d, cos_d = int(np.asarray(rf.sin_decay.init).ravel()[0]), int(np.asarray(rf.cos_decay.init).ravel()[0])
    assert cos_d < 0 < sin_d
    lava = run_lava(steps, [(real_in, rf.a_real_in), (imag_in, rf.a_imag_in)], probes={"re": rf.real, "im": rf.imag})

    ssm = SSMNeuron("ssm", dict(
        layer=0, n=3, n_modes=1, prob_bits=8, site_in=0, site_out=1, phi="identity", in_frac_bits=0, state_frac_bits=0,
        alpha_m=np.ones(3, np.int64), alpha_shift=0, beta=np.zeros(3, np.int64), decay_re=np.full((3, 1), cos_d),
        decay_im=np.full((3, 1), sin_d), b_re=drive_re[:, None], b_im=drive_im[:, None], b_exp=state_exp,
        c_re=np.zeros((3, 1), np.int64), c_im=np.zeros((3, 1), np.int64), c_shift=np.zeros(3, np.int64),
        d=np.zeros(3, np.int64), d_exp=0, b_out=np.zeros(3, np.int64), out_sign=np.ones(3, np.int64)))
    ctx = ctx_for(steps)
    _, rec = ssm.int_sequence({"in": (256 * gate.T)[None]}, ctx)
    np.testing.assert_array_equal(rec["s_in"][0].T, gate.astype(bool))
    np.testing.assert_array_equal(rec["state"][0, :, :, 0, 0], lava["re"][:, :3])
    np.testing.assert_array_equal(rec["state"][0, :, :, 0, 1], lava["im"][:, :3])
    assert ctx.sat.as_dict()["ssm.state"] > 0 and (lava["re"][:, 2] == LIMIT).any()

    csilif = CSiLIFNeuron("csilif", dict(layer=0, n=1, state_frac_bits=22, decay_re=np.array([cos_d]),
                                         decay_im=np.array([sin_d]), bias=np.array([8])))
    out, rec = csilif.int_sequence({"in": ((real_in[3] << state_exp) - 8)[None, :, None]}, ctx_for(steps))
    assert not out["out"].any()
    np.testing.assert_array_equal(rec["state"][0, :, 0, 0], lava["re"][:, 3])
    np.testing.assert_array_equal(rec["state"][0, :, 0, 1], lava["im"][:, 3])
