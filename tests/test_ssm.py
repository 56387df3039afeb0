"""The SSM kernel: convolution equals recurrence, inits and discretizations are the stated formulas."""

import math

import numpy as np
import pytest
import torch

from pspike_neuro.models.ssm import DiagonalSSM, hippo_legs_diagonal, init_modes


@pytest.mark.parametrize("init", ["legs", "lin", "inv"])
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_convolution_matches_recurrence_float64_L1024(init, discretization):
    torch.manual_seed(1)
    ssm = DiagonalSSM(8, 16, init=init, discretization=discretization).double()
    spikes = (torch.rand(2, 1024, 8, dtype=torch.float64) < 0.3).double()
    with torch.no_grad():
        conv = ssm(spikes)
        rec = ssm.recurrent(spikes)
    assert conv.shape == rec.shape == (2, 1024, 8)
    # float64: the FFT and the recurrence differ by rounding only (measured <= 7e-14 on outputs of size ~5)
    assert rec.abs().max() > 1 and torch.max(torch.abs(conv - rec)).item() < 1e-10


def test_shared_ab_gives_one_copy_per_layer():
    """One A and B for all 6 neurons, each discretized with the neuron's own dt (ZOH, written out in numpy):
    lam[h] = exp(dt_h A), Bbar[h] = (lam[h] - 1) / A * B."""
    ssm = DiagonalSSM(6, 8, share_ab=True).double()
    assert ssm.log_A_real.shape == (1, 4) and ssm.B.shape == (1, 4, 2)
    assert ssm.C.shape == (6, 4, 2) and ssm.log_dt.shape == (6,)
    lam, bbar, c = (t.detach().numpy() for t in ssm.discrete())
    assert lam.shape == bbar.shape == c.shape == (6, 4)
    a = -np.exp(ssm.log_A_real.detach().numpy()[0]) + 1j * ssm.A_imag.detach().numpy()[0]
    b = ssm.B.detach().numpy()[0, :, 0] + 1j * ssm.B.detach().numpy()[0, :, 1]
    dt = np.exp(ssm.log_dt.detach().numpy())[:, None]
    assert len(set(dt.ravel().tolist())) == 6   # six different dt: the rows differ only through them
    np.testing.assert_allclose(lam, np.exp(dt * a), rtol=1e-12)
    np.testing.assert_allclose(bbar, (np.exp(dt * a) - 1) / a * b, rtol=1e-12)
    np.testing.assert_array_equal(c, ssm.C.detach().numpy()[..., 0] + 1j * ssm.C.detach().numpy()[..., 1])


def test_kernel_of_one_mode_by_hand():
    ssm = DiagonalSSM(1, 2, init="lin").double()
    with torch.no_grad():
        ssm.log_dt.fill_(math.log(0.5))
        ssm.log_A_real.fill_(math.log(0.5))   # A = -0.5 + 0i (lin init, n = 0)
        ssm.A_imag.fill_(0.0)
        ssm.B.copy_(torch.tensor([[[1.0, 0.0]]]))
        ssm.C.copy_(torch.tensor([[[0.25, 0.0]]]))
        ssm.D.fill_(0.75)
    lam = math.exp(-0.25)                       # ZOH: exp(dt A)
    bbar = (lam - 1) / -0.5                     # (lam - 1) / A * B
    expected = [2 * 0.25 * bbar * lam**j for j in range(4)]
    k = ssm.kernel(4)[0].detach().numpy()
    np.testing.assert_allclose(k, expected, rtol=1e-12)
    impulse = torch.zeros(1, 4, 1, dtype=torch.float64)
    impulse[0, 0, 0] = 1
    out = ssm(impulse)[0, :, 0].detach().numpy()
    np.testing.assert_allclose(out, [expected[0] + 0.75] + expected[1:], rtol=1e-12)


def test_bilinear_formula_by_hand():
    ssm = DiagonalSSM(1, 2, init="lin", discretization="bilinear").double()
    with torch.no_grad():
        ssm.log_dt.fill_(math.log(0.2))
        ssm.log_A_real.fill_(math.log(0.5))
    lam, bbar, _ = ssm.discrete()
    a = -0.5
    assert abs(lam.item() - (1 + 0.1 * a) / (1 - 0.1 * a)) < 1e-12
    assert abs(bbar.item() - 0.2 / (1 - 0.1 * a)) < 1e-12


def test_legs_modes_are_eigenvalues_of_the_normal_legs_matrix():
    n_state = 8
    lam, b = hippo_legs_diagonal(n_state)
    n = np.arange(n_state)
    q = np.sqrt(2 * n + 1)
    legs = -np.tril(np.outer(q, q), -1) - np.diag(n + 1)
    normal = legs + np.outer(np.sqrt(n + 0.5), np.sqrt(n + 0.5))
    eig = np.linalg.eigvals(normal)
    assert np.allclose(lam.real, -0.5)
    for value in lam:
        assert np.min(np.abs(eig - value)) < 1e-9
    assert lam.shape == b.shape == (4,)


def test_lin_and_inv_initializations():
    lam, b = init_modes("lin", 8)
    np.testing.assert_allclose(lam, -0.5 + 1j * np.pi * np.arange(4))
    lam, _ = init_modes("inv", 8)
    np.testing.assert_allclose(lam.imag, 8 / np.pi * (8 / (2 * np.arange(4) + 1) - 1))
    np.testing.assert_allclose(b, 1)


def test_dt_is_log_uniform_in_range():
    torch.manual_seed(0)
    ssm = DiagonalSSM(4000, 2, dt_min=0.001, dt_max=0.1)
    dt = torch.exp(ssm.log_dt)
    assert dt.min() >= 0.001 * (1 - 1e-6) and dt.max() <= 0.1 * (1 + 1e-6)
    # log-uniform: the median is the geometric mean of the bounds
    assert abs(torch.median(ssm.log_dt).item() - math.log(0.01)) < 0.1


def test_odd_state_size_is_refused():
    with pytest.raises(ValueError, match="even"):
        DiagonalSSM(4, 7)
