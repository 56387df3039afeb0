"""Diagonal-plus-low-rank (DPLR) SSM kernels, as the P-SpikeSSM authors' code (S4's ``SSMKernelDPLR``)
defines them, and their conversion to our diagonal modes. float64 throughout.

Their kernel, on the conjugate-extended state of size N (``d_state``; they store M = N/2 modes)::

    A = diag(Lam, conj Lam) - sum_r p_r p_r^H,  p_r = [P_r, conj P_r],  b = [B, conj B]
    Abar = (I - dt/2 A)^-1 (I + dt/2 A),  Bbar = (I - dt/2 A)^-1 dt b         (bilinear, per channel dt)
    k_c[j] = Re(C_c Abar^j Bbar),  j < L,  with C_c = [C_c, conj C_c]

and the stored readout is ``C~ = C (I - Abar^L)`` (L = ``l_kernel``), so ``C`` solves
``(I - Abar^L)^T C = C~``. ``A`` is similar to a real matrix: in the coordinates ``x = Re z``,
``y = Im z`` (``w = T [x; y]``, ``T = [[I, iI], [I, -iI]]``) it is the real N x N matrix ``A_r``, with
``b_r = [Re B; Im B]`` and readout ``[2 Re C, -2 Im C]``.

Exact diagonal form: ``A_r = V diag(mu) V^-1`` (real input, so the N eigenvalues come in exact
conjugate pairs, or are real). In that basis each channel's bilinear discretization is diagonal, with
``lam = (1 + dt mu/2) / (1 - dt mu/2)``, ``Bbar' = dt B' / (1 - dt mu/2)``, ``B' = V^-1 b_r``,
``C' = C_r V = (C~_r V) / (1 - lam^L)``. A conjugate pair contributes ``2 Re(C' Bbar' lam^j)`` of one of
its members (our modes' readout), a real eigenvalue ``C' Bbar' lam^j``, i.e. one mode with ``C'/2``.
So the exact form needs (pairs + real eigenvalues) of our modes: N/2 when every eigenvalue is complex,
one more per two real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DPLRKernel:
    """One kernel of their code. ``S`` copies of (Lam, P, B): 1 (``n_ssm = 1``, shared by the H channels)
    or H (one per channel); ``ch`` readouts: 1, or 2 for a two-sided kernel (causal, anti-causal)."""

    lam: np.ndarray      # (S, M) complex, continuous eigenvalues of the diagonal part
    p: np.ndarray        # (R, S, M) complex, low-rank term
    b: np.ndarray        # (S, M) complex
    dt: np.ndarray       # (H,) step of each channel
    c_tilde: np.ndarray  # (ch, H, M) complex, the stored C~
    length: int          # L = l_kernel, the length C~ is tied to (0: C not yet rewritten, C~ is C)

    def copy_of(self, h: int) -> int:
        return 0 if self.lam.shape[0] == 1 else h


@dataclass
class Modes:
    """Diagonal modes in our form: continuous ``mu`` (S, K), input ``b`` (S, K), readouts ``c``
    (ch, H, K); the kernel is ``2 Re(sum_k c b dt/(1 - dt mu/2) lam^j)`` (see :func:`modal_kernels`)."""

    mu: np.ndarray
    b: np.ndarray
    c: np.ndarray
    info: dict


def real_form(k: DPLRKernel, s: int) -> tuple[np.ndarray, np.ndarray]:
    """``A_r`` (N, N) and ``b_r`` (N,) of copy ``s`` in the real coordinates ``[Re z; Im z]``."""
    m = k.lam.shape[1]
    a = np.diag(np.concatenate([k.lam[s], k.lam[s].conj()]))
    for p in k.p[:, s]:
        pe = np.concatenate([p, p.conj()])
        a = a - np.outer(pe, pe.conj())
    t = np.block([[np.eye(m), 1j * np.eye(m)], [np.eye(m), -1j * np.eye(m)]])
    a_r = np.linalg.solve(t, a @ t)
    b_r = np.concatenate([k.b[s].real, k.b[s].imag])
    return a_r.real, b_r


def real_readout(c: np.ndarray) -> np.ndarray:
    """``[2 Re C, -2 Im C]`` along the last axis: the readout of the real coordinates."""
    return np.concatenate([2 * c.real, -2 * c.imag], -1)


def bilinear_matrices(a_r: np.ndarray, b_r: np.ndarray, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Abar`` (H, N, N) and ``Bbar`` (H, N) for each step ``dt`` (H,)."""
    n = a_r.shape[0]
    eye = np.eye(n)
    left = eye - dt[:, None, None] / 2 * a_r
    abar = np.linalg.solve(left, eye + dt[:, None, None] / 2 * a_r)
    bbar = np.linalg.solve(left, dt[:, None] * b_r)
    return abar, bbar


def dense_kernels(k: DPLRKernel, length: int | None = None) -> np.ndarray:
    """The kernels ``k_c[j]`` (ch, H, length) by the dense recurrence of the full state: C recovered from
    C~ by a linear solve, then ``C Abar^j Bbar`` step by step (the reference the conversions are
    measured against)."""
    length = k.length if length is None else length
    n_ch, h = k.c_tilde.shape[:2]
    out = np.zeros((n_ch, h, length))
    copies = range(k.lam.shape[0])
    for s in copies:
        chans = np.arange(h) if k.lam.shape[0] == 1 else np.array([s])
        a_r, b_r = real_form(k, s)
        abar, bbar = bilinear_matrices(a_r, b_r, k.dt[chans])
        eye = np.eye(a_r.shape[0])
        c = real_readout(k.c_tilde[:, chans])  # (ch, h', N)
        if k.length:
            power = np.linalg.matrix_power(abar, k.length)
            c = np.linalg.solve(np.transpose(eye - power, (0, 2, 1))[None], c[..., None])[..., 0]
        x = bbar
        for j in range(length):
            out[:, chans, j] = np.einsum("chn,hn->ch", c, x)
            x = np.einsum("hmn,hn->hm", abar, x)
    return out


def bilinear_modes(mu: np.ndarray, dt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lam = (1 + dt mu/2)/(1 - dt mu/2)`` and the input factor ``dt/(1 - dt mu/2)``, (H, K) each."""
    den = 1 - dt[:, None] * mu / 2
    return (1 + dt[:, None] * mu / 2) / den, dt[:, None] / den


def modal_kernels(modes: Modes, dt: np.ndarray, length: int) -> np.ndarray:
    """``2 Re(sum_k c_k b_k g_k lam_k^j)`` (ch, H, length): the kernels of our diagonal modes."""
    h = dt.shape[0]
    mu = np.broadcast_to(modes.mu, (h, modes.mu.shape[1]))
    b = np.broadcast_to(modes.b, (h, modes.b.shape[1]))
    lam, gain = bilinear_modes(mu, dt) if mu.shape[0] == 1 else _per_channel(mu, dt)
    powers = lam[..., None] ** np.arange(length)  # (H, K, L)
    return 2 * np.einsum("chk,hkl->chl", modes.c * (b * gain)[None], powers).real


def _per_channel(mu: np.ndarray, dt: np.ndarray):
    den = 1 - dt[:, None] * mu / 2
    return (1 + dt[:, None] * mu / 2) / den, dt[:, None] / den


def diagonalize(k: DPLRKernel) -> Modes:
    """The exact diagonal form (module docstring): one mode per conjugate pair (its member with
    ``Im mu > 0``) and per real eigenvalue (readout halved)."""
    n_ch, h = k.c_tilde.shape[:2]
    mus, bs, cs, conds, n_real = [], [], [], [], []
    for s in range(k.lam.shape[0]):
        chans = np.arange(h) if k.lam.shape[0] == 1 else np.array([s])
        a_r, b_r = real_form(k, s)
        mu, v = np.linalg.eig(a_r)
        keep = mu.imag > 0
        real = mu.imag == 0
        order = np.concatenate([np.flatnonzero(keep), np.flatnonzero(real)])
        b_all = np.linalg.solve(v, b_r.astype(complex))
        lam, _ = bilinear_modes(mu, k.dt[chans])  # (h', N)
        c_all = real_readout(k.c_tilde[:, chans]) @ v / ((1 - lam ** k.length)[None] if k.length else 1.0)
        weight = np.where(real, 0.5, 1.0)
        mus.append(mu[order])
        bs.append(b_all[order])
        cs.append(c_all[..., order] * weight[order])
        conds.append(float(np.linalg.cond(v)))
        n_real.append(int(real.sum()))
    width = max(len(m) for m in mus)
    mu_out, b_out, c_out = _pad(mus, bs, cs, width, n_ch, h, k.lam.shape[0])
    info = {"modes": width, "real_eigenvalues": max(n_real), "cond_V": max(conds),
            "eig_real_range": [float(min(m.real.min() for m in mus)), float(max(m.real.max() for m in mus))],
            "eig_imag_max": float(max(np.abs(m.imag).max() for m in mus))}
    return Modes(mu_out, b_out, c_out, info)


def _pad(mus, bs, cs, width, n_ch, h, copies):
    """Stack the copies' modes to ``width``; missing modes are ``mu = -1`` with readout 0 (silent)."""
    mu_out = np.full((copies, width), -1.0 + 0j)
    b_out = np.ones((copies, width), complex)
    c_out = np.zeros((n_ch, h, width), complex)
    for s, (mu, b, c) in enumerate(zip(mus, bs, cs)):
        chans = np.arange(h) if copies == 1 else np.array([s])
        mu_out[s, : len(mu)], b_out[s, : len(mu)] = mu, b
        c_out[:, chans, : len(mu)] = c
    return mu_out, b_out, c_out


def refit(k: DPLRKernel, exact: Modes, n_modes: int, target: np.ndarray) -> Modes:
    """``n_modes`` of the exact poles per copy, the dominant ones (largest kernel energy summed over
    channels and readouts over L), with each channel's readouts fitted by least squares to ``target``
    (ch, H, L), the exact kernels; inputs ``b = 1``. The fit is linear once the poles are fixed."""
    n_ch, h, length = target.shape
    j = np.arange(length)
    mus, bs, cs = [], [], []
    for s in range(exact.mu.shape[0]):
        chans = np.arange(h) if exact.mu.shape[0] == 1 else np.array([s])
        mu = exact.mu[s]
        lam, gain = bilinear_modes(mu, k.dt[chans])
        terms = exact.c[:, chans] * (exact.b[s] * gain)[None]  # (ch, h', K) residues
        mag2 = np.abs(lam) ** 2
        energy = np.abs(terms) ** 2 * np.where(mag2 < 1, (1 - mag2 ** length) / np.maximum(1 - mag2, 1e-300), length)
        chosen = np.sort(np.argsort(-energy.sum((0, 1)))[:n_modes])
        mu_k = mu[chosen]
        lam_k, gain_k = bilinear_modes(mu_k, k.dt[chans])
        c = np.zeros((n_ch, len(chans), len(mu_k)), complex)
        is_real = mu_k.imag == 0
        for i, hh in enumerate(chans):
            powers = lam_k[i][None, :] ** j[:, None]  # (L, K)
            basis = np.concatenate([2 * powers.real, -2 * powers[:, ~is_real].imag], 1)
            coef, *_ = np.linalg.lstsq(basis, target[:, hh].T, rcond=None)
            w = coef[: len(mu_k)].astype(complex)
            w[~is_real] += 1j * coef[len(mu_k):]
            c[:, i] = (w / gain_k[i][:, None]).T
        mus.append(mu_k)
        bs.append(np.ones(len(mu_k), complex))
        cs.append(c)
    width = max(len(m) for m in mus)
    mu_out, b_out, c_out = _pad(mus, bs, cs, width, n_ch, h, exact.mu.shape[0])
    return Modes(mu_out, b_out, c_out, {"modes": width, "poles": "the dominant exact eigenvalues",
                                        "residues": "least squares on the exact kernel over L"})


def kernel_error(got: np.ndarray, reference: np.ndarray) -> dict:
    """Largest absolute error and that error relative to the reference's largest magnitude."""
    err = float(np.abs(got - reference).max())
    scale = float(np.abs(reference).max())
    return {"max_abs": err, "relative": err / scale if scale else err}
