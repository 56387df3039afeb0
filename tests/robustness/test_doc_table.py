"""docs/robustness.md matches the suite: every test of tests/robustness in its table once, with the
number of cases it runs, and the per-category totals add up."""

import importlib
import inspect
import pkgutil
import re
from collections import Counter
from pathlib import Path

import tests.robustness as suite

DOC = Path(__file__).resolve().parents[2] / "docs" / "robustness.md"


def _cases(fn) -> int:
    """Parametrized cases times hypothesis examples."""
    n = 1
    for mark in getattr(fn, "pytestmark", []):
        if mark.name == "parametrize":
            n *= len(mark.args[1])
    if hasattr(fn, "hypothesis"):
        n *= fn._hypothesis_internal_use_settings.max_examples
    return n


def _suite_tests() -> dict:
    found = {}
    for info in pkgutil.iter_modules(suite.__path__):
        if info.name.startswith("test_") and info.name != "test_doc_table":  # this file checks the doc
            module = importlib.import_module(f"{suite.__name__}.{info.name}")
            for name, fn in inspect.getmembers(module, inspect.isfunction):
                if name.startswith("test_") and fn.__module__ == module.__name__:
                    found[f"{info.name}.py::{name}"] = _cases(fn)
    return found


def _table(text: str, header: str) -> list[list[str]]:
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_the_table_names_every_test_once_with_its_cases():
    text = DOC.read_text()
    rows = _table(text, "| category | input or fault |")
    named = Counter(re.fullmatch(r"`(.+)`", row[-1])[1] for row in rows)
    assert [t for t, n in named.items() if n > 1] == []
    actual = _suite_tests()
    assert sorted(named) == sorted(actual)
    for row in rows:
        assert int(row[3]) == actual[row[-1].strip("`")], row[-1]


def test_the_counts_add_up():
    text = DOC.read_text()
    rows = _table(text, "| category | input or fault |")
    tests, cases = Counter(), Counter()
    for row in rows:
        tests[row[0]] += 1
        cases[row[0]] += int(row[3])
    counts = {row[0]: (int(row[1]), int(row[2])) for row in _table(text, "| category | tests | cases |")}
    assert counts.pop("all") == (sum(tests.values()), sum(cases.values()))
    assert counts == {category: (tests[category], cases[category]) for category in tests}
