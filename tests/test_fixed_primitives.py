"""Integer primitives of docs/numerics.md against hand-computed values."""

import numpy as np
import pytest
from scipy import sparse

from pspike_neuro.numerics.fixed import (
    SaturationCounter,
    lava_effective_weights,
    quantize_decay,
    quantize_mantissa,
    quantize_weights,
    rf_step,
    saturate,
    shift,
    shr_floor,
    shr_trunc,
    synaptic_input,
)


def test_shifts_round_as_documented():
    assert shr_floor(-5, 1) == -3 and shr_floor(5, 1) == 2
    assert shr_trunc(-5, 1) == -2 and shr_trunc(5, 1) == 2
    assert shift(3, 2) == 12 and shift(-7, -1) == -4 and shift(7, 0) == 7


def test_saturation_counts_events():
    clipped, n = saturate(np.array([0, 2**23 - 1, 2**23, -(2**23), -(2**23) + 1]))
    assert clipped.tolist() == [0, 2**23 - 1, 2**23 - 1, -(2**23) + 1, -(2**23) + 1] and n == 2
    counter = SaturationCounter()
    counter.add("a", n)
    counter.add("a", 1)
    counter.add("b", 0)
    assert counter.as_dict() == {"a": 3, "b": 0} and counter.total() == 3


def test_lava_effective_weights_by_hand():
    # mixed signs, 8 bits: the LSB is dropped (floor), as lava.utils.weightutils does: 3 -> 2, -5 -> -6
    assert lava_effective_weights([[3, -5, 7]]).tolist() == [[2, -6, 6]]
    assert lava_effective_weights([[300, -300]]).tolist() == [[254, -256]]
    # excitatory, 6 bits: clear 2 low bits
    assert lava_effective_weights([[7, 255, 1]], num_weight_bits=6).tolist() == [[4, 252, 0]]
    # inhibitory: the magnitude is truncated
    assert lava_effective_weights([[-7, -1]], num_weight_bits=7).tolist() == [[-6, 0]]


@pytest.mark.parametrize("bits", [8, 6, 4, 2])
@pytest.mark.parametrize("sign", ["mixed", "pos", "neg"])
def test_quantize_weights_lands_on_lavas_grid(bits, sign):
    rng = np.random.default_rng(bits)
    w = rng.normal(size=(6, 9))
    w = np.abs(w) if sign == "pos" else -np.abs(w) if sign == "neg" else w
    w_int, exp = quantize_weights(w, bits)
    np.testing.assert_array_equal(lava_effective_weights(w_int, bits), w_int)
    step = 2 ** (8 - bits + (sign == "mixed"))
    assert np.all(w_int % step == 0)
    assert np.max(np.abs(w - w_int * 2.0**exp)) <= step / 2 * 2.0**exp + 1e-12
    # the exponent is the smallest that holds the largest weight: one step down would overflow
    with pytest.raises(AssertionError):
        smaller = (np.rint(w / 2.0 ** (exp - 1) / step) * step).astype(np.int64)
        np.testing.assert_array_equal(lava_effective_weights(smaller, bits), smaller)


def test_quantize_weights_edge_cases():
    w_int, exp = quantize_weights(np.zeros((2, 2)))
    assert not w_int.any() and exp == 0
    w_int, exp = quantize_weights(np.array([[1.0, -0.5]]))
    assert w_int.tolist() == [[128, -64]] and exp == -7
    with pytest.raises(ValueError, match="NaN"):
        quantize_weights(np.array([np.nan, 1.0]))


def test_synaptic_input_binary_and_graded():
    w = np.array([[2, 4, 6]])
    assert synaptic_input(w, np.array([5, 0, -3]), 0, 0).tolist() == [8]       # binary: both count as 1
    assert synaptic_input(w, np.array([5, 0, -3]), 0, 8).tolist() == [-8]      # graded
    assert synaptic_input(w, np.array([1, 1, 1]), -2, 0).tolist() == [3]       # 12 >> 2
    assert synaptic_input(sparse.csr_matrix(w), np.array([[1, 0, 1], [0, 1, 0]]), 1, 0).tolist() == [[16], [8]]
    assert synaptic_input(w, np.array([0, 0, -1]), -1, 8).tolist() == [-3]     # floor(-6 / 2)


def test_quantize_mantissa_by_hand():
    m, e = quantize_mantissa(np.array([1.0, -0.25, 0.1]), 8)
    assert e == -6 and m.tolist() == [64, -16, 6]
    m, e = quantize_mantissa(np.array([127.4]), 8)
    assert (m.tolist(), e) == ([127], 0)
    m, e = quantize_mantissa(np.array([127.6]), 8)  # rounds to 128: one more exponent bit
    assert (m.tolist(), e) == ([64], 1)
    assert quantize_mantissa(np.zeros(3), 8)[1] == 0


def test_quantize_decay_and_stability_check():
    re, im = quantize_decay(np.array([0.5 + 0.25j, 0.99951 + 0j]))
    assert re.tolist() == [2048, 4094] and im.tolist() == [1024, 0]
    with pytest.raises(ValueError, match="1 SSM mode"):
        quantize_decay(np.array([0.99995 + 0.0j]))


def test_rf_step_by_hand():
    # decay 0.5 + 0.5i (2048, 2048); state (100, -3)
    re, im, n = rf_step(np.array([100]), np.array([-3]), 2048, 2048, 7, 0)
    # re' = trunc(2048*100/4096) - trunc(2048*-3/4096) + 7 = 50 - (-1) + 7 = 58
    # im' = trunc(2048*100/4096) + trunc(2048*-3/4096) = 50 + (-1) = 49
    assert (re.tolist(), im.tolist(), n) == ([58], [49], 0)
    re, im, n = rf_step(np.array([2**23 - 10]), np.array([0]), 4095, 0, 5000, 0)
    assert re.tolist() == [2**23 - 1] and n == 1


def test_float_fast_path_of_the_neuron_step_equals_the_integer_step():
    """Random parameters and states across the full 24-bit range, saturation included."""
    from pspike_neuro.nodes.ssm_neuron import NeuronParams, step_int, step_int_as_float

    rng = np.random.default_rng(3)
    n, m, batch = 12, 5, 7
    lim = 2**23 - 1
    node = dict(layer=0, prob_bits=16, site_in=0, site_out=1, phi="relu",
                alpha_m=rng.integers(-4000, 4000, n), alpha_shift=9, beta=rng.integers(-2**15, 2**16, n),
                decay_re=rng.integers(-4095, 4096, (n, m)), decay_im=rng.integers(-4095, 4096, (n, m)),
                b_re=rng.integers(-127, 128, (n, m)), b_im=rng.integers(-127, 128, (n, m)), b_exp=16,
                c_re=rng.integers(-127, 128, (n, m)), c_im=rng.integers(-127, 128, (n, m)), c_shift=7,
                d=rng.integers(-127, 128, n), d_exp=3, b_out=rng.integers(-2**15, 2**15, n),
                out_sign=rng.choice([-1, 1], n))
    p = NeuronParams({k: np.asarray(v) if isinstance(v, np.ndarray) else v for k, v in node.items()})
    assert p.float_exact
    zr = rng.integers(-lim, lim + 1, (batch, n, m))
    zi = rng.integers(-lim, lim + 1, (batch, n, m))
    fr, fi = zr.astype(float), zi.astype(float)
    sat_seen = 0
    for _ in range(20):
        x = rng.integers(-2**22, 2**22, (batch, n))
        r_in, r_out = rng.integers(0, 2**16, (2, batch, n))
        valid = np.ones((batch, 1), bool)
        a = step_int(p, x, r_in, r_out, valid, zr, zi)
        b = step_int_as_float(p, x, r_in, r_out, valid, fr, fi)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[2], b[2].astype(np.int64))
        np.testing.assert_array_equal(a[3], b[3].astype(np.int64))
        assert a[4:] == b[4:]
        sat_seen += a[4]
        zr, zi, fr, fi = a[2], a[3], b[2], b[3]
    assert sat_seen > 0
