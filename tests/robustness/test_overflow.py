"""Trained values far outside the chip's fixed-point ranges: refused at export in one line naming
node and field, or (inputs) saturated with the right sign and counted. Before these checks a weight
needing a shift of 2^64 or more wrapped to 0 in int64 and a huge C was exported as zeros, silently."""

import json
import re

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.data import load_task
from pspike_neuro.export.checkpoint import save_checkpoint
from pspike_neuro.models import ModelConfig
from pspike_neuro.nodes.graded_input import to_messages
from pspike_neuro.numerics.fixed import SaturationCounter

from ..conftest import trained_like

LIMIT = 2**23 - 1


def _scaled(edit):
    model = trained_like(ModelConfig(d_model=8, d_state=4, n_layers=1))
    with torch.no_grad():
        edit(model)
    return model


@pytest.mark.parametrize("label, edit, message", [
    ("huge mixer weights", lambda m: m.blocks[0].mixer.weight.mul_(1e30),
     r"synapse mixer0: weight exponent 112 is outside Lava's range \[-24, 24\]"),
    ("vanishing mixer weights", lambda m: m.blocks[0].mixer.weight.mul_(1e-30),
     r"synapse mixer0: weight exponent -88 is outside Lava's range"),
    ("one outlier weight", lambda m: m.blocks[0].mixer.weight.__setitem__((0, 0), 1e4),
     r"synapse mixer0: weight exponent 27 is outside Lava's range"),
    ("huge C (was exported as zeros)", lambda m: m.blocks[0].ssm.C.mul_(1e30),
     r"node neuron0 \(SSMNeuron\): field c_re: values outside \[-8388607, 8388607\]"),
    ("output bias beyond 2^63", lambda m: m.blocks[0].b_out.fill_(1e30),
     r"layer 0: output-sampler bias b_out overflows 24 bits after scaling \(max 6\.5"),
])
def test_values_beyond_the_fixed_point_ranges_are_refused(tmp_path, capsys, label, edit, message):
    save_checkpoint(tmp_path / "m.pt", _scaled(edit), task="sdigits")
    code = main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.net"), "--calib-samples", "8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("pspike export: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "m.net").exists()


def test_inputs_far_beyond_24_bits_saturate_with_their_sign_and_are_counted():
    sat = SaturationCounter()
    x = to_messages(np.array([[[1e30, -1e30, 3.0, -1e300]]]), 20, sat, "input")
    assert x.tolist() == [[[LIMIT, -LIMIT, 3 << 20, -LIMIT]]]    # a wrapping cast gave -LIMIT for 1e30
    assert sat.counts == {"input.out": 3}


def test_a_huge_encoder_exports_and_its_saturation_is_reported(tmp_path, capsys):
    save_checkpoint(tmp_path / "m.pt", _scaled(lambda m: m.encoder.weight.mul_(1e30)), task="sdigits")
    assert main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "m.net"), "--calib-samples", "8",
                 "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    # every channel of every step whose pixel is not zero saturates (a zero pixel gives the bias only):
    # at export on the 8 calibration samples (training split), in simulate on 4 test samples
    task = load_task("sdigits")
    assert exported["calibration_saturation"]["input.out"] == 8 * int((task.train.x[:8] != 0).sum()) > 0
    assert exported["calibration_saturation_events"] == sum(exported["calibration_saturation"].values())
    assert main(["simulate", str(tmp_path / "m.net"), "--samples", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    nonzero = int((task.test.x[:4] != 0).sum())
    assert summary["saturation"]["input.out"] == 8 * nonzero > 0
    assert summary["saturation_events"] == sum(summary["saturation"].values())
