#!/usr/bin/env python
"""Mutation testing of the numerics core: ``make mutate`` (every mutant) and ``make mutate-quick`` (a seeded sample).

What it does (docs/testing.md has the why and the last results):

1. ``main`` phase: mutmut 3 (pinned in pyproject's dev extras, configured in its ``[tool.mutmut]``) on a staged
   copy of the source under ``build/mutate/main``: numerics/ (fixed, rng, the Python side of kernels), nodes/,
   graph/execute.py, quant/, energy/. mutmut runs each mutant in a forked worker with only the tests that
   called the mutated function. The numba-compiled kernel functions cannot run behind mutmut's trampolines
   (numba cannot compile the trampoline), so the staged copy marks each of them ``# pragma: no mutate block``
   (a comment at the end of the ``def`` line: line numbers are unchanged) and phase 2 takes them.
2. ``kernels`` phase: the compiled kernels of numerics/kernels.py, mutated by mutmut's own generator, each
   mutant written into the file of a worker's copy and checked with numba on (compiled as shipped) by the
   kernel tests that compare it with the numpy steps (``KERNEL_TESTS``), in a forked child per mutant.

Then one table per module: mutants, killed, survived, timeout, no tests, kill %; the survivors (file:line and the
mutation) go to ``build/mutate/survivors.txt`` (``--survivors`` elsewhere) and ``build/mutate/results.json``.

Killed counts killed + timeout (a mutant that makes the tests hang is detected); kill % = killed / (mutants -
skipped). ``no tests``: no selected test calls the function (counted as not killed).

Run it with the project's venv: ``.venv/bin/python scripts/mutate.py [--quick N] [--seed S] [--workers W]``.
``--source DIR`` measures another checkout (a git worktree of an older commit) with this script's settings.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# the modules the table reports on, in this order (also the strata of --quick's sample)
MODULES = [
    "pspike_neuro/numerics/fixed.py",
    "pspike_neuro/numerics/rng.py",
    "pspike_neuro/numerics/kernels.py",
    "pspike_neuro/nodes/*.py",
    "pspike_neuro/graph/execute.py",
    "pspike_neuro/quant/fold.py",
    "pspike_neuro/quant/quantize.py",
    "pspike_neuro/quant/qat.py",
    "pspike_neuro/energy/ops.py",
    "pspike_neuro/energy/costs.py",
]
KERNELS = "pspike_neuro/numerics/kernels.py"

# The compiled kernels' tests: each compares the kernel with the numpy step it mirrors. Only these run for a
# kernel mutant (each run recompiles the mutated kernel: 5-20 s).
_SEQ = "tests/test_sim_kernels.py::test_neuron_sequence_equals_the_numpy_step_loop"
_SIM = "tests/test_sim_kernels.py::test_simulate_is_the_same_with_and_without_kernels"
KERNEL_TESTS = {
    "_input_spike": [f"{_SEQ}[relu-False]", f"{_SEQ}[relu-True]", f"{_SEQ}[identity-False]", f"{_SEQ}[identity-True]"],
    "_output_spike": [f"{_SEQ}[relu-False]", f"{_SEQ}[relu-True]", f"{_SEQ}[identity-False]", f"{_SEQ}[identity-True]"],
    "_neuron_sequence": [f"{_SEQ}[relu-False]", f"{_SEQ}[identity-False]"],
    "_neuron_sequence_f64": [f"{_SEQ}[relu-True]", f"{_SEQ}[identity-True]", _SIM],
    "_random_block": ["tests/test_sim_kernels.py::test_random_block_equals_the_counter_based_generator"],
    "_fuse_rows": ["tests/test_sim_kernels.py::test_fuse_kernel_equals_the_numpy_step"],
}

# one worker per core at most; each worker's numpy/numba/torch run on one thread
THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "PYTHONHASHSEED": "0"}
STAGED = ["pspike_neuro", "tests", "docs", "pyproject.toml"]
PRAGMA = "  # pragma: no mutate block"


# --- helpers -------------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[mutate {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def module_of(path: str) -> str:
    for pattern in MODULES:
        if fnmatch.fnmatch(path, pattern):
            return pattern.replace("/*.py", "/")
    return path


def mutmut_config(source: Path) -> dict:
    text = (source / "pyproject.toml").read_text()
    if sys.version_info >= (3, 11):
        import tomllib
        data = tomllib.loads(text)
    else:
        import toml
        data = toml.loads(text)
    return data["tool"]["mutmut"]


def jitted_functions(source: str) -> list[ast.FunctionDef]:
    """Top-level functions that numba compiles: ``numba.njit(...)(name)`` or an ``@numba.njit`` decorator."""
    tree = ast.parse(source)
    wrapped = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and "njit" in ast.unparse(node.func.func)
                and node.args and isinstance(node.args[0], ast.Name)):
            wrapped.add(node.args[0].id)
    return [f for f in tree.body if isinstance(f, ast.FunctionDef)
            and (f.name in wrapped or any("njit" in ast.unparse(d) for d in f.decorator_list))]


def add_pragmas(path: Path, names: set[str] | None, invert: bool = False) -> list[str]:
    """Append ``# pragma: no mutate block`` to the ``def`` line of the jitted functions (``invert``: of every other
    top-level function). Returns the names marked."""
    source = path.read_text()
    tree = ast.parse(source)
    jitted = {f.name for f in jitted_functions(source)}
    lines = source.splitlines(keepends=True)
    marked = []
    for f in tree.body:
        if not isinstance(f, ast.FunctionDef):
            continue
        if (f.name in jitted) == invert:
            continue
        # the line that ends the header: the one before the first body statement (or docstring), ends with ':'
        i = f.body[0].lineno - 2
        while not lines[i].rstrip().endswith(":"):
            i -= 1
        lines[i] = lines[i].rstrip("\n").rstrip() + PRAGMA + "\n"
        marked.append(f.name)
    path.write_text("".join(lines))
    return marked


def stage(source: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    for name in STAGED:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(THREAD_ENV)
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def mutmut_cmd(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--mutmut", *args]


def run_mutmut_cli(args: list[str]) -> None:
    """mutmut's command line, with Lava's multiprocessing imported first: it sets the 'fork' start method and
    fails if anything chose one before (tests/conftest.py imports it; mutmut sets 'fork' when imported)."""
    import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401

    if args and args[0] == "generate":
        import mutmut.__main__ as mm
        from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir

        Path("mutants").mkdir(exist_ok=True)
        copy_src_dir()
        copy_also_copy_files()
        print(mm.create_mutants(int(args[1]) if len(args) > 1 else 2))
        return
    from mutmut.__main__ import cli

    sys.argv = ["mutmut", *args]
    cli()


def load_meta(workdir: Path) -> dict[str, tuple[str, int | None, float | None]]:
    """mutant name -> (source path, exit code, duration) from mutmut's .meta files in ``workdir/mutants``."""
    out = {}
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        path = str(meta.relative_to(workdir / "mutants"))[: -len(".meta")]
        data = json.loads(meta.read_text())
        for name, code in data["exit_code_by_key"].items():
            out[name] = (path, code, data.get("durations_by_key", {}).get(name))
    return out


def status_of(code) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


def describe(workdir: Path, name: str, path: str) -> tuple[int, str]:
    """(line in the original file, ``old -> new``) of a mutant, from mutmut's diff."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        diff = get_diff_for_mutant(name, path=path)
    finally:
        os.chdir(cwd)
    func = name.rpartition(".")[2].rsplit("__mutmut_", 1)[0]
    func = func.split("ǁ")[-1] if "ǁ" in func else func[2:]
    start = function_start(workdir / path, func)
    old, new, line = [], [], None
    pos = 0
    for row in diff.splitlines():
        m = re.match(r"@@ -(\d+)", row)
        if m:
            pos = int(m.group(1))
            continue
        if row.startswith(("---", "+++")):
            continue
        if row.startswith("-"):
            old.append(row[1:].strip())
            line = line or pos
            pos += 1
        elif row.startswith("+"):
            new.append(row[1:].strip())
        else:
            pos += 1
    lineno = (start + (line or 1) - 1) if start else 0
    return lineno, f"{' / '.join(old)}  ->  {' / '.join(new) or '(removed)'}"


_STARTS: dict[Path, dict[str, int]] = {}


def function_start(path: Path, func: str) -> int:
    if path not in _STARTS:
        starts = {}
        tree = ast.parse(path.read_text())
        for node in tree.body:
            items = [node] + (list(node.body) if isinstance(node, ast.ClassDef) else [])
            for f in items:
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    first = min([f.lineno] + [d.lineno for d in f.decorator_list])
                    starts.setdefault(f.name, first)
        _STARTS[path] = starts
    return _STARTS[path].get(func, 0)


# --- phase 1: mutmut --------------------------------------------------------------------------------------------

def main_phase(args, source: Path, workdir: Path) -> None:
    staged = workdir / "main"
    if not (args.resume and staged.exists()):
        stage(source, staged)
        marked = add_pragmas(staged / KERNELS, None)
        log(f"staged {source} in {staged}; compiled kernels left to the kernels phase: {', '.join(marked)}")
    env = child_env()
    if args.quick:
        subprocess.run(mutmut_cmd("generate", str(args.workers)), cwd=staged, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        meta = load_meta(staged)
        names = sample(meta, args.quick, args.seed)
        log(f"--quick {args.quick}: {len(names)} mutants sampled (seed {args.seed})")
        if args.resume:  # mutmut reruns every mutant it is given by name: leave out those with a result
            names = [n for n in names if meta[n][1] is None]
            log(f"--resume: {len(names)} of them still to run")
            if not names:
                return
        cmd = mutmut_cmd("run", "--max-children", str(args.workers), *names)
    else:
        cmd = mutmut_cmd("run", "--max-children", str(args.workers))
    log("mutmut: " + " ".join(cmd[3:6]) + (" ..." if len(cmd) > 6 else ""))
    with open(workdir / "mutmut.log", "w") as out:
        rc = subprocess.run(cmd, cwd=staged, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        sys.exit(f"mutmut failed (exit {rc}); see {workdir / 'mutmut.log'}")


def sample(meta: dict, per_module: int, seed: int) -> list[str]:
    by_module = defaultdict(list)
    for name, (path, _, _) in meta.items():
        by_module[module_of(path)].append(name)
    rng = random.Random(seed)
    names = []
    for module in sorted(by_module):
        pool = sorted(by_module[module])
        names += rng.sample(pool, min(per_module, len(pool)))
    return names


# --- phase 2: the compiled kernels ------------------------------------------------------------------------------

def kernels_phase(args, source: Path, workdir: Path) -> None:
    gen = workdir / "kernels"
    results_path = gen / "kernel-results.json"
    results = json.loads(results_path.read_text()) if args.resume and results_path.exists() else {}
    if not (args.resume and gen.exists()):
        stage(source, gen)
        marked = add_pragmas(gen / KERNELS, None, invert=True)
        log(f"kernels phase: mutating the compiled functions only ({len(marked)} Python functions marked no-mutate)")
        cfg_path = gen / "pyproject.toml"
        cfg_path.write_text(re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", cfg_path.read_text())
                            + '\n[tool.mutmut]\nsource_paths = ["pspike_neuro/"]\n'
                            + f'only_mutate = ["{KERNELS}"]\n')
        subprocess.run(mutmut_cmd("generate", "1"), cwd=gen, env=child_env(), check=True, stdout=subprocess.DEVNULL)
    meta = load_meta(gen)
    names = sorted(meta)
    if args.quick:
        names = sample(meta, args.quick, args.seed)
    names = [n for n in names if n not in results]
    if not names:
        return
    workers = [gen / f"w{i}" for i in range(args.workers)]
    for w in workers:
        stage(source, w)
    original = (source / KERNELS).read_text()
    tests_of = {n: KERNEL_TESTS.get(n.rpartition(".")[2].rsplit("__mutmut_", 1)[0][2:], []) for n in names}
    # clean runs: the unmutated kernels must pass their tests (and give each group's compile-and-run time)
    clean_time = {}
    groups = sorted({tuple(t) for t in tests_of.values() if t})
    for group in groups:
        t0 = time.time()
        code, out = run_pytest(workers[0], list(group), timeout=900, cache_dir=workers[0] / f".nb-clean-{len(clean_time)}")
        if code != 0:
            sys.exit(f"kernel tests fail on the unmutated source:\n{out[-3000:]}")
        clean_time[group] = time.time() - t0
    log(f"kernels phase: {len(names)} mutants, clean runs {', '.join(f'{t:.0f}s' for t in clean_time.values())}")
    queue = list(names)
    running = {}  # pid -> (name, worker, start, timeout, out_file)
    free = list(workers)
    done = 0
    t_start = time.time()
    while queue or running:
        while queue and free:
            name = queue.pop(0)
            tests = tests_of[name]
            if not tests:
                results[name] = {"status": "no tests", "exit_code": 33}
                continue
            w = free.pop()
            mutated = apply_kernel_mutant(gen, name, original)
            (w / KERNELS).write_text(mutated)
            timeout = 3 * clean_time[tuple(tests)] + 60
            out_file = w / ".pytest-out.txt"
            pid = fork_pytest(w, tests, out_file)
            running[pid] = (name, w, time.time(), timeout, out_file)
        if not running:
            continue
        time.sleep(0.2)
        for pid, (name, w, start, timeout, out_file) in list(running.items()):
            finished, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.time() - start
            if not finished and elapsed < timeout:
                continue
            if not finished:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                code = None
            else:
                code = os.waitstatus_to_exitcode(status)
            out = out_file.read_text(errors="replace") if out_file.exists() else ""
            if code is None:
                st = "timeout"
            elif code == 0:
                st = "survived"
            elif code == 1:
                st = "killed"
            else:
                st = "suspicious"
            results[name] = {"status": st, "exit_code": code, "duration": round(elapsed, 1),
                             "compile_error": "TypingError" in out or "LoweringError" in out}
            shutil.rmtree(w / ".nb-cache", ignore_errors=True)
            del running[pid]
            free.append(w)
            done += 1
            results_path.write_text(json.dumps(results, indent=1))
            if done % 10 == 0 or not queue:
                rate = done / (time.time() - t_start)
                log(f"kernels: {done}/{len(names)} done ({Counter(r['status'] for r in results.values())}), "
                    f"{rate * 60:.1f}/min")
    results_path.write_text(json.dumps(results, indent=1))


def apply_kernel_mutant(gen: Path, name: str, original: str) -> str:
    import libcst as cst
    from mutmut.mutation.diff_apply import find_top_level_function_or_method, read_functions_from_index

    cwd = os.getcwd()
    os.chdir(gen)
    try:
        _, mutant = read_functions_from_index(name, KERNELS)
    finally:
        os.chdir(cwd)
    func = name.rpartition(".")[2].rsplit("__mutmut_", 1)[0][2:]
    module = cst.parse_module(original)
    orig = find_top_level_function_or_method(module, func)
    mutant = mutant.with_changes(name=cst.Name(func), leading_lines=orig.leading_lines)
    return module.deep_replace(orig, mutant).code


def run_pytest(w: Path, tests: list[str], timeout: float, cache_dir: Path) -> tuple[int, str]:
    env = child_env({"NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(w)})
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=w,
                          env=env, capture_output=True, text=True, timeout=timeout)
    shutil.rmtree(cache_dir, ignore_errors=True)
    return proc.returncode, proc.stdout + proc.stderr


_SERVER = None


def fork_pytest(w: Path, tests: list[str], out_file: Path) -> int:
    """Fork a child that runs ``tests`` in ``w`` (its own copy of the package; a numba cache of its own, removed
    after each mutant, so that every mutant is compiled from its source)."""
    global _SERVER
    if _SERVER is None:  # heavy imports once, in this process, before any fork (no threads started yet)
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
        import pytest  # noqa: F401
        import scipy.sparse  # noqa: F401
        import torch  # noqa: F401
        _SERVER = True
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.environ["NUMBA_CACHE_DIR"] = str(w / ".nb-cache")
            for k, v in THREAD_ENV.items():
                os.environ[k] = v
            os.chdir(w)
            sys.path.insert(0, str(w))
            import pytest

            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests]))
        except BaseException:  # noqa: B036 - the child must never return into the parent's loop
            code = 3
        os._exit(code)
    return pid


# --- report -----------------------------------------------------------------------------------------------------

def collect(workdir: Path) -> list[dict]:
    rows = []
    main = workdir / "main"
    if (main / "mutants").exists():
        for name, (path, code, _) in load_meta(main).items():
            if code is None:
                continue  # not run (a --quick sample)
            rows.append({"name": name, "path": path, "status": status_of(code), "phase": "mutmut"})
    kres = workdir / "kernels" / "kernel-results.json"
    if kres.exists():
        for name, r in json.loads(kres.read_text()).items():
            rows.append({"name": name, "path": KERNELS, "status": r["status"], "phase": "kernels-jit",
                         "compile_error": r.get("compile_error", False)})
    return rows


def table(rows: list[dict]) -> list[dict]:
    by = defaultdict(Counter)
    for r in rows:
        by[module_of(r["path"])][r["status"]] += 1
    order = [m.replace("/*.py", "/") for m in MODULES]
    out = []
    total = Counter()
    for module in sorted(by, key=lambda m: order.index(m) if m in order else 99):
        c = by[module]
        total.update(c)
        out.append(summarize(module, c))
    out.append(summarize("total", total))
    return out


def summarize(module: str, c: Counter) -> dict:
    n = sum(c.values())
    killed = c["killed"] + c["timeout"] + c["caught by type check"]
    counted = n - c["skipped"]
    return {"module": module.replace("pspike_neuro/", ""), "mutants": n, "killed": killed, "survived": c["survived"],
            "timeout": c["timeout"], "no_tests": c["no tests"], "other": n - killed - c["survived"] - c["no tests"],
            "kill_pct": round(100 * killed / counted, 1) if counted else 0.0}


def print_table(rows: list[dict]) -> str:
    head = "| module | mutants | killed | survived | timeout | no tests | other | kill % |"
    lines = [head, "|" + "---|" * 8]
    for r in table(rows):
        lines.append(f"| {r['module']} | {r['mutants']} | {r['killed']} | {r['survived']} | {r['timeout']} | "
                     f"{r['no_tests']} | {r['other']} | {r['kill_pct']:.1f} |")
    return "\n".join(lines)


def survivors(rows: list[dict], workdir: Path) -> list[dict]:
    out = []
    for r in rows:
        if r["status"] not in ("survived", "no tests", "suspicious"):
            continue
        gen = workdir / ("kernels" if r["phase"] == "kernels-jit" else "main")
        try:
            line, what = describe(gen, r["name"], r["path"])
        except Exception as exc:  # noqa: BLE001 - a survivor without a diff is still listed
            line, what = 0, f"(no diff: {exc})"
        out.append({**r, "line": line, "mutation": what})
    out.sort(key=lambda s: (module_of(s["path"]), s["path"], s["line"], s["name"]))
    return out


def report(args, workdir: Path, source: Path) -> None:
    rows = collect(workdir)
    if not rows:
        sys.exit("no results yet")
    text = print_table(rows)
    print(text)
    surv = survivors(rows, workdir)
    lines = [f"{s['path']}:{s['line']}\t{s['status']}\t{s['name']}\t{s['mutation']}" for s in surv]
    surv_path = Path(args.survivors) if args.survivors else workdir / "survivors.txt"
    surv_path.write_text("# file:line\tstatus\tmutmut name\tmutation (old -> new)\n" + "\n".join(lines) + "\n")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=source, capture_output=True,
                            text=True).stdout.strip()
    (workdir / "results.json").write_text(json.dumps({"commit": commit, "date": time.strftime("%Y-%m-%d"),
                                                      "quick": args.quick, "seed": args.seed,
                                                      "table": table(rows), "survivors": surv}, indent=1))
    md = [f"Commit {commit}, {time.strftime('%Y-%m-%d')}, "
          + (f"`--quick {args.quick} --seed {args.seed}`" if args.quick else "every mutant") + ".", "", text, ""]
    by_module = defaultdict(list)
    for s in surv:
        by_module[module_of(s["path"])].append(s)
    order = [m.replace("/*.py", "/") for m in MODULES]
    for module, items in sorted(by_module.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
        md.append(f"**{module.replace('pspike_neuro/', '')}** ({len(items)})\n")
        for s in items:
            tag = "" if s["status"] == "survived" else f" ({s['status']})"
            md.append(f"- `{s['path'].replace('pspike_neuro/', '')}:{s['line']}`{tag}: `{s['mutation']}`")
        md.append("")
    (workdir / "report.md").write_text("\n".join(md))
    print(f"\n{len(surv)} survivors (and no-tests) listed in {surv_path}; results in {workdir / 'results.json'}, "
          f"{workdir / 'report.md'}")


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--mutmut":
        run_mutmut_cli(sys.argv[2:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", type=int, default=0, metavar="N", help="a seeded sample of N mutants per module")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--phase", choices=["all", "main", "kernels", "report"], default="all")
    p.add_argument("--source", type=Path, default=ROOT, help="the checkout to mutate (default: this one)")
    p.add_argument("--workdir", type=Path, default=None, help="default: SOURCE/build/mutate")
    p.add_argument("--survivors", default=None, help="where to write the survivors list")
    p.add_argument("--resume", action="store_true", help="keep the staged copy and mutmut's finished results")
    args = p.parse_args(argv)
    source = args.source.resolve()
    workdir = (args.workdir or source / "build" / "mutate").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.phase in ("all", "main"):
        main_phase(args, source, workdir)
        log(f"main phase done in {(time.time() - t0) / 60:.1f} min")
    if args.phase in ("all", "kernels"):
        t1 = time.time()
        kernels_phase(args, source, workdir)
        log(f"kernels phase done in {(time.time() - t1) / 60:.1f} min")
    report(args, workdir, source)
    log(f"total {(time.time() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
