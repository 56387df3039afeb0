"""The readout written in lava-dl netx's schema loads with netx and computes what we say it does."""

import h5py
import numpy as np
import pytest

from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.netx import readout_netx_params, write_readout_netx
from pspike_neuro.quant.quantize import QuantConfig
from pspike_neuro.sim.reference import simulate


@pytest.fixture(scope="module")
def exported(small_checkpoint, tmp_path_factory):
    net, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    path = tmp_path_factory.mktemp("netx") / "readout.h5"
    write_readout_netx(net, path)
    return net, path


def test_file_follows_netx_schema(exported):
    """The readout as netx's dense CUBA layer: our Lava weights, the per-step bias over 2^6 (CUBA shifts
    it up by 6), an integrator (iDecay 4096, vDecay 0, the largest threshold), and the host-side input
    shift 6 - weight_exp that stands in for our readout's exponent (export/netx.py)."""
    net, path = exported
    syn, integ = net.nodes["readout_synapse"], net.nodes["readout"]
    with h5py.File(path, "r") as f:
        assert [f["layer/0/type"][0], f["layer/1/type"][0]] == [b"input", b"dense"]
        assert int(f["layer/0/shape"][0]) == 8 and int(f["layer/1/shape"][0]) == 10
        np.testing.assert_array_equal(f["layer/1/weight"][()], syn.weights)
        np.testing.assert_array_equal(f["layer/1/bias"][()], np.clip(np.rint(integ.bias / 64), -4095, 4095))
        neuron = f["layer/1/neuron"]
        assert neuron["type"][()] == b"CUBA"
        assert [int(neuron[k][()]) for k in ("iDecay", "vDecay", "vThMant")] == [4096, 0, 2**17 - 1]
        assert syn.weight_exp < 6 and f["pspike"].attrs["input_shift"] == 6 - syn.weight_exp
        assert f["pspike"].attrs["source_sha256"] == net.meta["source_sha256"]


def test_netx_loads_and_runs_it_in_lava(exported):
    from lava.lib.dl import netx
    from lava.lib.dl.netx.utils import optimize_weight_bits
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    from pspike_neuro.data import load_task

    net, path = exported
    params = readout_netx_params(net)
    x = load_task("sdigits").test.x[:1, :20]
    ref = simulate(net, np.asarray(x), seed=0)
    x_last = ref.outputs["fuse1"][0]  # the residual stream that reaches the readout
    x_shifted = np.right_shift(x_last, params["input_shift"])
    rows = np.vstack([x_shifted, np.zeros((1, x_shifted.shape[1]), np.int64)])  # + 1 step of latency
    steps = rows.shape[0]
    data = rows.T.astype(np.int32)

    network = netx.hdf5.Network(net_config=str(path), input_message_bits=24)
    source = RingBuffer(data=data)
    source.s_out.connect(network.inp)
    try:
        network.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        v = network.layers[0].neuron.v.get().astype(np.int64)
    finally:
        network.stop()
    # Lava's CUBA integrator under netx's dense layer, written out: v <- clip(v + (a << 6) + (bias << 6), 24 bits),
    # a = shift(W x, w_exp) of the previous row (the dense layer's one step of latency); W and w_exp as netx
    # chose them (lava-dl's optimize_weight_bits)
    w_opt, _, w_exp, _ = optimize_weight_bits(params["weight"])
    w_lava = np.asarray(w_opt, np.int64)
    bias = np.clip(np.rint(net.nodes["readout"].bias / 64), -4095, 4095).astype(np.int64)
    want = np.zeros(10, np.int64)
    for t in range(steps):
        a = w_lava @ rows[t - 1] if t else np.zeros(10, np.int64)
        a = a * 2**w_exp if w_exp >= 0 else np.floor_divide(a, 2**-w_exp)
        want = np.clip(want + a * 64 + bias * 64, -(2**23 - 1), 2**23 - 1)
    assert np.abs(want).max() < 2**23 - 1 and len(set(want.tolist())) > 1   # no saturation, not a constant
    np.testing.assert_array_equal(v, want)
