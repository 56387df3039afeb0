"""The resonate-and-fire neuron (RF, forward Euler as the SiLIF repository steps it): float layer and
integer node by hand, lava.proc.rf where they coincide, the fold, saturation."""

import numpy as np
import torch

from pspike_neuro.errors import UserError
from pspike_neuro.models import SNN, SNNConfig
from pspike_neuro.models.silif import RFLayer
from pspike_neuro.nodes import FloatNode, QuantContext, RunContext
from pspike_neuro.nodes.rf_neuron import RFNeuron
from pspike_neuro.quant.fold import fold
from pspike_neuro.quant.quantize import QuantConfig

from .lava_helpers import rf_trajectory


def _ctx(steps=1):
    return RunContext(seed=0, samples=np.zeros(1, np.int64), valid=np.ones((1, steps), bool), record_states=True)


def test_rf_layer_steps_by_hand():
    """dt = 0.5, lambda_c = -1 + i: u_t = u + dt (lambda_c u + I) - s, the reset after the step."""
    layer = RFLayer(1, 2, SNNConfig(kind="rf", d_input=1, rf_dt=0.5))
    with torch.no_grad():
        layer.alpha_real.copy_(torch.tensor([-1.0, 0.3]))   # 0.3 is clamped to -0.1
        layer.alpha_im.copy_(torch.tensor([1.0, 0.0]))
    lam_c, dt = layer.coefficients()
    np.testing.assert_allclose(lam_c.detach().numpy(), [-1 + 1j, -0.1], rtol=1e-7)
    probe = {}
    current = torch.tensor([[[3.0, 4.0], [0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    s = layer.dynamics(current, probe, "l").detach()
    u = probe["l.u"][0, :, 0].numpy()
    # t0: u = 0.5 * 3 = 1.5 -> spike; t1: u = 1.5 + 0.5 (-1 + i) 1.5 - 1 = -0.25 + 0.75 i;
    # t2: u = (0.5 + 0.5 i)(-0.25 + 0.75 i) = -0.5 + 0.25 i
    np.testing.assert_allclose(u, [1.5, -0.25 + 0.75j, -0.5 + 0.25j], atol=1e-12)
    np.testing.assert_array_equal(s[0, :, 0].numpy(), [1, 0, 0])
    # neuron 1: u0 = 2 -> spike; u1 = 2 (1 - 0.05) - 1 = 0.9: no spike (reset not decayed)
    np.testing.assert_allclose(probe["l.u"][0, :2, 1].numpy(), [2.0, 0.9], atol=1e-12)


def test_rf_integer_step_by_hand():
    # F = 10: threshold and reset 1.0 = 1024; decay 0.75 + 0.125 i -> (3072, 512); bias 16
    node = RFNeuron("neuron0", dict(layer=0, n=1, state_frac_bits=10, decay_re=np.array([3072]),
                                    decay_im=np.array([512]), bias=np.array([16])))
    ctx = _ctx()
    state = (np.array([[1101]]), np.array([[-201]]), np.array([[1]]))
    out, state, _ = node.int_step(state, {"in": np.array([[300]])}, 0, ctx)
    # drive = 300 + 16 - 1024 = -708
    # re = trunc(3072 * 1101 / 4096) - trunc(512 * -201 / 4096) - 708 = 825 - (-25) - 708 = 142
    # im = trunc(512 * 1101 / 4096) + trunc(3072 * -201 / 4096) = 137 + (-150) = -13; 142 <= 1024: no spike
    assert [int(v[0, 0]) for v in state] == [142, -13, 0] and not out["out"].any()
    out, state, _ = node.int_step(state, {"in": np.array([[1200]])}, 1, ctx)
    # drive = 1216; re = trunc(106.5) - trunc(-1.625) + 1216 = 106 + 1 + 1216 = 1323 > 1024: spike
    # im = trunc(17.75) + trunc(-9.75) = 17 - 9 = 8
    assert [int(v[0, 0]) for v in state] == [1323, 8, 1] and out["out"].all()
    out, state, _ = node.int_step(state, {"in": np.array([[0]])}, 2, ctx)
    # the reset comes after the rotation: drive = 16 - 1024; re = trunc(992.25) - trunc(1) - 1008 = -17
    # im = trunc(165.375) + trunc(6) = 171
    assert [int(v[0, 0]) for v in state] == [-17, 171, 0]
    assert ctx.sat.as_dict() == {"neuron0.state": 0}


def test_rf_saturation_is_counted():
    node = RFNeuron("neuron0", dict(layer=0, n=2, state_frac_bits=22, decay_re=np.array([4095, 4095]),
                                    decay_im=np.array([0, 0]), bias=np.array([0, 0])))
    ctx = _ctx()
    big = 2**23 - 10
    _, (ur, ui, s), _ = node.int_step((np.array([[big, 5]]), np.zeros((1, 2), np.int64), np.zeros((1, 2), np.int64)),
                                      {"in": np.array([[5000, 0]])}, 0, ctx)
    assert int(ur[0, 0]) == 2**23 - 1 and ctx.sat.as_dict() == {"neuron0.state": 1}


def test_rf_without_spikes_follows_lava_rf():
    """Real input, threshold out of reach: the RF node's state is lava.proc.rf's fixed-point trajectory."""
    steps, drive = 30, 2500
    (sin_d, cos_d), lava_states = rf_trajectory(steps, drive, 0, period=7.3, alpha=0.03, state_exp=0,
                                                decay_bits=12, vth=2**22)
    node = RFNeuron("neuron0", dict(layer=0, n=1, state_frac_bits=22, decay_re=np.array([cos_d]),
                                    decay_im=np.array([sin_d]), bias=np.array([0])))
    out, rec = node.int_sequence({"in": np.full((1, steps, 1), drive, np.int64)}, _ctx(steps))
    assert not out["out"].any()
    assert [(int(rec["state"][0, t, 0, 0]), int(rec["state"][0, t, 0, 1])) for t in range(steps)] == lava_states
    assert len(set(lava_states)) > 25


def test_fold_turns_the_euler_step_into_one_decay_and_scales_the_synapse_by_dt():
    torch.manual_seed(0)
    net = SNN(SNNConfig(kind="rf", d_input=3, n_classes=2, d_hidden=4, n_layers=1, input_counts=True)).eval()
    with torch.no_grad():
        net.layers[0].norm.weight.fill_(100.0)   # dt = 0.004 scales the input: large enough to spike
    graph = fold(net)
    layer = net.layers[0]
    neuron, synapse = graph.nodes["neuron0"], graph.nodes["synapse0"]
    lam = 1 + 0.004 * (layer.alpha_real.clamp(max=-0.1).double() + 1j * layer.alpha_im.double()).detach().numpy()
    np.testing.assert_allclose(neuron.floats["lam_re"] + 1j * neuron.floats["lam_im"], lam, rtol=1e-15)
    bn = layer.norm
    g = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).double().detach().numpy()
    np.testing.assert_allclose(synapse.floats["weight"], 0.004 * g[:, None] * layer.linear.weight.double().detach().numpy())
    # the float graph is the torch model on event counts: same spikes, same scores (float64)
    x = (np.random.default_rng(0).random((3, 40, 3)) < 0.4).astype(np.float32)
    from pspike_neuro.graph import run

    got = run(graph, x * 3, integer=False, seed=0)
    want = net.layer_activity(torch.from_numpy(x * 3))
    np.testing.assert_array_equal(got.spikes_out[0], want["spikes_out"][0])
    np.testing.assert_allclose(got.scores, want["scores"], atol=1e-12)
    assert want["spikes_out"][0].any()


def test_rf_decays_beyond_lavas_12_bits_are_refused():
    node = FloatNode(RFNeuron, "neuron0", dict(layer=0, n=1),
                     dict(lam_re=np.array([1.2]), lam_im=np.array([0.0]), bias=np.array([0.0])))
    try:
        RFNeuron.quantize(QuantContext(node, {"state_max": 1.0}, {}, QuantConfig()))
    except UserError as exc:
        assert "layer 0" in str(exc) and "12-bit" in str(exc)
    else:
        raise AssertionError("a decay of 1.2 was accepted")
