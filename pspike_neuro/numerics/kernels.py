"""Compiled kernel of the SSM population over a whole sequence (numba), for the reference simulator.

``neuron_sequence`` runs :func:`pspike_neuro.nodes.ssm_neuron.int_step` for every step of a batch
in one compiled loop (samples in parallel, modes in registers), with the same integer arithmetic:
``shr_trunc`` as ``(a + ((a >> 63) & (2^n - 1))) >> n``, saturation to 24 bits counted element by
element, the readout sum in int64. It is 10-20x faster than the step-by-step numpy loop and gives
the same integers (``tests/test_sim_kernels.py`` checks it against ``neuron_step``, saturation
included). Without numba, ``AVAILABLE`` is False and the reference keeps its numpy loop.
"""

from __future__ import annotations

import os

import numpy as np

try:  # numba is a dependency; the numpy path stays for environments without it
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

AVAILABLE = numba is not None
if AVAILABLE and "NUMBA_THREADING_LAYER" not in os.environ:
    # workqueue threads sleep between parallel calls; GNU OpenMP's spin for a while and steal the
    # cores from the numpy code that runs between kernel calls (calibration: 2x slower with omp)
    numba.config.THREADING_LAYER = "workqueue"
FLOAT_PATH = True
# the float64 kernel's every intermediate is an integer below 2^53 (NeuronParams.float_exact), so
# reassociating the readout sum or fusing a multiply-add cannot change a result; zeros' signs vanish
# in the int64 conversion. These flags let LLVM vectorize the mode loop.
FASTMATH = {"reassoc", "contract", "nsz"}
STATE_LIMIT = (1 << 23) - 1


def _input_spike(a, alpha_shift, a_mask, beta, one, ok, r):
    """The input sampler of one neuron: ``q = clip(shr_trunc(alpha * x, alpha_shift) + beta, 0, one)``,
    a spike where the step is valid and ``r < q`` (``a = alpha * x``)."""
    q = ((a + ((a >> 63) & a_mask)) >> alpha_shift) + beta
    q = min(max(q, 0), one)
    return 1 if (ok and r < q) else 0


def _output_spike(v, sign, relu, b_out, one, r):
    """The output sampler of one neuron from its readout ``v`` (before saturation; it includes
    ``b_out`` unless ``relu``): returns the spike ``r < clip(g, 0, one)`` with ``g = sat24(v)``, or
    ``g = sign max(sat24(v), 0) + b_out`` for relu, and 1 where ``v`` was saturated, else 0."""
    clipped = 0
    if v > STATE_LIMIT:
        v = STATE_LIMIT
        clipped = 1
    elif v < -STATE_LIMIT:
        v = -STATE_LIMIT
        clipped = 1
    g = sign * max(v, 0) + b_out if relu else v
    g = min(max(g, 0), one)
    return r < g, clipped


if AVAILABLE:  # compiled into the kernels that call them
    _input_spike = numba.njit(inline="always", cache=True)(_input_spike)
    _output_spike = numba.njit(inline="always", cache=True)(_output_spike)


def _neuron_sequence(x, valid, r_in, r_out, alpha_m, alpha_shift, beta, one, dr, di, b_re, b_im, c_re, c_im,
                     c_shift, d_term, b_out, sign, relu, decay_bits, s_out, o_out, states, record_states,
                     sat_counts):
    batch, length, n = x.shape
    m = dr.shape[1]
    lim = STATE_LIMIT
    a_mask = (np.int64(1) << alpha_shift) - 1
    d_mask = (np.int64(1) << decay_bits) - 1
    for b in numba.prange(batch):
        zr = np.zeros((n, m), np.int64)
        zi = np.zeros((n, m), np.int64)
        n_state = 0
        n_out = 0
        for t in range(length):
            ok = valid[b, t]
            for i in range(n):
                s = _input_spike(alpha_m[i] * x[b, t, i], alpha_shift, a_mask, beta[i], one, ok, r_in[b, t, i])
                acc = np.int64(0)
                for k in range(m):
                    p1 = dr[i, k] * zr[i, k]
                    p2 = di[i, k] * zi[i, k]
                    p3 = di[i, k] * zr[i, k]
                    p4 = dr[i, k] * zi[i, k]
                    nr = (((p1 + ((p1 >> 63) & d_mask)) >> decay_bits)
                          - ((p2 + ((p2 >> 63) & d_mask)) >> decay_bits) + s * b_re[i, k])
                    ni = (((p3 + ((p3 >> 63) & d_mask)) >> decay_bits)
                          + ((p4 + ((p4 >> 63) & d_mask)) >> decay_bits) + s * b_im[i, k])
                    if nr > lim:
                        nr = lim
                        n_state += 1
                    elif nr < -lim:
                        nr = -lim
                        n_state += 1
                    if ni > lim:
                        ni = lim
                        n_state += 1
                    elif ni < -lim:
                        ni = -lim
                        n_state += 1
                    zr[i, k] = nr
                    zi[i, k] = ni
                    acc += c_re[i, k] * nr - c_im[i, k] * ni
                    if record_states:
                        states[b, t, i, k, 0] = nr
                        states[b, t, i, k, 1] = ni
                c_mask = (np.int64(1) << c_shift[i]) - 1
                v = ((acc + ((acc >> 63) & c_mask)) >> c_shift[i]) + s * d_term[i] + (0 if relu else b_out[i])
                s_out[b, t, i] = s == 1
                o_out[b, t, i], clipped = _output_spike(v, sign[i], relu, b_out[i], one, r_out[b, t, i])
                n_out += clipped
        sat_counts[b, 0] = n_state
        sat_counts[b, 1] = n_out


def _neuron_sequence_f64(x, valid, r_in, r_out, alpha_m, alpha_shift, beta, one, f_dr, f_di, f_b_re, f_b_im,
                         f_c_re, f_c_im, f_c_scale, d_term, b_out, sign, relu, s_out, o_out, states, record_states,
                         sat_counts):
    """The same in float64 on exactly representable integers (``neuron_step_float``), branch-free so
    that the mode loop vectorizes. Valid where ``NeuronParams.float_exact``."""
    batch, length, n = x.shape
    m = f_dr.shape[1]
    lim = float(STATE_LIMIT)
    a_mask = (np.int64(1) << alpha_shift) - 1
    for b in numba.prange(batch):
        zr = np.zeros((n, m), np.float64)
        zi = np.zeros((n, m), np.float64)
        n_state = 0
        n_out = 0
        for t in range(length):
            ok = valid[b, t]
            for i in range(n):
                s = _input_spike(alpha_m[i] * x[b, t, i], alpha_shift, a_mask, beta[i], one, ok, r_in[b, t, i])
                sf = float(s)
                acc = 0.0
                for k in range(m):
                    nr = np.trunc(f_dr[i, k] * zr[i, k]) - np.trunc(f_di[i, k] * zi[i, k]) + sf * f_b_re[i, k]
                    ni = np.trunc(f_di[i, k] * zr[i, k]) + np.trunc(f_dr[i, k] * zi[i, k]) + sf * f_b_im[i, k]
                    cr = min(max(nr, -lim), lim)
                    ci = min(max(ni, -lim), lim)
                    n_state += (cr != nr) + (ci != ni)
                    zr[i, k] = cr
                    zi[i, k] = ci
                    acc += f_c_re[i, k] * cr - f_c_im[i, k] * ci
                if record_states:
                    for k in range(m):
                        states[b, t, i, k, 0] = np.int64(zr[i, k])
                        states[b, t, i, k, 1] = np.int64(zi[i, k])
                v = np.int64(np.trunc(acc * f_c_scale[i])) + s * d_term[i] + (0 if relu else b_out[i])
                s_out[b, t, i] = s == 1
                o_out[b, t, i], clipped = _output_spike(v, sign[i], relu, b_out[i], one, r_out[b, t, i])
                n_out += clipped
        sat_counts[b, 0] = n_state
        sat_counts[b, 1] = n_out


def _random_block(seed, site, samples, n, length, t0, shift, out):
    """``out[b, t, i] = uniform_int(seed, site, i, t0 + t, prob_bits, sample=samples[b])``
    (``shift = 32 - prob_bits``): the hash of ``pspike_neuro.numerics.rng`` in uint64 arithmetic."""
    mask = np.uint64(0xFFFFFFFF)

    def lowbias32(x):
        x ^= x >> np.uint64(16)
        x = (x * np.uint64(0x7FEB352D)) & mask
        x ^= x >> np.uint64(15)
        x = (x * np.uint64(0x846CA68B)) & mask
        return x ^ (x >> np.uint64(16))

    def absorb(h, key, mult):
        return lowbias32((h + ((key * mult) & mask)) & mask)

    h0 = absorb(np.uint64(0x243F6A88), np.uint64(seed), np.uint64(0x9E3779B1))
    h0 = absorb(h0, np.uint64(site), np.uint64(0x85EBCA77))
    for b in numba.prange(samples.shape[0]):
        hb = absorb(h0, np.uint64(samples[b]), np.uint64(0x165667B1))
        for i in range(n):
            hi = absorb(hb, np.uint64(i), np.uint64(0xC2B2AE3D))
            for t in range(length):
                h = absorb(hi, np.uint64(t0 + t), np.uint64(0x27D4EB2F))
                h ^= h >> np.uint64(16)
                h = (h * np.uint64(0x85EBCA6B)) & mask
                h ^= h >> np.uint64(13)
                h = (h * np.uint64(0xC2B2AE35)) & mask
                h ^= h >> np.uint64(16)
                out[b, t, i] = np.int64(h >> np.uint64(shift))


_compiled_random = numba.njit(parallel=True, cache=True, nogil=True)(_random_block) if AVAILABLE else None


def random_block(seed: int, site: int, n: int, length: int, prob_bits: int, samples, t0: int = 0) -> np.ndarray:
    """Compiled :func:`pspike_neuro.numerics.rng.random_block`: (B, L, n) int64, the same numbers
    (steps ``t0 .. t0 + length - 1``)."""
    if not 1 <= int(prob_bits) <= 24:
        raise ValueError(f"prob_bits must be in 1..24, got {prob_bits}")
    samples = np.ascontiguousarray(samples, np.int64).reshape(-1)
    keys = [int(seed), int(site), int(t0), int(t0) + max(length - 1, 0)]
    keys += [int(samples.min()), int(samples.max())] if samples.size else []
    if any(not 0 <= k <= 0xFFFFFFFF for k in keys):
        raise ValueError("seed, site and sample ids must be in [0, 2**32)")
    out = np.empty((samples.shape[0], length, n), np.int64)
    _compiled_random(int(seed), int(site), samples, n, length, int(t0), 32 - int(prob_bits), out)
    return out


_compiled_f64 = numba.njit(parallel=True, cache=True, nogil=True, fastmath=FASTMATH)(_neuron_sequence_f64) if AVAILABLE else None
_compiled = numba.njit(parallel=True, cache=True, nogil=True)(_neuron_sequence) if AVAILABLE else None


def neuron_sequence(p, x, valid, r_in, r_out, record_states: bool = False):
    """The SSM population ``p`` (a ``NeuronParams``) over ``x`` (B, L, n) int64 from zero state.

    Returns ``s, o`` (B, L, n) bool, the states (B, L, n, M, 2) int64 or None, and the numbers of
    state and output saturation events.
    """
    batch, length, n = x.shape
    m = p.dr.shape[1]
    s = np.zeros((batch, length, n), bool)
    o = np.zeros((batch, length, n), bool)
    states = np.zeros((batch, length, n, m, 2) if record_states else (1, 1, 1, 1, 2), np.int64)
    sat = np.zeros((batch, 2), np.int64)
    c_shift = np.broadcast_to(np.asarray(p.c_shift, np.int64), (n,)).copy()
    i64 = lambda a: np.ascontiguousarray(a, np.int64)  # noqa: E731
    f64 = lambda a: np.ascontiguousarray(np.broadcast_to(a, (n,) + np.shape(a)[1:]), np.float64)  # noqa: E731
    if p.float_exact and FLOAT_PATH:
        _compiled_f64(i64(x), np.ascontiguousarray(valid, bool), i64(r_in), i64(r_out), i64(p.alpha_m),
                      int(p.alpha_shift), i64(np.broadcast_to(p.beta, (n,))), int(p.one), f64(p.f_dr), f64(p.f_di),
                      f64(p.f_b_re), f64(p.f_b_im), f64(p.f_c_re), f64(p.f_c_im), f64(p.f_c_scale),
                      i64(np.broadcast_to(p.d_term, (n,))), i64(np.broadcast_to(p.b_out, (n,))),
                      i64(np.broadcast_to(p.sign, (n,))), bool(p.relu), s, o, states, bool(record_states), sat)
        return s, o, (states if record_states else None), int(sat[:, 0].sum()), int(sat[:, 1].sum())
    _compiled(i64(x), np.ascontiguousarray(valid, bool), i64(r_in), i64(r_out), i64(p.alpha_m),
              int(p.alpha_shift), i64(np.broadcast_to(p.beta, (n,))), int(p.one), i64(p.dr), i64(p.di),
              i64(p.b_re), i64(p.b_im), i64(p.c_re), i64(p.c_im), c_shift, i64(np.broadcast_to(p.d_term, (n,))),
              i64(np.broadcast_to(p.b_out, (n,))), i64(np.broadcast_to(p.sign, (n,))), bool(p.relu), 12,
              s, o, states, bool(record_states), sat)
    return s, o, (states if record_states else None), int(sat[:, 0].sum()), int(sat[:, 1].sum())


def _fuse_rows(x, a, bias, relu, residual, post_m, post_shift, post_offset, out, sat_counts):
    rows, n = x.shape
    lim = STATE_LIMIT
    mask = (np.int64(1) << post_shift) - 1
    for r in numba.prange(rows):
        count = 0
        for i in range(n):
            m = a[r, i] + bias[i]
            if relu and m < 0:
                m = 0
            y = post_m[i] * (x[r, i] + m if residual else m)
            y = ((y + ((y >> 63) & mask)) >> post_shift) + post_offset[i]
            if y > lim:
                y = lim
                count += 1
            elif y < -lim:
                y = -lim
                count += 1
            out[r, i] = y
        sat_counts[r] = count


_compiled_fuse = numba.njit(parallel=True, cache=True, nogil=True)(_fuse_rows) if AVAILABLE else None


def fuse(node, x, a):
    """Compiled :func:`pspike_neuro.nodes.clamp_fuse.ClampFuse.int_step` on (..., n) arrays: ``y`` and the
    number of saturation events."""
    get = (lambda k: node[k]) if isinstance(node, dict) else (lambda k: getattr(node, k))
    shape = np.shape(x)
    n = shape[-1]
    i64 = lambda v: np.ascontiguousarray(np.broadcast_to(np.asarray(v, np.int64), (n,)))  # noqa: E731
    xr = np.ascontiguousarray(x, np.int64).reshape(-1, n)
    ar = np.ascontiguousarray(a, np.int64).reshape(-1, n)
    out = np.empty_like(xr)
    sat = np.zeros(xr.shape[0], np.int64)
    _compiled_fuse(xr, ar, i64(get("bias")), get("psi") == "relu", bool(get("residual")), i64(get("post_scale_m")),
                   int(get("post_shift")), i64(get("post_offset")), out, sat)
    return out.reshape(shape), int(sat.sum())


# --- calibration: one step of the float SSM population, bit for bit as numpy computes it ----------
#
# ``quant.fold.float_forward`` computes, per step, ``z = lam * z (+ b where s)``, the maximum of |Re z|,
# |Im z| and ``v = (c * z).sum(-1).real`` with numpy. numpy 1.26 multiplies complex arrays with SIMD
# fused multiply-adds where the CPU has them (Re = fma(ar, br, -(ai bi)), Im = fma(ar, bi, ai br))
# and sums a row pairwise (4 accumulators up to 64 elements, halves above). ``calib_step`` does the
# same operations in the same order in one pass over the state; ``calib_step_matches_numpy()``
# checks that on this machine before the fast path is used (elsewhere numpy's path stays).

if AVAILABLE:
    from numba import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _fma(typingctx, a, b, c):
        """``a * b + c`` with one rounding (llvm.fma)."""
        sig = _types.float64(_types.float64, _types.float64, _types.float64)

        def codegen(context, builder, signature, args):
            return builder.fma(*args)

        return sig, codegen

    @numba.njit(cache=True, nogil=True)
    def _block_sum(a, lo, n):
        """numpy's sum of at most 64 values ``a[lo:lo + n]`` (4 accumulators, then the rest in order)."""
        if n < 4:
            r = -0.0
            for i in range(lo, lo + n):
                r += a[i]
            return r
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        i = 4
        while i < n - n % 4:
            r0 += a[lo + i]
            r1 += a[lo + i + 1]
            r2 += a[lo + i + 2]
            r3 += a[lo + i + 3]
            i += 4
        r = (r0 + r1) + (r2 + r3)
        while i < n:
            r += a[lo + i]
            i += 1
        return r

    @numba.njit(cache=True, nogil=True)
    def _pairwise_sum(a, n):
        """numpy's pairwise sum of ``a[:n]`` as it sums the real parts of a complex row: blocks of at
        most 64, longer runs split in halves (the first a multiple of 4) and the halves' sums added.
        The recursion is unrolled onto a stack (numba's cache does not keep recursive functions)."""
        if n <= 64:
            return _block_sum(a, 0, n)
        seg_lo = np.empty(64, np.int64)
        seg_n = np.empty(64, np.int64)
        seg_stage = np.empty(64, np.int64)
        sums = np.empty(64, np.float64)
        top, n_sums = 0, 0
        seg_lo[0], seg_n[0], seg_stage[0] = 0, n, 0
        while top >= 0:
            lo, size, stage = seg_lo[top], seg_n[top], seg_stage[top]
            half = size // 2 - (size // 2) % 4
            if size <= 64:
                sums[n_sums] = _block_sum(a, lo, size)
                n_sums += 1
                top -= 1
            elif stage == 0:
                seg_stage[top] = 1
                top += 1
                seg_lo[top], seg_n[top], seg_stage[top] = lo, half, 0
            elif stage == 1:
                seg_stage[top] = 2
                top += 1
                seg_lo[top], seg_n[top], seg_stage[top] = lo + half, size - half, 0
            else:
                sums[n_sums - 2] = sums[n_sums - 2] + sums[n_sums - 1]
                n_sums -= 1
                top -= 1
        return sums[0]

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _calib_step(zr, zi, lr, li, br, bi, cr, ci, s, v, zmax):
        batch, n, m = zr.shape
        for b in numba.prange(batch):
            prods = np.empty(m, np.float64)
            top = 0.0
            nan = False
            for h in range(n):
                add = s[b, h]
                for k in range(m):
                    xr, xi = zr[b, h, k], zi[b, h, k]
                    nr = _fma(lr[h, k], xr, -(li[h, k] * xi))
                    ni = _fma(lr[h, k], xi, li[h, k] * xr)
                    if add:
                        nr += br[h, k]
                        ni += bi[h, k]
                    zr[b, h, k] = nr
                    zi[b, h, k] = ni
                    top = max(top, abs(nr), abs(ni))
                    nan |= nr != nr or ni != ni
                    prods[k] = _fma(cr[h, k], nr, -(ci[h, k] * ni))
                v[b, h] = 0.0 + _pairwise_sum(prods, m)
            zmax[b] = np.nan if nan else top


def calib_params(lam, b_unit, c) -> tuple:
    """The (H, M) complex parameters of one block as the six contiguous float64 arrays ``calib_step`` takes."""
    return tuple(np.ascontiguousarray(part, np.float64) for a in (lam, b_unit, c)
                 for part in (np.real(a), np.imag(a)))


def calib_step(zr, zi, params: tuple, s, v) -> float:
    """One step of ``float_forward``'s SSM update in place: ``z = lam * z``, ``+ b_unit`` where ``s``,
    ``v[:] = (c * z).sum(-1).real``; returns max(|Re z|, |Im z|) (NaN if any part is NaN).
    ``zr``, ``zi`` (B, H, M) float64 state parts, ``params`` from :func:`calib_params`, ``s`` (B, H) bool,
    ``v`` (B, H) float64."""
    zmax = np.empty(zr.shape[0], np.float64)
    _calib_step(zr, zi, *params, np.ascontiguousarray(s), v, zmax)
    return float(np.nan if np.isnan(zmax).any() else zmax.max(initial=0.0))


_CALIB_MATCHES: list = []


def calib_step_matches_numpy() -> bool:
    """Whether ``calib_step`` gives numpy's numbers bit for bit on this machine (checked once, on
    random values with rows of 1 to 150 modes, which take every branch of the pairwise sum)."""
    if not AVAILABLE:
        return False
    if not _CALIB_MATCHES:
        rng = np.random.default_rng(12345)
        ok = True
        for m in (1, 3, 4, 5, 7, 8, 13, 32, 63, 64, 65, 100, 150):
            shape = (3, 5, m)
            cx = lambda *sh: rng.standard_normal(sh) + 1j * rng.standard_normal(sh)  # noqa: E731
            lam, b_unit, c, z = cx(5, m), cx(5, m), cx(5, m), cx(*shape) * 1e3
            s = rng.random((3, 5)) < 0.5
            want_z = lam * z
            np.add(want_z, b_unit, out=want_z, where=s[..., None])
            want_v = (c * want_z).sum(-1).real
            zr, zi = np.ascontiguousarray(z.real), np.ascontiguousarray(z.imag)
            v = np.empty((3, 5))
            top = calib_step(zr, zi, calib_params(lam, b_unit, c), s, v)
            ok &= (np.array_equal(zr, want_z.real) and np.array_equal(zi, want_z.imag) and np.array_equal(v, want_v)
                   and top == max(np.abs(want_z.real).max(), np.abs(want_z.imag).max()))
        _CALIB_MATCHES.append(bool(ok))
    return _CALIB_MATCHES[0]
