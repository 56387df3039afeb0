"""The compiled kernels of the reference simulator give the same integers as its numpy steps."""

import numpy as np
import pytest

from pspike_neuro.nodes import RunContext, ssm_neuron
from pspike_neuro.nodes.clamp_fuse import ClampFuse
from pspike_neuro.nodes.ssm_neuron import SSMNeuron
from pspike_neuro.numerics import kernels
from pspike_neuro.numerics.rng import uniform_int
from pspike_neuro.sim import reference

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")


def random_neuron(rng, n, m, c_max=127, phi="relu"):
    return dict(layer=2, n=n, n_modes=m, in_frac_bits=8, state_frac_bits=8, prob_bits=16, site_in=8, site_out=9,
                phi=phi,
                alpha_m=rng.integers(-4000, 4000, n), alpha_shift=9, beta=rng.integers(-2**15, 2**16, n),
                decay_re=rng.integers(-4095, 4096, (n, m)), decay_im=rng.integers(-4095, 4096, (n, m)),
                b_re=rng.integers(-127, 128, (n, m)), b_im=rng.integers(-127, 128, (n, m)), b_exp=16,
                c_re=rng.integers(-c_max, c_max + 1, (n, m)), c_im=rng.integers(-c_max, c_max + 1, (n, m)),
                c_shift=rng.integers(0, 12, n), d=rng.integers(-127, 128, n), d_exp=3,
                b_out=rng.integers(-2**15, 2**15, n), out_sign=rng.choice([-1, 1], n))


@pytest.mark.parametrize("prob_bits", [1, 7, 16, 24])
def test_random_block_equals_the_counter_based_generator(prob_bits):
    samples = np.array([0, 5, 2**32 - 1, 77])
    def numpy_block(seed, length):
        return uniform_int(seed, 3, np.arange(9)[None, None, :], np.arange(length)[None, :, None], prob_bits,
                           sample=samples[:, None, None]).astype(np.int64)

    got = kernels.random_block(2**32 - 1, 3, 9, 11, prob_bits, samples)
    np.testing.assert_array_equal(got, numpy_block(2**32 - 1, 11))
    later = kernels.random_block(7, 3, 9, 5, prob_bits, samples, t0=20)
    np.testing.assert_array_equal(later, numpy_block(7, 25)[:, 20:])
    with pytest.raises(ValueError):
        kernels.random_block(0, 0, 2, 2, 25, samples)


@pytest.mark.parametrize("float_path", [True, False])
@pytest.mark.parametrize("phi", ["relu", "identity"])
def test_neuron_sequence_equals_the_numpy_step_loop(monkeypatch, float_path, phi):
    """Saturating inputs and states, padded lengths, per-neuron C shifts, both arithmetic paths."""
    rng = np.random.default_rng(11)
    node = random_neuron(rng, n=13, m=5, phi=phi)
    batch, length = 6, 30
    x = rng.integers(-2**22, 2**22, (batch, length, 13))
    valid = np.arange(length)[None] < rng.integers(1, length + 1, batch)[:, None]
    samples = np.array([3, 1, 4, 1, 5, 9])
    monkeypatch.setattr(kernels, "FLOAT_PATH", float_path)
    neuron = SSMNeuron("neuron2", node)
    results = {}
    for use in (True, False):
        monkeypatch.setattr(ssm_neuron, "USE_KERNELS", use)
        ctx = RunContext(seed=7, samples=samples, valid=valid, record_states=True)
        out, rec = neuron.int_sequence({"in": x}, ctx)
        results[use] = (rec["s_in"], out["out"], rec["state"], ctx.sat.as_dict())
    for got, want in zip(results[True], results[False]):
        if isinstance(want, dict):
            assert got == want
        else:
            np.testing.assert_array_equal(got, want)
    sat = results[False][3]
    assert sat["neuron2.state"] > 0 and sat["neuron2.output"] > 0  # saturation is exercised
    assert results[False][1].any() and not results[False][1].all()


@pytest.mark.parametrize("psi,residual", [("relu", True), ("identity", True), ("relu", False)])
def test_fuse_kernel_equals_the_numpy_step(psi, residual, monkeypatch):
    rng = np.random.default_rng(5)
    n = 17
    node = ClampFuse("fuse1", dict(layer=1, n=n, psi=psi, residual=residual, bias=rng.integers(-2**20, 2**20, n),
                                   in_frac_bits=8, out_frac_bits=8, post_scale_m=rng.integers(-2**12, 2**12, n),
                                   post_shift=9, post_offset=rng.integers(-2**20, 2**20, n)))
    x = rng.integers(-2**23 + 1, 2**23, (4, 10, n))
    a = rng.integers(-2**23, 2**23, (4, 10, n))
    runs = []
    for available in (True, False):
        monkeypatch.setattr(kernels, "AVAILABLE", available)
        ctx = RunContext(seed=0, samples=np.arange(4), valid=np.ones((4, 10), bool))
        runs.append((node.int_step(None, {"residual": x, "mixer": a}, -1, ctx)[0]["out"], ctx.sat.as_dict()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and runs[0][1]["fuse1.out"] > 0


def test_simulate_is_the_same_with_and_without_kernels(small_checkpoint, monkeypatch):
    from pspike_neuro.data import load_task
    from pspike_neuro.export.build import build_netlist
    from pspike_neuro.quant.quantize import QuantConfig

    net, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    x0 = np.asarray(load_task("sdigits").test.x[:12])
    lengths = np.random.default_rng(0).integers(1, x0.shape[1] + 1, 12)
    runs = []
    for use in (True, False):
        monkeypatch.setattr(ssm_neuron, "USE_KERNELS", use)
        monkeypatch.setattr(kernels, "AVAILABLE", use)
        runs.append(reference.simulate(net, x0, seed=4, samples=np.arange(12) + 100, lengths=lengths,
                                       record_states=True))
    a, b = runs
    np.testing.assert_array_equal(a.logits, b.logits)
    assert a.saturation == b.saturation
    assert a.outputs.keys() == b.outputs.keys()
    for name in a.outputs:
        np.testing.assert_array_equal(a.outputs[name], b.outputs[name], err_msg=name)
    for name in a.layers:
        np.testing.assert_array_equal(a.states(name), b.states(name))
        np.testing.assert_array_equal(a.records[name]["s_in"], b.records[name]["s_in"])


@pytest.mark.parametrize("w_max, graded", [(127, False), (2**14, False), (2**20, False), (2**20, True), (2**30, True)])
def test_synaptic_input_is_exact_on_every_arithmetic_path(w_max, graded):
    """float32 BLAS below 2^24, float64 below 2^53, int64 above: always the integer sum."""
    from pspike_neuro.numerics.fixed import shift, synaptic_input

    rng = np.random.default_rng(8)
    w = rng.integers(-w_max, w_max + 1, (31, 700))
    x = rng.integers(-2**23 + 1, 2**23, (50, 700)) if graded else rng.random((50, 700)) < 0.9
    want = shift((w.astype(object) @ x.astype(np.int64).T.astype(object)).T.astype(np.int64), -3)
    np.testing.assert_array_equal(synaptic_input(w, x, -3, 24 if graded else 0), want)
