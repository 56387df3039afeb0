"""Diagonal complex state-space kernel (S4D) with a convolutional and a recurrent view.

Per neuron h and complex mode k (M = N/2 modes, N real state dimensions)::

    z_k[t] = lam_k z_k[t-1] + Bbar_k s[t]
    v[t]   = 2 Re( sum_k C_k z_k[t] ) + D s[t]

which equals the causal convolution ``v = K * s + D s`` with
``K[j] = 2 Re( sum_k C_k Bbar_k lam_k^j )``. Training uses the convolution (FFT), streaming and
deployment use the recurrence; both come from the same parameters.

Two-sided (``two_sided``, the P-SpikeSSM authors' layer-level ``bidirectional``; float only): a second
readout ``C_anti`` gives ``K1[j] = 2 Re( sum_k C_anti_k Bbar_k lam_k^j )`` and
``v[t] += sum_{u > t} K1[u - t - 1] s[u]`` (the same modes run from the end of the sequence).

Continuous parameters: ``A_k = -exp(log_A_real_k) + i A_imag_k``, ``B_k``, ``C_k`` complex,
``dt_h = exp(log_dt_h)``. Discretization (``lam = exp(dt A)``):

* ZOH:      ``lam = exp(dt A)``,                     ``Bbar = (lam - 1) / A * B``
* bilinear: ``lam = (1 + dt A/2) / (1 - dt A/2)``,   ``Bbar = dt B / (1 - dt A/2)``

Initializations (Gu et al., "On the Parameterization and Initialization of Diagonal State Space
Models", NeurIPS 2022): S4D-LegS (the diagonal part of HiPPO-LegS in normal-plus-low-rank form,
with B projected on its eigenvectors), S4D-Lin (``A_n = -1/2 + i pi n``, B = 1) and S4D-Inv
(``A_n = -1/2 + i N/pi (N/(2n+1) - 1)``, B = 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

INITS = ("legs", "lin", "inv")
DISCRETIZATIONS = ("zoh", "bilinear")


def hippo_legs_diagonal(n_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and projected B of the normal part of HiPPO-LegS (N real dims -> N/2 modes).

    LegS: ``A[n,k] = -sqrt(2n+1) sqrt(2k+1)`` for n > k, ``-(n+1)`` on the diagonal, 0 above;
    ``B[n] = sqrt(2n+1)``. Adding ``P P^T`` with ``P[n] = sqrt(n + 1/2)`` makes it
    ``-1/2 I + S`` with S skew-symmetric, whose eigenvalues are ``+-i w``. We keep the modes with
    ``w > 0`` (one per conjugate pair) and ``B~ = V^H B``.
    """
    n = np.arange(n_state, dtype=np.float64)
    q = np.sqrt(2 * n + 1)
    a = -np.tril(np.outer(q, q), -1) - np.diag(n + 1)
    p = np.sqrt(n + 0.5)
    normal = a + np.outer(p, p)
    skew = normal + 0.5 * np.eye(n_state)
    w, v = np.linalg.eigh(-1j * skew)  # -i S is Hermitian; eigenvalues of S are i w
    keep = np.argsort(-w)[: n_state // 2]  # the positive-frequency half
    lam = -0.5 + 1j * w[keep]
    b = v[:, keep].conj().T @ q
    return lam, b


def init_modes(init: str, n_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous eigenvalues A (negative real part) and input vector B for ``n_state/2`` modes."""
    m = n_state // 2
    idx = np.arange(m, dtype=np.float64)
    if init == "legs":
        return hippo_legs_diagonal(n_state)
    if init == "lin":
        lam = -0.5 + 1j * math.pi * idx
    elif init == "inv":
        lam = -0.5 + 1j * (n_state / math.pi) * (n_state / (2 * idx + 1) - 1)
    else:
        raise ValueError(f"unknown SSM init {init!r}; choose one of {', '.join(INITS)}")
    return lam, np.ones(m, dtype=np.complex128)


class DiagonalSSM(nn.Module):
    """A layer of ``d_model`` independent SSM neurons with ``d_state/2`` complex modes each."""

    def __init__(
        self,
        d_model: int,
        d_state: int,
        *,
        init: str = "legs",
        discretization: str = "zoh",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        share_ab: bool = False,
        two_sided: bool = False,
    ):
        super().__init__()
        if d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be an even number >= 2, got {d_state}")
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"unknown discretization {discretization!r}; choose zoh or bilinear")
        self.d_model, self.d_state, self.n_modes = d_model, d_state, d_state // 2
        self.discretization = discretization
        lam, b = init_modes(init, d_state)
        copies = 1 if share_ab else d_model
        lam = np.broadcast_to(lam, (copies, self.n_modes))
        b = np.broadcast_to(b, (copies, self.n_modes))
        self.log_dt = nn.Parameter(
            torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        )
        self.log_A_real = nn.Parameter(torch.tensor(np.log(-lam.real), dtype=torch.float32))
        self.A_imag = nn.Parameter(torch.tensor(lam.imag, dtype=torch.float32))
        self.B = nn.Parameter(torch.tensor(np.stack([b.real, b.imag], -1), dtype=torch.float32))
        c = torch.randn(d_model, self.n_modes, 2) * math.sqrt(0.5)
        self.C = nn.Parameter(c)
        self.D = nn.Parameter(torch.randn(d_model))
        self.two_sided = two_sided
        if two_sided:
            self.C_anti = nn.Parameter(torch.randn(d_model, self.n_modes, 2) * math.sqrt(0.5))

    #: parameters that get their own optimizer group (lr 1e-3, no weight decay), as the authors do
    ssm_parameter_names = ("log_dt", "log_A_real", "A_imag", "B")

    def continuous_A(self) -> torch.Tensor:
        return torch.complex(-torch.exp(self.log_A_real), self.A_imag)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(lam, Bbar, C)``, complex, each of shape (d_model, n_modes)."""
        a = self.continuous_A()
        b = torch.view_as_complex(self.B.contiguous())
        dt = torch.exp(self.log_dt)[:, None]
        dta = dt * a
        if self.discretization == "zoh":
            lam = torch.exp(dta)
            bbar = (lam - 1) / a * b
        else:
            lam = (1 + dta / 2) / (1 - dta / 2)
            bbar = dt * b / (1 - dta / 2)
        c = torch.view_as_complex(self.C.contiguous())
        return lam, bbar.expand_as(c), c

    def kernel(self, length: int, anti: bool = False) -> torch.Tensor:
        """``K[h, j] = 2 Re(sum_k C Bbar lam^j)`` for j < length, shape (d_model, length); ``anti``: the
        anti-causal kernel ``K1`` of a two-sided SSM (``C_anti`` instead of ``C``)."""
        lam, bbar, c = self.discrete()
        if anti:
            c = torch.view_as_complex(self.C_anti.contiguous())
        j = torch.arange(length, device=lam.device, dtype=lam.real.dtype)
        powers = torch.exp(torch.log(lam)[..., None] * j)  # (H, M, L)
        return 2 * torch.einsum("hm,hml->hl", c * bbar, powers).real

    @staticmethod
    def _causal_conv(s_t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``sum_{s <= t} k[t - s] x[s]`` over the last axis of ``s_t`` (B, H, L), by FFT."""
        length = s_t.shape[-1]
        n_fft = 2 * length
        return torch.fft.irfft(torch.fft.rfft(s_t, n=n_fft) * torch.fft.rfft(k, n=n_fft), n=n_fft)[..., :length]

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Causal (or two-sided) convolution of spikes ``s`` (B, L, H) -> ``v`` (B, L, H), by FFT."""
        length = s.shape[1]
        s_t = s.transpose(1, 2)
        v = self._causal_conv(s_t, self.kernel(length))
        if self.two_sided:  # sum_{u > t} K1[u - t - 1] s[u]: a causal convolution of the reversed input, one step late
            k1 = torch.nn.functional.pad(self.kernel(length, anti=True)[:, : length - 1], (1, 0))
            v = v + self._causal_conv(s_t.flip(-1), k1).flip(-1)
        return v.transpose(1, 2) + self.D * s

    def initial_state(self, batch: int) -> torch.Tensor:
        dtype = torch.complex128 if self.C.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, self.n_modes, dtype=dtype, device=self.C.device)

    def step(self, s_t: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One recurrent step: ``s_t`` (B, H), state ``z`` (B, H, M) -> ``(v_t, z)``."""
        if self.two_sided:
            raise ValueError("a two-sided SSM reads future inputs and has no recurrent step")
        lam, bbar, c = self.discrete()
        z = lam * z + bbar * s_t[..., None]
        v = 2 * (c * z).sum(-1).real + self.D * s_t
        return v, z

    def recurrent(self, s: torch.Tensor) -> torch.Tensor:
        """The same map as :meth:`forward`, computed step by step (streaming form)."""
        z = self.initial_state(s.shape[0])
        out = []
        for t in range(s.shape[1]):
            v, z = self.step(s[:, t], z)
            out.append(v)
        return torch.stack(out, 1)
