"""Every Python block of the README and the guide's Python chapter runs, in
a folder holding a copy of scenarios/, as a reader would run it."""

import re
import shutil

import pytest

from conftest import ROOT

DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "src" / "python.md"]


def blocks(path):
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def test_the_documents_have_python_blocks():
    assert sum(len(blocks(d)) for d in DOCUMENTS) >= 3


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_the_python_blocks_run_in_order(tmp_path, monkeypatch, document):
    """A document's blocks run one after another in one namespace, as a
    reader types them into one session."""
    import matplotlib

    matplotlib.use("Agg")
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for index, code in enumerate(blocks(document)):
        exec(compile(code, f"{document.name} block {index}", "exec"), namespace)
