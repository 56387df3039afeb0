"""Mistakes that argparse catches are one line on stderr and exit 2, like every other user mistake:
for every subcommand, a missing required argument, every typed flag given a word and an unknown
flag. (Flags with a fixed set of values are checked after parsing, by ``check_args``, with their own
one-line messages: tests/robustness/test_cli_refusals.py.)"""

import argparse

import pytest

from pspike_neuro.cli import COMMANDS, build_parser, main


def _subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _typed_flags():
    """(command, flag, type name) for every option that converts its value (int, float, ...)."""
    cases = []
    for command, sub in _subparsers().items():
        for a in sub._actions:
            if a.option_strings and a.type in (int, float) and a.nargs in (None, "?"):
                cases.append((command, a.option_strings[-1], a.type.__name__))
    return cases


def _choice_flags():
    return [(command, a.option_strings[-1]) for command, sub in _subparsers().items()
            for a in sub._actions if a.option_strings and a.choices]


def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line(code, out, err, *needles):
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pspike")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_every_command_is_covered():
    assert set(_subparsers()) == set(COMMANDS)
    assert len(_typed_flags()) >= 20  # the sweep below really runs over the typed flags
    assert _choice_flags() == []  # choices are checked after parsing, by check_args (test_cli_refusals.py)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_missing_arguments_or_unknown_flag(command, capsys):
    sub = _subparsers()[command]
    required = [a for a in sub._actions if a.required or (not a.option_strings and a.nargs not in ("?", "*"))]
    if required:
        _assert_one_line(*_run([command], capsys), "required", f"see pspike {command} --help")
    filled = [command]
    for a in required:
        filled += ["x"] if not a.option_strings else [a.option_strings[-1], "x"]
    _assert_one_line(*_run(filled + ["--no-such-flag"], capsys), "unrecognized arguments: --no-such-flag")


@pytest.mark.parametrize("command,flag,kind", _typed_flags())
def test_a_word_for_a_number(command, flag, kind, capsys):
    _assert_one_line(*_run([command, flag, "abc"], capsys), f"argument {flag}", f"invalid {kind} value: 'abc'")


def test_no_command_and_an_unknown_command(capsys):
    _assert_one_line(*_run([], capsys), "a command is required", "train")
    _assert_one_line(*_run(["trian"], capsys), "invalid choice: 'trian'")


def test_version_and_help_still_print_and_exit_0(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.startswith("pspike-neuro ")
    code, out, _ = _run(["export", "--help"], capsys)
    assert code == 0 and "--format" in out and len(out.splitlines()) > 5
