"""Fitness functions, evaluation suites and environments written in Python.

A plugin file defines decorated functions and classes; a scenario loads the
file with ``[plugins.NAME] library = "python:FILE.py"`` and names an offering
as ``NAME:OFFERING`` (``fitness.function``, ``evaluate.suites``,
``lifetime.environment = { plugin = ... }``). The file runs in a worker
process (``python -m lineage._worker``) that speaks the protocol of
``isolation = "process"``: an exception or a crash in it is a named error,
and the engine never waits on the GIL.

>>> import numpy as np
>>> import lineage
>>> @lineage.fitness(maximize=["total"])
... def total(batch):
...     return batch.genes.sum(axis=1)

Each call gets the whole generation's batch: compute with NumPy on
``batch.genes`` (``[n, genes]``, float64) or ``batch.bits`` (``[n, bits]``,
bool), ask the host for weights, learning curves, held-out data, probe
records and model runs (``batch.weights(i, "layers.0.weight")``,
``batch.outputs(i, x)``, ...), and return one value per organism (``[n]``)
or one per organism and metric (``[n, metrics]``). Draw randomness, if any,
from nothing but what the host hands over: runs must be the same whatever
runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

#: Offerings a plugin file registers as it is executed, by name.
REGISTRY: Dict[str, "Offering"] = {}

#: A label that no loss counts (sequence steps without a target).
IGNORE = 2**32 - 1

FITNESS, SUITE, ENVIRONMENT = 1, 2, 3
_STAGES = {"birth": 1, "learned": 2}
_LIVES = {0: "none", 1: "completed", 2: "diverged"}


class HostError(RuntimeError):
    """The host could not answer a service request (an unknown weight, a
    run without a lifetime, an organism index out of range): its message
    says why."""


@dataclass
class Offering:
    """A registered offering: its kind (1 fitness, 2 suite, 3 environment),
    metrics with their directions (1 maximise, 2 minimise), the function
    (or, for an environment, the class) and whether it reads weights."""

    name: str
    kind: int
    metrics: List[tuple]
    function: Callable[..., Any]
    description: str = ""
    reads_weights: bool = False


@dataclass
class Curve:
    """An organism's learning curve: ``step``, ``train`` and ``heldout``
    losses (arrays, one entry per point), how the lifetime ended
    (``"none"``, ``"completed"`` or ``"diverged"``) and where it diverged."""

    step: np.ndarray
    train: np.ndarray
    heldout: np.ndarray
    life: str
    diverged_at: int


@dataclass
class Batch:
    """One generation's organisms to score: ``ids`` (uint64 ``[n]``),
    ``genes`` (float64 ``[n, genes]``), ``bits`` (bool ``[n, bits]``), the
    ``generation`` and the plugin's ``config`` (its ``[plugins.NAME.config]``
    table as a dict).

    The methods ask the host about organism ``i`` of the batch (``0 <= i <
    len(batch)``); ``stage`` is ``"learned"`` (after the lifetime) or
    ``"birth"``. Weights and model runs need the offering to declare
    ``reads_weights=True``. A refused request raises :class:`HostError`."""

    generation: int
    ids: np.ndarray
    genes: np.ndarray
    bits: np.ndarray
    config: Dict[str, Any] = field(default_factory=dict)
    _ask: Optional[Callable[[Any], Any]] = field(default=None, repr=False)
    _heldout: Dict[int, Dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def _request(self, tag: int, fill: Callable[[Any], Any]):
        if self._ask is None:
            raise HostError("this batch is not connected to a host")
        return self._ask(tag, fill)

    def gene(self, name: str) -> np.ndarray:
        """The real genes named ``name``: ``[n, count]`` columns of ``genes``."""
        r = self._request(31, lambda w: w.str(name))
        offset, count = r.u64(), r.u64()
        return self.genes[:, offset : offset + count]

    def weights(self, i: int, name: str, stage: str = "learned") -> np.ndarray:
        """Organism ``i``'s parameter ``name`` (as the model names it, e.g.
        ``layers.0.weight``), float32 in its shape."""
        s = _stage(stage)
        return _tensor(self._request(32, lambda w: w.u64(i).str(name).u32(s)))

    def curve(self, i: int) -> Curve:
        """Organism ``i``'s learning curve."""
        r = self._request(33, lambda w: w.u64(i))
        n = r.u64()
        points = np.frombuffer(
            r.take(12 * n), dtype=[("step", "<u4"), ("train", "<f4"), ("heldout", "<f4")]
        )
        life, diverged_at = r.u32(), r.u32()
        return Curve(
            step=points["step"].copy(),
            train=points["train"].copy(),
            heldout=points["heldout"].copy(),
            life=_LIVES.get(life, "none"),
            diverged_at=diverged_at,
        )

    def heldout(self, i: int) -> Dict[str, np.ndarray]:
        """The held-out data organism ``i``'s lifetime was scored on, as an
        environment's ``fill`` returns it: ``x`` and ``y``, ``x`` and
        ``labels``, or ``tokens``."""
        if i not in self._heldout:
            self._heldout[i] = _data(self._request(34, lambda w: w.u64(i)))
        return self._heldout[i]

    def probes(self, i: int, set: str, metric: str = "accuracy") -> np.ndarray:
        """Organism ``i``'s record of probe set ``set`` measured by ``metric``
        (``loss``, ``accuracy`` or ``accuracy_all``): ``[points, 2]`` rows of
        (step, value)."""
        return _tensor(self._request(36, lambda w: w.u64(i).str(set).str(metric)))

    def outputs(self, i: int, x: Any, stage: str = "learned") -> np.ndarray:
        """Runs organism ``i``'s model on ``x`` (real ``[n, ...]``, or
        integer tokens ``[n, len]``): its outputs."""
        return self._run(i, stage, 0, "", x, None)

    def hidden(self, i: int, layer: str, x: Any, stage: str = "learned") -> np.ndarray:
        """The activations of ``layer`` (``hidden.0``, ``hidden``,
        ``blocks.1``, ...) as organism ``i``'s model reads ``x``."""
        return self._run(i, stage, 1, layer, x, None)

    def gradients(
        self, i: int, weight: str, x: Any, cotangent: Any = None, stage: str = "learned"
    ) -> np.ndarray:
        """Per-example gradients of ``sum_k c[j, k] out[j, k]`` with respect to
        ``weight``: ``[n, *weight.shape]``; ``cotangent`` (``c``, the
        outputs' shape) defaults to ones."""
        return self._run(i, stage, 2, weight, x, cotangent)

    def kernel(
        self, i: int, weight: str, x: Any, cotangent: Any = None, stage: str = "learned"
    ) -> np.ndarray:
        """The empirical tangent kernel ``[n, n]`` of those gradients, with
        respect to ``weight`` or, for ``"*"``, every parameter together."""
        return self._run(i, stage, 3, weight, x, cotangent)

    def _run(self, i: int, stage: str, what: int, name: str, x: Any, cotangent: Any):
        s = _stage(stage)
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"the input needs a first axis of examples, found shape {x.shape}")
        n = x.shape[0]
        tokens = np.issubdtype(x.dtype, np.integer)
        if tokens and (x < 0).any():
            raise ValueError("token ids must not be negative")

        def fill(w):
            w.u64(i).u32(s).u8(what).str(name).u64(n).u64(x.size // n)
            if tokens:
                w.u8(1).u32s(x)
            else:
                w.u8(0).f32s(x)
            if cotangent is None:
                w.u8(0)
            else:
                w.u8(1).f32s(np.asarray(cotangent))

        return _tensor(self._request(35, fill))


def _stage(stage: str) -> int:
    try:
        return _STAGES[stage]
    except KeyError:
        raise ValueError(f'stage is "learned" or "birth", found {stage!r}') from None


def _tensor(r) -> np.ndarray:
    shape = tuple(int(d) for d in r.array("<u8", 8))
    data = r.array("<f4", 4)
    return data.reshape(shape) if shape else data.copy()


def _data(r) -> Dict[str, np.ndarray]:
    kind = r.u8()
    n = r.u64()
    if kind == 1:
        x, y = r.array("<f4", 4), r.array("<f4", 4)
        return {"x": x.reshape(n, -1), "y": y.reshape(n, -1)}
    if kind == 2:
        x, labels = r.array("<f4", 4), r.array("<u4", 4)
        return {"x": x.reshape(n, -1), "labels": labels}
    if kind == 3:
        steps = r.u64()
        x, labels = r.array("<f4", 4), r.array("<u4", 4)
        return {"x": x.reshape(n, steps, -1), "labels": labels.reshape(n, steps)}
    if kind == 4:
        length = r.u64()
        return {"tokens": r.array("<u4", 4).reshape(n, length)}
    raise HostError(f"the host sent data of unknown kind {kind}")


@dataclass
class Probe:
    """A probe set: ``examples`` every lifetime is also scored on at each
    point of its learning curve, recorded as ``name``; ``choices`` (class
    ids), when given, restricts ``accuracy`` to an argmax over them
    (``accuracy_all`` is over every class)."""

    name: str
    examples: int
    choices: Optional[Sequence[int]] = None


_KINDS = {"regression": 1, "classification": 2, "sequences": 3, "tokens": 4}


@dataclass
class Task:
    """What an environment's lifetimes learn, as ``describe`` declares it.

    ``kind`` is ``"regression"`` (``inputs`` features to ``outputs``
    targets), ``"classification"`` (``inputs`` features, ``outputs``
    classes), ``"sequences"`` (``steps`` steps of ``inputs`` features, a
    label per step among ``outputs`` classes) or ``"tokens"`` (next-token
    prediction over a vocabulary of ``outputs``, reading ``steps`` tokens of
    context). ``heldout`` examples are drawn once per run and score every
    lifetime; ``probes`` (classification and sequences) are scored along the
    curve; ``direction`` (``inputs`` reals) is the task's direction, for
    alignment measures. Build one with the class methods."""

    kind: str
    inputs: int = 0
    outputs: int = 0
    steps: int = 0
    heldout: int = 0
    probes: Sequence[Probe] = ()
    direction: Optional[Sequence[float]] = None

    @classmethod
    def regression(cls, inputs: int, outputs: int, heldout: int, **kw: Any) -> "Task":
        return cls("regression", inputs=inputs, outputs=outputs, heldout=heldout, **kw)

    @classmethod
    def classification(cls, inputs: int, classes: int, heldout: int, **kw: Any) -> "Task":
        return cls("classification", inputs=inputs, outputs=classes, heldout=heldout, **kw)

    @classmethod
    def sequences(
        cls, inputs: int, classes: int, steps: int, heldout: int, **kw: Any
    ) -> "Task":
        return cls(
            "sequences", inputs=inputs, outputs=classes, steps=steps, heldout=heldout, **kw
        )

    @classmethod
    def tokens(cls, vocabulary: int, context: int, heldout: int, **kw: Any) -> "Task":
        return cls("tokens", outputs=vocabulary, steps=context, heldout=heldout, **kw)

    def check(self) -> None:
        """Raises ``ValueError`` naming what does not fit together (the host
        then checks the numbers' ranges)."""
        if self.kind not in _KINDS:
            raise ValueError(f"a task's kind is one of {sorted(_KINDS)}, found {self.kind!r}")
        names = [p.name for p in self.probes]
        for p in self.probes:
            if p.name in ("train", "heldout"):
                raise ValueError(f"a probe set may not be named {p.name!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"probe sets must have distinct names, found {names}")


def _register(
    kind: int,
    maximize: Sequence[str],
    minimize: Sequence[str],
    name: Optional[str],
    reads_weights: bool,
):
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
            description=_summary(function),
            reads_weights=reads_weights,
        )
        return function

    return decorate


def _summary(thing: Any) -> str:
    doc = (thing.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def fitness(
    maximize: Sequence[str] = (),
    minimize: Sequence[str] = (),
    name: Optional[str] = None,
    reads_weights: bool = False,
):
    """Registers a fitness function: its metrics, in order, to maximise or
    minimise (maximised ones first). Named as the function unless ``name``.
    ``reads_weights=True`` lets it ask for weights and model runs (the
    engine then keeps every organism's learned weights until it is called)."""
    return _register(FITNESS, maximize, minimize, name, reads_weights)


def suite(
    maximize: Sequence[str] = (),
    minimize: Sequence[str] = (),
    name: Optional[str] = None,
    reads_weights: bool = False,
):
    """Registers an evaluation suite: metrics recorded per organism
    (``metrics.csv``), used for selection only when the scenario says so."""
    return _register(SUITE, maximize, minimize, name, reads_weights)


def environment(cls: Optional[type] = None, *, name: Optional[str] = None):
    """Registers an environment, a class that lifetimes learn in::

        @lineage.environment
        class Parity:
            '''Two-bit parity.'''
            def __init__(self, config):      # [lifetime.environment] keys
                self.noise = config.get("noise", 0.0)
            def describe(self):
                return lineage.Task.classification(inputs=2, classes=2, heldout=256)
            def fill(self, part, seed, n):   # part: "train", "heldout" or a probe set's name
                rng = np.random.default_rng(seed)
                x = rng.integers(0, 2, (n, 2))
                return {"x": x + self.noise * rng.standard_normal((n, 2)),
                        "labels": x[:, 0] ^ x[:, 1]}

    ``fill`` returns ``n`` examples drawn from ``seed`` alone (so that a run
    is the same whoever runs it): ``x`` and ``y`` for regression, ``x``
    (``[n, inputs]``) and ``labels`` (``[n]``) for classification, ``x``
    (``[n, steps, inputs]``) and ``labels`` (``[n, steps]``, ``IGNORE``
    where no step counts) for sequences, ``tokens`` (``[n, context + 1]``)
    for next-token prediction. Named as the class unless ``name``."""

    def decorate(c: type) -> type:
        for method in ("describe", "fill"):
            if not callable(getattr(c, method, None)):
                raise TypeError(f"an environment class needs a `{method}` method; {c.__name__} has none")
        key = name or c.__name__
        REGISTRY[key] = Offering(
            name=key, kind=ENVIRONMENT, metrics=[], function=c, description=_summary(c)
        )
        return c

    return decorate(cls) if cls is not None else decorate
