"""Tests for the counter-based RNG shared by the numpy, Lava and torch backends."""

import numpy as np
import pytest
import torch

from pspike_neuro.numerics import rng
from pspike_neuro.numerics.rng import (
    CounterNoise,
    hash_u32,
    hash_u32_torch,
    uniform_float,
    uniform_float_block,
    uniform_float_torch,
    uniform_int,
    uniform_int_block,
    uniform_int_torch,
)

U32_MAX = 2**32 - 1


@pytest.fixture(autouse=True, scope="module")
def _single_torch_thread():
    """Element-wise int64 ops on ~1e5 elements gain nothing from threads; on a small, busy
    machine OpenMP spinning makes them tens of times slower. Restored after this module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

# (seed, site, neuron, t, sample) -> hash_u32. The same table is in docs/rng.md; it was also
# reproduced by an independent C implementation of the algorithm described there.
TEST_VECTORS = [
    ((0, 0, 0, 0, 0), 0x40489475),
    ((1, 0, 0, 0, 0), 0xEFE64B61),
    ((0, 1, 0, 0, 0), 0x0B81414D),
    ((0, 0, 1, 0, 0), 0x84A9CD93),
    ((0, 0, 0, 1, 0), 0x35EBBC82),
    ((0, 0, 0, 0, 1), 0x6F548755),
    ((42, 3, 17, 100, 5), 0x1E26531F),
    ((0xDEADBEEF, 7, 1023, 65535, 0x80000000), 0x105099AA),
    ((12345, 0x7FFFFFFF, 0xFFFFFFFE, 1, 99), 0x550EC9F3),
    ((U32_MAX, U32_MAX, U32_MAX, U32_MAX, U32_MAX), 0xC6CC4CE9),
]


def _reference_hash(seed, site, neuron, t, sample):
    """Scalar re-implementation with Python ints, written from docs/rng.md step by step."""

    def mul(a, b):
        return (a * b) % 2**32

    def lowbias32(x):
        x ^= x >> 16
        x = mul(x, 0x7FEB352D)
        x ^= x >> 15
        x = mul(x, 0x846CA68B)
        return x ^ (x >> 16)

    def fmix32(x):
        x ^= x >> 16
        x = mul(x, 0x85EBCA6B)
        x ^= x >> 13
        x = mul(x, 0xC2B2AE35)
        return x ^ (x >> 16)

    h = 0x243F6A88
    for key, m in ((seed, 0x9E3779B1), (site, 0x85EBCA77), (sample, 0x165667B1), (neuron, 0xC2B2AE3D), (t, 0x27D4EB2F)):
        h = lowbias32((h + mul(key, m)) % 2**32)
    return fmix32(h)


def _random_keys(rs: np.random.RandomState, n: int) -> np.ndarray:
    """(5, n) uint32-range keys: a mix of full-range, small, and near-2**32-1 values."""
    full = rs.randint(0, 2**32, size=(5, n), dtype=np.int64)
    small = rs.randint(0, 1024, size=(5, n), dtype=np.int64)
    high = U32_MAX - rs.randint(0, 1024, size=(5, n), dtype=np.int64)
    edges = np.array([0, 1, 2**31 - 1, 2**31, 2**32 - 2, U32_MAX], dtype=np.int64)
    edge = edges[rs.randint(0, edges.size, size=(5, n))]
    which = rs.randint(0, 4, size=(5, n))
    return np.choose(which, [full, small, high, edge])


# ------------------------------------------------------------------------------------ vectors


@pytest.mark.parametrize("keys,expected", TEST_VECTORS)
def test_vectors_numpy_torch_and_reference(keys, expected):
    got_np = hash_u32(*keys)
    assert isinstance(got_np, np.uint32)
    assert int(got_np) == expected
    got_t = hash_u32_torch(*keys)
    assert got_t.dtype == torch.int64 and got_t.shape == ()
    assert int(got_t) == expected
    # keys passed as tensors (and as numpy arrays) give the same value
    assert int(hash_u32_torch(*[torch.tensor(k) for k in keys])) == expected
    assert int(hash_u32(*[np.array([k], dtype=np.uint32) for k in keys])[0]) == expected
    assert _reference_hash(*keys) == expected
    seed, site, neuron, t, sample = keys
    assert int(uniform_int(seed, site, neuron, t, 16, sample=sample)) == expected >> 16
    assert int(uniform_int_torch(seed, site, neuron, t, 16, sample=sample)) == expected >> 16
    assert int(uniform_int(seed, site, neuron, t, 24, sample=sample)) == expected >> 8


def test_doc_table_matches_test_vectors():
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "rng.md"
    if not doc.exists():
        pytest.skip("docs/rng.md not present")
    text = doc.read_text()
    for keys, expected in TEST_VECTORS:
        row = "| " + " | ".join(str(k) for k in keys) + f" | 0x{expected:08X} |"
        assert row in text, row


def test_reference_agrees_on_random_keys():
    rs = np.random.RandomState(7)
    keys = _random_keys(rs, 300)
    got = hash_u32(*keys)
    for i in range(keys.shape[1]):
        assert int(got[i]) == _reference_hash(*(int(k) for k in keys[:, i]))


# ------------------------------------------------------------------------- numpy/torch identity


def test_numpy_torch_bit_identity_large_random_set():
    rs = np.random.RandomState(2024)
    keys = _random_keys(rs, 200_000)
    assert (keys == U32_MAX).any() and (keys == 0).any() and (keys > 2**32 - 1025).mean() > 0.2
    got_np = hash_u32(*keys)
    assert got_np.dtype == np.uint32 and got_np.shape == (200_000,)
    got_t = hash_u32_torch(*[torch.from_numpy(k.copy()) for k in keys])
    assert got_t.dtype == torch.int64
    assert got_t.min() >= 0 and got_t.max() <= U32_MAX
    np.testing.assert_array_equal(got_t.numpy(), got_np.astype(np.int64))
    # uniform ints and floats follow
    for p in (1, 8, 16, 24):
        ui = uniform_int(*keys[:4], p, sample=keys[4])
        torch_keys = [torch.from_numpy(k.copy()) for k in keys]
        np.testing.assert_array_equal(uniform_int_torch(*torch_keys[:4], p, sample=torch_keys[4]).numpy(), ui)
        np.testing.assert_array_equal(ui, got_np.astype(np.int64) >> (32 - p))
    uf_np = uniform_float(*keys[:4], 16, sample=keys[4], dtype=np.float32)
    uf_t = uniform_float_torch(*[torch.from_numpy(k.copy()) for k in keys[:4]], 16, sample=torch.from_numpy(keys[4].copy()))
    assert uf_t.dtype == torch.float32
    np.testing.assert_array_equal(uf_t.numpy(), uf_np)


def test_broadcasting_and_mixed_scalar_tensor_inputs():
    neurons = np.arange(7)[None, :]
    samples = np.arange(3)[:, None]
    out = hash_u32(5, 2, neurons, 11, samples)
    assert out.shape == (3, 7) and out.dtype == np.uint32
    for s in range(3):
        for n in range(7):
            assert out[s, n] == hash_u32(5, 2, n, 11, s)
    out_t = hash_u32_torch(5, 2, torch.arange(7)[None, :], 11, torch.arange(3)[:, None])
    np.testing.assert_array_equal(out_t.numpy(), out.astype(np.int64))
    # integer tensor dtypes other than int64 are accepted
    out_t32 = hash_u32_torch(5, 2, torch.arange(7, dtype=torch.int32)[None, :], 11, torch.arange(3, dtype=torch.uint8)[:, None])
    assert torch.equal(out_t32, out_t)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_numpy():
    rs = np.random.RandomState(3)
    keys = _random_keys(rs, 50_000)
    got = hash_u32_torch(*[torch.from_numpy(k.copy()).cuda() for k in keys])
    assert got.is_cuda
    np.testing.assert_array_equal(got.cpu().numpy(), hash_u32(*keys).astype(np.int64))
    noise = CounterNoise(9, prob_bits=16)
    torch.testing.assert_close(noise(1, (2, 5, 6), "cuda", torch.float32).cpu(), noise(1, (2, 5, 6), "cpu", torch.float32),
                               rtol=0, atol=0)


# ---------------------------------------------------------------------------- key sensitivity


@pytest.mark.parametrize("key_index", range(5))
@pytest.mark.parametrize("change", ["plus_one", "flip_random_bit"])
def test_every_key_changes_the_output(key_index, change):
    rs = np.random.RandomState(100 + key_index)
    n = 50_000
    keys = _random_keys(rs, n)
    changed = keys.copy()
    if change == "plus_one":
        changed[key_index] = (changed[key_index] + 1) % 2**32
    else:
        changed[key_index] ^= np.left_shift(np.int64(1), rs.randint(0, 32, size=n).astype(np.int64))
    a, b = hash_u32(*keys), hash_u32(*changed)
    assert (a != b).mean() >= 0.99
    # by construction it is a permutation in each key, so in fact every output changes
    assert (a != b).all()
    # and about half of the bits flip (avalanche)
    flipped = np.unpackbits((a ^ b).view(np.uint8)).mean()
    assert abs(flipped - 0.5) < 0.01


# ----------------------------------------------------------------------------------- uniformity


def test_chi_square_top4_bits():
    # 2**18 draws along every axis a simulator walks: neurons x steps, for a few samples/sites
    neurons = np.arange(512)[None, :]
    steps = np.arange(128)[:, None]
    draws = np.concatenate(
        [hash_u32(123, site, neurons, steps, sample).ravel() for site, sample in ((0, 0), (1, 0), (0, 1), (5, 7))]
    )
    assert draws.size == 2**18
    counts = np.bincount(draws >> 28, minlength=16)
    expected = draws.size / 16
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 37.70  # chi-square, 15 degrees of freedom, p = 0.001


def test_chi_square_low_bits_of_uniform_int():
    # the lowest 4 of 16 bits must be uniform too
    r = uniform_int(9, 2, np.arange(4096)[None, :], np.arange(64)[:, None], 16).ravel()
    counts = np.bincount(r & 15, minlength=16)
    expected = r.size / 16
    assert ((counts - expected) ** 2 / expected).sum() < 37.70


def test_uniform_float_mean_and_range():
    n = 2**18
    u = uniform_float(77, 3, np.arange(n), 0, 16)
    assert u.dtype == np.float64 and u.min() >= 0.0 and u.max() < 1.0
    se = np.sqrt(1.0 / 12.0 / n)
    assert abs(u.mean() - 0.5) < 4 * se
    ut = uniform_float_torch(77, 3, torch.arange(n), 0, 16, dtype=torch.float64)
    np.testing.assert_array_equal(ut.numpy(), u)
    # exact: every value is k / 2**16
    assert np.array_equal(u * 2**16, np.floor(u * 2**16))


def test_no_correlation_between_neighbouring_steps_and_neurons():
    u = uniform_float(1, 0, np.arange(1024)[None, :], np.arange(256)[:, None], 24)
    n = u[:, :-1].size
    tol = 4 / np.sqrt(n)
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < tol  # neuron h vs h+1
    n = u[:-1].size
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < 4 / np.sqrt(n)  # step t vs t+1


# ------------------------------------------------------------------------------ spike probability


@pytest.mark.parametrize("prob_bits", [8, 16, 24])
def test_spike_probability_r_less_than_q(prob_bits):
    n = 2**18
    r = uniform_int(31, 4, np.arange(n), 12, prob_bits)
    full = 2**prob_bits
    assert r.dtype == np.int64 and r.min() >= 0 and r.max() < full
    assert np.count_nonzero(r < 0) == 0  # q = 0: never
    assert np.count_nonzero(r < full) == n  # q = 2**P: always
    # q = 1: probability 2**-P (for P = 8 that is enough events to check the rate)
    p1 = 1 / full
    c1 = np.count_nonzero(r < 1)
    assert abs(c1 - n * p1) <= 4 * np.sqrt(n * p1 * (1 - p1)) + 1
    # q = 2**P / 3
    q = full // 3
    p = q / full
    c = np.count_nonzero(r < q)
    assert abs(c - n * p) < 4 * np.sqrt(n * p * (1 - p))
    # torch float path gives the same spikes: u < q / 2**P  <=>  r < q
    u = uniform_float_torch(31, 4, torch.arange(n), 12, prob_bits, dtype=torch.float32)
    assert torch.equal(u < q / full, torch.from_numpy(r < q))


# ---------------------------------------------------------------------------------------- blocks


def test_blocks_match_elementwise():
    samples = [0, 3, 2**32 - 1]
    blk = uniform_int_block(8, 1, 10, 5, 16, samples)
    assert blk.shape == (3, 10) and blk.dtype == np.int64
    for i, s in enumerate(samples):
        for n in range(10):
            assert blk[i, n] == uniform_int(8, 1, n, 5, 16, sample=s)
    fblk = uniform_float_block(8, 1, 10, 5, 16, samples)
    np.testing.assert_array_equal(fblk, blk / 2**16)
    assert uniform_int_block(8, 1, 0, 5, 16, samples).shape == (3, 0)
    assert uniform_int_block(8, 1, 4, 5, 16, 2).shape == (1, 4)


# ----------------------------------------------------------------------------------- CounterNoise


def test_counter_noise_shape_range_dtype_and_values():
    noise = CounterNoise(seed=11, prob_bits=16)
    u = noise(2, (3, 5, 7), "cpu", torch.float32)
    assert u.shape == (3, 5, 7) and u.dtype == torch.float32 and u.device.type == "cpu"
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    for b in range(3):
        for t in range(5):
            for h in range(7):
                assert float(u[b, t, h]) == uniform_float(11, 2, h, t, 16, sample=b)
    # the integer view and the numpy step blocks agree
    r = noise.int_noise(2, (3, 5, 7))
    assert r.dtype == torch.int64
    assert torch.equal(r.to(torch.float32) / 2**16, u)
    for t in range(5):
        np.testing.assert_array_equal(r[:, t, :].numpy(), uniform_int_block(11, 2, 7, t, 16, [0, 1, 2]))


def test_counter_noise_deterministic_and_distinct():
    a = CounterNoise(seed=1)
    shape = (4, 16, 32)
    u1 = a(0, shape, "cpu", torch.float32)
    assert torch.equal(u1, CounterNoise(seed=1)(0, shape, "cpu", torch.float32))
    assert torch.equal(u1, a(0, shape, "cpu", torch.float32))
    other_site = a(1, shape, "cpu", torch.float32)
    other_seed = CounterNoise(seed=2)(0, shape, "cpu", torch.float32)
    for other in (other_site, other_seed):
        assert (other != u1).float().mean() > 0.99
    # batch elements differ from each other
    assert (u1[0] != u1[1]).float().mean() > 0.99


def test_counter_noise_sample_ids_t0_and_dtypes():
    ids = torch.tensor([5, 9, 5])
    noise = CounterNoise(3, prob_bits=12, sample_ids=ids)
    u = noise(4, (3, 6, 8), None, torch.float64)
    assert u.dtype == torch.float64
    assert torch.equal(u[0], u[2])  # same sample id -> same numbers
    ref = CounterNoise(3, prob_bits=12)(4, (10, 6, 8), "cpu", torch.float64)
    assert torch.equal(u[1], ref[9])
    # t0 offsets the step index: a chunked sequence equals the whole one
    whole = noise(4, (3, 10, 8), "cpu", torch.float32)
    tail = noise(4, (3, 4, 8), "cpu", torch.float32, t0=6)
    assert torch.equal(whole[:, 6:], tail)
    with pytest.raises(ValueError):
        noise(4, (2, 6, 8), "cpu", torch.float32)  # batch size != len(sample_ids)
    with pytest.raises(ValueError):
        CounterNoise(3, prob_bits=16)(0, (2, 3, 4), "cpu", torch.float16)  # 16 bits do not fit fp16
    assert CounterNoise(3, prob_bits=8)(0, (2, 3, 4), "cpu", torch.bfloat16).dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [0, -1, 25, 32, 2.5])
def test_prob_bits_out_of_range(bad):
    with pytest.raises(ValueError):
        uniform_int(0, 0, 0, 0, bad)
    with pytest.raises(ValueError):
        uniform_int_torch(0, 0, 0, 0, bad)
    with pytest.raises(ValueError):
        uniform_float(0, 0, 0, 0, bad)
    with pytest.raises(ValueError):
        uniform_float_torch(0, 0, 0, 0, bad)
    with pytest.raises(ValueError):
        uniform_int_block(0, 0, 4, 0, bad, [0])
    with pytest.raises(ValueError):
        CounterNoise(0, prob_bits=bad)


def test_keys_out_of_range_rejected():
    with pytest.raises(ValueError):
        hash_u32(-1, 0, 0, 0)
    with pytest.raises(ValueError):
        hash_u32(0, 0, np.array([0, 2**32]), 0)
    with pytest.raises(ValueError):
        hash_u32_torch(0, 2**32, 0, 0)
    with pytest.raises(TypeError):
        hash_u32(0, 0, np.array([0.5]), 0)
    with pytest.raises(TypeError):
        hash_u32_torch(0, 0, torch.tensor([0.5]), 0)


def test_module_exports():
    """The public API is the table of docs/rng.md ("API summary") plus the two constants it names."""
    documented = {"hash_u32", "hash_u32_torch", "uniform_int", "uniform_int_torch", "uniform_float",
                  "uniform_float_torch", "uniform_int_block", "uniform_float_block", "CounterNoise"}
    assert set(rng.__all__) == documented | {"MASK32", "MAX_PROB_BITS"}
    assert rng.MASK32 == 0xFFFFFFFF and rng.MAX_PROB_BITS == 24   # 32-bit keys; prob_bits in [1, 24]
    for name in rng.__all__:
        assert hasattr(rng, name)
