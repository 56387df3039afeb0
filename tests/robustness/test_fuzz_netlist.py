"""Property-based damage to netlist files: only one-line errors (exit 2), never a crash, a hang or a
different network read back. (tests/test_netlist.py covers the basic refusals; this goes wider.)"""

import shutil

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pspike_neuro.errors import UserError
from pspike_neuro.export.hdf5 import MAX_ELEMENTS, read_netlist
from tests.netlist_edit import crafted

from .conftest import Watchdog, assert_one_line_error, run_cli

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read_or_clear_error(path, original_digest):
    """The reader's only allowed outcomes: the original network, or one clear line."""
    with Watchdog():
        try:
            net = read_netlist(path)
        except UserError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("netlist ")
            return "refused"
    assert net.content_sha256() == original_digest
    return "read"


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_truncated_and_bit_flipped_files(robust_net, tmp_path, data):
    raw = bytearray(robust_net.read_bytes())
    digest = read_netlist(robust_net).content_sha256()
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 16))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))  # any bits of a byte
    path = tmp_path / "fuzz.net"
    path.write_bytes(bytes(raw))
    _read_or_clear_error(path, digest)


def _copy(src, tmp_path):
    dst = tmp_path / "mut.net"
    shutil.copyfile(src, dst)
    return dst


def _set_edges(f, rows):
    for i, col in enumerate(("src", "dst", "src_port", "dst_port")):
        del f["edges"][col]
        f["edges"].create_dataset(col, data=np.array([r[i] for r in rows], dtype="S"))


def _edges(f):
    cols = [[v.decode() for v in f["edges"][c][()]] for c in ("src", "dst", "src_port", "dst_port")]
    return [list(r) for r in zip(*cols)]


def _mutate_float(f, value):
    g = f["nodes/neuron0/float"]
    key = sorted(g.keys())[0]
    arr = g[key][()].copy()
    arr.reshape(-1)[0] = value
    del g[key]
    g.create_dataset(key, data=arr)


#: a float parameter set to NaN or infinity (the first one in name order, neuron0's alpha) is named
FLOAT_ALPHA = r"node neuron0 \(SSMNeuron\): field float/alpha: NaN or infinite values$"

MUTATIONS = {
    "extra node": (lambda f: f["nodes"].copy(f["nodes/neuron1"], "neuron9"), r"node neuron9: input port in is not connected$"),
    "missing node": (lambda f: f["nodes"].__delitem__("fuse0"), r"edge input->fuse0: no node named fuse0$"),
    "edge to nowhere": (lambda f: _set_edges(f, _edges(f) + [["neuron0", "ghost", "out", "in"]]),
                        r"edge neuron0->ghost: no node named ghost$"),
    "unknown port": (lambda f: _set_edges(f, [[a, b, p, "sideways" if b == "readout" else q]
                                              for a, b, p, q in _edges(f)]),
                     r"edge readout_synapse->readout: ReadoutIntegrator readout has no input port 'sideways'$"),
    "port fed twice": (lambda f: _set_edges(f, _edges(f) + [["input", "fuse1", "out", "residual"]]),
                       r"node fuse1: input port residual is fed by more than one edge$"),
    "NaN float": (lambda f: _mutate_float(f, np.nan), FLOAT_ALPHA),
    "infinite float": (lambda f: _mutate_float(f, np.inf), FLOAT_ALPHA),
    "int attr as string": (lambda f: f["nodes/neuron0"].attrs.__setitem__("n_modes", "two"),
                           r"node neuron0 \(SSMNeuron\): field n_modes: expected an integer, got str$"),
    "bool as int": (lambda f: f["nodes/fuse0"].attrs.__setitem__("residual", 3),
                    r"node fuse0 \(ClampFuse\): field residual: expected a boolean, got int$"),
    "negative size": (lambda f: f["nodes/neuron0"].attrs.__setitem__("n", -8),
                      r"node neuron0 \(SSMNeuron\): field n: value -8 outside \[1, 1048576\]$"),
    "out of range shift": (lambda f: f["nodes/mixer0"].attrs.__setitem__("weight_exp", 99),
                           r"node mixer0 \(SparseSynapse\): field weight_exp: value 99 outside \[-24, 24\]$"),
    "decay of 1": (lambda f: f["nodes/neuron0/decay_re"].__setitem__((0, 0), 4096),
                   r"node neuron0 \(SSMNeuron\): field decay_re: values outside \[-4095, 4095\] \(min -?\d+, max 4096\)$"),
    "weight off the grid": (lambda f: f["nodes/readout_synapse/weights"].__setitem__((0, 0), 300),
                            r"node readout_synapse \(DenseSynapse\): field weights: values outside \[-256, 255\] "
                            r"\(min -?\d+, max 300\)$"),
    "huge declared dataset": (lambda f: f["nodes/neuron0/float"].create_dataset(
        "bomb", shape=(MAX_ELEMENTS + 1,), dtype=np.float64, chunks=(1 << 20,), compression="gzip"),
        r"node neuron0: float/bomb declares 134217729 elements \(limit 134217728\)$"),
    "external link": (lambda f: (f["nodes/neuron0"].__delitem__("c_re"),
                                 f["nodes/neuron0"].__setitem__("c_re", h5py.ExternalLink("/dev/zero", "x")))[0],
                      r"/nodes/neuron0/c_re is a ExternalLink; a netlist holds no links$"),
    "soft link": (lambda f: f["nodes"].__setitem__("alias", h5py.SoftLink("/nodes/neuron0")),
                  r"/nodes/alias is a SoftLink; a netlist holds no links$"),
    "edges not a group": (lambda f: (f.__delitem__("edges"), f.create_dataset("edges", data=[1]))[0],
                          r": no /edges group$"),
    "array shape": (lambda f: (f["nodes/neuron0"].__delitem__("beta"),
                               f["nodes/neuron0"].create_dataset("beta", data=np.zeros(3, np.int32)))[0],
                    r"node neuron0 \(SSMNeuron\): field beta: shape \(3,\), expected \(8,\)$"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_structural_damage_is_named(robust_net, tmp_path, name):
    mutate, message = MUTATIONS[name]
    path = _copy(robust_net, tmp_path)
    with crafted(path) as f:
        mutate(f)
    with Watchdog(), pytest.raises(UserError, match=message) as info:
        read_netlist(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"netlist {path}: ")


@pytest.mark.parametrize("name", ["port fed twice", "huge declared dataset", "external link"])
def test_cli_gives_one_line_and_exit_2(robust_net, tmp_path, name):
    path = _copy(robust_net, tmp_path)
    with crafted(path) as f:
        MUTATIONS[name][0](f)
    code, out, err = run_cli("inspect", path)
    assert code == 2 and out == ""
    assert_one_line_error(err, "inspect")
