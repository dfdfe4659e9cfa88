"""Running, interrupting and resuming from Python, against the CLI."""

import json
import os
import signal

import pytest

import lineage
from conftest import cli, learning, onemax


def toml_of(scenario):
    return lineage._lineage.json_to_toml(json.dumps(scenario))


def test_a_run_from_a_dict_writes_the_records_the_cli_writes(tmp_path, lineage_bin):
    scenario = onemax()
    run = lineage.run(scenario, out=tmp_path / "py", progress=False)
    assert isinstance(run, lineage.Run)
    path = tmp_path / "s.toml"
    path.write_text(toml_of(scenario))
    cli(lineage_bin, "run", path, "--out", tmp_path / "cli", "--quiet")
    for table in ("generations.csv", "organisms.csv"):
        assert (tmp_path / "py" / table).read_bytes() == (tmp_path / "cli" / table).read_bytes()
    g = run.generations
    assert list(g["generation"]) == list(range(6))
    assert g["onemax_best"].is_monotonic_increasing
    assert len(run.organisms) >= 6 * 40 - 6
    assert run.manifest["seed"] == 3
    assert run.scenario["genome"]["bits"] == 64


def test_the_same_scenario_as_a_path_text_or_dict_and_overrides(tmp_path):
    scenario = onemax()
    path = tmp_path / "s.toml"
    path.write_text(toml_of(scenario))
    a = lineage.run(str(path), out=tmp_path / "a", progress=False, overrides={"generations": 3})
    b = lineage.run(toml_of(scenario), out=tmp_path / "b", progress=False, overrides={"generations": 3})
    assert len(a.generations) == len(b.generations) == 3
    assert (tmp_path / "a" / "organisms.csv").read_bytes() == (tmp_path / "b" / "organisms.csv").read_bytes()
    with pytest.raises(TypeError, match="unknown override"):
        lineage.run(scenario, out=tmp_path / "c", overrides={"generation": 3})


def test_progress_is_reported_after_every_generation(tmp_path):
    seen = []
    lineage.run(onemax(generations=4), out=tmp_path / "r", progress=lambda *a: seen.append(a))
    assert [(done, total) for done, total, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(best > 0 for _, _, best in seen)


@pytest.mark.parametrize("how", ["callback", "sigint"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_records(tmp_path, lineage_bin, how):
    scenario = learning(generations=4)
    path = tmp_path / "s.toml"
    path.write_text(toml_of(scenario))
    cli(lineage_bin, "run", path, "--out", tmp_path / "cli", "--quiet")

    def stop(done, total, best):
        if done == 2:
            if how == "sigint":
                # Ctrl-C: Python's handler notes it; the run stops at the end
                # of the generation in progress.
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lineage.run(scenario, out=tmp_path / "py", progress=stop)
    done = len(lineage.open(tmp_path / "py").generations)
    assert 2 <= done < 4
    run = lineage.resume(tmp_path / "py", progress=False)
    for table in ("generations.csv", "organisms.csv", "curves.csv"):
        assert (tmp_path / "py" / table).read_bytes() == (tmp_path / "cli" / table).read_bytes(), table
    assert len(run.curves) > 0


def test_a_finished_run_resumes_to_itself(tmp_path):
    lineage.run(onemax(generations=2), out=tmp_path / "r", progress=False)
    before = (tmp_path / "r" / "organisms.csv").read_bytes()
    lineage.resume(tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "organisms.csv").read_bytes() == before


def test_an_experiment_with_conditions_is_read_and_reported(tmp_path):
    scenario = onemax(generations=4)
    scenario["conditions"] = [
        {"name": "slow", "seeds": [1, 2], "set": {"mutation": {"bit_rate": 0.002}}},
        {"name": "fast", "seeds": [1, 2], "set": {"mutation": {"bit_rate": 0.03}}},
    ]
    exp = lineage.run(scenario, out=tmp_path / "exp", progress=False)
    assert isinstance(exp, lineage.Experiment)
    assert exp.conditions == ["slow", "fast"]
    assert exp.seeds("fast") == [1, 2]
    g = exp.generations
    assert set(g["condition"]) == {"slow", "fast"} and set(g["seed"]) == {1, 2}
    assert len(g) == 2 * 2 * 4
    assert len(exp["fast", 2].generations) == 4
    report = exp.report()
    assert len(report) >= 2
    assert (tmp_path / "exp" / "report.json").is_file()
    # Paired by seed: the conditions share seeds 1 and 2.
    fast = report[(report.condition == "fast") & (report.metric == "onemax")].iloc[0]
    assert fast.paired_n == 2 and 0 <= fast.paired_higher <= 2
    seeds = lineage.records._read_csv(tmp_path / "exp" / "report-seeds.csv")
    assert set(seeds.seed) == {1, 2} and seeds.counted.all()
    with pytest.raises(lineage.RunError, match="no metric `nope`"):
        exp.report(learned="nope>=1")
    with pytest.raises(ValueError, match="learned: expected METRIC>=VALUE"):
        exp.report(learned="onemax_best")
    import matplotlib

    matplotlib.use("Agg")
    ax = exp.plot("onemax_best")
    # One thin line per run and one median per condition.
    assert len(ax.lines) == 4 + 2
    with pytest.raises(KeyError, match="no run"):
        exp["fast", 9]


def test_learning_curves_are_read_and_plotted(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    run = lineage.run(learning(), out=tmp_path / "r", progress=False)
    curves = run.curves
    assert {"id", "generation", "step", "train_loss", "heldout_loss"} <= set(curves.columns)
    ax = run.plot_curves()
    assert len(ax.lines) == curves[curves["generation"] == 2]["id"].nunique() + 1
    assert "heldout_loss" in run.summary() or "generation" in run.summary()


def test_genes_are_read_by_name(tmp_path):
    run = lineage.run(learning(), out=tmp_path / "r", progress=False)
    genes = run.genes
    assert list(genes.columns) == ["id", "generation", "lr"]
    assert genes["lr"].between(1e-3, 0.5).all()
    assert len(genes) == len(run.organisms)


def test_an_island_model_runs_and_is_read_by_island(tmp_path, lineage_bin):
    scenario = onemax(generations=4)
    scenario["islands"] = {"count": 2, "migration_interval": 2, "migrants": 1}
    islands = lineage.run(scenario, out=tmp_path / "py", progress=False)
    assert isinstance(islands, lineage.Islands) and len(islands) == 2
    assert list(islands[1].generations["generation"]) == [0, 1, 2, 3]
    assert len(islands.migrations) > 0
    path = tmp_path / "s.toml"
    path.write_text(toml_of(scenario))
    cli(lineage_bin, "run", path, "--out", tmp_path / "cli", "--quiet")
    for k in range(2):
        table = f"islands/island-{k}/organisms.csv"
        assert (tmp_path / "py" / table).read_bytes() == (tmp_path / "cli" / table).read_bytes()
    with pytest.raises(IndexError):
        islands[2]


STOPPER = """
import os
import signal
import time

import lineage

@lineage.fitness(maximize=["total"])
def total(batch):
    # Ctrl-C from inside a run, only where the test asks for it; generations
    # long enough for it to land inside the run.
    if os.environ.get("LINEAGE_TEST_STOP_AT"):
        time.sleep(0.1)
    # (Condition c2 is the one whose genomes hold 5 genes.)
    if os.environ.get("LINEAGE_TEST_STOP_AT") == str(batch.generation) and batch.genes.shape[1] == 5:
        os.kill(os.getppid(), signal.SIGINT)
    return batch.genes.sum(axis=1)
"""


@pytest.mark.parametrize("how", ["callback", "sigint-mid-run"])
def test_an_interrupted_experiment_resumes_to_the_uninterrupted_records(
    tmp_path, lineage_bin, monkeypatch, how
):
    """Ctrl-C (or a raising progress callback) stops an experiment's runs at
    the end of a generation, each with a checkpoint; resuming writes what
    an uninterrupted run writes, run by run."""
    (tmp_path / "stop.py").write_text(STOPPER)
    scenario = {
        "name": "py-stop",
        "seed": 1,
        "generations": 6,
        "population": 12,
        "genome": {"genes": [{"name": "x", "count": 4, "min": 0.0, "max": 1.0}]},
        "plugins": {"py": {"library": f"python:{tmp_path / 'stop.py'}"}},
        "fitness": {"function": "py:total"},
        "selection": {"method": "tournament", "tournament_size": 2, "elitism": 1},
        "mutation": {"sigma": 0.1, "gene_rate": 1.0},
        "conditions": [
            {"name": f"c{k}", "seeds": [1], "set": {"genome": {"genes": [{"name": "x", "count": 3 + k, "min": 0.0, "max": 1.0}]}}}
            for k in (1, 2, 3)
        ],
    }
    path = tmp_path / "s.toml"
    path.write_text(toml_of(scenario))
    cli(lineage_bin, "run", path, "--out", tmp_path / "cli", "--quiet")

    def stop(done, total, best):
        if how == "callback" and done == 1:
            raise KeyboardInterrupt

    if how == "sigint-mid-run":
        monkeypatch.setenv("LINEAGE_TEST_STOP_AT", "2")
    with pytest.raises(KeyboardInterrupt):
        lineage.run(path, out=tmp_path / "py", progress=stop)
    monkeypatch.delenv("LINEAGE_TEST_STOP_AT", raising=False)
    exp = lineage.open(tmp_path / "py")
    runs = tmp_path / "py" / "conditions"
    lengths = [len(exp[c, 1].generations) if (runs / c / "seed-1").exists() else 0 for c in ("c1", "c2", "c3")]
    assert lengths[0] == 6 and lengths[2] < 6, lengths
    if how == "sigint-mid-run":
        # Stopped inside c2: at the end of generation 2 or, if the signal
        # came late, 3; with a checkpoint there.
        assert 3 <= lengths[1] < 6, lengths
    lineage.resume(tmp_path / "py", progress=False)
    for c in ("c1", "c2", "c3"):
        for table in ("generations.csv", "organisms.csv"):
            run = f"conditions/{c}/seed-1/{table}"
            assert (tmp_path / "py" / run).read_bytes() == (tmp_path / "cli" / run).read_bytes(), run
