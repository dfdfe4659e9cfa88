"""Fitness functions and evaluation suites written in Python.

A plugin file defines decorated functions; a scenario loads the file with
``[plugins.NAME] library = "python:FILE.py"`` and names a function as
``NAME:FUNCTION`` (``fitness.function``, ``evaluate.suites``). The file runs
in a worker process (``python -m lineage._worker``) that speaks the protocol
of ``isolation = "process"``: an exception or a crash in it is a named error
the run's ``on_error`` handles, and the engine never waits on the GIL.

>>> import numpy as np
>>> import lineage
>>> @lineage.fitness(maximize=["total"])
... def total(batch):
...     return batch.genes.sum(axis=1)

Each call gets the whole generation's batch: compute with NumPy on
``batch.genes`` (``[n, genes]``, float64) or ``batch.bits`` (``[n, bits]``,
bool), and return one value per organism (``[n]``) or one per organism and
metric (``[n, metrics]``). Draw randomness, if any, from nothing but what the
batch holds: runs must be the same whatever runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

#: Offerings a plugin file registers as it is executed, by name.
REGISTRY: Dict[str, "Offering"] = {}


@dataclass
class Offering:
    """A registered function: its kind (1 fitness, 2 suite), metrics with
    their directions (1 maximise, 2 minimise) and the function itself."""

    name: str
    kind: int
    metrics: List[tuple]
    function: Callable[["Batch"], Any]
    description: str = ""


@dataclass
class Batch:
    """One generation's organisms to score: ``ids`` (uint64 ``[n]``),
    ``genes`` (float64 ``[n, genes]``), ``bits`` (bool ``[n, bits]``), the
    ``generation`` and the plugin's ``config`` (its ``[plugins.NAME.config]``
    table as a dict)."""

    generation: int
    ids: np.ndarray
    genes: np.ndarray
    bits: np.ndarray
    config: Dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def _register(kind: int, maximize: Sequence[str], minimize: Sequence[str], name: Optional[str]):
    metrics = [(m, 1) for m in maximize] + [(m, 2) for m in minimize]
    if not metrics:
        raise ValueError("an offering needs at least one metric: maximize=[...] or minimize=[...]")

    def decorate(function: Callable[[Batch], Any]) -> Callable[[Batch], Any]:
        key = name or function.__name__
        REGISTRY[key] = Offering(
            name=key,
            kind=kind,
            metrics=metrics,
            function=function,
            description=(function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else "",
        )
        return function

    return decorate


def fitness(
    maximize: Sequence[str] = (), minimize: Sequence[str] = (), name: Optional[str] = None
):
    """Registers a fitness function: its metrics, in order, to maximise or
    minimise (maximised ones first). Named as the function unless ``name``."""
    return _register(1, maximize, minimize, name)


def suite(maximize: Sequence[str] = (), minimize: Sequence[str] = (), name: Optional[str] = None):
    """Registers an evaluation suite: metrics recorded per organism
    (``metrics.csv``), used for selection only when the scenario says so."""
    return _register(2, maximize, minimize, name)
