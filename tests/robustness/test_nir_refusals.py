"""Bad NIR graphs: every refusal is one line naming the node and the field, exit 2, nothing written.
The graphs are written with the ``nir`` package itself (or by hand with h5py where nir would refuse
to write them), as a user's tool would."""

import h5py
import numpy as np
import pytest

from pspike_neuro.cli import main

nir = pytest.importorskip("nir")


def _lif(n, **kw):
    args = dict(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                v_reset=np.zeros(n))
    args.update(kw)
    return nir.LIF(**args)


def _graph(middle: dict, edges=None, metadata=None):
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}),
             "fc": nir.Affine(weight=np.ones((4, 3)) * 0.5, bias=np.zeros(4)), **middle,
             "output": nir.Output(output_type={"output": np.array([4])})}
    edges = edges or [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {}, type_check=False)


def _write(path, graph):
    nir.write(str(path), graph)
    return path


CASES = {
    "unsupported node type": (lambda: _graph({"lif": nir.Conv1d(input_shape=4, weight=np.ones((4, 4, 1)), stride=1,
                                                                padding=0, dilation=1, groups=1, bias=np.zeros(4))}),
                              ["--dt", "1e-4"], "NIR node lif (Conv1d): convolutions are not supported"),
    "shapes that do not connect": (lambda: _graph({"lif": _lif(5)}), ["--dt", "1e-4"],
                                   "NIR edge fc -> lif: fc sends 4 values, lif takes 5"),
    "edge to an unknown node": (lambda: _graph({"lif": _lif(4)}, edges=[("input", "fc"), ("fc", "lif"),
                                                                         ("lif", "ghost"), ("lif", "output")]),
                                ["--dt", "1e-4"], "NIR graph: edge lif -> ghost: no node named ghost"),
    "missing dt": (lambda: _graph({"lif": _lif(4)}), [], "the graph records no dt in its metadata; give --dt"),
    "NaN parameter": (lambda: _graph({"lif": _lif(4, tau=np.array([1e-3, np.nan, 1e-3, 1e-3]))}), ["--dt", "1e-4"],
                      "NIR node lif (LIF): field tau: NaN or infinite values"),
    "infinite weight": (lambda: _graph({"lif": _lif(4)}), ["--dt", "1e-4"], None),
    "unstable Euler step": (lambda: _graph({"lif": _lif(4)}), ["--dt", "0.01"],
                            "NIR node lif: field tau: dt / tau = 10 > 1, forward Euler is unstable there"),
    "negative time constant": (lambda: _graph({"lif": _lif(4, tau=np.full(4, -1e-3))}), ["--dt", "1e-4"],
                               "NIR node lif: field tau: time constants must be positive"),
    "delay off the time grid": (lambda: _graph({"lif": _lif(4), "d": nir.Delay(delay=np.full(4, 1.5e-4))},
                                               edges=[("input", "fc"), ("fc", "lif"), ("lif", "d"), ("d", "output")]),
                                ["--dt", "1e-4"], "NIR node d: field delay: not a whole number of steps of dt = 0.0001"),
    "two outputs": (lambda: nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                                                "lif": _lif(3), "o1": nir.Output(output_type={"output": np.array([3])}),
                                                "o2": nir.Output(output_type={"output": np.array([3])})},
                                         edges=[("input", "lif"), ("lif", "o1"), ("lif", "o2")], type_check=False),
                    ["--dt", "1e-4"], "the graph needs exactly one Input and one Output, found 1 and 2"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_graphs_are_refused_in_one_line(tmp_path, capsys, name):
    build, flags, message = CASES[name]
    graph = build()
    if name == "infinite weight":
        graph.nodes["fc"].weight[1, 2] = np.inf
        message = "NIR node fc (Affine): field weight: NaN or infinite values"
    path = _write(tmp_path / "g.nir", graph)
    assert main(["import", str(path), "-o", str(tmp_path / "out"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pspike import: error: ") and message in err, err
    assert not (tmp_path / "out" / "model.pt").exists()


def test_values_beyond_the_fixed_point_ranges_are_refused_at_export(tmp_path, capsys):
    """A weight of 1e12 imports (the float model runs) but cannot be deployed: named by node."""
    graph = _graph({"lif": _lif(4)})
    graph.nodes["fc"].weight[0, 0] = 1e12
    path = _write(tmp_path / "g.nir", graph)
    assert main(["import", str(path), "-o", str(tmp_path / "out"), "--dt", "1e-4"]) == 0
    capsys.readouterr()
    assert main(["export", str(tmp_path / "out" / "model.pt"), "-o", str(tmp_path / "m.net")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "synapse input->lif" in err and "outside Lava's range" in err, err
    assert not (tmp_path / "m.net").exists()


def test_a_file_that_is_not_nir_is_named(tmp_path, capsys):
    bad = tmp_path / "g.nir"
    with h5py.File(bad, "w") as f:
        f.create_dataset("node", data=np.zeros(3))
        f.create_dataset("version", data=b"1.0")
    assert main(["import", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable NIR graph" in err, err
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["import", str(text), "-o", str(tmp_path / "out")]) == 2
    assert "import " + str(text) + ": is a text file; pspike import reads nir" in capsys.readouterr().err
