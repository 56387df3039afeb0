"""Integer primitives of the deployment contract (docs/numerics.md §1), defined once.

The quantizer, the numpy reference simulator and the Lava fixed-point process models all import
these. Arithmetic is int64 throughout; every function is vectorized.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
from scipy import sparse

STATE_BITS = 24
DECAY_BITS = 12


def shr_floor(a, n: int) -> np.ndarray:
    """``a >> n``: arithmetic shift, rounds toward minus infinity (Lava Dense/Sparse)."""
    return np.right_shift(np.asarray(a, np.int64), n)


def shr_trunc(a, n: int) -> np.ndarray:
    """``sign(a) * (|a| >> n)``: rounds toward zero (``lava.proc.rf``'s ``scale_volt``).

    Computed as ``(a + (2^n - 1 if a < 0 else 0)) >> n``, the same integers without a multiply.
    """
    a = np.asarray(a, np.int64)
    if np.ndim(n) == 0 and n == 0:
        return a
    n = np.asarray(n, np.int64)
    return np.right_shift(a + (np.right_shift(a, 63) & ((np.int64(1) << n) - 1)), n)


def shift(a, exp: int) -> np.ndarray:
    """``a << exp`` for ``exp > 0``, else ``a >> -exp`` (floor): Lava's ``weight_exp``."""
    a = np.asarray(a, np.int64)
    return np.left_shift(a, exp) if exp > 0 else np.right_shift(a, -exp)


def saturate(a, bits: int = STATE_BITS) -> tuple[np.ndarray, int]:
    """Clip to ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]`` and count the clipped elements."""
    a = np.asarray(a, np.int64)
    limit = (1 << (bits - 1)) - 1
    n_events = int(np.count_nonzero((a > limit) | (a < -limit)))
    return (np.clip(a, -limit, limit) if n_events else a), n_events


class SaturationCounter:
    """Saturation events per named place (``layer0.state``, ``readout``...)."""

    def __init__(self):
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, name: str, n: int) -> None:
        self.counts[name] += int(n)

    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


def lava_sign_mode(w_int: np.ndarray) -> str:
    """``mixed``, ``excitatory`` (all >= 0) or ``inhibitory`` (all <= 0), as Lava infers it."""
    w = np.asarray(w_int)
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def _grid(sign_mode: str, num_weight_bits: int) -> tuple[int, int, int]:
    """(step, lowest, highest) of the integers Lava keeps after clip_weights + truncate_weights."""
    mixed = sign_mode == "mixed"
    step = 1 << (8 - num_weight_bits + int(mixed))
    if mixed:
        return step, -256, (255 // step) * step
    highest = (255 // step) * step
    return (step, -highest, 0) if sign_mode == "inhibitory" else (step, 0, highest)


def lava_effective_weights(w_int, num_weight_bits: int = 8, sign_mode: str | None = None) -> np.ndarray:
    """The weights Lava's fixed-point Dense/Sparse really use: clip to 8 bits, drop low bits.

    Mirrors ``lava.utils.weightutils.clip_weights(num_bits=8)`` then ``truncate_weights``:
    mixed signs keep ``[-256, 255]`` then clear ``9 - num_weight_bits`` low bits (so 8-bit mixed
    weights are even), one-signed weights keep magnitudes ``[0, 255]`` and clear
    ``8 - num_weight_bits`` bits of the magnitude.
    """
    w = np.asarray(w_int, np.int64)
    mode = sign_mode or lava_sign_mode(w)
    mixed = mode == "mixed"
    mag = -w if mode == "inhibitory" else w
    mag = np.clip(mag, -256 if mixed else 0, 255)
    drop = 8 - num_weight_bits + int(mixed)
    mag = np.left_shift(np.right_shift(mag, drop), drop)
    return -mag if mode == "inhibitory" else mag


def quantize_weights(w, num_weight_bits: int = 8) -> tuple[np.ndarray, int]:
    """``w ~= w_int * 2^weight_exp`` with ``w_int`` on Lava's grid; nearest rounding.

    The exponent is the smallest whose grid holds the largest weight (maximal precision). The
    returned ``w_int`` passes through :func:`lava_effective_weights` unchanged.
    """
    w = np.asarray(w, np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{int(np.count_nonzero(~np.isfinite(w)))} weight(s) are NaN or infinite")
    if not np.any(w):
        return np.zeros(w.shape, np.int64), 0
    step, lo, hi = _grid(lava_sign_mode(w), num_weight_bits)
    half = step / 2  # a value within half a step of the end still rounds onto the grid
    ratio = max(float(w.max()) / (hi + half) if hi > 0 else 0.0, float(w.min()) / (lo - half) if lo < 0 else 0.0)
    exp = int(np.ceil(np.log2(ratio)))
    while True:  # at most one extra step: rounding may push the extreme value past the grid
        w_int = (np.rint(w / 2.0 ** exp / step) * step).astype(np.int64)
        if w_int.max() <= hi and w_int.min() >= lo:
            return w_int, exp
        exp += 1


def synaptic_input(w_int, x, weight_exp: int, num_message_bits: int) -> np.ndarray:
    """One step of Lava's fixed-point Dense/Sparse: ``shift(W @ x, weight_exp)``.

    ``num_message_bits == 0`` reads the input as binary (``x.astype(bool)``, so a negative graded
    value counts as 1), as Lava does. ``x`` is (n_in,) or (batch, n_in); ``w_int`` dense or CSR.
    """
    x = np.asarray(x)
    binary = num_message_bits == 0
    if binary:
        x = x if x.dtype == bool else x.astype(bool)
    else:
        x = x.astype(np.int64)
    w = w_int if sparse.issparse(w_int) else np.asarray(w_int, np.int64)
    w_max = float(abs(w).max()) if w.shape[0] * w.shape[1] else 0.0
    x_max = 1.0 if binary else float(np.abs(x).max(initial=0))
    bound = w_max * x_max * w.shape[1]
    if bound < 2.0**53:
        # every partial sum is an integer below 2^53 (2^24): float64 (float32) BLAS is exact and much faster
        dtype = np.float32 if bound < 2.0**24 else np.float64
        w, x = w.astype(dtype), x.astype(dtype)
    elif binary:
        x = x.astype(np.int64)
    acc = (w @ x.T).T if x.ndim == 2 else w @ x
    return shift(np.rint(acc).astype(np.int64) if acc.dtype.kind == "f" else np.asarray(acc, np.int64), weight_exp)


def quantize_mantissa(values, bits: int) -> tuple[np.ndarray, int]:
    """Signed ``bits``-bit mantissas with one exponent: ``values ~= m * 2^exp``, nearest rounding."""
    v = np.asarray(values, np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{int(np.count_nonzero(~np.isfinite(v)))} value(s) are NaN or infinite")
    limit = (1 << (bits - 1)) - 1
    biggest = float(np.abs(v).max()) if v.size else 0.0
    if biggest == 0:
        return np.zeros(v.shape, np.int64), 0
    exp = int(np.ceil(np.log2(biggest / (limit + 0.5))))
    m = np.rint(v / 2.0 ** exp)
    if np.abs(m).max() > limit:  # rounding pushed the largest value past the range
        exp += 1
        m = np.rint(v / 2.0 ** exp)
    return m.astype(np.int64), exp


def quantize_decay(lam, decay_bits: int = DECAY_BITS, stable: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Complex decays as ``decay_bits`` fractions (4096 = 1.0 for 12 bits), nearest rounding.

    A decay that rounds onto or outside the unit circle is refused, or with ``stable`` moved to the
    nearest of its four neighbouring grid points (floor or ceil of each part) inside the circle; the
    one rounded toward zero always is when ``|lam| < 1``."""
    lam = np.asarray(lam, np.complex128)
    one = 1 << decay_bits
    re = np.rint(lam.real * one).astype(np.int64)
    im = np.rint(lam.imag * one).astype(np.int64)
    if stable:
        re, im = _inside_unit_circle(lam * one, re, im, one)
    unstable = np.count_nonzero(re.astype(np.float64) ** 2 + im.astype(np.float64) ** 2 >= one * one)
    if unstable:
        raise ValueError(f"{unstable} SSM mode(s) have |decay| >= 1 after rounding to {decay_bits} bits "
                         "and would grow without bound")
    return re, im


def _inside_unit_circle(scaled, re, im, one: int) -> tuple[np.ndarray, np.ndarray]:
    """Rounded decays ``re + i im`` of ``scaled`` (decays times ``one``), those on or outside the circle of
    radius ``one`` replaced by the nearest floor/ceil neighbour inside it (left as they are if none is)."""
    outside = re.astype(np.float64) ** 2 + im.astype(np.float64) ** 2 >= float(one) ** 2
    if not outside.any():
        return re, im
    re, im = re.copy(), im.copy()
    best = np.full(re.shape, np.inf)
    target_re, target_im = scaled.real[outside], scaled.imag[outside]
    pick_re, pick_im = re[outside], im[outside]
    cost = best[outside]
    for cand_re in (np.floor(target_re), np.ceil(target_re)):
        for cand_im in (np.floor(target_im), np.ceil(target_im)):
            inside = cand_re ** 2 + cand_im ** 2 < float(one) ** 2
            dist = (cand_re - target_re) ** 2 + (cand_im - target_im) ** 2
            better = inside & (dist < cost)
            pick_re, pick_im, cost = (np.where(better, cand_re, pick_re), np.where(better, cand_im, pick_im),
                                      np.where(better, dist, cost))
    re[outside], im[outside] = pick_re.astype(np.int64), pick_im.astype(np.int64)
    return re, im


def rf_step(re, im, decay_re, decay_im, in_re, in_im, decay_bits: int = DECAY_BITS,
            state_bits: int = STATE_BITS) -> tuple[np.ndarray, np.ndarray, int]:
    """One sub-threshold step of ``lava.proc.rf``'s fixed-point model, per-element decays.

    ``re' = sat(shr_trunc(dr re) - shr_trunc(di im) + in_re)``,
    ``im' = sat(shr_trunc(di re) + shr_trunc(dr im) + in_im)``; returns the saturation count.
    """
    re, im = np.asarray(re, np.int64), np.asarray(im, np.int64)
    dr, di = np.asarray(decay_re, np.int64), np.asarray(decay_im, np.int64)
    new_re = shr_trunc(dr * re, decay_bits) - shr_trunc(di * im, decay_bits) + in_re
    new_im = shr_trunc(di * re, decay_bits) + shr_trunc(dr * im, decay_bits) + in_im
    new_re, n_re = saturate(new_re, state_bits)
    new_im, n_im = saturate(new_im, state_bits)
    return new_re, new_im, n_re + n_im


# --- formats: how a float quantity becomes integers (used by every node type's quantizer) ----------

STATE_MAX = (1 << (STATE_BITS - 1)) - 1


def frac_bits_for(max_abs: float, headroom_bits: int, lo: int = -8, hi: int = 23) -> int:
    """The most fraction bits such that ``max_abs * 2^(bits + headroom)`` stays below 2^23."""
    import math

    if max_abs <= 0 or not math.isfinite(max_abs):
        return hi
    bits = math.floor(math.log2(STATE_MAX / max_abs)) - headroom_bits
    return int(min(hi, max(lo, bits)))


def to_shift(mantissa: np.ndarray, exp: int) -> tuple[np.ndarray, int]:
    """Express ``mantissa * 2^exp`` as ``shr_trunc(m * x, shift)`` with ``shift >= 0``."""
    if exp >= 0:
        # beyond 2^40 no mantissa fits 24 bits anyway; capping keeps int64 from wrapping (a shift by
        # 64 or more gives 0 in numpy), so the node's range check sees the overflow and names it
        return mantissa.astype(np.int64) << min(exp, 40), 0
    return mantissa.astype(np.int64), -exp


def per_row_shift(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``values`` as ``shr_trunc(m * x, shift)`` with one ``bits``-bit exponent per row.

    A neuron's readout has its own shift, so a neuron whose ``C`` is small keeps its mantissa bits
    (one exponent per layer left a median relative error of 10-50 % in ``C`` and zeroed entries).
    """
    mantissas, shifts = np.zeros(values.shape, np.int64), np.zeros(values.shape[0], np.int64)
    for h, row in enumerate(values):
        m, exp = quantize_mantissa(row, bits)
        mantissas[h], shifts[h] = to_shift(m, exp)
    return mantissas, shifts


def round_int(values, what: str, where: str, bits: int = STATE_BITS, hint: str = "retrain with smaller values"):
    """``rint(values)`` as int64, refused (one line naming ``where`` and ``what``) beyond ``bits``."""
    from ..errors import UserError

    rounded = np.rint(np.asarray(values, np.float64))
    limit = 2 ** (bits - 1) - 1
    if np.any(np.abs(rounded) > limit):  # compared as floats: a cast of 2^63 or more would wrap
        raise UserError(f"{where}: {what} overflows {bits} bits after scaling "
                        f"(max {float(np.abs(rounded).max()):.6g}); {hint}")
    return rounded.astype(np.int64)


def round_fraction(values, what: str, where: str) -> np.ndarray:
    """A value in [0, 1] as a ``DECAY_BITS`` fraction (4096 = 1.0), refused outside."""
    from ..errors import UserError

    one = 1 << DECAY_BITS
    out = np.rint(np.asarray(values, np.float64) * one)
    if np.any(out < 0) or np.any(out > one):
        raise UserError(f"{where}: {what} does not fit its integer range [0, {one}] after scaling; retrain with "
                        "smaller values")
    return out.astype(np.int64)


def prune_to_density(w: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``density`` fraction of entries with the largest magnitude, zero the rest."""
    keep = int(round(density * w.size))
    if keep >= w.size:
        return w.copy()
    out = np.zeros_like(w)
    if keep:
        idx = np.argpartition(np.abs(w).ravel(), w.size - keep)[w.size - keep:]
        out.ravel()[idx] = w.ravel()[idx]
    return out


#: GELU by table (docs/numerics.md §7): knots every 2^-GELU_GRID_BITS on [-GELU_RANGE, GELU_RANGE]
GELU_GRID_BITS = 6
GELU_RANGE = 6


def gelu_float(x):
    """``x Phi(x)`` (the exact, erf-based GELU), float64."""
    from scipy.special import erf

    x = np.asarray(x, np.float64)
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


@lru_cache(maxsize=None)
def gelu_table(frac_bits: int) -> tuple[np.ndarray, int]:
    """The knots of :func:`gelu_fixed` in units ``2^-frac_bits`` and the knot spacing as a shift:
    ``T[i] = rint(gelu(x_i) 2^frac_bits)`` at ``x_i = -GELU_RANGE + i 2^-g``, ``g = min(frac_bits,
    GELU_GRID_BITS)``, spacing ``2^(frac_bits - g)`` units."""
    g = min(frac_bits, GELU_GRID_BITS)
    x = np.arange(-GELU_RANGE << g, (GELU_RANGE << g) + 1) / float(1 << g)
    table = np.rint(gelu_float(x) * 2.0 ** frac_bits).astype(np.int64)
    table.flags.writeable = False
    return table, frac_bits - g


def gelu_fixed(v, frac_bits: int) -> np.ndarray:
    """GELU of integers ``v`` in units ``2^-frac_bits``, same units: 0 below ``-GELU_RANGE``, ``v`` from
    ``GELU_RANGE`` on, between them linear interpolation of the table (floor shift)::

        u = v + GELU_RANGE 2^F,  i = u >> s,  r = u - (i << s),  g = T[i] + ((T[i+1] - T[i]) r) >> s
    """
    v = np.asarray(v, np.int64)
    table, s = gelu_table(int(frac_bits))
    lo, hi = -GELU_RANGE << frac_bits, GELU_RANGE << frac_bits
    u = np.clip(v, lo, hi) - lo
    i = np.right_shift(u, s)
    rest = u - np.left_shift(i, s)
    nxt = np.minimum(i + 1, len(table) - 1)
    g = table[i] + np.right_shift((table[nxt] - table[i]) * rest, s)
    return np.where(v >= hi, v, np.where(v <= lo, 0, g))
