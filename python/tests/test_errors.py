"""Bad input raises Lineage's own exceptions, with what and where; nothing
crashes the interpreter."""

import pytest

import lineage
from conftest import onemax


def test_an_invalid_scenario_says_file_line_column_and_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\ngenerations = 3\npopulation = 10\n\n[genome]\nbits = 8\n\n[fitness]\nfunction = "onemaxx"\n')
    with pytest.raises(lineage.ScenarioError) as e:
        lineage.validate(path)
    err = e.value
    assert err.file.endswith("bad.toml")
    assert err.line == 9 and err.column >= 1
    assert err.field == "fitness.function"
    assert "onemaxx" in err.message
    assert "bad.toml:9" in str(err)
    assert isinstance(err, lineage.LineageError)


def test_a_dict_with_an_unknown_key_is_a_scenario_error():
    scenario = onemax()
    scenario["populaton"] = 3
    with pytest.raises(lineage.ScenarioError, match="populaton"):
        lineage.validate(scenario)
    with pytest.raises(lineage.ScenarioError, match="no None"):
        lineage.validate({"name": None})


def test_validate_returns_the_resolved_scenario():
    resolved = lineage.validate(onemax(), generations=9)
    assert resolved["generations"] == 9 and resolved["genome"]["bits"] == 64


def test_a_missing_plugin_is_a_plugin_error(tmp_path):
    scenario = onemax()
    scenario["plugins"] = {"p": {"library": str(tmp_path / "libnope.so")}}
    scenario["fitness"] = {"function": "p:score"}
    with pytest.raises(lineage.PluginError, match="libnope.so"):
        lineage.validate(scenario)


def test_what_is_not_a_run_is_a_run_error(tmp_path):
    with pytest.raises(lineage.RunError, match="no such run directory"):
        lineage.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(lineage.RunError, match="not a run directory"):
        lineage.open(tmp_path / "empty")
    with pytest.raises(lineage.RunError):
        lineage.resume(tmp_path / "empty", progress=False)


def test_damaged_records_are_named(tmp_path):
    run = lineage.run(onemax(generations=2), out=tmp_path / "r", progress=False)
    (tmp_path / "r" / "generations.csv").write_bytes(b"")
    with pytest.raises(lineage.RunError, match="generations.csv: empty"):
        lineage.open(tmp_path / "r").generations
    (tmp_path / "r" / "manifest.json").write_text("{ not json")
    with pytest.raises(lineage.RunError, match="manifest.json: damaged"):
        run.manifest
    with pytest.raises(lineage.RunError, match="no curves record"):
        run.curves
