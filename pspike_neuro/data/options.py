"""Checks on task options, which come from the user (command line or config) and so raise UserError."""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def require_int(task: str, name: str, value, least: int) -> None:
    """Raise UserError unless ``value`` is an integer >= ``least``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise UserError(f"{task}: option {name} must be an integer >= {least}, got {value!r}")
