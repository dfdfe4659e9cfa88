"""Environments written in Python, and Python plugins asking the host for
weights, curves, held-out data, probes and model runs: the shipped
scenarios/python-parity.toml, and the numbers each service hands over
checked against the run's own records."""

import os
import textwrap

import numpy as np
import pytest

import lineage
from conftest import ROOT, cli

PARITY = ROOT / "scenarios" / "python-parity.toml"


def test_the_shipped_python_scenario_evolves_and_the_cli_writes_the_same(tmp_path, lineage_bin):
    run = lineage.run(PARITY, out=tmp_path / "py", progress=False)
    gens = run.generations
    # Selection on the Python fitness works: the median organism of the last
    # generation beats the median of the first (a random lr and gain).
    assert gens["frugal_median"].iloc[-1] > gens["frugal_median"].iloc[0] + 0.05
    metrics = run.metrics.groupby(["generation", "metric"]).value.median().unstack()
    assert metrics["accuracy"].iloc[-1] > metrics["accuracy"].iloc[0]
    probes = run.probes
    assert set(probes["probe"]) == {"clean"}
    assert probes[probes.step == 0]["value"][probes.metric == "accuracy"].between(0, 1).all()
    kinds = {p["alias"]: p["isolation"] for p in run.manifest["plugins"]}
    assert kinds == {"py": "python"}
    # The command line (its worker's interpreter named by LINEAGE_PLUGIN_PYTHON,
    # which importing lineage set) writes the same records byte for byte,
    # whatever the thread count.
    assert os.environ["LINEAGE_PLUGIN_PYTHON"]
    cli(lineage_bin, "run", PARITY, "--out", tmp_path / "cli", "--quiet", "--threads", "1")
    for table in ("generations.csv", "organisms.csv", "metrics.csv", "probes.csv"):
        assert (tmp_path / "py" / table).read_bytes() == (tmp_path / "cli" / table).read_bytes(), table


SERVICES = '''
import numpy as np
import lineage

@lineage.environment
class Blobs:
    """Two Gaussian blobs."""
    def __init__(self, config):
        self.shape = config.get("shape", "right")
        self.fail = config.get("fail", "")
        if self.fail == "create":
            raise ValueError("spread: expected a positive number")
    def describe(self):
        if self.fail == "describe":
            raise RuntimeError("cannot describe")
        return lineage.Task.classification(
            inputs=3, classes=2, heldout=64, probes=[lineage.Probe("far", 32)])
    def fill(self, part, seed, n):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 2, n)
        shift = 3.0 if part == "far" else 1.0
        x = rng.standard_normal((n, 3)) + shift * (2 * labels[:, None] - 1)
        if self.shape == "wrong" and part == "train":
            x = x[:, :2]
        return {"x": x, "labels": labels}

@lineage.suite(maximize=["w_sum", "final", "probe_last", "acc", "lr", "kernel_trace"], reads_weights=True)
def services(batch):
    rows = []
    lr = batch.gene("lr")
    for i in range(len(batch)):
        w = batch.weights(i, "layers.0.weight")
        curve = batch.curve(i)
        probe = batch.probes(i, "far", "accuracy")
        data = batch.heldout(i)
        out = batch.outputs(i, data["x"])
        hidden = batch.hidden(i, "hidden.0", data["x"][:4])
        grads = batch.gradients(i, "layers.0.weight", data["x"][:4])
        kernel = batch.kernel(i, "layers.0.weight", data["x"][:4])
        flat = grads.reshape(4, -1)
        assert out.shape == (64, 2) and hidden.shape[0] == 4, (out.shape, hidden.shape)
        assert grads.shape == (4,) + w.shape, grads.shape
        assert np.allclose(kernel, flat @ flat.T, rtol=1e-4, atol=1e-5)
        assert curve.life == "completed" and curve.step[-1] == 20
        rows.append([
            w.astype(np.float64).sum(),
            curve.heldout[-1],
            probe[-1, 1],
            (out.argmax(axis=1) == data["labels"]).mean(),
            lr[i, 0],
            np.trace(kernel),
        ])
    return rows

@lineage.fitness(maximize=["nothing"])
def undeclared(batch):
    return [batch.weights(i, "layers.0.weight").sum() for i in range(len(batch))]
'''


def blobs(tmp_path, suite="services", fitness="heldout_loss", **env):
    (tmp_path / "svc.py").write_text(SERVICES)
    return {
        "name": "services",
        "seed": 5,
        "generations": 2,
        "population": 6,
        "checkpoint_every": 1,
        "genome": {"genes": [{"name": "lr", "min": 1e-3, "max": 0.3, "log": True}]},
        "plugins": {"py": {"library": f"python:{tmp_path / 'svc.py'}"}},
        "fitness": {"function": fitness},
        "evaluate": {"suites": [f"py:{suite}"]} if suite else {},
        "selection": {"method": "tournament", "tournament_size": 2, "elitism": 1},
        "mutation": {"sigma": 0.1, "gene_rate": 1.0},
        "record": {"weights": "learned"},
        "lifetime": {
            "budget": 160,
            "steps": 20,
            "batch": 8,
            "eval_every": 10,
            "environment": {"plugin": "py:Blobs", "seed": 3, **env},
            "model": {"kind": "mlp", "hidden": [5], "activation": "tanh"},
            "optimizer": {"method": "sgd"},
        },
    }


def test_every_service_hands_over_what_the_run_records(tmp_path):
    run = lineage.run(blobs(tmp_path), out=tmp_path / "r", progress=False)
    m = run.metrics.pivot_table(index="id", columns="metric", values="value")
    organisms = run.organisms.set_index("id")
    genes = run.genes.set_index("id")
    probes = run.probes
    last = probes[(probes.metric == "accuracy") & (probes.step == 20)].set_index("id")["value"]
    for id in organisms.index:
        # Weights: the learned weights the run kept (safetensors), summed alike.
        w = run.weights(int(id))["layers.0.weight"]
        assert m.loc[id, "w_sum"] == pytest.approx(w.astype(np.float64).sum(), rel=1e-12)
        assert m.loc[id, "final"] == pytest.approx(organisms.loc[id, "final_heldout"], rel=1e-6)
        assert m.loc[id, "probe_last"] == pytest.approx(last.loc[id], rel=1e-6)
        assert m.loc[id, "lr"] == pytest.approx(genes.loc[id, "lr"], rel=1e-3)  # the CSV rounds
        assert 0.5 <= m.loc[id, "acc"] <= 1.0 and m.loc[id, "kernel_trace"] > 0


def test_reading_weights_without_declaring_it_is_refused_by_name(tmp_path):
    with pytest.raises(lineage.PluginError) as e:
        lineage.run(blobs(tmp_path, suite=None, fitness="py:undeclared"), out=tmp_path / "r", progress=False)
    message = str(e.value)
    assert "HostError" in message and "reads_weights=True" in message, message


@pytest.mark.parametrize(
    "fail, expected",
    [
        ({"fail": "create"}, "spread: expected a positive number"),
        ({"fail": "describe"}, "cannot describe"),
        ({"shape": "wrong"}, "fill('train') returned 'x' of shape (160, 2)"),
    ],
)
def test_an_environment_that_fails_is_named_with_its_message(tmp_path, fail, expected):
    scenario = blobs(tmp_path, **fail)
    with pytest.raises(lineage.LineageError) as e:
        lineage.run(scenario, out=tmp_path / "r", progress=False)
    message = str(e.value)
    assert "Blobs" in message and expected in message, message
