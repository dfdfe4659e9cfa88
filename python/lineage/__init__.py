"""Lineage from Python: run generational neural-network experiments and read
their records as pandas DataFrames.

Rust does the work (the same crates as the ``lineage`` command); this package
normalises arguments and reads what a run wrote.

>>> import lineage
>>> run = lineage.run("scenarios/learning-rate.toml", out="runs/lr")  # doctest: +SKIP
>>> run.generations[["generation", "heldout_loss_best"]].tail(3)       # doctest: +SKIP
>>> lineage.open("runs/lr").organisms.lr.describe()                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from . import _lineage
from ._lineage import (
    DataError,
    InternalError,
    LineageError,
    PluginError,
    RunError,
    ScenarioError,
)
from .plugin import IGNORE, Batch, Curve, HostError, Probe, Task, environment, fitness, suite
from .records import Experiment, Islands, Run, open

__version__ = _lineage.__version__

# Plugins written in Python run in a worker started with this interpreter
# (which has this package), unless the environment names another.
os.environ.setdefault("LINEAGE_PLUGIN_PYTHON", sys.executable)

__all__ = [
    "Batch",
    "Curve",
    "DataError",
    "Experiment",
    "HostError",
    "IGNORE",
    "InternalError",
    "Islands",
    "LineageError",
    "PluginError",
    "Probe",
    "Run",
    "RunError",
    "ScenarioError",
    "Task",
    "environment",
    "fitness",
    "open",
    "resume",
    "run",
    "suite",
    "validate",
]

Scenario = Union[str, "os.PathLike[str]", Mapping[str, Any]]
Progress = Union[bool, Callable[[int, int, float], Any]]

_OVERRIDES = ("seed", "generations", "device", "memory_limit")


def _scenario(scenario: Scenario) -> dict:
    """The native calls' view of a scenario: a file, or TOML text with a
    name and the folder its relative paths resolve against."""
    here = str(Path.cwd())
    if isinstance(scenario, Mapping):
        text = _lineage.json_to_toml(json.dumps(scenario))
        return dict(path=None, text=text, name="<dict>", dir=here)
    if isinstance(scenario, os.PathLike):
        return dict(path=os.fspath(scenario), text=None, name="", dir=here)
    if isinstance(scenario, str):
        if "\n" in scenario or ("=" in scenario and not Path(scenario).exists()):
            return dict(path=None, text=scenario, name="<string>", dir=here)
        return dict(path=scenario, text=None, name="", dir=here)
    raise TypeError(
        f"a scenario is a path, TOML text or a dict, not {type(scenario).__name__}"
    )


def _overrides(overrides: Optional[Mapping[str, Any]]) -> dict:
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise TypeError(
            f"unknown override {', '.join(unknown)} (expected: {', '.join(_OVERRIDES)})"
        )
    return overrides


def validate(scenario: Scenario, **overrides: Any) -> dict:
    """Checks a scenario (and loads its plugins) as ``lineage validate``
    does; returns the resolved scenario as a dict.

    Raises :class:`ScenarioError` (with ``file``, ``line``, ``column``,
    ``field`` and ``message``) when it is invalid.

    >>> lineage.validate({"name": "x"})  # doctest: +SKIP
    Traceback (most recent call last):
    lineage.ScenarioError: ...
    """
    resolved = _lineage.validate(**_scenario(scenario), **_overrides(overrides))
    return json.loads(resolved)


class _Bar:
    """A progress bar for terminals and notebooks: tqdm's when it is
    installed, else nothing."""

    def __init__(self, enabled: bool) -> None:
        self._bar = None
        self._enabled = enabled

    def __call__(self, done: int, total: int, best: float) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._enabled = False
                return
            self._bar = tqdm(total=total, unit="gen", file=sys.stderr)
        self._bar.total = total
        self._bar.n = done
        if best == best:  # not NaN
            self._bar.set_postfix(best=f"{best:.4g}", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _with_progress(call: Callable[..., str], progress: Progress, **kwargs: Any) -> str:
    """``call(..., progress=callback)`` with a callback for ``progress``:
    the user's, or a bar closed however the call ends."""
    if callable(progress):
        return call(progress=progress, **kwargs)
    bar = _Bar(bool(progress))
    try:
        return call(progress=bar, **kwargs)
    finally:
        bar.close()


def run(
    scenario: Scenario,
    out: Optional[Union[str, "os.PathLike[str]"]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    threads: Optional[int] = None,
    progress: Progress = True,
) -> Union[Run, Experiment, Islands]:
    """Runs a scenario (a path, TOML text or a dict) into ``out`` (default
    ``runs/<name>-<UTC time>``) and opens what it wrote.

    ``overrides`` may set ``seed``, ``generations``, ``device`` and
    ``memory_limit`` (bytes), as the command line's flags do. The engine
    runs with the GIL released. ``progress`` is ``True`` (a tqdm bar, when
    tqdm is installed), ``False``, or a callable ``(done, total, best)``
    called after every generation (every finished run for an experiment
    with conditions). Ctrl-C stops a run (every run under way, for an
    experiment) at the end of the generation in progress, after writing a
    checkpoint: :func:`resume` then continues exactly as if nothing had
    happened.

    >>> run = lineage.run("scenarios/onemax.toml", overrides={"generations": 5})  # doctest: +SKIP
    """
    dir = _with_progress(
        _lineage.run,
        progress,
        **_scenario(scenario),
        out=None if out is None else os.fspath(out),
        threads=threads or 0,
        **_overrides(overrides),
    )
    return open(dir)


def resume(
    path: Union[str, "os.PathLike[str]"],
    generations: Optional[int] = None,
    threads: Optional[int] = None,
    progress: Progress = True,
) -> Union[Run, Experiment, Islands]:
    """Continues a run from its latest checkpoint until ``generations`` in
    all (default: the scenario's), with records byte for byte those of an
    uninterrupted run, and opens it."""
    dir = _with_progress(
        _lineage.resume,
        progress,
        run_dir=os.fspath(path),
        generations=generations,
        threads=threads or 0,
    )
    return open(dir)
