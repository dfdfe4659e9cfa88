"""Every Python block of the README and the guide's Python chapter runs, in
a folder holding a copy of scenarios/, as a reader would run it."""

import re
import shutil

import pytest

from conftest import ROOT

DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "src" / "python.md"]


def blocks(path):
    """The Python blocks of a document: (marker, code); a block under
    `<!-- docs: file NAME -->` is a file the reader saves, not code to run."""
    found = re.findall(
        r"(?:<!-- docs: ([^\n]*?) -->\n)?^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M
    )
    return [(marker.strip(), code) for marker, code in found]


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
    for index, (marker, code) in enumerate(blocks(document)):
        if marker.startswith("file "):
            (tmp_path / marker[len("file ") :]).write_text(code)
            continue
        exec(compile(code, f"{document.name} block {index}", "exec"), namespace)
