"""Re-run chosen mutants against today's tests, without mutmut: docs/testing.md, "After".

Each mutant is a fixed-string replacement in one file of a copy of the committed tree (``git archive HEAD``
into a temporary folder; the work tree is never touched), and its module's fast tests run with ``-x``. The list
``SURVIVORS`` is the baseline's survivors (docs/testing.md), ``ISSUE`` the three mutations of issue 18, run
against whole test files and reported with every failing test.

    .venv/bin/python scripts/recheck_mutants.py                      # every survivor of the baseline
    .venv/bin/python scripts/recheck_mutants.py numerics/rng.py:230  # some of them, by key
    .venv/bin/python scripts/recheck_mutants.py --issue              # issue 18's three mutations
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RNG = ["tests/test_rng.py", "tests/test_numerics_pins.py", "tests/test_oracles.py", "tests/test_sampler.py"]
NODES = [
    "tests/test_numerics_pins.py",
    "tests/test_oracles.py",
    "tests/test_oracles_snn.py",
    "tests/test_oracles_nir.py",
    "tests/test_silif.py",
    "tests/test_silif_deploy.py",
    "tests/test_nir_peers.py",
    "tests/test_energy.py",
    "tests/test_netlist.py",
]
EXE = [
    "tests/test_numerics_pins.py",
    "tests/test_oracles.py",
    "tests/test_oracles_nir.py",
    "tests/test_oracles_snn.py",
    "tests/test_nir_peers.py",
    "tests/test_netlist.py",
    "tests/test_fold.py",
]
FOLD = ["tests/test_fold.py", "tests/test_numerics_pins.py", "tests/test_silif_deploy.py", "tests/test_nir_peers.py"]
QAT = ["tests/test_numerics_pins.py", "tests/test_quant.py"]
COST = ["tests/test_numerics_pins.py", "tests/test_energy.py", "tests/test_energy_per_inference.py"]
SURVIVORS = [
    (
        "numerics/rng.py:230",
        "pspike_neuro/numerics/rng.py",
        'raise ValueError(f"n_neurons must be >= 0, got {n}")',
        "raise ValueError(None)",
        RNG,
        "msg",
    ),
    (
        "numerics/rng.py:302",
        "pspike_neuro/numerics/rng.py",
        "sample, device=device), p, dt)",
        "sample, device=device), p, None)",
        RNG,
        "int",
    ),
    (
        "numerics/rng.py:337",
        "pspike_neuro/numerics/rng.py",
        't0 = _check_python_key(t0, "t0")',
        "t0 = _check_python_key(t0, None)",
        RNG,
        "msg",
    ),
    (
        "numerics/rng.py:345",
        "pspike_neuro/numerics/rng.py",
        "dtype=torch.int64, device=device)\n        return samples.view",
        "dtype=torch.int64, )\n        return samples.view",
        RNG,
        "equiv",
    ),
    ("numerics/rng.py:347", "pspike_neuro/numerics/rng.py", "steps.view(1, length, 1)", "steps.view(length, 1)", RNG, "equiv"),
    (
        "numerics/rng.py:351",
        "pspike_neuro/numerics/rng.py",
        "self._keys(shape, device, t0)",
        "self._keys(shape, None, t0)",
        RNG,
        "equiv",
    ),
    (
        "nodes/csilif_neuron.py:22",
        "pspike_neuro/nodes/csilif_neuron.py",
        "return Format(False, frac_bits_for(",
        "return Format(None, frac_bits_for(",
        NODES,
        "equiv",
    ),
    (
        "nodes/csilif_neuron.py:67",
        "pspike_neuro/nodes/csilif_neuron.py",
        '(f["lam_re"] + 1j * f["lam_im"]) * (u - 0.5 * s)',
        '(f["lam_re"] + 1j / f["lam_im"]) * (u - 0.5 * s)',
        NODES,
        "int",
    ),
    (
        "nodes/csilif_neuron.py:68",
        "pspike_neuro/nodes/csilif_neuron.py",
        'ctx.stat_max(self.name, "state_max"',
        'ctx.stat_max(self.name, "STATE_MAX"',
        NODES,
        "int",
    ),
    (
        "nodes/cuba_lif.py:100",
        "pspike_neuro/nodes/cuba_lif.py",
        'round_int(f["bias_mem"] * scale, "bias_mem", name)',
        'round_int(f["bias_mem"] * scale, None, name)',
        NODES,
        "msg",
    ),
    (
        "nodes/graded_input.py:96",
        "pspike_neuro/nodes/graded_input.py",
        'return {"message": 24}',
        'return {"message": 25}',
        NODES,
        "int",
    ),
    (
        "nodes/lif.py:26",
        "pspike_neuro/nodes/lif.py",
        'extremes = [float(q.stats.get("state_max", 0.0))]',
        'extremes = [float(q.stats.get("XXstate_maxXX", 0.0))]',
        NODES,
        "int",
    ),
    (
        "graph/execute.py:59",
        "pspike_neuro/graph/execute.py",
        '.get(name, {}).get("state")',
        '.get(name, {}).get("XXstateXX")',
        EXE,
        "accessor",
    ),
    (
        "graph/execute.py:69",
        "pspike_neuro/graph/execute.py",
        "if value.dtype == bool else value",
        "if value.dtype != bool else value",
        EXE,
        "int",
    ),
    (
        "graph/execute.py:139",
        "pspike_neuro/graph/execute.py",
        "(n.int_init(batch) if integer else",
        "(n.int_init(batch) if (integer) or True else",
        EXE,
        "int",
    ),
    (
        "graph/execute.py:153",
        "pspike_neuro/graph/execute.py",
        "_add(inputs, e.dst_port, value, integer)",
        "_add(inputs, e.dst_port, value, None)",
        EXE,
        "equiv",
    ),
    (
        "graph/execute.py:158",
        "pspike_neuro/graph/execute.py",
        "step(states[node.name], inputs, t, ctx)",
        "step(states[node.name], inputs, None, ctx)",
        EXE,
        "equiv",
    ),
    (
        "quant/fold.py:137",
        "pspike_neuro/quant/fold.py",
        "np.sqrt(_np(norm.running_var) + norm.eps)",
        "np.sqrt(_np(norm.running_var) - norm.eps)",
        FOLD,
        "int",
    ),
    ("quant/fold.py:164", "pspike_neuro/quant/fold.py", "weight = g[:, None] * w", "weight = g[:, None] / w", FOLD, "int"),
    (
        "quant/fold.py:175a",
        "pspike_neuro/quant/fold.py",
        "weight, bias = ((1 - alpha) * g)",
        "weight, bias = ((1 + alpha) * g)",
        FOLD,
        "int",
    ),
    (
        "quant/fold.py:175b",
        "pspike_neuro/quant/fold.py",
        "weight, bias = ((1 - alpha) * g)",
        "weight, bias = ((2 - alpha) * g)",
        FOLD,
        "int",
    ),
    ("quant/qat.py:26a", "pspike_neuro/quant/qat.py", "w_int * 2.0 ** exp", "w_int * 2.0 * exp", QAT, "int"),
    ("quant/qat.py:26b", "pspike_neuro/quant/qat.py", ".to(w.dtype).to(w.device)", ".to(w.dtype).to(None)", QAT, "equiv"),
    (
        "quant/qat.py:51",
        "pspike_neuro/quant/qat.py",
        'if parametrize.is_parametrized(layer, "weight"):',
        "if parametrize.is_parametrized(layer, None):",
        QAT,
        "equiv",
    ),
    ("quant/qat.py:52a", "pspike_neuro/quant/qat.py", "leave_parametrized=False)", "leave_parametrized=None)", QAT, "equiv"),
    ("quant/qat.py:52b", "pspike_neuro/quant/qat.py", '"weight", leave_parametrized=False)', '"weight", )', QAT, "int"),
    ("quant/qat.py:52c", "pspike_neuro/quant/qat.py", "leave_parametrized=False)", "leave_parametrized=True)", QAT, "int"),
    (
        "energy/costs.py:35",
        "pspike_neuro/energy/costs.py",
        "({', '.join(COST_MODELS)})",
        "({'XX, XX'.join(COST_MODELS)})",
        COST,
        "msg",
    ),
    (
        "energy/costs.py:39",
        "pspike_neuro/energy/costs.py",
        'raise UserError(f"cost model {path}: not valid JSON ({exc})") from None',
        "raise UserError(None) from None",
        COST,
        "msg",
    ),
    ("energy/costs.py:40a", "pspike_neuro/energy/costs.py", '{"active_extra"}', '{"XXactive_extraXX"}', COST, "behaviour"),
    ("energy/costs.py:40b", "pspike_neuro/energy/costs.py", '{"active_extra"}', '{"ACTIVE_EXTRA"}', COST, "behaviour"),
    (
        "energy/costs.py:41",
        "pspike_neuro/energy/costs.py",
        'or not isinstance(model.get("pj"), dict) or not model.get("source")',
        'or not isinstance(model.get("pj"), dict) and not model.get("source")',
        COST,
        "behaviour",
    ),
    (
        "energy/costs.py:45",
        "pspike_neuro/energy/costs.py",
        "{', '.join(sorted(known))}",
        "{'XX, XX'.join(sorted(known))}",
        COST,
        "msg",
    ),
    (
        "energy/costs.py:46",
        "pspike_neuro/energy/costs.py",
        "if not isinstance(value, (int, float)) or value < 0:",
        "if not isinstance(value, (int, float)) and value < 0:",
        COST,
        "behaviour",
    ),
    (
        "energy/costs.py:47",
        "pspike_neuro/energy/costs.py",
        'raise UserError(f"cost model {path}: {kind} must be a non-negative number of pJ")',
        "raise UserError(None)",
        COST,
        "msg",
    ),
    (
        "energy/costs.py:56",
        "pspike_neuro/energy/costs.py",
        'parts["active_extra"] = ',
        'parts["XXactive_extraXX"] = ',
        COST,
        "behaviour",
    ),
]
#: issue 18's mutations: (name, file, old, new); tests: ISSUE_TESTS
ISSUE = [
    (
        "readout ignores padding",
        "pspike_neuro/nodes/readout_integrator.py",
        "        acc = np.where(valid, nxt, acc)\n",
        "        acc = nxt\n",
    ),
    (
        "SiLIF threshold >=",
        "pspike_neuro/nodes/silif_neuron.py",
        "s = (u > self.one).astype(np.int64)",
        "s = (u >= self.one).astype(np.int64)",
    ),
    (
        "energy per inference / steps",
        "pspike_neuro/verify.py",
        "n = sum(valid.shape[0] for _, _, valid in runs)",
        "n = sum(valid.shape[1] for _, _, valid in runs)",
    ),
]
ISSUE_TESTS = [
    "tests/test_oracles.py",
    "tests/test_oracles_snn.py",
    "tests/test_oracles_nir.py",
    "tests/test_padded_end_to_end.py",
    "tests/test_energy_per_inference.py",
    "tests/test_numerics_pins.py",
]


def _pytest(root: Path, tests: list, first_failure: bool) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(["-x"] if first_failure else []), *tests]
    return subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=3000)


def _mutated(root: Path, file: str, old: str, new: str):
    path = root / file
    text = path.read_text()
    if text.count(old) != 1:
        raise SystemExit(f"{file}: the text to mutate occurs {text.count(old)} times, not once: {old!r}")
    path.write_text(text.replace(old, new))
    return path, text


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="pspike-mutants-") as tmp:
        root = Path(tmp)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        if "--issue" in argv:
            for name, file, old, new in ISSUE:
                path, text = _mutated(root, file, old, new)
                try:
                    run = _pytest(root, ISSUE_TESTS, first_failure=False)
                finally:
                    path.write_text(text)
                failed = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
                print(f"{name}: {'killed' if run.returncode else 'SURVIVED'}", flush=True)
                for line in failed:
                    print("   ", line[:200], flush=True)
            return 0
        killed = survived = 0
        for key, file, old, new, tests, kind in SURVIVORS:
            if argv and key not in argv:
                continue
            start = time.time()
            path, text = _mutated(root, file, old, new)
            try:
                run = _pytest(root, tests, first_failure=True)
            finally:
                path.write_text(text)
            failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
            status = "killed" if run.returncode else "survived"
            killed, survived = killed + (status == "killed"), survived + (status == "survived")
            print(f"{key}: {status} [{kind}] {(failed or [''])[0][:160]} ({time.time() - start:.0f} s)", flush=True)
        print(f"{killed} killed, {survived} survived", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
