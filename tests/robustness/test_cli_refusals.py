"""Every command, fed the mistakes a user makes: one line ``pspike CMD: error: ...`` on stderr, exit
code 2, nothing on stdout, nothing written, and no work started first. Before ``cli.check_args`` and
``fileio.check_output_*``, eight of these crashed with a traceback (a negative seed, an output that
is a folder or lies below a file, ``--batch-size 0``) and four were accepted (NaN or impossible
tolerances, which made verify pass or fail whatever the network; ``demo`` with zero seeds or
Lava samples, and ``train --out FILE``, which trained before failing)."""

import re

import pytest

from pspike_neuro.cli import main

#: (argv with C = checkpoint, N = netlist, D = a scratch folder, F = a plain file), expected text
CASES = [
    (["train", "--task", "nope", "--out", "D/t"], "unknown task 'nope'"),
    (["train", "--task", "sdigits", "--preset", "huge", "--out", "D/t"], "unknown preset 'huge'"),
    (["train", "--task", "sdigits", "--epochs", "-3", "--out", "D/t"], "--epochs must be at least 1, got -3"),
    (["train", "--task", "sdigits", "--batch-size", "0", "--out", "D/t"], "--batch-size must be at least 1"),
    (["train", "--task", "sdigits", "--lr", "nan", "--out", "D/t"], "learning rates must be positive"),
    (["train", "--task", "sdigits", "--eval-seeds", "0", "--out", "D/t"], "--eval-seeds must be at least 1"),
    (["train", "--task", "sdigits", "--d-model", "0", "--out", "D/t"], "d_model must be an integer in [1, 16384]"),
    (["train", "--task", "sdigits", "--dt-min", "nan", "--out", "D/t"], "dt_min must be a finite number"),
    (["train", "--task", "sdigits", "--device", "tpu", "--out", "D/t"], "--device must be cpu, cuda[:N] or auto"),
    (["train", "--task", "sdigits", "--out", "F"], "--out F: exists and is not a folder"),
    (["train", "--task", "sdigits", "--seed", "-1", "--out", "D/t"], "--seed must be in [0, 2^32)"),
    (["train", "--init", "N", "--out", "D/t"], "not a pspike-neuro checkpoint"),
    (["train", "--task", "sdigits", "--task-option", "n_steps=5", "--out", "D/t"], "task 'sdigits' has no option n_steps"),
    (["train", "--task", "listops", "--task-option", "n_train", "--out", "D/t"], "expected KEY=VALUE"),
    (["train", "--task", "listops", "--task-option", "n_train=lots", "--out", "D/t"], "'lots' is not a number"),
    (["train", "--task", "listops", "--task-option", "n_train=0", "--out", "D/t"], "n_train must be an integer >= 1"),
    (["train", "--task", "listops", "--task-option", "seed=1", "--task-option", "seed=2", "--out", "D/t"],
     "--task-option seed given twice"),
    (["eval", "C", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["eval", "C", "--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["eval", "C", "--fake-quant", "0"], "--fake-quant must be in 1..8"),
    (["eval", "D/missing.pt"], "no such file"),
    (["export", "C", "-o", "D/o.net", "--calib-samples", "-5"], "--calib-samples must be at least 1"),
    (["export", "C", "-o", "D/o.net", "--prob-bits", "40"], "--prob-bits must be in 1..24, got 40"),
    (["export", "C", "-o", "D/o.net", "--ssm-bits", "0"], "ssm_bits must be in 2..16"),
    (["export", "C", "-o", "D/o.net", "--affine-bits", "99"], "affine_bits must be in 2..16"),
    (["export", "C", "-o", "D/o.net", "--density", "nan"], "--density must be in (0, 1]"),
    (["export", "C", "-o", "D/o.net", "--weight-bits", "9"], "--weight-bits must be in 1..8"),
    (["export", "C", "-o", "D/o.net", "--seed", "-1"], "--seed must be in [0, 2^32)"),
    (["export", "C", "-o", "D/o.net", "--seed", str(2**32)], "--seed must be in [0, 2^32)"),
    (["export", "C", "-o", "D"], "--output D: is a folder; name the file to write"),
    (["export", "C", "-o", "F/x.net"], "--output F: exists and is not a folder"),
    (["export", "C", "-o", "D/o.net", "--netx", "D"], "--netx D: is a folder"),
    (["export", "N", "-o", "D/o.net"], "not a pspike-neuro checkpoint"),
    (["inspect", "C"], "is a PyTorch checkpoint, not a pspike-neuro netlist; 'pspike export CKPT -o model.net'"),
    (["inspect", "D"], "is a directory"),
    (["simulate", "N", "--samples", "0"], "--samples must be in 1..360"),
    (["simulate", "N", "--backend", "gpu"], "--backend must be one of reference, lava"),
    (["simulate", "N", "--precision", "half"], "--precision must be fixed or float"),
    (["simulate", "N", "--precision", "double"], "--precision must be fixed or float"),
    (["simulate", "N", "--task", "listops"], "task listops has d_input=16"),
    (["simulate", "N", "--seed", "-1"], "--seed must be in [0, 2^32)"),
    (["simulate", "N", "--out", "F"], "--out F: exists and is not a folder"),
    (["simulate", "N", "--out", "F/sub"], "--out F/sub: F is a file, not a folder"),
    (["verify", "C", "N", "--seeds", "0"], "--seeds must be at least 1"),
    (["verify", "C", "N", "--cost-model", "bogus"], "cost model 'bogus': not a built-in"),
    (["verify", "C", "N", "--max-accuracy-drop", "nan"], "--max-accuracy-drop must be a finite number >= 0"),
    (["verify", "C", "N", "--max-rate-diff", "-0.1"], "--max-rate-diff must be a finite number >= 0"),
    (["verify", "C", "N", "--min-agreement", "2"], "--min-agreement must be in [0, 1], got 2.0"),
    (["verify", "N", "C"], "not a pspike-neuro checkpoint"),
    (["report", "C", "N", "--out", "F"], "--out F: exists and is not a folder"),
    (["report", "C", "N", "--out", "D/r", "--seeds", "-2"], "--seeds must be at least 1, got -2"),
    (["demo", "--epochs", "0", "--out", "D/demo"], "--epochs must be at least 1"),
    (["demo", "--lava-samples", "0", "--out", "D/demo"], "--lava-samples must be at least 1, got 0"),
    (["demo", "--seeds", "0", "--out", "D/demo"], "--seeds must be at least 1, got 0"),
]


@pytest.mark.parametrize("argv, expected", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_user_mistakes_give_one_line_and_exit_2(small_checkpoint, robust_net, tmp_path, capsys, argv, expected):
    scratch = tmp_path / "D"
    scratch.mkdir()
    plain = tmp_path / "F"
    plain.write_text("a file, not a folder")
    names = {"C": str(small_checkpoint.path), "N": str(robust_net), "D": str(scratch), "F": str(plain)}

    def fill(token):  # "F", "D/o.net", "F:" -> the real paths
        m = re.fullmatch(r"([CNDF])(/[^:]*)?(:?)", token)
        return names[m[1]] + (m[2] or "") + m[3] if m else token

    code = main([fill(a) for a in argv])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and captured.out == "", captured
    assert len(lines) == 1 and lines[0].startswith(f"pspike {argv[0]}: error: "), captured.err
    assert " ".join(fill(t) for t in expected.split(" ")) in lines[0]
    assert sorted(p.name for p in scratch.iterdir()) == []          # nothing written, nothing started
    assert plain.read_text() == "a file, not a folder"
