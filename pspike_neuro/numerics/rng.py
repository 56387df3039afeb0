"""Counter-based random numbers shared by every backend (numpy reference, Lava, PyTorch).

Every stochastic spike in a P-SpikeSSM deployment is the comparison ``r < q``: ``r`` is a
``P``-bit uniform integer (``1 <= P <= 24``, 16 by default) and ``q`` an integer probability in
``[0, 2**P]``, so ``P(spike) = q / 2**P`` exactly. To compare the float model with the deployed
fixed-point model spike by spike, all backends must draw the *same* ``r`` for the same event.
This module therefore uses no generator state at all: ``r`` is a pure function of the event's
coordinates, the five keys

``seed``    the run's seed;
``site``    which stochastic site (layer / noise source) is drawing;
``neuron``  the neuron index inside that site;
``t``       the 0-based time step;
``sample``  the sample (batch element / trial) index.

Each key is a non-negative integer below ``2**32``.

Algorithm (see ``docs/rng.md`` for a language-neutral description and test vectors). With
``MASK = 0xFFFFFFFF`` and all arithmetic modulo ``2**32``::

    h = 0x243F6A88                                   # initial value
    for (key, M) in ((seed,   0x9E3779B1), (site,   0x85EBCA77), (sample, 0x165667B1),
                     (neuron, 0xC2B2AE3D), (t,      0x27D4EB2F)):
        h = lowbias32((h + key * M) & MASK)          # absorb one key
    h = fmix32(h)                                    # final avalanche

Building blocks, all published and widely reused:

* ``lowbias32`` -- the 32-bit integer finalizer found by Chris Wellons' "hash prospector"
  search (blog post "Prospecting for Hash Functions", nullprogram.com, 2018; repository
  skeeto/hash-prospector): xor-shift 16, multiply by ``0x7FEB352D``, xor-shift 15, multiply by
  ``0x846CA68B``, xor-shift 16.
* ``fmix32`` -- the finalization mix of Austin Appleby's MurmurHash3 (SMHasher, public
  domain): xor-shift 16, multiply by ``0x85EBCA6B``, xor-shift 13, multiply by ``0xC2B2AE35``,
  xor-shift 16.
* the per-key odd multipliers are the five 32-bit primes ``PRIME32_1..5`` of Yann Collet's
  xxHash32, and the initial value is the first 32 fractional bits of pi (``0x243F6A88``, the
  classic "nothing up my sleeve" constant).

Every step is a bijection of ``h`` for fixed key, and ``key -> h + key*M`` is a bijection of
the key (``M`` is odd), so for any fixed four keys the map from the fifth key to the output is a
permutation of the 32-bit integers: changing any single key always changes the output.

Implementation: one generic routine built only from ``*``, ``+``, ``^``, ``>>`` and ``&`` runs
on numpy ``int64`` arrays, on torch ``int64`` tensors and on Python ints, so the numpy and
torch versions are the same code. Torch 2.3 has no general ``uint32`` arithmetic, hence
``int64`` everywhere: a product of two values below ``2**32`` wraps modulo ``2**64`` (in both
numpy and torch) which leaves its low 32 bits exact, every product and sum is masked with
``0xFFFFFFFF`` at once, and right shifts only ever see masked non-negative values, so they are
logical shifts.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import torch

__all__ = [
    "MASK32",
    "MAX_PROB_BITS",
    "hash_u32",
    "hash_u32_torch",
    "uniform_int",
    "uniform_int_torch",
    "uniform_float",
    "uniform_float_torch",
    "uniform_int_block",
    "uniform_float_block",
    "CounterNoise",
]

MASK32 = 0xFFFFFFFF
MAX_PROB_BITS = 24

#: Initial value of the chain: first 32 fractional bits of pi.
_IV = 0x243F6A88
#: Odd per-key multipliers (xxHash32 PRIME32_1..5), in absorption order.
_M_SEED = 0x9E3779B1
_M_SITE = 0x85EBCA77
_M_SAMPLE = 0x165667B1
_M_NEURON = 0xC2B2AE3D
_M_T = 0x27D4EB2F

_KEY_NAMES = ("seed", "site", "neuron", "t", "sample")


# --------------------------------------------------------------------------------------------
# Generic core (numpy int64 arrays, torch int64 tensors or Python ints)
# --------------------------------------------------------------------------------------------


def _lowbias32(x):
    """Wellons' lowbias32 on values in [0, 2**32), with int64-safe masking."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def _fmix32(x):
    """Appleby's MurmurHash3 fmix32 on values in [0, 2**32), with int64-safe masking."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & MASK32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & MASK32
    return x ^ (x >> 16)


def _absorb(h, key, mult):
    return _lowbias32((h + ((key * mult) & MASK32)) & MASK32)


def _hash_core(seed, site, neuron, t, sample):
    """The hash, written once for every array type. Inputs must already be validated."""
    h = _IV
    h = _absorb(h, seed, _M_SEED)
    h = _absorb(h, site, _M_SITE)
    h = _absorb(h, sample, _M_SAMPLE)
    h = _absorb(h, neuron, _M_NEURON)
    h = _absorb(h, t, _M_T)
    return _fmix32(h)


def _check_prob_bits(prob_bits: Any) -> int:
    try:
        p = operator.index(prob_bits)
    except TypeError:
        raise ValueError(f"prob_bits must be an integer in [1, {MAX_PROB_BITS}], got {prob_bits!r}") from None
    if not 1 <= p <= MAX_PROB_BITS:
        raise ValueError(f"prob_bits must be in [1, {MAX_PROB_BITS}], got {p}")
    return p


def _check_python_key(value: Any, name: str) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer or an integer array, got {type(value).__name__}") from None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not bool")
    if not 0 <= v <= MASK32:
        raise ValueError(f"{name} must be in [0, 2**32), got {v}")
    return v


# --------------------------------------------------------------------------------------------
# numpy
# --------------------------------------------------------------------------------------------


def _as_np_key(value: Any, name: str) -> np.ndarray:
    if isinstance(value, (np.ndarray, np.generic)) or isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > MASK32):
            raise ValueError(f"{name} values must be in [0, 2**32)")
        return arr.astype(np.int64, copy=False)
    if isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: use the *_torch functions for torch tensors")
    return np.asarray(_check_python_key(value, name), dtype=np.int64)


def _hash_np_int64(seed, site, neuron, t, sample) -> np.ndarray:
    keys = [_as_np_key(v, n) for v, n in zip((seed, site, neuron, t, sample), _KEY_NAMES)]
    all_scalar = all(k.ndim == 0 for k in keys)
    # Work on >= 1-d arrays so numpy never falls back to scalar arithmetic; int64 products are
    # meant to wrap modulo 2**64 (only their low 32 bits are kept), so overflow is not an error.
    with np.errstate(over="ignore"):
        h = _hash_core(*(np.atleast_1d(k) for k in keys))
    return h.reshape(()) if all_scalar else h


def _scalarize(arr: np.ndarray):
    return arr[()] if arr.ndim == 0 else arr


def hash_u32(seed, site, neuron, t, sample=0):
    """32-bit counter-based hash of the five keys, as ``numpy.uint32``.

    Arguments are non-negative integers below ``2**32``: Python/numpy ints or integer arrays,
    which broadcast against each other. Returns an ``np.uint32`` array of the broadcast shape
    (an ``np.uint32`` scalar when every argument is a scalar).
    """
    h = _hash_np_int64(seed, site, neuron, t, sample)
    return _scalarize(np.asarray(h, dtype=np.uint32))


def uniform_int(seed, site, neuron, t, prob_bits, sample=0):
    """Uniform integer in ``[0, 2**prob_bits)``: the top ``prob_bits`` bits of the hash.

    ``r = hash_u32(...) >> (32 - prob_bits)``, returned as ``int64`` (so that ``r < q`` with an
    int64 ``q`` in ``[0, 2**prob_bits]`` needs no casts). ``1 <= prob_bits <= 24``.
    """
    p = _check_prob_bits(prob_bits)
    h = _hash_np_int64(seed, site, neuron, t, sample)
    return _scalarize(np.asarray(h >> (32 - p), dtype=np.int64))


def _np_float_dtype(dtype, p: int) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dt}")
    if np.finfo(dt).nmant + 1 < p:
        raise ValueError(f"{dt} cannot hold {p}-bit uniforms exactly; use a wider dtype or fewer prob_bits")
    return dt


def uniform_float(seed, site, neuron, t, prob_bits, sample=0, dtype=np.float64):
    """``uniform_int(...) / 2**prob_bits`` as floats in ``[0, 1)`` (exact: ``prob_bits <= 24``)."""
    p = _check_prob_bits(prob_bits)
    dt = _np_float_dtype(dtype, p)
    r = np.asarray(uniform_int(seed, site, neuron, t, p, sample))
    return _scalarize(r.astype(dt) * dt.type(2.0**-p))


def uniform_int_block(seed: int, site: int, n_neurons: int, t: int, prob_bits: int, samples) -> np.ndarray:
    """All draws of one site at one step: shape ``(len(samples), n_neurons)``, ``int64``.

    ``out[i, n] = uniform_int(seed, site, n, t, prob_bits, sample=samples[i])``. This is what a
    step-by-step simulator calls once per stochastic site and step.
    """
    n = operator.index(n_neurons)
    if n < 0:
        raise ValueError(f"n_neurons must be >= 0, got {n}")
    s = np.atleast_1d(np.asarray(samples))
    if s.ndim != 1:
        raise ValueError(f"samples must be one-dimensional, got shape {s.shape}")
    out = uniform_int(seed, site, np.arange(n, dtype=np.int64)[None, :], t, prob_bits, sample=s[:, None])
    return np.ascontiguousarray(np.broadcast_to(out, (s.shape[0], n)))


def uniform_float_block(
    seed: int, site: int, n_neurons: int, t: int, prob_bits: int, samples, dtype=np.float64
) -> np.ndarray:
    """``uniform_int_block(...) / 2**prob_bits``: shape ``(len(samples), n_neurons)``, in ``[0, 1)``."""
    p = _check_prob_bits(prob_bits)
    dt = _np_float_dtype(dtype, p)
    return uniform_int_block(seed, site, n_neurons, t, p, samples).astype(dt) * dt.type(2.0**-p)


# --------------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------------


def _as_torch_key(value: Any, name: str):
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            raise TypeError(f"{name} must be an integer tensor, got {value.dtype}")
        # Values are not range-checked here (that would force a device sync); callers pass
        # non-negative values below 2**32, as for the numpy version.
        return value.to(torch.int64)
    if isinstance(value, np.ndarray):
        raise TypeError(f"{name}: convert numpy arrays with torch.as_tensor first")
    return _check_python_key(value, name)


def hash_u32_torch(seed, site, neuron, t, sample=0, *, device=None) -> torch.Tensor:
    """Torch twin of :func:`hash_u32`: identical 32-bit values, held in an ``int64`` tensor.

    Arguments are ints or integer tensors (any device; they broadcast). ``device`` is used only
    when every argument is a Python int. Tensor values are not range-checked.
    """
    keys = [_as_torch_key(v, n) for v, n in zip((seed, site, neuron, t, sample), _KEY_NAMES)]
    h = _hash_core(*keys)
    if not isinstance(h, torch.Tensor):  # every key was a Python int: exact big-int arithmetic
        return torch.tensor(h, dtype=torch.int64, device=device)
    return h


def uniform_int_torch(seed, site, neuron, t, prob_bits, sample=0, *, device=None) -> torch.Tensor:
    """Torch twin of :func:`uniform_int`: ``int64`` tensor in ``[0, 2**prob_bits)``."""
    p = _check_prob_bits(prob_bits)
    return hash_u32_torch(seed, site, neuron, t, sample, device=device) >> (32 - p)


def _torch_float_dtype(dtype: torch.dtype, p: int) -> torch.dtype:
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    significand_bits = round(-math.log2(torch.finfo(dtype).eps)) + 1
    if significand_bits < p:
        raise ValueError(f"{dtype} cannot hold {p}-bit uniforms exactly; use a wider dtype or fewer prob_bits")
    return dtype


def _ints_to_float_torch(r: torch.Tensor, p: int, dtype: torch.dtype) -> torch.Tensor:
    return r.to(dtype) * (2.0**-p)  # power-of-two scaling of an exactly representable int: exact


def uniform_float_torch(
    seed, site, neuron, t, prob_bits, sample=0, dtype: torch.dtype = torch.float32, *, device=None
) -> torch.Tensor:
    """Torch twin of :func:`uniform_float`: ``uniform_int / 2**prob_bits`` in ``[0, 1)``, exact."""
    p = _check_prob_bits(prob_bits)
    dt = _torch_float_dtype(dtype, p)
    return _ints_to_float_torch(uniform_int_torch(seed, site, neuron, t, p, sample, device=device), p, dt)


class CounterNoise:
    """Noise source for the torch model in "common random numbers" mode.

    ``noise(site, (B, L, H), device, dtype)`` returns ``u`` of shape ``(B, L, H)`` with
    ``u[b, t, h] = uniform_float(seed, site, h, t0 + t, prob_bits, sample=sample_ids[b])``, i.e.
    exactly the numbers the numpy reference simulator and the Lava processes draw, so that
    ``u < q / 2**prob_bits`` reproduces their spikes ``r < q`` one for one. ``sample_ids``
    defaults to ``arange(B)``; ``t0`` (keyword, default 0) offsets the 0-based step index for
    streamed / chunked sequences.
    """

    def __init__(self, seed: int, prob_bits: int = 16, sample_ids: torch.Tensor | None = None):
        self.seed = _check_python_key(seed, "seed")
        self.prob_bits = _check_prob_bits(prob_bits)
        if sample_ids is not None:
            sample_ids = torch.as_tensor(sample_ids)
            if sample_ids.ndim != 1:
                raise ValueError(f"sample_ids must be one-dimensional, got shape {tuple(sample_ids.shape)}")
            if sample_ids.dtype == torch.bool or sample_ids.is_floating_point() or sample_ids.is_complex():
                raise TypeError(f"sample_ids must be an integer tensor, got {sample_ids.dtype}")
            sample_ids = sample_ids.detach().to("cpu", torch.int64)
            if sample_ids.numel() and (int(sample_ids.min()) < 0 or int(sample_ids.max()) > MASK32):
                raise ValueError("sample_ids values must be in [0, 2**32)")
        self.sample_ids = sample_ids

    def __repr__(self) -> str:
        return f"CounterNoise(seed={self.seed}, prob_bits={self.prob_bits}, sample_ids={self.sample_ids})"

    def _keys(self, shape, device, t0: int):
        if len(shape) != 3:
            raise ValueError(f"shape must be (B, L, H), got {tuple(shape)}")
        b, length, h = (operator.index(s) for s in shape)
        t0 = _check_python_key(t0, "t0")
        device = torch.device("cpu") if device is None else torch.device(device)
        if self.sample_ids is None:
            samples = torch.arange(b, dtype=torch.int64, device=device)
        else:
            if self.sample_ids.shape[0] != b:
                raise ValueError(f"sample_ids has {self.sample_ids.shape[0]} entries but the batch size is {b}")
            samples = self.sample_ids.to(device)
        steps = torch.arange(t0, t0 + length, dtype=torch.int64, device=device)
        neurons = torch.arange(h, dtype=torch.int64, device=device)
        return samples.view(b, 1, 1), steps.view(1, length, 1), neurons.view(1, 1, h), (b, length, h)

    def int_noise(self, site: int, shape: tuple[int, int, int], device=None, *, t0: int = 0) -> torch.Tensor:
        """The integer draws ``r[b, t, h]`` in ``[0, 2**prob_bits)`` (``int64``), same indexing."""
        samples, steps, neurons, full = self._keys(shape, device, t0)
        r = uniform_int_torch(self.seed, site, neurons, steps, self.prob_bits, samples)
        return r.expand(full).contiguous()

    def __call__(
        self,
        site: int,
        shape: tuple[int, int, int],
        device=None,
        dtype: torch.dtype | None = torch.float32,
        *,
        t0: int = 0,
    ) -> torch.Tensor:
        dt = _torch_float_dtype(torch.float32 if dtype is None else dtype, self.prob_bits)
        return _ints_to_float_torch(self.int_noise(site, shape, device, t0=t0), self.prob_bits, dt)


def random_block(seed: int, site: int, n: int, length: int, prob_bits: int, samples, t0: int = 0) -> np.ndarray:
    """P-bit uniform integers of one site for every (sample, step, neuron): shape (B, length, n), int64,
    steps ``t0 .. t0 + length - 1``. Compiled (``kernels.random_block``) where numba is available;
    the same numbers either way (tests/test_rng.py)."""
    from . import kernels

    samples = np.asarray(samples)
    if kernels.AVAILABLE:
        return kernels.random_block(seed, site, n, length, prob_bits, samples, t0=t0)
    return uniform_int(seed, site, np.arange(n)[None, None, :], np.arange(t0, t0 + length)[None, :, None],
                       prob_bits, sample=samples[:, None, None]).astype(np.int64)
