"""Shared fixtures: small scenarios as dicts, and the `lineage` binary the
records are compared with (built by `cargo test` before pytest runs; set
LINEAGE_BIN to use another)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def onemax(generations=6, population=40, **extra):
    """A small OneMax scenario, checkpointed every generation."""
    scenario = {
        "name": "py-onemax",
        "seed": 3,
        "generations": generations,
        "population": population,
        "checkpoint_every": 1,
        "genome": {"bits": 64},
        "fitness": {"function": "onemax"},
        "selection": {"method": "tournament", "tournament_size": 2, "elitism": 1},
        "mutation": {"bit_rate": 1 / 64},
    }
    scenario.update(extra)
    return scenario


def learning(generations=3, population=8):
    """A small learning scenario: an MLP learns Gaussian clusters, and
    evolution tunes its learning rate."""
    return {
        "name": "py-learning",
        "seed": 2,
        "generations": generations,
        "population": population,
        "checkpoint_every": 1,
        "genome": {"genes": [{"name": "lr", "min": 1e-3, "max": 0.5, "log": True}]},
        "fitness": {"function": "heldout_loss"},
        "selection": {"method": "tournament", "tournament_size": 2, "elitism": 1},
        "mutation": {"sigma": 0.1, "gene_rate": 1.0},
        "lifetime": {
            "budget": 64,
            "steps": 30,
            "batch": 16,
            "eval_every": 10,
            "environment": {
                "kind": "gaussian_clusters",
                "classes": 3,
                "dim": 6,
                "spread": 0.7,
                "heldout": 200,
                "seed": 7,
            },
            "model": {"kind": "mlp", "hidden": [16], "activation": "relu"},
            "optimizer": {"method": "sgd", "momentum": 0.9},
        },
    }


@pytest.fixture(scope="session")
def lineage_bin():
    path = Path(os.environ.get("LINEAGE_BIN", ROOT / "target" / "debug" / "lineage"))
    if not path.is_file():
        pytest.fail(
            f"the lineage binary is not at {path}: run `cargo build` (or the README's "
            "test command, which builds it), or set LINEAGE_BIN"
        )
    return path


@pytest.fixture(scope="session")
def accuracy_plugin():
    """The example plugin plugins/examples/heldout-accuracy, a native
    library (built here; `cargo test` has usually built it already)."""
    out = subprocess.run(
        ["cargo", "build", "--locked", "--quiet", "-p", "lineage-example-accuracy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, f"cargo cannot build the example plugin:\n{out.stderr}"
    return ROOT / "target" / "debug" / "liblineage_example_accuracy.so"


def cli(binary, *args):
    """Runs the `lineage` binary; fails the test with its stderr if it fails."""
    out = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out
