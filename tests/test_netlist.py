"""The netlist: build from a checkpoint, write/read/write identity, validation, refused files."""

import json

import h5py
import numpy as np
import pytest

from pspike_neuro.cli import main
from pspike_neuro.errors import UserError
from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.hdf5 import read_netlist, write_netlist
from pspike_neuro.graph import Edge
from pspike_neuro.nodes import NodeError, schema_markdown
from pspike_neuro.nodes.synapses import SparseSynapse
from pspike_neuro.quant.quantize import QuantConfig
from tests.netlist_edit import crafted


@pytest.fixture(scope="module")
def netlist(small_checkpoint):
    net, _ = build_netlist(small_checkpoint, QuantConfig(calib_samples=32))
    return net


@pytest.fixture(scope="module")
def net_file(netlist, tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "model.net"
    write_netlist(netlist, path)
    return path


def _contents(path):
    """Every dataset and attribute of an HDF5 file, as comparable Python values."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for k, v in obj.attrs.items():
                out[f"{name}@{k}"] = v.decode() if isinstance(v, bytes) else np.asarray(v).tolist()
            if isinstance(obj, h5py.Dataset):
                out[name] = (str(obj.dtype), obj[()].tolist())
        f.visititems(visit)
        for k, v in f["meta"].attrs.items():
            out[f"meta@{k}"] = v.decode() if isinstance(v, bytes) else np.asarray(v).tolist()
    return out


def test_write_read_write_is_identical(netlist, net_file, tmp_path):
    again = read_netlist(net_file)
    second = tmp_path / "again.net"
    write_netlist(again, second)
    assert _contents(net_file) == _contents(second)
    assert again.meta == json.loads(json.dumps(netlist.meta))
    assert again.edges == netlist.edges
    for name, node in netlist.nodes.items():
        for key, value in node.values.items():
            np.testing.assert_array_equal(again.nodes[name].values[key], value)
        for key, value in node.floats.items():
            np.testing.assert_array_equal(again.nodes[name].floats[key], value)


#: the exporter's edges for 2 blocks, as docs/netlist-format.md lists them: (src, dst, dst_port)
DOC_EDGES = {("input", "neuron0", "in"), ("input", "fuse0", "residual"),
             ("neuron0", "mixer0", "in"), ("mixer0", "fuse0", "mixer"), ("fuse0", "neuron1", "in"),
             ("fuse0", "fuse1", "residual"), ("neuron1", "mixer1", "in"), ("mixer1", "fuse1", "mixer"),
             ("fuse1", "readout_synapse", "in"), ("readout_synapse", "readout", "in")}


def test_graph_structure_and_summary(netlist, small_checkpoint):
    import hashlib

    graph = netlist.to_networkx()
    assert graph.number_of_nodes() == 9 and graph.number_of_edges() == 10  # 2 blocks
    assert {(e.src, e.dst, e.dst_port) for e in netlist.edges} == DOC_EDGES
    assert {e.src_port for e in netlist.edges} == {"out"}
    order = netlist.topological_order()
    assert order[0] == "input" and order[-1] == "readout"
    assert order.index("neuron0") < order.index("mixer0") < order.index("fuse0") < order.index("neuron1")
    summary = netlist.summary()
    stored = [np.count_nonzero(netlist.nodes[name].to_dense()) for name in ("mixer0", "mixer1", "readout_synapse")]
    assert summary["nonzero_synapses"] == sum(stored) and stored[2] == 80   # readout 10 x 8, no zero weight here
    assert summary["latency_steps"] == 3  # n_layers + 1
    assert netlist.meta["source_sha256"] == hashlib.sha256(small_checkpoint.path.read_bytes()).hexdigest()


def test_file_and_memory_give_the_same_simulation(netlist, net_file):
    from pspike_neuro.data import load_task
    from pspike_neuro.sim.reference import simulate

    x = load_task("sdigits").test.x[:4]
    a = simulate(netlist, np.asarray(x), seed=3)
    disk = read_netlist(net_file)
    b = simulate(disk, np.asarray(x), seed=3)
    np.testing.assert_array_equal(a.logits, b.logits)


def _rewrite(src, dst, edit):
    dst.write_bytes(src.read_bytes())
    with crafted(dst) as f:
        edit(f)
    return dst


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["meta"].attrs.__setitem__("format", "other"), "not a pspike-neuro netlist"),
    (lambda f: f["meta"].attrs.__setitem__("format_version", 7), "newer than this pspike-neuro reads"),
    (lambda f: f["meta"].attrs.__setitem__("format_version", 1), "older than this pspike-neuro reads"),
    (lambda f: f["meta"].attrs.__delitem__("latency_steps"), "missing latency_steps"),
    (lambda f: f["meta"].attrs.__setitem__("model_config", "{not json"), "model_config is not valid JSON"),
    (lambda f: f["nodes/neuron0"].attrs.__setitem__("type", "Mystery"), "unknown type 'Mystery'"),
    (lambda f: f["nodes/neuron0"].__delitem__("c_re"), r"neuron0 \(SSMNeuron\): field c_re: missing"),
    (lambda f: f["nodes/neuron0"].attrs.__setitem__("colour", 3), "field colour: not a field"),
    (lambda f: (f["nodes/neuron0"].__delitem__("beta"),
                f["nodes/neuron0"].create_dataset("beta", data=np.zeros(8, np.float32))),
     "field beta: dtype float32, expected int32"),
    (lambda f: (f["nodes/neuron0"].__delitem__("beta"),
                f["nodes/neuron0"].create_dataset("beta", data=np.zeros(5, np.int32))),
     r"field beta: shape \(5,\), expected \(8,\)"),
    (lambda f: f["nodes/neuron0/decay_re"].__setitem__((0, 0), 4096), "decay_re: values outside"),
    (lambda f: f["nodes/neuron0/decay_re"].__setitem__((0, 0), 17), "content checksum mismatch"),
    (lambda f: f["nodes/neuron0"].attrs.__setitem__("prob_bits", 40), "prob_bits: value 40 outside"),
    (lambda f: f["nodes/mixer0/indices"].__setitem__(0, 99), "indices: column 99 is not below n_in=8"),
    (lambda f: f["nodes/mixer0/indptr"].__setitem__(1, 10**6), "indptr: must start at 0"),
    (lambda f: f["nodes"].__delitem__("fuse1"), "no node named fuse1"),
    (lambda f: f["edges/dst_port"].__setitem__(3, b"residual"), "fuse0: input port residual is fed by more"),
    (lambda f: f["edges/dst_port"].__setitem__(1, b"mixer"), "fuse0: input port mixer is fed by more"),
])
def test_damaged_netlists_are_refused_with_a_named_reason(net_file, tmp_path, edit, message):
    """Edits sealed again (as a forger would) reach the structural checks, which name the reason;
    the same edit left unsealed is refused by the integrity header before HDF5 parses the file."""
    bad = _rewrite(net_file, tmp_path / "bad.net", edit)
    with pytest.raises(UserError, match=message):
        read_netlist(bad)
    plain = tmp_path / "plain.net"
    plain.write_bytes(net_file.read_bytes())
    with h5py.File(plain, "r+") as f:
        edit(f)
    with pytest.raises(UserError, match=r"(do not match the sha256 written with them|truncated or extended after "
                                        r"it was written).*; export the checkpoint again$"):
        read_netlist(plain)


def test_a_cycle_is_a_recurrent_edge_in_the_schedule(netlist):
    """A loop is legal: the edge that closes it on a depth-first walk from the source (successors in
    node order: from fuse0 the walk reaches fuse1 before neuron1) is recurrent."""
    from pspike_neuro.graph import Netlist

    edges = [e for e in netlist.edges if not (e.dst == "neuron1")] + [Edge("fuse1", "neuron1")]
    looped = Netlist(netlist.meta, netlist.nodes, edges)
    looped.validate()
    schedule = looped.schedule()
    assert schedule.back == {Edge("mixer1", "fuse1", dst_port="mixer")}
    assert {"neuron1", "mixer1", "fuse1"} in [set(group) for group in schedule.groups]


def test_not_hdf5_truncated_missing(net_file, tmp_path):
    text = tmp_path / "notes.net"
    text.write_text("hello")
    with pytest.raises(UserError, match="notes.net: is a text file, not a pspike-neuro netlist$"):
        read_netlist(text)
    cut = tmp_path / "cut.net"
    cut.write_bytes(net_file.read_bytes()[:3000])
    with pytest.raises(UserError, match=r"cut.net: 2488 bytes after the header, the header says \d+ \(truncated"):
        read_netlist(cut)
    with pytest.raises(UserError, match="no such file"):
        read_netlist(tmp_path / "missing.net")


def test_node_records_check_their_fields():
    with pytest.raises(NodeError, match="field indices: missing"):
        SparseSynapse("m", dict(n_in=2, n_out=2, nnz=0, indptr=np.zeros(3, np.int32), weights=np.zeros(0),
                                weight_exp=0, num_weight_bits=8, num_message_bits=0))
    syn = SparseSynapse.from_dense("m", np.array([[0, 2], [-4, 0]]), -3, 8, 0)
    assert syn.nnz == 2 and syn.to_dense().tolist() == [[0, 2], [-4, 0]]


def test_failed_write_keeps_the_old_file(netlist, net_file, tmp_path, monkeypatch):
    target = tmp_path / "keep.net"
    target.write_bytes(net_file.read_bytes())
    before = target.read_bytes()
    import pspike_neuro.export.hdf5 as hdf5_mod

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hdf5_mod.np, "array", boom)  # fails while writing /edges, after the nodes
    with pytest.raises(RuntimeError):
        write_netlist(netlist, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.net"]


def test_schema_doc_matches_declarations():
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "netlist-format.md").read_text()
    assert schema_markdown() in doc
    assert "SSMNeuron" in schema_markdown() and "`decay_re` | int16 (n, n_modes) | [-4095, 4095]" in schema_markdown()


def test_export_and_inspect_cli(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "m.net"
    assert main(["export", str(small_checkpoint.path), "-o", str(out), "--calib-samples", "16", "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    written = read_netlist(out)
    assert exported["latency_steps"] == 3 and exported["nodes"] == 9 and exported["edges"] == 10
    assert exported["netlist"] == str(out) and exported["calibration_samples"] == 16
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["latency_steps"] == 3 and info["cores"] == 5 and info["chips"] == 1
    assert {(n["name"], n["type"]) for n in info["nodes"]} == {(name, node.type_name()) for name, node in written.nodes.items()}
    assert {(e["src"], e["dst"], e["dst_port"]) for e in info["edges"]} == DOC_EDGES
    # docs/netlist-format.md "Core mapping": M + 1 compartments per SSM neuron, one per ClampFuse and readout
    # neuron; synapses at their destination: weight bits + ceil(log2(fan-in)) index bits when sparse, else
    # the weight bits; populations do not share cores (5 here, each far below 8,192 compartments)
    nnz = [int(np.count_nonzero(written.nodes[f"mixer{l}"].to_dense())) for l in range(2)]
    want = [("neuron0", 8 * 3, 0), ("fuse0", 8, -(-nnz[0] * (8 + 3) // 8)), ("neuron1", 8 * 3, 0),
            ("fuse1", 8, -(-nnz[1] * (8 + 3) // 8)), ("readout", 10, 10 * 8)]
    assert [(c["name"], c["compartments"], c["synapse_bytes"]) for c in info["core_mapping"]] == want
    assert all(c["cores"] == 1 for c in info["core_mapping"])
    assert main(["inspect", str(out)]) == 0
    assert "Loihi 2 mapping: 5 cores" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["export", "missing.pt", "-o", "x.net"], "no such file"),
    (["export", "CKPT", "-o", "x.net", "--weight-bits", "9"], "--weight-bits must be in 1..8"),
    (["export", "CKPT", "-o", "x.net", "--prob-bits", "30"], "--prob-bits must be in 1..24"),
    (["export", "CKPT", "-o", "x.net", "--density", "0"], "--density must be in (0, 1]"),
    (["inspect", "nothing.net"], "no such file"),
])
def test_export_user_errors(small_checkpoint, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [str(small_checkpoint.path) if a == "CKPT" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


@pytest.mark.parametrize("kw, message", [
    (dict(bidirectional=True), "layer 0: bidirectional blocks"),
    (dict(norm="layer"), "layer 0: LayerNorm"),
    (dict(psi="gelu"), "layer 0: psi=gelu"),
])
def test_export_refuses_undeployable_checkpoints(tmp_path, capsys, kw, message):
    from pspike_neuro.export.checkpoint import save_checkpoint
    from pspike_neuro.models import ModelConfig, PSpikeSSM

    path = tmp_path / "model.pt"
    save_checkpoint(path, PSpikeSSM(ModelConfig(d_model=4, d_state=2, n_layers=1, **kw)), task="sdigits")
    assert main(["export", str(path), "-o", str(tmp_path / "m.net")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "m.net").exists()
