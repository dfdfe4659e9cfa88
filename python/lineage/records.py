"""What a run wrote, read back: :class:`Run` (one run directory),
:class:`Experiment` (a run with conditions, indexable by condition and seed)
and :class:`Islands` (an island model, indexable by island).

Records are read with pandas' C parser, once per object, and kept.
"""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

if TYPE_CHECKING:  # imported where used: a plugin's worker never loads pandas
    import pandas as pd

from . import _lineage
from ._lineage import RunError

PathLike = Union[str, "os.PathLike[str]"]

#: The record tables a run directory may hold, by attribute name.
TABLES = ("generations", "organisms", "curves", "probes", "metrics", "timings")


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        # The organisms' `genome` column is text; everything else numbers or
        # short labels, which the C parser types itself.
        return pd.read_csv(path, engine="c", low_memory=False)
    except pd.errors.EmptyDataError:
        raise RunError(f"{path}: empty (the run wrote no header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise RunError(f"{path}: damaged: {e}") from None
    except OSError as e:
        raise RunError(f"{path}: cannot read: {e}") from None


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        with builtins.open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: damaged: {e}") from None


class Run:
    """One run directory: its records as DataFrames (read on first use),
    its manifest and scenario as dicts.

    >>> run = lineage.open("runs/lr")   # doctest: +SKIP
    >>> run.generations.heldout_loss_best.iloc[-1]   # doctest: +SKIP
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not (self.path / "manifest.json").is_file():
            raise RunError(
                f"{self.path}: not a run directory (no manifest.json)"
            )
        self._tables: Dict[str, pd.DataFrame] = {}

    def __repr__(self) -> str:
        return f"lineage.Run({str(self.path)!r})"

    def _table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            path = self.path / f"{name}.csv"
            if not path.is_file():
                raise RunError(
                    f"{path}: this run has no {name} record"
                    + (
                        " (the scenario's [lifetime] or [record] did not ask for it)"
                        if name in ("curves", "probes", "metrics")
                        else ""
                    )
                )
            self._tables[name] = _read_csv(path)
        return self._tables[name]

    @property
    def generations(self) -> pd.DataFrame:
        """``generations.csv``: one row per generation."""
        return self._table("generations")

    @property
    def organisms(self) -> pd.DataFrame:
        """``organisms.csv``: one row per organism evaluated."""
        return self._table("organisms")

    @property
    def curves(self) -> pd.DataFrame:
        """``curves.csv``: learning curves, one row per organism and point."""
        return self._table("curves")

    @property
    def probes(self) -> pd.DataFrame:
        """``probes.csv``: probe-set measurements along every lifetime."""
        return self._table("probes")

    @property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``: evaluation suites' metrics per organism."""
        return self._table("metrics")

    @property
    def timings(self) -> pd.DataFrame:
        """``timings.csv``: milliseconds per stage of every generation."""
        return self._table("timings")

    @property
    def genes(self) -> pd.DataFrame:
        """Every organism's real genes, one column each (named as in the
        manifest), parsed from ``organisms.csv``'s ``genome`` summary: the
        first 8 genes, to 6 decimals, with ``id`` and ``generation``."""
        organisms = self.organisms
        values = (
            organisms["genome"]
            .astype(str)
            .str.extract(r"x=(\S*)", expand=False)
            .str.split(";", expand=True)
        )
        if values.shape[1] == 0 or values.isna().all().all():
            raise RunError(f"{self.path}: the genomes hold no real genes")
        values = values.astype(float)
        names = self.manifest.get("genes") or []
        if len(names) != values.shape[1]:
            names = [f"x{i}" for i in range(values.shape[1])]
        values.columns = names
        import pandas as pd

        return pd.concat([organisms[["id", "generation"]], values], axis=1)

    @property
    def manifest(self) -> Dict[str, Any]:
        """``manifest.json``: versions, seed, plugins, data files, sessions."""
        return _read_json(self.path / "manifest.json")

    @property
    def scenario(self) -> Dict[str, Any]:
        """The run's resolved ``scenario.toml`` as a dict."""
        path = self.path / "scenario.toml"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise RunError(f"{path}: cannot read: {e}") from None
        return json.loads(_lineage.toml_to_json(text))

    def weights(self, id: int, which: str = "learned") -> Dict[str, np.ndarray]:
        """Organism ``id``'s weights, ``"learned"`` (the end of its lifetime)
        or ``"birth"``, one float32 array per parameter under the names
        ``lineage export`` uses (``layers.0.weight`` is ``[out, in]``), and
        each masked parameter's mask as a boolean array under
        ``"NAME.mask"``. Read from the latest checkpoint that holds the
        organism (its lifetime is lived again when the run did not keep its
        weights, exactly as the run lived it)."""
        arrays, masks = _lineage.weights(str(self.path), int(id), which)
        out: Dict[str, np.ndarray] = {
            name: np.frombuffer(data, dtype="<f4").reshape(shape).copy()
            for name, shape, data in arrays
        }
        for name, shape, data in masks:
            out[f"{name}.mask"] = np.frombuffer(data, dtype="<f4").reshape(shape) != 0
        return out

    def genomes(self, generation: int) -> Dict[str, np.ndarray]:
        """The genomes alive at the start of ``generation`` (its checkpoint):
        ``id`` (uint64), ``bits`` (bool ``[n, bits]``) and ``genes``
        (float64 ``[n, genes]``, in the scenario's gene order)."""
        arrays, _, _ = _lineage.genomes(str(self.path), int(generation))
        dtypes = {"id": "<u8", "bits": "u1", "genes": "<f8"}
        out = {
            name: np.frombuffer(data, dtype=dtypes[name]).reshape(shape).copy()
            for name, shape, data in arrays
        }
        out["bits"] = out["bits"].astype(bool)
        return out

    def summary(self) -> str:
        """The run's summary, as ``lineage inspect`` prints it."""
        return _lineage.summary(str(self.path))

    def plot_curves(self, ax: Any = None, generation: Optional[int] = None) -> Any:
        """Held-out loss along the lifetime for one generation (default:
        the last): every organism's curve, thin, and the median over them,
        thick, so the spread shows. Returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        curves = self.curves
        if generation is None:
            generation = int(curves["generation"].max())
        mine = curves[curves["generation"] == generation]
        if ax is None:
            _, ax = plt.subplots()
        for _, one in mine.groupby("id"):
            ax.plot(one["step"], one["heldout_loss"], color="0.7", linewidth=0.6)
        median = mine.groupby("step")["heldout_loss"].median()
        ax.plot(median.index, median.values, color="C0", linewidth=2, label="median")
        ax.set_xlabel("step")
        ax.set_ylabel("held-out loss")
        ax.set_title(f"generation {generation}")
        ax.legend()
        return ax


class Experiment:
    """A run with conditions: ``experiment["condition", seed]`` is a
    :class:`Run`; tables concatenate every run's with ``condition`` and
    ``seed`` columns in front.

    >>> exp = lineage.open("runs/richlazy-rank")    # doctest: +SKIP
    >>> exp.report()                                # doctest: +SKIP
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        index = _read_json(self.path / "conditions.json")
        try:
            self.conditions: List[str] = [c["name"] for c in index["conditions"]]
            self._runs: Dict[Tuple[str, int], str] = {
                (c["name"], int(seed)): run
                for c in index["conditions"]
                for seed, run in zip(c["seeds"], c["runs"])
            }
        except (KeyError, TypeError) as e:
            raise RunError(f"{self.path / 'conditions.json'}: damaged: {e}") from None

    def __repr__(self) -> str:
        return f"lineage.Experiment({str(self.path)!r}, conditions={self.conditions})"

    def seeds(self, condition: str) -> List[int]:
        """The seeds of ``condition``."""
        return [s for (c, s) in self._runs if c == condition]

    def __getitem__(self, key: Tuple[str, int]) -> Run:
        if key not in self._runs:
            raise KeyError(
                f"no run {key!r}; the experiment has {sorted(self._runs)}"
            )
        return Run(self.path / self._runs[key])

    def __iter__(self) -> Iterator[Tuple[str, int, Run]]:
        for (condition, seed), run in self._runs.items():
            yield condition, seed, Run(self.path / run)

    def _concat(self, name: str) -> pd.DataFrame:
        frames = []
        for condition, seed, run in self:
            table = getattr(run, name)
            frames.append(table.assign(condition=condition, seed=seed))
        import pandas as pd

        table = pd.concat(frames, ignore_index=True)
        return table[["condition", "seed"] + [c for c in table.columns if c not in ("condition", "seed")]]

    @property
    def generations(self) -> pd.DataFrame:
        """Every run's ``generations.csv``, with ``condition`` and ``seed``."""
        return self._concat("generations")

    @property
    def organisms(self) -> pd.DataFrame:
        """Every run's ``organisms.csv``, with ``condition`` and ``seed``."""
        return self._concat("organisms")

    @property
    def curves(self) -> pd.DataFrame:
        """Every run's ``curves.csv``, with ``condition`` and ``seed``."""
        return self._concat("curves")

    @property
    def metrics(self) -> pd.DataFrame:
        """Every run's ``metrics.csv``, with ``condition`` and ``seed``."""
        return self._concat("metrics")

    @property
    def probes(self) -> pd.DataFrame:
        """Every run's ``probes.csv``, with ``condition`` and ``seed``."""
        return self._concat("probes")

    def report(self, baseline: Optional[str] = None, learned: Optional[str] = None) -> pd.DataFrame:
        """The table ``lineage report`` prints (each condition's mean,
        standard error, median, and the effect against ``baseline``, unpaired
        and paired by seed), as a DataFrame; writes ``report.json``,
        ``report.csv`` and the plots as it does. ``learned``
        (``"METRIC>=VALUE"`` or ``<=``) counts only the runs that meet it,
        as ``--learned`` does; ``report.json`` lists the others."""
        written = _lineage.write_report(str(self.path), baseline, learned)
        csv = next((p for p in written if p.endswith(".csv")), None)
        if csv is None:
            raise RunError(f"{self.path}: the report wrote no table")
        return _read_csv(Path(csv))

    def plot(self, metric: str, ax: Any = None) -> Any:
        """``metric`` of ``generations.csv`` over generations, one line per
        run (thin) and each condition's median over seeds (thick), so the
        spread over seeds shows. Returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        table = self.generations
        if metric not in table.columns:
            raise KeyError(
                f"no metric {metric!r} in generations.csv; it has {list(table.columns)}"
            )
        if ax is None:
            _, ax = plt.subplots()
        for i, condition in enumerate(self.conditions):
            mine = table[table["condition"] == condition]
            color = f"C{i % 10}"
            for _, one in mine.groupby("seed"):
                ax.plot(one["generation"], one[metric], color=color, alpha=0.3, linewidth=0.8)
            median = mine.groupby("generation")[metric].median()
            ax.plot(median.index, median.values, color=color, linewidth=2, label=condition)
        ax.set_xlabel("generation")
        ax.set_ylabel(metric)
        ax.legend()
        return ax


class Islands:
    """An island model's run: ``islands[k]`` is island ``k``'s
    :class:`Run`; ``migrations`` the run-wide table of migrants."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        root = self.path / "islands"
        self.count = builtins.sum(1 for p in root.iterdir() if p.name.startswith("island-"))

    def __repr__(self) -> str:
        return f"lineage.Islands({str(self.path)!r}, count={self.count})"

    def __getitem__(self, island: int) -> Run:
        if not 0 <= island < self.count:
            raise IndexError(f"no island {island}; the run has {self.count}")
        return Run(self.path / "islands" / f"island-{island}")

    def __len__(self) -> int:
        return self.count

    @property
    def migrations(self) -> pd.DataFrame:
        """``migrations.csv``: every migrant, from where to where, when."""
        path = self.path / "migrations.csv"
        if not path.is_file():
            raise RunError(f"{path}: missing")
        return _read_csv(path)


def open(path: PathLike) -> Union[Run, Experiment, Islands]:
    """The run at ``path``: a :class:`Run`, an :class:`Experiment` (a run
    with conditions) or :class:`Islands` (an island model).

    Raises :class:`RunError` for a folder that is not a run, or whose
    records are damaged."""
    p = Path(path)
    if not p.is_dir():
        raise RunError(f"{p}: no such run directory")
    if (p / "conditions.json").is_file():
        return Experiment(p)
    if (p / "islands").is_dir():
        return Islands(p)
    return Run(p)
