"""The task registry: one entry per task name, and ``load_task`` that checks names and options."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from .dataset import TaskData
from .digits import PSDIGITS_DESCRIPTION, SDIGITS_DESCRIPTION, load_psdigits, load_sdigits
from .listops import LISTOPS_SUMMARY, load_listops
from .mnist import MNIST_FILE_NAMES, PSMNIST_DESCRIPTION, SMNIST_DESCRIPTION, load_psmnist, load_smnist
from .spikes import SDIGITS_SPIKES_DESCRIPTION, SHD_DESCRIPTION, SHD_FILE_NAMES, load_sdigits_spikes, load_shd
from .ssc import SSC_DESCRIPTION, SSC_FILE_NAMES, load_ssc


@dataclass(frozen=True)
class _Task:
    description: str
    load: Callable[..., TaskData]
    data_files: tuple[str, ...] = ()
    """Files the task reads from ``data_dir`` (each may be gzipped); empty for embedded tasks."""

    @property
    def options(self) -> list[str]:
        """The keyword-only parameters of ``load``: the options the task takes."""
        parameters = inspect.signature(self.load).parameters.values()
        return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


_REGISTRY: dict[str, _Task] = {
    "sdigits": _Task(SDIGITS_DESCRIPTION, load_sdigits),
    "psdigits": _Task(PSDIGITS_DESCRIPTION, load_psdigits),
    "listops": _Task(LISTOPS_SUMMARY, load_listops),
    "smnist": _Task(SMNIST_DESCRIPTION, load_smnist, MNIST_FILE_NAMES),
    "psmnist": _Task(PSMNIST_DESCRIPTION, load_psmnist, MNIST_FILE_NAMES),
    "sdigits-spikes": _Task(SDIGITS_SPIKES_DESCRIPTION, load_sdigits_spikes),
    "shd": _Task(SHD_DESCRIPTION, load_shd, SHD_FILE_NAMES),
    "ssc": _Task(SSC_DESCRIPTION, load_ssc, SSC_FILE_NAMES[:2]),  # ssc_valid.h5 only with eval_on_valid=1
}

TASKS: dict[str, str] = {name: task.description for name, task in _REGISTRY.items()}


def load_task(name: str, data_dir: str | None = None, **options) -> TaskData:
    """Load task ``name``; ``data_dir`` is the local folder of a real dataset (ignored by embedded tasks).

    ``options`` are the task's own keyword options (e.g. ``n_train``, ``seed`` for listops;
    ``limit_train`` for smnist); an option set to None counts as not given.
    """
    task = _REGISTRY.get(name)
    if task is None:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    options = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(options) - set(task.options))
    if unknown:
        raise UserError(
            f"task {name!r} has no option {', '.join(unknown)}; its options: {', '.join(task.options) or 'none'}"
        )
    if not task.data_files:
        return task.load(**options)
    if data_dir is None:
        raise UserError(
            f"task {name!r} needs data_dir (--data-dir), a folder with {', '.join(task.data_files)} "
            "(each may be gzipped, .gz)"
        )
    return task.load(data_dir, **options)


def load_recorded_task(name: str, task_options: dict | None, data_dir: str | None = None) -> TaskData:
    """Task ``name`` as a checkpoint recorded it: its options (``task_options["options"]``, e.g. SHD's
    binning) and, unless ``data_dir`` is given, the folder it was trained from."""
    recorded = task_options or {}
    options = recorded.get("options", {})
    if not isinstance(options, dict):
        raise UserError(f"recorded task options must be a mapping, got {type(options).__name__}")
    return load_task(name, data_dir=data_dir or recorded.get("data_dir"), **options)
