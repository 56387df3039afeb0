"""SiLIF / C-SiLIF deployment: integer steps by hand, reference vs Lava bit for bit, float parity,
lava.proc.rf where C-SiLIF coincides with it, the pipeline's commands, refusals."""

import json

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main, snn_threads
from pspike_neuro.data import load_task
from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
from pspike_neuro.export.hdf5 import read_netlist, write_netlist
from pspike_neuro.models import SNN, SNNConfig
from pspike_neuro.nodes import RunContext
from pspike_neuro.nodes.csilif_neuron import CSiLIFNeuron
from pspike_neuro.nodes.silif_neuron import SiLIFNeuron
from pspike_neuro.quant.quantize import QuantConfig
from pspike_neuro.sim.lava_backend import run_lava
from pspike_neuro.sim.reference import simulate

from .lava_helpers import rf_trajectory


@pytest.fixture(scope="session")
def trained_snns(tmp_path_factory):
    """A SiLIF and a C-SiLIF network (2 x 32) trained briefly on sdigits-spikes, with their netlists."""
    from pspike_neuro.training import TrainConfig, train

    task = load_task("sdigits-spikes")
    out = {}
    for kind, epochs, lr in (("silif", 12, 2e-2), ("csilif", 6, 5e-3)):  # silif: 85.0 % float accuracy
        d = tmp_path_factory.mktemp(kind)
        cfg = SNNConfig(kind=kind, d_input=task.d_input, n_classes=10, d_hidden=32, n_layers=2)
        with snn_threads("cpu"):  # as pspike train does: 6x faster on 2 busy cores
            train(task, cfg, TrainConfig(epochs=epochs, lr=lr, weight_decay=0.0, eval_seeds=1), d, progress=False,
                  log=lambda msg: None)
        ckpt = load_checkpoint(d / "model.pt")
        netlist, _ = build_netlist(ckpt, QuantConfig(calib_samples=128))
        write_netlist(netlist, d / "model.net")
        out[kind] = (ckpt, d / "model.net")
    return out


def _ctx(steps=1):
    return RunContext(seed=0, samples=np.zeros(1, np.int64), valid=np.ones((1, steps), bool), record_states=True)


def test_silif_integer_step_by_hand():
    # F = 10 (threshold 1024); alpha = 0.5, beta = 0.75, 1 - alpha = 0.5, a = 0.25, b = 256, bias = 100
    node = SiLIFNeuron("neuron0", dict(layer=0, n=1, state_frac_bits=10, alpha=np.array([2048]),
                                       beta=np.array([3072]), one_minus_alpha=np.array([2048]), a=np.array([1024]),
                                       b=np.array([256]), bias=np.array([100])))
    ctx = _ctx()
    state = (np.array([[1500]]), np.array([[-40]]), np.array([[1]]))
    out, state, _ = node.int_step(state, {"in": np.array([[2000]])}, 0, ctx)
    # w' = trunc(0.75 * -40) + trunc(0.25 * 1500) + 256 = -30 + 375 + 256 = 601
    # u' = trunc(0.5 * (1500 - 1024)) + trunc(0.5 * (2000 + 100 - 601)) = 238 + 749 = 987 -> no spike
    u, w, s = state
    assert (int(w[0, 0]), int(u[0, 0]), int(s[0, 0]), bool(out["out"][0, 0])) == (601, 987, 0, False)
    out, (u, w, s), _ = node.int_step(state, {"in": np.array([[3000]])}, 1, ctx)
    # w' = trunc(450.75) + trunc(246.75) + 0 = 450 + 246 = 696; u' = 493 + trunc(0.5 * 2404) = 493 + 1202 = 1695
    assert (int(w[0, 0]), int(u[0, 0]), int(s[0, 0]), bool(out["out"][0, 0])) == (696, 1695, 1, True)
    assert ctx.sat.as_dict() == {"neuron0.state": 0}


def test_csilif_integer_step_by_hand():
    # F = 10: reset 0.5 = 512; lambda = (0.5 + 0.25 i) -> (2048, 1024)
    node = CSiLIFNeuron("neuron0", dict(layer=0, n=1, state_frac_bits=10, decay_re=np.array([2048]),
                                        decay_im=np.array([1024]), bias=np.array([-8])))
    ctx = _ctx()
    out, (ur, ui, s), _ = node.int_step((np.array([[900]]), np.array([[-300]]), np.array([[1]])),
                                        {"in": np.array([[200]])}, 0, ctx)
    # reset: 900 - 512 = 388; re = trunc(0.5 * 388) - trunc(0.25 * -300) + 192 = 194 + 75 + 192 = 461
    # im = trunc(0.25 * 388) + trunc(0.5 * -300) = 97 - 150 = -53; 2 * 461 = 922 <= 1024: no spike
    assert (int(ur[0, 0]), int(ui[0, 0]), int(s[0, 0])) == (461, -53, 0)
    out, (ur, ui, s), _ = node.int_step((ur, ui, s), {"in": np.array([[900]])}, 1, ctx)
    # re = trunc(230.5) - trunc(-13.25) + 892 = 230 + 13 + 892 = 1135 -> 2 * 1135 > 1024: spike
    assert (int(ur[0, 0]), int(s[0, 0]), bool(out["out"][0, 0])) == (1135, 1, True)


def test_csilif_without_spikes_follows_lava_rf():
    """Real input, threshold out of reach: C-SiLIF's state is lava.proc.rf's fixed-point trajectory."""
    steps, drive = 30, 2500
    (sin_d, cos_d), lava_states = rf_trajectory(steps, drive, 0, period=9.1, alpha=0.05, state_exp=0,
                                                decay_bits=12, vth=2**22)
    node = CSiLIFNeuron("neuron0", dict(layer=0, n=1, state_frac_bits=22, decay_re=np.array([cos_d]),
                                        decay_im=np.array([sin_d]), bias=np.array([0])))
    out, rec = node.int_sequence({"in": np.full((1, steps, 1), drive, np.int64)}, _ctx(steps))
    spikes, states = out["out"], rec["state"]
    assert not spikes.any()
    assert [(int(states[0, t, 0, 0]), int(states[0, t, 0, 1])) for t in range(steps)] == lava_states
    assert len(set(lava_states)) > 25


@pytest.mark.parametrize("kind", ["silif", "csilif"])
def test_lava_fixed_point_is_bit_identical_to_the_reference(trained_snns, kind, tmp_path, capsys):
    _, net = trained_snns[kind]
    assert main(["simulate", str(net), "--samples", "3", "--json", "--out", str(tmp_path / "ref")]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert main(["simulate", str(net), "--backend", "lava", "--samples", "3", "--json", "--out", str(tmp_path / "lava")]) == 0
    lava = json.loads(capsys.readouterr().out)
    a, b = np.load(tmp_path / "ref" / "activity.npz"), np.load(tmp_path / "lava" / "activity.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert ref["layers"] == lava["layers"] and ref["accuracy"] == lava["accuracy"]
    assert sum(x["output_spikes"] for x in ref["layers"]) > 0


def test_lava_runs_samples_back_to_back_without_crosstalk(trained_snns):
    """Samples share a network (states reset where each process's view of a sample begins); split
    over networks of 2, 3 samples give the reference's integers."""
    net = read_netlist(trained_snns["csilif"][1])
    x = load_task("sdigits-spikes").test.x[:3].numpy()
    ref, lava = simulate(net, x, seed=0), run_lava(net, x, samples_per_network=2)
    np.testing.assert_array_equal(lava.records["readout"]["r"], ref.records["readout"]["r"])   # readout potentials
    for l in range(2):
        np.testing.assert_array_equal(lava.spikes_out[l], ref.spikes_out[l])
    assert ref.spikes_out[1].any()


@pytest.mark.parametrize("kind", ["silif", "csilif"])
def test_lava_floating_point_follows_the_float_model(trained_snns, kind):
    ckpt, net = trained_snns[kind]
    x = load_task("sdigits-spikes").test.x[:2]
    probe = {}
    with torch.no_grad():
        scores = ckpt.model.double()(x.double(), probe=probe).numpy()
    result = run_lava(read_netlist(net), x.numpy(), tag="floating_pt")
    for l in range(2):
        np.testing.assert_array_equal(result.spikes_out[l], probe[f"layer{l}.s"].numpy().astype(bool))
    np.testing.assert_allclose(result.logits, scores, rtol=1e-6)  # Lava's float Dense rounds at ~1e-8


@pytest.mark.parametrize("kind", ["silif", "csilif"])
def test_deployed_network_tracks_the_float_model(trained_snns, kind, capsys):
    ckpt, net = trained_snns[kind]
    assert main(["verify", str(ckpt.path), str(net), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["float"]["accuracy"] > 0.6
    assert abs(result["float"]["accuracy"] - result["deployed"]["accuracy"]) <= 0.01
    assert result["checks"]["max_rate_difference"]["value"] < 0.05
    assert result["deployed"]["saturation_events"] == 0
    # energy per inference, counted here from docs/energy-model.md ("SiLIF and C-SiLIF networks") and a run
    # of the simulator on the same 360 samples: T = 32 steps, 32 inputs, 2 x 32 neurons, 10 classes
    t, h, c, n = 32, 32, 10, result["samples"]
    assert n == 360
    energy = result["deployed"]["energy"]
    ops, dense = energy["ops_per_inference"], energy["non_spiking_ops_per_inference"]
    adds = 5 if kind == "silif" else 4
    fixed = dict(mac=t * (4 * 2 * h + c), add=t * (adds * 2 * h + 2 * c), neuron_updates=t * (2 * 2 * h + c))
    assert {k: ops[k] for k in fixed} == fixed
    assert ops["rng"] == ops["graded_synops"] == ops["graded_messages"] == 0
    graph = read_netlist(net)
    deployed = simulate(graph, load_task("sdigits-spikes").test.x.numpy(), seed=0)
    into = {"synapse0": deployed.spikes_in[0], "synapse1": deployed.spikes_out[0], "readout_synapse": deployed.spikes_out[1]}
    ac = sum(float((spikes.sum((0, 1)) * np.count_nonzero(graph.nodes[name].to_dense(), 0)).sum())
             for name, spikes in into.items()) / n
    layer_spikes = float(deployed.spikes_out[0].sum() + deployed.spikes_out[1].sum()) / n
    assert ops["ac"] == pytest.approx(ac, rel=1e-12) and ac > 0
    assert ops["active_neuron_updates"] == pytest.approx(layer_spikes, rel=1e-12)
    assert ops["binary_messages"] == pytest.approx(layer_spikes + deployed.spikes_in[0].sum() / n, rel=1e-12)
    # the non-spiking counterpart: every synapse graded, T H_in H_out MACs; every neuron a graded message
    assert dense == {**fixed, "ac": 0, "graded_synops": t * (32 * h + h * h + h * c), "rng": 0,
                     "active_neuron_updates": 0, "binary_messages": 0, "graded_messages": t * (32 + 2 * h)}
    for model in energy["models"].values():
        assert model["ratio_non_spiking_to_spiking"] == pytest.approx(model["non_spiking_total_pj"] / model["total_pj"])
        assert model["ratio_non_spiking_to_spiking"] > 1


def test_energy_counts_of_a_hand_built_silif_netlist(trained_snns):
    from pspike_neuro.energy.ops import count_ops, count_ops_dense, total

    _, path = trained_snns["silif"]
    net = read_netlist(path)
    for name in ("synapse0", "synapse1", "readout_synapse"):   # a known fan-out: every weight non-zero
        node = net.nodes[name]
        net.nodes[name] = type(node)(name, {**node.values, "weights": np.full_like(node.weights, 2)}, node.floats)
    s_in0 = np.zeros((1, 4, 32), bool)
    s_in0[0, 0, :3] = True                       # 3 input spikes
    s_out0 = np.zeros((1, 4, 32), bool)
    s_out0[0, 1, 0] = True                       # 1 spike in layer 0
    s_out1 = np.zeros((1, 4, 32), bool)
    s_out1[0, 2, :2] = True                      # 2 spikes in layer 1
    valid = np.ones((1, 4), bool)
    rows = {r["node"]: r for r in count_ops(net, {"input": s_in0, "neuron0": s_out0, "neuron1": s_out1}, {}, valid)}
    assert rows["synapse0"]["ac"] == 3 * 32 and rows["synapse1"]["ac"] == 1 * 32
    assert rows["readout_synapse"]["ac"] == 2 * 10
    n0 = rows["neuron0"]
    assert (n0["mac"], n0["add"], n0["neuron_updates"], n0["binary_messages"]) == (4 * 32 * 4, 4 * 32 * 5, 4 * 32 * 2, 1)
    assert rows["neuron1"]["binary_messages"] == 2 and rows["input"]["binary_messages"] == 3
    assert (rows["readout"]["mac"], rows["readout"]["add"]) == (4 * 10, 4 * 10 * 2)
    dense = total(count_ops_dense(net, valid))
    assert dense.graded_synops == 4 * (32 * 32 + 32 * 32 + 32 * 10) and dense.ac == 0


def test_report_on_a_silif_network(trained_snns, tmp_path):
    ckpt, net = trained_snns["csilif"]
    assert main(["report", str(ckpt.path), str(net), "--samples", "30", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verification"]["backend"] == "reference"
    assert report["probability"]["output"]["neurons"] == 64
    layers = report["verification"]["layers"]
    rates = np.concatenate([np.array(r["output"]["float_per_neuron"]) for r in layers])
    assert rates.shape == (64,)
    # deterministic neurons: the "probability" of a neuron is its firing rate (an independent count)
    assert report["probability"]["output"]["fraction_near_zero"] == pytest.approx(float((rates < 0.05).mean()))
    assert report["probability"]["output"]["median"] == pytest.approx(float(np.median(rates)))
    assert 0 < report["probability"]["output"]["fraction_near_zero"] < 1
    import matplotlib.image

    img = matplotlib.image.imread(str(tmp_path / "figures" / "probability_histogram.png"))
    assert img.shape[:2] == (int(3.4 * 110), 9 * 110) and (img[..., :3] < 0.9).mean() > 0.005   # drawn, 9 x 3.4 in


def test_export_refuses_what_does_not_deploy(tmp_path, capsys):
    torch.manual_seed(0)
    net = SNN(SNNConfig(kind="csilif", d_input=32, d_hidden=4)).eval()
    with torch.no_grad():
        net.layers[0].theta_re.fill_(-30.0)      # |lambda| rounds to 1: an undamped resonator
    save_checkpoint(tmp_path / "m.pt", net, task="sdigits-spikes")
    assert main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.net")]) == 2
    err = capsys.readouterr().err
    # lambda = exp((-e^theta_re + i theta_im) dt) per neuron, on the 12-bit grid: those rounded onto or outside
    # the unit circle are counted in the message (written out here from docs/numerics.md §5)
    layer = net.layers[0]
    dt = layer.log_dt.exp().double().detach().numpy()
    lam = np.exp((-np.exp(layer.theta_re.double().detach().numpy()) + 1j * layer.theta_im.double().detach().numpy()) * dt)
    unstable = int(np.count_nonzero(np.rint(lam.real * 4096) ** 2 + np.rint(lam.imag * 4096) ** 2 >= 4096**2))
    assert unstable >= 1 and len(err.strip().splitlines()) == 1
    assert f"checkpoint {tmp_path / 'm.pt'}: layer 0: {unstable} SSM mode(s) have |decay| >= 1 after rounding to 12 bits" in err
    assert not (tmp_path / "m.net").exists()


def test_padded_spike_trains_give_the_float_models_predictions(trained_snns):
    """Padded steps carry no input spikes and leave the scores, as in the float model."""
    ckpt, path = trained_snns["silif"]
    net = read_netlist(path)
    x = load_task("sdigits-spikes").test.x[:6]
    lengths = np.array([32, 20, 9, 32, 25, 3])
    deployed = simulate(net, x.numpy(), seed=0, lengths=lengths)
    with torch.no_grad():
        scores = ckpt.model.double()(x.double(), torch.as_tensor(lengths)).numpy()
    np.testing.assert_allclose(deployed.scores.sum(-1), lengths)   # one softmax vector per valid step
    assert (deployed.predictions == scores.argmax(-1)).mean() >= 5 / 6
    assert not deployed.outputs["input"][1, 20:].any()


def _silif_network_by_hand(net, x):
    """docs/numerics.md §5 written out in numpy: each Dense synapse ``shift(W s, weight_exp)`` (an arithmetic
    shift), the SiLIF steps (w first, then u with the new w; states from zero), the leaky readout, and the
    host's scores ``sum_t softmax(r_t 2^-F_r)``. Returns per layer the spikes and the states (u, w) of every
    step, the readout potentials of every step, and the scores."""
    limit = 2**23 - 1
    sat = lambda a: np.clip(a, -limit, limit)  # noqa: E731
    trunc12 = lambda a: np.sign(a) * (np.abs(a) // 4096)  # noqa: E731 - shr_trunc(a, 12)

    def synapse(name, spikes):
        syn = net.nodes[name]
        acc = spikes.astype(np.int64) @ syn.weights.astype(np.int64).T
        return acc << syn.weight_exp if syn.weight_exp >= 0 else acc >> -syn.weight_exp

    spikes, layers = x != 0, []
    for l in range(2):
        v = net.nodes[f"neuron{l}"].values
        current, one = synapse(f"synapse{l}", spikes), 2 ** v["state_frac_bits"]
        u = w = s = np.zeros((x.shape[0], v["n"]), np.int64)
        out, states = np.zeros(current.shape, bool), np.zeros(current.shape + (2,), np.int64)
        for t in range(x.shape[1]):
            w = sat(trunc12(v["beta"] * w) + trunc12(v["a"] * u) + s * v["b"])
            u = sat(trunc12(v["alpha"] * (u - s * one)) + trunc12(v["one_minus_alpha"] * (current[:, t] + v["bias"] - w)))
            s = (u > one).astype(np.int64)
            out[:, t], states[:, t, :, 0], states[:, t, :, 1] = s, u, w
        layers.append((out, states))
        spikes = out
    v = net.nodes["readout"].values
    current = synapse("readout_synapse", spikes)
    r, potentials, scores = np.zeros((x.shape[0], v["n"]), np.int64), np.zeros(current.shape, np.int64), 0.0
    for t in range(x.shape[1]):
        r = sat(trunc12(v["alpha"] * r) + current[:, t] + v["bias"])
        potentials[:, t] = r
        e = np.exp(r * 2.0 ** -v["state_frac_bits"] - (r * 2.0 ** -v["state_frac_bits"]).max(-1, keepdims=True))
        scores = scores + e / e.sum(-1, keepdims=True)
    return layers, potentials, scores


def test_reference_layers_are_the_integer_layers_composed(trained_snns):
    _, path = trained_snns["silif"]
    net = read_netlist(path)
    x = load_task("sdigits-spikes").test.x[:5].numpy()
    result = simulate(net, x, seed=0, record_states=True)
    assert result.logits.shape == (5, 10)
    np.testing.assert_allclose(result.logits.sum(-1), 32.0)   # 32 softmax vectors summed
    np.testing.assert_array_equal(result.spikes_in[0], x != 0)
    layers, potentials, scores = _silif_network_by_hand(net, x)
    for l, (spikes, states) in enumerate(layers):
        assert 0 < spikes.mean() < 1 and (states[..., 0] < 0).any() and (states[..., 1] != 0).any()
        np.testing.assert_array_equal(result.spikes_out[l], spikes, err_msg=f"layer {l}")
        np.testing.assert_array_equal(result.records[f"neuron{l}"]["state"], states, err_msg=f"layer {l} u, w")
    np.testing.assert_array_equal(result.spikes_in[1], layers[0][0])
    np.testing.assert_array_equal(result.records["readout"]["r"], potentials)
    np.testing.assert_allclose(result.logits, scores, rtol=1e-12, atol=1e-12)


def _write_shd_like(path, n, rng):
    """``n`` samples in SHD's layout; class ``c`` fires units ``35c .. 35c + 34`` (learnable by band)."""
    import h5py

    labels = np.arange(n) % 20
    with h5py.File(path, "w") as f:
        vf, vi = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        times = f.create_dataset("spikes/times", (n,), dtype=vf)
        units = f.create_dataset("spikes/units", (n,), dtype=vi)
        for i, c in enumerate(labels):
            times[i] = np.sort(rng.uniform(0, 1.0, 80)).astype(np.float32)
            units[i] = (35 * c + rng.integers(0, 35, 80)).astype(np.uint16)
        f.create_dataset("labels", data=labels.astype(np.uint8))


def test_shd_pipeline_from_a_local_folder(tmp_path, capsys):
    """train --data-dir, export, simulate and verify on files in SHD's layout; export and verify find
    the data through the folder the checkpoint records."""
    rng = np.random.default_rng(0)
    data = tmp_path / "shd"
    data.mkdir()
    _write_shd_like(data / "shd_train.h5", 60, rng)
    _write_shd_like(data / "shd_test.h5", 20, rng)
    run = tmp_path / "run"
    assert main(["train", "--task", "shd", "--data-dir", str(data), "--model", "csilif", "--d-model", "16",
                 "--epochs", "3", "--out", str(run), "--quiet"]) == 0
    assert load_checkpoint(run / "model.pt").config.d_input == 140
    assert main(["export", str(run / "model.pt"), "-o", str(run / "model.net")]) == 0
    capsys.readouterr()
    assert main(["simulate", str(run / "model.net"), "--data-dir", str(data), "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["samples"] == 20 and len(sim["layers"]) == 2
    code = main(["verify", str(run / "model.pt"), str(run / "model.net"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["passed"] else 1)
    assert result["task"] == "shd" and result["samples"] == 20
    assert result["deployed"]["accuracy"] == sim["accuracy"]


def test_shd_binning_options_travel_from_training_to_simulation(tmp_path, capsys):
    """``--task-option`` values (here 20 steps, 70 channels) are recorded in the checkpoint and the
    netlist, so export, eval, simulate and verify bin the files the same way without being told."""
    rng = np.random.default_rng(1)
    data = tmp_path / "shd"
    data.mkdir()
    _write_shd_like(data / "shd_train.h5", 40, rng)
    _write_shd_like(data / "shd_test.h5", 12, rng)
    run = tmp_path / "run"
    assert main(["train", "--task", "shd", "--data-dir", str(data), "--task-option", "n_steps=20",
                 "--task-option", "spatial-bin=10", "--model", "silif", "--d-model", "8", "--layers", "1",
                 "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    ckpt = load_checkpoint(run / "model.pt")
    assert ckpt.config.d_input == 70
    assert ckpt.task_options["options"] == {"n_steps": 20, "spatial_bin": 10}
    assert main(["export", str(run / "model.pt"), "-o", str(run / "model.net")]) == 0
    net = read_netlist(run / "model.net")
    assert net.meta["task_options"] == {"n_steps": 20, "spatial_bin": 10} and net.meta["seq_len"] == 20
    capsys.readouterr()
    assert main(["eval", str(run / "model.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_test"] == 12
    assert main(["simulate", str(run / "model.net"), "--data-dir", str(data), "--json", "--out", str(run / "sim")]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert np.load(run / "sim" / "activity.npz")["layer0_input_spikes"].shape[1:] == (20, 70)
    code = main(["verify", str(run / "model.pt"), str(run / "model.net"), "--json"])
    verified = json.loads(capsys.readouterr().out)
    assert code == (0 if verified["passed"] else 1) and verified["samples"] == 12
    assert verified["deployed"]["accuracy"] == sim["accuracy"]
    # without the recorded options the default binning (100 x 140) does not fit the network: refused
    bare = tmp_path / "bare.net"
    net.meta.pop("task_options")
    write_netlist(net, bare)
    assert main(["simulate", str(bare), "--data-dir", str(data)]) == 2
    assert "task shd has d_input=140 (real); the netlist's input takes 70" in capsys.readouterr().err
