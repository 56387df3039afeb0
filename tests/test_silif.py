"""SiLIF and C-SiLIF float models, the spike-train tasks and the SHD loader."""

import json
import math

import h5py
import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.data import load_task
from pspike_neuro.data.spikes import encode_digit_spikes
from pspike_neuro.errors import UserError
from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
from pspike_neuro.models import SNN, SNNConfig
from pspike_neuro.models.silif import READOUT_ALPHA_RANGE, CSiLIFLayer, SiLIFLayer


def _silif_layer(alpha, beta, a, b):
    layer = SiLIFLayer(1, len(alpha), SNNConfig(d_input=1))
    dt = 0.004
    with torch.no_grad():
        layer.log_dt.fill_(math.log(dt))
        layer.theta_alpha.copy_(torch.log(-torch.log(torch.tensor(alpha, dtype=torch.float32)) / dt))
        layer.theta_beta.copy_(torch.log(-torch.log(torch.tensor(beta, dtype=torch.float32)) / dt))
        layer.a.copy_(torch.tensor(a))
        layer.b.copy_(torch.tensor(b))
    return layer


def test_silif_steps_match_hand_computed_values():
    # alpha = 0.5, beta = 0.9, a = 0.2, b = 1.0 (and a, b outside their clamps: 1.5 -> 1, -1 -> 0)
    layer = _silif_layer([0.5, 0.5], [0.9, 0.9], [0.2, 1.5], [1.0, -1.0])
    alpha, beta, a, b = layer.coefficients()
    np.testing.assert_allclose(a.detach(), [0.2, 1.0])
    np.testing.assert_allclose(b.detach(), [1.0, 0.0])
    current = torch.tensor([[[3.0, 3.0], [3.0, 3.0], [0.0, 0.0]]])
    probe = {}
    s = layer.dynamics(current, probe, "l").detach()
    u = probe["l.u"][0]
    # neuron 0, by hand: t0: w = 0, u = 0.5*0 + 0.5*(3 - 0) = 1.5 -> spike
    # t1: w = 0.9*0 + 0.2*1.5 + 1*1 = 1.3; u = 0.5*(1.5 - 1) + 0.5*(3 - 1.3) = 1.1 -> spike
    # t2: w = 0.9*1.3 + 0.2*1.1 + 1 = 2.39; u = 0.5*(1.1 - 1) + 0.5*(0 - 2.39) = -1.145 -> no spike
    np.testing.assert_allclose(u[:, 0], [1.5, 1.1, -1.145], rtol=1e-5)
    np.testing.assert_array_equal(s[0, :, 0], [1, 1, 0])
    # neuron 1 (a = 1, b = 0): t1: w = 1.5, u = 0.5*0.5 + 0.5*1.5 = 1.0 -> no spike (strict >)
    np.testing.assert_allclose(u[:2, 1], [1.5, 1.0], rtol=1e-5)
    np.testing.assert_array_equal(s[0, :2, 1], [1, 0])


def test_csilif_steps_match_hand_computed_values():
    layer = CSiLIFLayer(1, 1, SNNConfig(kind="csilif", d_input=1))
    with torch.no_grad():   # lambda = exp((-0.5 + i pi/2) * 1) = e^-0.5 * i
        layer.log_dt.fill_(0.0)
        layer.theta_re.fill_(math.log(0.5))
        layer.theta_im.fill_(math.pi / 2)
        layer.b.fill_(2.0)
    lam, _ = layer.coefficients()
    np.testing.assert_allclose([lam.real.item(), lam.imag.item()], [0.0, math.exp(-0.5)], atol=1e-7)
    current = torch.tensor([[[0.4], [0.1], [0.0]]], dtype=torch.float64)
    probe = {}
    s = layer.dynamics(current, probe, "l").detach()
    u = probe["l.u"][0, :, 0].numpy()
    r = math.exp(-0.5)
    # t0: u = 0.8 -> 2 Re u = 1.6 > 1: spike; t1: u = i r (0.8 - 0.5) + 0.2 = 0.2 + 0.3 r i: no spike
    # t2: u = i r (0.2 + 0.3 r i) = -0.3 r^2 + 0.2 r i
    np.testing.assert_allclose(u, [0.8, 0.2 + 0.3j * r, -0.3 * r * r + 0.2j * r], atol=1e-12)
    np.testing.assert_array_equal(s[0, :, 0].numpy(), [1, 0, 0])


def test_initializations_follow_the_authors():
    torch.manual_seed(0)
    silif = SiLIFLayer(4, 256, SNNConfig())
    alpha, beta, a, b = silif.coefficients()
    assert torch.allclose(silif.log_dt.exp(), torch.tensor(0.004))
    # tau_u log-uniform over [4, 100] ms and tau_w over [100, 400] ms at dt = 4 ms: alpha = exp(-dt / tau_u)
    # in [e^-1, e^-0.04], beta in [e^-0.04, e^-0.01]; 256 draws come close to both ends of each range
    e1, e04, e01 = math.exp(-1), math.exp(-0.04), math.exp(-0.01)
    assert e1 - 1e-6 <= float(alpha.min()) < e1 + 0.02 and e04 - 0.002 < float(alpha.max()) <= e04 + 1e-6
    assert e04 - 1e-6 <= float(beta.min()) < e04 + 0.002 and e01 - 0.001 < float(beta.max()) <= e01 + 1e-6
    # a uniform on [0, 1), b on [0, 2)
    assert 0 <= float(a.min()) < 0.05 and 0.95 < float(a.max()) < 1 and 0 <= float(b.min()) < 0.1 and 1.9 < float(b.max()) < 2
    bound = math.sqrt(6 / (4 + 256))                                     # xavier_uniform_, as the authors
    assert 0.9 * bound < float(silif.linear.weight.abs().max()) <= bound
    c = CSiLIFLayer(4, 256, SNNConfig(kind="csilif"))
    assert 0.45 < float(c.linear.weight.abs().max()) <= 0.5               # torch's default, U(+-1/sqrt(4))
    assert torch.allclose(c.theta_re.exp(), torch.tensor(0.5)) and torch.allclose(c.theta_im, torch.tensor(math.pi))
    dt = c.log_dt.exp()                                                  # log-uniform over [0.01, 0.5]
    assert 0.01 - 1e-9 <= float(dt.min()) < 0.011 and 0.45 < float(dt.max()) <= 0.5 + 1e-9


def test_network_output_is_summed_softmax_of_the_leaky_readout():
    torch.manual_seed(1)
    net = SNN(SNNConfig(d_input=6, n_classes=3, d_hidden=8)).eval()
    x = (torch.rand(2, 10, 6) < 0.3).float()
    probe = {}
    out = net(x, probe=probe)
    r = probe["readout.r"]
    torch.testing.assert_close(out, torch.softmax(r, -1).sum(1))
    assert torch.allclose(out.sum(-1), torch.tensor(10.0))
    alpha = net.readout.clamped_alpha()
    assert float(alpha.min()) >= READOUT_ALPHA_RANGE[0] - 1e-7 and float(alpha.max()) <= READOUT_ALPHA_RANGE[1] + 1e-7
    # one readout step by hand
    i0 = net.readout.norm(net.readout.linear(probe["layer1.s"]).transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(r[:, 0], (1 - alpha) * i0[:, 0])
    torch.testing.assert_close(r[:, 1], alpha * r[:, 0] + (1 - alpha) * i0[:, 1])


def test_boxcar_surrogate_lets_the_network_learn():
    # by hand, one step from rest (alpha = 0.5): u = 0.5 I, s = 1[u > 1], ds/dI = 0.5 * 1[|u - 1| < 1/2]
    layer = _silif_layer([0.5] * 4, [0.9] * 4, [0.2] * 4, [1.0] * 4)
    current = torch.tensor([[[2.5, 2.9, 3.1, 1.1]]], requires_grad=True)   # u - 1 = 0.25, 0.45, 0.55, -0.45
    s = layer.dynamics(current)
    s.sum().backward()
    assert s[0, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    np.testing.assert_allclose(current.grad[0, 0].numpy(), [0.5, 0.5, 0.0, 0.5], rtol=1e-6)
    # and in a network, gradients reach the first layer's parameters
    torch.manual_seed(0)
    net = SNN(SNNConfig(d_input=4, n_classes=2, d_hidden=8))
    x = (torch.rand(4, 12, 4) < 0.5).float()
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    grads = [p.grad for p in net.layers[0].parameters() if p.grad is not None]
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_sdigits_spikes_is_a_thermometer_code_of_the_digits():
    pixels = np.zeros((1, 64), int)
    pixels[0, 8 * 2 + 3] = 10     # row 2, column 3: levels 1, 5, 9 reached, 13 not
    spikes = encode_digit_spikes(pixels)[0]
    assert spikes.shape == (32, 32) and spikes.sum() == 3
    assert [tuple(p) for p in np.argwhere(spikes)] == [(8, 12), (9, 13), (10, 14)]
    task = load_task("sdigits-spikes")
    base = load_task("sdigits")
    assert (task.d_input, task.seq_len, len(task.train), len(task.test)) == (32, 32, 1437, 360)
    assert torch.equal(task.test.y, base.test.y)
    levels = task.test.x.reshape(360, 8, 4, 8, 4).sum((2, 4))   # spikes per pixel = its level
    expected = (np.rint(base.test.x[:, :, 0].numpy() * 16).reshape(360, 8, 8)[..., None]
                >= np.array([1, 5, 9, 13])).sum(-1)
    np.testing.assert_array_equal(levels.numpy(), expected)


def _write_shd(path, times, units, labels):
    with h5py.File(path, "w") as f:
        vf, vi = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        t = f.create_dataset("spikes/times", (len(times),), dtype=vf)
        u = f.create_dataset("spikes/units", (len(units),), dtype=vi)
        for i, (ti, ui) in enumerate(zip(times, units)):
            t[i], u[i] = np.asarray(ti, np.float32), np.asarray(ui, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint8))


def test_shd_loader_bins_a_file_in_shds_layout(tmp_path):
    _write_shd(tmp_path / "shd_train.h5", [[0.0, 0.011, 0.5, 0.999, 1.2], [0.3]], [[0, 4, 699, 10, 3], [5]], [3, 19])
    _write_shd(tmp_path / "shd_test.h5", [[0.05, 0.051]], [[7, 8]], [0])
    task = load_task("shd", data_dir=str(tmp_path), n_steps=10)
    assert (task.d_input, task.seq_len, task.n_classes, len(task.train), len(task.test)) == (140, 10, 20, 2, 1)
    x = task.train.x.numpy()
    # sample 0: t=0 unit 0 -> (0, 0); t=0.011 unit 4 -> (0, 0) again (clipped to 1); t=0.5 unit 699 ->
    # (5, 139); t=0.999 unit 10 -> (9, 2); t=1.2 is past max_time: dropped
    assert sorted(map(tuple, np.argwhere(x[0]))) == [(0, 0), (5, 139), (9, 2)]
    assert x[0].max() == 1.0 and x.sum() == 4
    assert task.train.y.tolist() == [3, 19] and task.test.x[0, 0, 1] == 1.0   # units 7, 8 -> channel 1


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.__delitem__("labels"), "missing /labels"),
    (lambda f: f.__setitem__("labels2", [1]) or f["labels"].attrs.create("x", 1) or None, None),
])
def test_shd_loader_refuses_other_layouts(tmp_path, edit, message):
    _write_shd(tmp_path / "shd_train.h5", [[0.1]], [[1]], [1])
    _write_shd(tmp_path / "shd_test.h5", [[0.1]], [[1]], [1])
    with h5py.File(tmp_path / "shd_train.h5", "a") as f:
        edit(f)
    if message is None:
        assert len(load_task("shd", data_dir=str(tmp_path)).train) == 1
        return
    with pytest.raises(UserError, match=message):
        load_task("shd", data_dir=str(tmp_path))


def test_shd_loader_refuses_out_of_range_units_and_missing_files(tmp_path):
    _write_shd(tmp_path / "shd_train.h5", [[0.1]], [[700]], [1])
    _write_shd(tmp_path / "shd_test.h5", [[0.1]], [[1]], [1])
    with pytest.raises(UserError, match="units outside 0..699"):
        load_task("shd", data_dir=str(tmp_path))
    with pytest.raises(UserError, match="not a folder"):
        load_task("shd", data_dir=str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no shd_train.h5"):
        load_task("shd", data_dir=str(tmp_path / "empty"))


@pytest.mark.parametrize("options, message", [
    (dict(n_steps=0), r"n_steps must be an integer in \[1, 10000\], got 0"),
    (dict(n_steps=2.5), r"n_steps must be an integer"),
    (dict(spatial_bin=3), r"spatial_bin must divide 700"),
    (dict(max_time=float("nan")), r"max_time must be a number in \(0, 10000\]"),
    (dict(max_time=-1.0), r"max_time must be a number"),
    (dict(limit_train=0), r"limit_train must be an integer >= 1"),
    (dict(n_steps=10_000, spatial_bin=1, limit_train=None), None),
])
def test_shd_binning_options_are_checked(tmp_path, options, message):
    _write_shd(tmp_path / "shd_train.h5", [[0.1]] * 700, [[1]] * 700, [1] * 700)
    _write_shd(tmp_path / "shd_test.h5", [[0.1]], [[1]], [1])
    if message is None:  # 700 x 10000 x 700 float32 = 18 GiB: refused before allocating
        message = r"700 samples x 10000 steps x 700 channels need 18.3 GiB \(limit 16\)"
    with pytest.raises(UserError, match=message):
        load_task("shd", data_dir=str(tmp_path), **options)


def test_snn_checkpoints_round_trip_and_refuse_mismatches(tmp_path):
    torch.manual_seed(0)
    net = SNN(SNNConfig(kind="csilif", d_input=32, d_hidden=8)).eval()
    save_checkpoint(tmp_path / "m.pt", net, task="sdigits-spikes")
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.model_type == "csilif" and isinstance(ckpt.model, SNN) and ckpt.config.d_hidden == 8
    x = load_task("sdigits-spikes").test.x[:4]
    torch.testing.assert_close(ckpt.model(x), net(x))
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["model_type"] = "silif"
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="model_type 'silif' but model_config.kind 'csilif'"):
        load_checkpoint(tmp_path / "bad.pt")


def test_train_cli_builds_snn_models(tmp_path, capsys):
    assert main(["train", "--task", "sdigits-spikes", "--model", "silif", "--d-model", "8", "--epochs", "1",
                 "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "silif" and summary["inference_seeds"] == [0]
    assert load_checkpoint(tmp_path / "model.pt").config.d_hidden == 8
    assert main(["train", "--task", "sdigits-spikes", "--model", "silif", "--d-state", "4", "--out", str(tmp_path)]) == 2
    assert "--d-state apply to P-SpikeSSM only" in capsys.readouterr().err
    assert main(["train", "--task", "sdigits", "--model", "lif", "--out", str(tmp_path)]) == 2
    assert "--model must be pspike, silif or csilif" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "model.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inference_seeds"] == [0]   # deterministic: one pass
    assert main(["eval", str(tmp_path / "model.pt"), "--fake-quant", "4"]) == 2
    assert "for P-SpikeSSM checkpoints" in capsys.readouterr().err
