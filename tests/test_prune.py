"""export --prune-silent (quant/prune.py): exactly silent neurons removed without changing a single output,
the bias fold by hand with its three kinds, SiLIF layers, inspect and verify on a pruned netlist, refusals."""

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.data import load_task
from pspike_neuro.errors import UserError
from pspike_neuro.export.build import build_netlist
from pspike_neuro.export.checkpoint import load_checkpoint, save_checkpoint
from pspike_neuro.export.hdf5 import read_netlist, write_netlist
from pspike_neuro.export.inspect import describe, render_text
from pspike_neuro.graph import run
from pspike_neuro.models import SNN, ModelConfig, SNNConfig
from pspike_neuro.quant.fold import fold
from pspike_neuro.quant.prune import prune_silent
from pspike_neuro.quant.quantize import QuantConfig
from pspike_neuro.verify import compare

from .conftest import trained_like

SILENT = {0: [1, 4], 1: [0, 2, 5]}  # per block, the neurons made exactly silent


def _silenced_pspike() -> torch.nn.Module:
    """A 2 x H=6 model whose neurons SILENT never fire (a_out = 0, b_out = -1: q = -1 at every step) and are
    otherwise copies of neuron 3, with half its mixer column: every layer-wide exponent of the export is the
    same with or without them, so the pruned integer network must give the same numbers."""
    model = trained_like(ModelConfig(d_model=6, d_state=4, n_layers=2), seed=5)
    with torch.no_grad():
        for l, block in enumerate(model.blocks):
            for h in SILENT[l]:
                for name, t in list(block.named_parameters()) + list(block.named_buffers()):
                    if t.dim() and t.shape[0] == 6 and not name.startswith("mixer"):
                        t[h] = t[3]
                block.a_out[h], block.b_out[h] = 0.0, -1.0
                block.mixer.weight[:, h] = 0.5 * block.mixer.weight[:, 3]
    return model.eval()


@pytest.fixture(scope="module")
def silenced(tmp_path_factory):
    path = tmp_path_factory.mktemp("silenced") / "model.pt"
    save_checkpoint(path, _silenced_pspike(), task="sdigits")
    return load_checkpoint(path)


def test_removing_exactly_silent_neurons_changes_no_output(silenced):
    qc = QuantConfig(calib_samples=32)
    whole, _ = build_netlist(silenced, qc)
    pruned, _ = build_netlist(silenced, QuantConfig(calib_samples=32, prune_silent=0.01))
    for l in (0, 1):
        node = pruned.nodes[f"neuron{l}"]
        kept = [h for h in range(6) if h not in SILENT[l]]
        assert (node.n, node.n_in, node.neuron_ids.tolist()) == (len(kept), 6, kept)
        assert pruned.nodes[f"mixer{l}"].n_in == len(kept)
    record = pruned.meta["pruning"]
    assert record["removed"] == 5 and record["neurons"] == 12
    assert [p["folds"] for p in record["populations"]] == [{"exact": 2, "in_expectation": 0, "approximate": 0},
                                                             {"exact": 3, "in_expectation": 0, "approximate": 0}]
    x = load_task("sdigits").test.x[:40].numpy()
    a = run(whole, x, integer=True, seed=3)
    b = run(pruned, x, integer=True, seed=3)
    np.testing.assert_array_equal(a.scores, b.scores)
    for l in (0, 1):
        kept = pruned.nodes[f"neuron{l}"].neuron_ids
        assert not a.outputs[f"neuron{l}"][..., SILENT[l]].any()
        np.testing.assert_array_equal(a.outputs[f"neuron{l}"][..., kept], b.outputs[f"neuron{l}"])
        np.testing.assert_array_equal(a.records[f"neuron{l}"]["s_in"][..., kept], b.records[f"neuron{l}"]["s_in"])


def test_the_fold_by_hand():
    graph = fold(trained_like(ModelConfig(d_model=5, d_state=2, n_layers=1), seed=2))
    # neuron 0: never fires (exact); 1: always 0.3 (exact in expectation); 2: between 0 and 0.04 (approximate)
    mean = np.array([0.0, 0.3, 0.02, 0.4, 0.5])
    probs = {"neuron0": {"prob_sum": mean * 10, "prob_count": 10.0, "prob_min": np.array([0, 0.3, 0, 0.1, 0.2]),
                         "prob_max": np.array([0, 0.3, 0.04, 0.9, 0.8])}}
    pruned, report = prune_silent(graph, probs, 0.35)
    w = graph.nodes["mixer0"].floats["weight"]
    gone, keep = [0, 1, 2], [3, 4]
    np.testing.assert_array_equal(pruned.nodes["mixer0"].floats["weight"], w[:, keep])
    np.testing.assert_allclose(pruned.nodes["fuse0"].floats["bias"],
                               graph.nodes["fuse0"].floats["bias"] + w[:, gone] @ mean[gone], rtol=0, atol=1e-15)
    neuron = pruned.nodes["neuron0"]
    assert (neuron.attrs["n"], neuron.attrs["n_in"], list(neuron.attrs["neuron_ids"])) == (2, 5, keep)
    for key, value in graph.nodes["neuron0"].floats.items():
        np.testing.assert_array_equal(neuron.floats[key], value[keep])
    (entry,) = report["populations"]
    assert entry["folds"] == {"exact": 1, "in_expectation": 1, "approximate": 1}
    assert entry["removed_ids"] == gone and entry["kept_ids"] == keep and entry["folded_into"] == ["fuse0.bias"]
    # the per-step deviation bound: max over outputs of sum_i |W[o, i]| max(pmax - pbar, pbar - pmin)
    spread = np.array([0.0, 0.0, 0.02])
    assert entry["largest_step_deviation"] == pytest.approx(float((np.abs(w[:, gone]) * spread).sum(1).max()))
    assert entry["largest_bias_change"] == pytest.approx(float(np.abs(w[:, gone] @ mean[gone]).max()))
    pruned.validate(require_meta=False)


def test_silif_layers_lose_rows_and_columns():
    torch.manual_seed(0)
    model = SNN(SNNConfig(kind="silif", d_input=4, d_hidden=5, n_layers=2, dropout=0.0)).eval()
    graph = fold(model)
    ones = np.ones(5)
    probs = {"neuron0": {"prob_sum": np.array([0, 2, 2, 2, 2.0]), "prob_count": 4.0, "prob_min": 0 * ones,
                         "prob_max": np.array([0, 1, 1, 1, 1.0])},
             "neuron1": {"prob_sum": np.array([2, 2, 0, 2, 2.0]), "prob_count": 4.0, "prob_min": 0 * ones,
                         "prob_max": np.array([1, 1, 0, 1, 1.0])}}
    pruned, report = prune_silent(graph, probs, 0.1)
    w0, w1, wr = (graph.nodes[n].floats["weight"] for n in ("synapse0", "synapse1", "readout_synapse"))
    np.testing.assert_array_equal(pruned.nodes["synapse0"].floats["weight"], w0[[1, 2, 3, 4]])
    np.testing.assert_array_equal(pruned.nodes["synapse1"].floats["weight"], w1[[0, 1, 3, 4]][:, [1, 2, 3, 4]])
    np.testing.assert_array_equal(pruned.nodes["readout_synapse"].floats["weight"], wr[:, [0, 1, 3, 4]])
    assert [p["folds"]["exact"] for p in report["populations"]] == [1, 1]  # never fired: nothing to fold
    np.testing.assert_array_equal(pruned.nodes["neuron1"].floats["bias"], graph.nodes["neuron1"].floats["bias"][[0, 1, 3, 4]])
    pruned.validate(require_meta=False)


def test_inspect_and_verify_a_pruned_netlist(silenced, tmp_path):
    netlist, _ = build_netlist(silenced, QuantConfig(calib_samples=32, prune_silent=0.01))
    write_netlist(netlist, tmp_path / "p.net")
    again = read_netlist(tmp_path / "p.net")
    assert again.nodes["neuron1"].neuron_ids.tolist() == [1, 3, 4] and again.meta["pruning"]["removed"] == 5
    text = render_text(describe(again))
    assert "pruned: 5 of 12 neurons" in text and "removed neurons: 0, 2, 5" in text
    result, _ = compare(silenced, again, backend="reference", samples=30, seed=0, progress=False)
    assert result["pruning"]["removed"] == 5
    assert [r["float_spikes"] for r in result["pruning"]["populations"]] == [0, 0]
    assert [len(r["output"]["deployed_per_neuron"]) for r in result["layers"]] == [4, 3]
    assert result["layers"][0]["output"]["agreement"] > 0.99


def test_pruning_every_neuron_of_a_layer_is_refused(silenced):
    with pytest.raises(UserError, match="pruning would remove the whole layer"):
        build_netlist(silenced, QuantConfig(calib_samples=8, prune_silent=1.0))


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_bad_thresholds_are_refused(value):
    with pytest.raises(UserError, match=r"--prune-silent must be a probability in \[0, 1\]"):
        QuantConfig(prune_silent=value)


@pytest.mark.parametrize("value", ["-0.1", "nan", "1"])
def test_cli_refuses_in_one_line(silenced, tmp_path, capsys, value):
    code = main(["export", str(silenced.path), "-o", str(tmp_path / "x.net"), "--prune-silent", value,
                 "--calib-samples", "8"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "prune" in err.lower()
    assert not (tmp_path / "x.net").exists()
