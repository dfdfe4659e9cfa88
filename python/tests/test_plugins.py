"""Fitness functions and suites written in Python: they drive selection
and record metrics, in a worker process, deterministically; an exception
and a crash are named errors."""

import textwrap

import pytest

import lineage
from conftest import cli

PLUGIN = '''
import lineage

@lineage.fitness(maximize=["total"])
def total(batch):
    """The sum of the genes."""
    return batch.genes.sum(axis=1)

@lineage.suite(maximize=["first"], minimize=["spread"])
def stats(batch):
    return [[g[0], g.std()] for g in batch.genes]

@lineage.fitness(maximize=["boom"])
def raising(batch):
    raise ValueError("no score for generation %d" % batch.generation)

@lineage.fitness(maximize=["gone"])
def crashing(batch):
    import os
    os._exit(7)

@lineage.fitness(minimize=["off"])
def configured(batch):
    return abs(batch.genes - batch.config.get("target", 0.0)).sum(axis=1)
'''


def scenario(tmp_path, function, extra=""):
    (tmp_path / "fit.py").write_text(PLUGIN)
    text = textwrap.dedent(
        f"""
        name = "pyfit"
        seed = 4
        generations = 8
        population = 30

        [genome]
        genes = [{{ name = "x", count = 3, min = 0.0, max = 1.0 }}]

        [plugins.py]
        library = "python:fit.py"
        {extra}

        [fitness]
        function = "py:{function}"

        [selection]
        method = "tournament"
        tournament_size = 3
        elitism = 1

        [mutation]
        sigma = 0.1
        gene_rate = 1.0
        """
    )
    path = tmp_path / f"{function}.toml"
    path.write_text(text)
    return path


def test_a_python_fitness_drives_selection_and_a_suite_records(tmp_path, lineage_bin):
    path = scenario(tmp_path, "total")
    text = path.read_text().replace("[selection]", '[evaluate]\nsuites = ["py:stats"]\n\n[selection]')
    path.write_text(text)
    run = lineage.run(path, out=tmp_path / "py", progress=False)
    best = run.generations["total_best"]
    assert best.iloc[-1] > best.iloc[0] + 0.3
    metrics = run.metrics
    assert set(metrics["metric"]) == {"first", "spread"}
    plugin = run.manifest["plugins"][0]
    assert plugin["path"].endswith("fit.py") and len(plugin["sha256"]) == 64
    assert plugin["isolation"] == "python"
    # The same records from the command line: the worker adds nothing random.
    cli(lineage_bin, "run", path, "--out", tmp_path / "cli", "--quiet", "--threads", "1")
    for table in ("generations.csv", "organisms.csv", "metrics.csv"):
        assert (tmp_path / "py" / table).read_bytes() == (tmp_path / "cli" / table).read_bytes()


def test_the_plugin_reads_its_configuration(tmp_path):
    path = scenario(tmp_path, "configured", "[plugins.py.config]\ntarget = 0.5")
    run = lineage.run(path, out=tmp_path / "r", progress=False)
    genes = run.genes
    last = genes[genes["generation"] == genes["generation"].max()]
    assert (last[["x0", "x1", "x2"]] - 0.5).abs().mean().mean() < 0.2


def test_an_exception_is_a_named_plugin_error_with_its_traceback(tmp_path):
    with pytest.raises(lineage.PluginError) as e:
        lineage.run(scenario(tmp_path, "raising"), out=tmp_path / "r", progress=False)
    message = str(e.value)
    assert "plugin `fit` offering `raising` failed" in message
    assert "ValueError: no score for generation 0" in message


def test_a_crash_is_a_named_plugin_error(tmp_path):
    with pytest.raises(lineage.PluginError, match="crashed: its worker process exited with status 7"):
        lineage.run(scenario(tmp_path, "crashing"), out=tmp_path / "r", progress=False)


def test_a_file_that_registers_nothing_is_refused(tmp_path):
    path = scenario(tmp_path, "total")
    (tmp_path / "fit.py").write_text("x = 1\n")
    with pytest.raises(lineage.PluginError, match="registers nothing"):
        lineage.validate(path)


def test_bits_reach_python_as_the_engine_holds_them(tmp_path):
    """A Python OneMax scores exactly as the built-in one: the same
    evolution, organism for organism."""
    (tmp_path / "ones.py").write_text(
        "import lineage\n\n@lineage.fitness(maximize=['ones'])\ndef ones(batch):\n    return batch.bits.sum(axis=1)\n"
    )
    base = {
        "name": "bits",
        "seed": 9,
        "generations": 5,
        "population": 24,
        "genome": {"bits": 100},
        "selection": {"method": "tournament", "tournament_size": 2},
        "mutation": {"bit_rate": 0.01},
    }
    python = dict(base, fitness={"function": "py:ones"}, plugins={"py": {"library": f"python:{tmp_path / 'ones.py'}"}})
    builtin = dict(base, fitness={"function": "onemax"})
    a = lineage.run(python, out=tmp_path / "py", progress=False).organisms
    b = lineage.run(builtin, out=tmp_path / "builtin", progress=False).organisms
    assert list(a["ones"]) == list(b["onemax"])
    assert list(a["genome"]) == list(b["genome"])


def test_a_python_library_must_be_a_py_file(tmp_path):
    path = scenario(tmp_path, "total")
    path.write_text(path.read_text().replace("python:fit.py", "python:plugins/fit.txt"))
    with pytest.raises(lineage.ScenarioError) as e:
        lineage.validate(path)
    assert e.value.field == "plugins.py.library" and "python:FILE.py" in e.value.message


def test_a_plugin_named_by_module_is_imported_with_its_package(tmp_path, monkeypatch):
    """`python:package.module`: the worker imports the module (its relative
    imports work); the manifest records the module's file and hash."""
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("def total(genes):\n    return genes.sum(axis=1)\n")
    (package / "fits.py").write_text(
        "import lineage\nfrom .helpers import total\n\n"
        "@lineage.fitness(maximize=['total'])\ndef summed(batch):\n    return total(batch.genes)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    path = scenario(tmp_path, "summed")
    path.write_text(path.read_text().replace("python:fit.py", "python:mypkg.fits"))
    run = lineage.run(path, out=tmp_path / "r", progress=False)
    assert run.generations["total_best"].iloc[-1] > run.generations["total_best"].iloc[0]
    plugin = run.manifest["plugins"][0]
    assert plugin["path"] == str(package / "fits.py") and len(plugin["sha256"]) == 64
    assert plugin["name"] == "fits"


def test_a_module_that_cannot_be_found_is_named(tmp_path):
    path = scenario(tmp_path, "total")
    path.write_text(path.read_text().replace("python:fit.py", "python:no_such_pkg.fits"))
    with pytest.raises(lineage.PluginError) as e:
        lineage.validate(path)
    assert "python plugin module `no_such_pkg.fits`" in str(e.value) and "cannot import" in str(e.value)
    path.write_text(path.read_text().replace("python:no_such_pkg.fits", "python:not a module"))
    with pytest.raises(lineage.ScenarioError) as e:
        lineage.validate(path)
    assert "python:package.module" in e.value.message


def test_a_native_plugin_runs_isolated_from_python_without_the_binary(tmp_path, monkeypatch, accuracy_plugin):
    """`isolation = "process"` from Python: the worker is this interpreter
    running the native module's worker (no `lineage` binary needed), and
    the records are those of the plugin run in process."""
    from conftest import learning

    monkeypatch.delenv("LINEAGE_WORKER_EXE", raising=False)
    records = {}
    for isolation in ("in-process", "process"):
        scenario = learning(generations=2, population=4)
        scenario["plugins"] = {"acc": {"library": str(accuracy_plugin), "isolation": isolation}}
        scenario["fitness"] = {"function": "acc:heldout_accuracy"}
        run = lineage.run(scenario, out=tmp_path / isolation, progress=False)
        assert run.manifest["plugins"][0]["isolation"] == isolation
        records[isolation] = (tmp_path / isolation / "organisms.csv").read_bytes()
    assert records["process"] == records["in-process"]
