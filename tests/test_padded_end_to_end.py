"""Padded token inputs end to end: a P-SpikeSSM trained briefly on ListOps (token ids; flat
expressions such as ``[MAX 2 9 4 ]``, 4 to 7 tokens, padded to 16
steps), exported, run by both backends and verified against the float model.

What padding must not do, in every backend: change a sample's result. A sample's scores are the
same whatever its padded steps hold and however many there are, and the same as when it runs
alone, cut to its own length."""

import json

import numpy as np
import pytest

from pspike_neuro.cli import main
from pspike_neuro.data import load_task
from pspike_neuro.export.checkpoint import load_checkpoint
from pspike_neuro.export.hdf5 import read_netlist
from pspike_neuro.sim.lava_backend import run_lava
from pspike_neuro.sim.reference import simulate
from pspike_neuro.verify import float_activity

OPTIONS = {"n_train": 1000, "n_test": 64, "min_length": 4, "max_length": 16, "max_depth": 1, "max_args": 5}
T = 16  # every sequence padded to max_length; the expressions are 4 to 7 tokens long


@pytest.fixture(scope="module")
def listops(tmp_path_factory):
    out = tmp_path_factory.mktemp("listops")
    opts = [a for k, v in OPTIONS.items() for a in ("--task-option", f"{k}={v}")]
    assert main(["train", "--task", "listops", *opts, "--d-model", "32", "--d-state", "4", "--layers", "2",
                 "--epochs", "8", "--lr", "3e-3", "--eval-seeds", "1", "--out", str(out), "--quiet"]) == 0
    assert main(["export", str(out / "model.pt"), "-o", str(out / "model.net"), "--calib-samples", "64"]) == 0
    task = load_task("listops", **OPTIONS)
    x, lengths = task.test.x.numpy(), task.test.lengths.numpy()
    return out, load_checkpoint(out / "model.pt"), read_netlist(out / "model.net"), x, lengths


def _garbage_padding(x: np.ndarray, lengths: np.ndarray, extra: int, seed: int) -> np.ndarray:
    """The same samples with random tokens in every padded step and ``extra`` more padded steps."""
    rng = np.random.default_rng(seed)
    longer = np.concatenate([x, np.zeros((x.shape[0], extra) + x.shape[2:], x.dtype)], axis=1)
    pad = np.arange(longer.shape[1])[None, :] >= lengths[:, None]
    noise = rng.integers(1, 16, size=longer.shape).astype(x.dtype)
    return np.where(pad.reshape(pad.shape + (1,) * (x.ndim - 2)), noise, longer)


def test_the_test_set_is_padded(listops):
    _, _, net, x, lengths = listops
    assert x.shape[1] == T and 4 <= int(lengths.min()) and int(lengths.max()) <= 7
    assert (lengths < T).all()  # every sample has 9 or more padded steps
    assert net.meta["task"] == "listops"


def test_reference_ignores_what_padding_holds(listops):
    _, _, net, x, lengths = listops
    base = simulate(net, x[:16], seed=3, lengths=lengths[:16])
    noisy = simulate(net, _garbage_padding(x[:16], lengths[:16], 7, seed=0), seed=3, lengths=lengths[:16])
    np.testing.assert_array_equal(noisy.scores, base.scores)
    for name in base.layers:
        valid = np.arange(T)[None, :] < lengths[:16, None]
        np.testing.assert_array_equal(np.asarray(noisy.outputs[name])[:, :T][valid], np.asarray(base.outputs[name])[valid])
    for b in range(4):  # alone and cut to its own length, with its own sample id (same random numbers)
        alone = simulate(net, x[b:b + 1, :lengths[b]], seed=3, samples=[b])
        np.testing.assert_array_equal(alone.scores[0], base.scores[b])


def test_float_model_ignores_what_padding_holds(listops):
    _, ckpt, net, x, lengths = listops
    qb = int(net.meta["quant_config"]["prob_bits"])
    base = float_activity(ckpt, x[:16], lengths[:16], 3, qb)["scores"]
    noisy = float_activity(ckpt, _garbage_padding(x[:16], lengths[:16], 7, seed=1), lengths[:16], 3, qb)["scores"]
    np.testing.assert_allclose(noisy, base, rtol=0, atol=1e-9)


def test_lava_equals_the_reference_on_padded_samples(listops):
    _, _, net, x, lengths = listops
    ids = [5, 0, 9]
    ref = simulate(net, x[ids], seed=2, samples=ids, lengths=lengths[ids])
    lava = run_lava(net, x[ids], sample_ids=ids, seed=2, lengths=lengths[ids])
    np.testing.assert_array_equal(lava.scores, ref.scores)
    for a, b in zip(lava.spikes_out, ref.spikes_out):
        valid = np.arange(a.shape[1])[None, :] < lengths[ids][:, None]
        np.testing.assert_array_equal(a[valid], b[valid])


def test_verify_against_the_float_model(listops, capsys):
    out, _, _, _, lengths = listops
    code = main(["verify", str(out / "model.pt"), str(out / "model.net"), "--json", "--seeds", "2"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["passed"], result["failed_checks"]
    assert result["samples"] == 64
    assert result["prediction_agreement"] >= 0.95
    assert abs(result["float"]["accuracy"] - result["deployed"]["accuracy"]) <= 0.01 + 1e-9
    # trained, not chance: 10 classes, the largest has 12 of the 64 test samples (19 %)
    assert result["float"]["accuracy"] >= 0.35
