"""The notebook-style scripts of examples/python run end to end (each on
its reduced budget) and write their plot."""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLES = sorted((ROOT / "examples" / "python").glob("*.py"))


def test_there_is_one_script_per_seed_experiment():
    assert {p.stem for p in EXAMPLES} >= {"connectomes", "rich_lazy", "icl"}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_an_example_runs_and_plots(tmp_path, script):
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    out = subprocess.run(
        [sys.executable, str(script), "runs/x"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    pngs = list((tmp_path / "runs" / "x").glob("*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 10_000, out.stdout
