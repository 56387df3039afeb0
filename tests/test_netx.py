"""The readout written in lava-dl netx's schema loads with netx and computes what we say it does."""

import h5py
import numpy as np
import pytest

from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.netx import netx_readout_reference, readout_netx_params, write_readout_netx
from pspike_neuro.quant.quantize import QuantConfig
from pspike_neuro.sim.reference import simulate


@pytest.fixture(scope="module")
def exported(small_checkpoint, tmp_path_factory):
    net, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=16))
    path = tmp_path_factory.mktemp("netx") / "readout.h5"
    write_readout_netx(net, path)
    return net, path


def test_file_follows_netx_schema(exported):
    net, path = exported
    with h5py.File(path, "r") as f:
        assert [f["layer/0/type"][0], f["layer/1/type"][0]] == [b"input", b"dense"]
        assert f["layer/1/weight"].shape == (10, 8)
        assert f["layer/1/neuron/type"][()] == b"CUBA" and int(f["layer/1/neuron/iDecay"][()]) == 4096
        assert f["pspike"].attrs["input_shift"] == readout_netx_params(net)["input_shift"]


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
    w_opt, _, w_exp, _ = optimize_weight_bits(params["weight"])
    expected = netx_readout_reference(np.asarray(w_opt, np.int64), params["bias"], rows, w_exp)
    np.testing.assert_array_equal(v, expected)
