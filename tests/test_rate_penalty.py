"""Spike-rate regularization (models/rates.py): the penalty and its gradient by hand, the probes on both
model families, training with a penalty (recorded in the checkpoint, with --init and QAT), bad settings."""

import math

import numpy as np
import pytest
import torch

from pspike_neuro.cli import main
from pspike_neuro.data.dataset import SeqDataset, TaskData
from pspike_neuro.errors import UserError
from pspike_neuro.export.checkpoint import load_checkpoint
from pspike_neuro.models import SNN, ModelConfig, PSpikeSSM, SNNConfig
from pspike_neuro.models.rates import NEURON_EPS, RatePenalty, RateProbe, penalty_sum
from pspike_neuro.training import SampleNoise, TrainConfig, train

#: one sample, two steps, two neurons of one site: E[S] = clamp(y, 0, 1) = [[0.2, 1], [0, 0.6]]
Y = [[[0.2, 1.5], [-0.3, 0.6]]]


def _site(y):
    return [(0, "output", y.clamp(0, 1).mean(1))]


def test_mean_penalty_and_its_gradient_by_hand():
    y = torch.tensor(Y, dtype=torch.float64, requires_grad=True)
    r = penalty_sum(RatePenalty(1.0), _site(y))
    # pbar = (0.2 + 0) / 2 = 0.1 and (1 + 0.6) / 2 = 0.8; R = mean over the 2 neurons = 0.45
    assert r.item() == pytest.approx(0.45, abs=1e-15)
    r.backward()
    # dR/dy = 1/H * 1/T = 0.25 where 0 <= y <= 1 (the clamp's gradient, the sampler's surrogate), else 0
    assert y.grad.tolist() == [[[0.25, 0.0], [0.0, 0.25]]]


def test_neuron_form_and_targets_by_hand():
    y = torch.tensor(Y, dtype=torch.float64, requires_grad=True)
    r = penalty_sum(RatePenalty(1.0, form="neuron"), _site(y))
    root = lambda p: math.sqrt(p + NEURON_EPS) - math.sqrt(NEURON_EPS)  # noqa: E731
    assert r.item() == pytest.approx((root(0.1) + root(0.8)) / 2, abs=1e-15)
    r.backward()
    g0, g1 = (1 / (2 * math.sqrt(p + NEURON_EPS)) / 2 / 2 for p in (0.1, 0.8))
    np.testing.assert_allclose(y.grad.numpy(), [[[g0, 0.0], [0.0, g1]]], rtol=1e-14)
    assert g0 / g1 == pytest.approx(math.sqrt((0.8 + NEURON_EPS) / (0.1 + NEURON_EPS)))  # quiet neurons pushed harder
    # a target: neuron 0 (0.1) is under 0.2 and free; neuron 1 pays for 0.8 - 0.2 = 0.6
    y.grad = None
    r = penalty_sum(RatePenalty(1.0, targets=(0.2,)), _site(y))
    assert r.item() == pytest.approx(0.6 / 2, abs=1e-15)
    r.backward()
    assert y.grad.tolist() == [[[0.0, 0.0], [0.0, 0.25]]]


def test_probe_records_every_sampler_with_its_gradient():
    torch.manual_seed(0)
    model = PSpikeSSM(ModelConfig(d_model=4, d_state=2, n_layers=2))
    probe = RateProbe(model)
    x = torch.rand(3, 5, 1)
    probe_dict: dict = {}
    model(x, noise=SampleNoise(0, torch.arange(3)), probe=probe_dict)
    names = [(layer, name) for layer, name, _ in probe.records]
    assert names == [(0, "input"), (0, "output"), (1, "input"), (1, "output")]
    torch.testing.assert_close(probe.records[1][2], probe_dict["layer0.q"].clamp(0, 1))
    sites = probe.per_sample(None)
    both, out_only = (penalty_sum(RatePenalty(1.0, sites=s), sites) for s in ("all", "output"))
    by_hand = [pbar.mean(-1) for _, _, pbar in sites]
    assert both.item() == pytest.approx(float(torch.stack(by_hand).mean(0).sum()), rel=1e-6)
    assert out_only.item() == pytest.approx(float(torch.stack(by_hand[1::2]).mean(0).sum()), rel=1e-6)
    out_only.backward()
    assert model.blocks[1].b_out.grad is not None and model.blocks[1].b_out.grad.abs().sum() > 0
    # padded steps do not count: a mask that keeps only step 0 gives step 0's probabilities
    valid = torch.zeros(3, 5, dtype=torch.bool)
    valid[:, 0] = True
    torch.testing.assert_close(probe.per_sample(valid)[1][2], probe.records[1][2][:, 0])
    probe.close()
    model(x)
    assert probe.records == []


def test_probe_of_a_silif_network_sees_each_layers_spikes():
    model = SNN(SNNConfig(kind="silif", d_input=3, d_hidden=5, n_layers=2, dropout=0.0))
    probe = RateProbe(model)
    probe_dict: dict = {}
    model(torch.rand(2, 4, 3), probe=probe_dict)
    assert [(layer, name) for layer, name, _ in probe.records] == [(0, "spikes"), (1, "spikes")]
    torch.testing.assert_close(probe.records[1][2], probe_dict["layer1.s"])


def _tiny_task() -> TaskData:
    rng = np.random.default_rng(0)
    x = rng.random((24, 6, 1)).astype(np.float32)
    y = (x[:, :, 0].mean(1) > 0.5).astype(np.int64)
    split = SeqDataset.from_numpy(x, y)
    return TaskData("tiny", split, split, 2, "real", 1, 6, "24 random sequences")


def test_training_with_a_penalty_logs_and_records_it(tmp_path):
    cfg = ModelConfig(d_input=1, n_classes=2, d_model=4, d_state=2, n_layers=2)
    tcfg = TrainConfig(epochs=2, batch_size=8, eval_seeds=1, rate_penalty=5.0, rate_target=(0.0, 0.1),
                       rate_penalty_form="neuron", rate_sites="output")
    metrics = train(_tiny_task(), cfg, tcfg, tmp_path / "a", progress=False, log=lambda m: None)
    history = metrics["history"]
    assert [sorted(h["rates"]) for h in history] == [["L0.input", "L0.output", "L1.input", "L1.output"]] * 2
    assert all(h["rate_penalty"] > 0 for h in history)
    ckpt = load_checkpoint(tmp_path / "a" / "model.pt")
    assert ckpt.train_config["rate_penalty"] == 5.0 and list(ckpt.train_config["rate_target"]) == [0.0, 0.1]
    assert ckpt.metrics["rate_penalty"]["sites"] == "output" and ckpt.metrics["rate_penalty"]["final_rates"]
    # no penalty: the same rates are logged, nothing is added to the loss
    plain = train(_tiny_task(), cfg, TrainConfig(epochs=1, batch_size=8, eval_seeds=1), tmp_path / "b",
                  progress=False, log=lambda m: None)
    assert plain["history"][0]["rate_penalty"] == 0.0 and plain["rate_penalty"]["weight"] == 0.0
    # fine-tuning with QAT keeps the penalty
    tuned = train(_tiny_task(), cfg, tcfg, tmp_path / "c", progress=False, log=lambda m: None, init=ckpt.model,
                  qat_weight_bits=4)
    assert tuned["qat_weight_bits"] == 4 and tuned["history"][-1]["rate_penalty"] > 0


def test_a_penalty_lowers_the_rates(tmp_path):
    cfg = ModelConfig(d_input=1, n_classes=2, d_model=4, d_state=2, n_layers=1)
    rates = []
    for weight in (0.0, 50.0):
        m = train(_tiny_task(), cfg, TrainConfig(epochs=6, batch_size=8, eval_seeds=1, rate_penalty=weight),
                  tmp_path / str(weight), progress=False, log=lambda m: None)
        rates.append(m["history"][-1]["rates"]["L0.output"])
    assert rates[1] < 0.5 * rates[0]


@pytest.mark.parametrize("kw, message", [
    (dict(rate_penalty=-1.0), "--rate-penalty must be a finite number >= 0"),
    (dict(rate_penalty=float("nan")), "--rate-penalty must be a finite number >= 0"),
    (dict(rate_penalty=float("inf")), "--rate-penalty must be a finite number >= 0"),
    (dict(rate_target=(1.5,)), r"--rate-target values must be probabilities in \[0, 1\]"),
    (dict(rate_target=(float("nan"),)), r"--rate-target values must be probabilities in \[0, 1\]"),
    (dict(rate_penalty_form="l2"), "--rate-penalty-form must be one of mean, neuron"),
    (dict(rate_sites="inputs"), "--rate-sites must be one of all, output"),
    (dict(rate_warmup_fraction=2.0), r"--rate-warmup must be in \[0, 1\]"),
])
def test_bad_settings_are_refused(kw, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**kw)


def test_targets_must_match_the_layers(tmp_path):
    cfg = ModelConfig(d_input=1, n_classes=2, d_model=4, d_state=2, n_layers=2)
    with pytest.raises(UserError, match="--rate-target has 3 values; give one, or one per layer \\(2\\)"):
        train(_tiny_task(), cfg, TrainConfig(epochs=1, rate_penalty=1.0, rate_target=(0.1, 0.1, 0.1)), tmp_path,
              progress=False, log=lambda m: None)
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("flags", [["--rate-penalty", "-2"], ["--rate-penalty", "nan"], ["--rate-target", "0.1,x"],
                                   ["--rate-target", "2"]])
def test_cli_refuses_bad_penalties_in_one_line(tmp_path, capsys, flags):
    try:
        code = main(["train", "--task", "sdigits", "--out", str(tmp_path / "o"), *flags])
    except SystemExit as exc:  # argparse's own refusals exit from the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "rate" in err
