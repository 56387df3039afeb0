"""Checks on task options, which come from the user (command line or config) and so raise UserError."""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError


def require_int(task: str, name: str, value, least: int, most: int | None = None) -> None:
    """Raise UserError unless ``value`` is an integer in ``[least, most]``."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least
            or (most is not None and value > most)):
        where = f">= {least}" if most is None else f"in [{least}, {most}]"
        raise UserError(f"{task}: option {name} must be an integer {where}, got {value!r}")


def require_real(task: str, name: str, value, above: float, most: float) -> None:
    """Raise UserError unless ``value`` is a finite number in ``(above, most]``."""
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value) or not above < value <= most):
        raise UserError(f"{task}: option {name} must be a number in ({above:g}, {most:g}], got {value!r}")


def parse_task_options(pairs) -> dict:
    """``--task-option KEY=VALUE`` strings as ``{key: int or float}`` (every task option is a number;
    which keys a task takes is checked when it loads)."""
    options: dict = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UserError(f"--task-option {pair!r}: expected KEY=VALUE, e.g. n_steps=250")
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise UserError(f"--task-option {pair!r}: {text!r} is not a number") from None
        if key in options:
            raise UserError(f"--task-option {key} given twice")
        options[key] = value
    return options
