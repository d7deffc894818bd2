"""The public API's documentation runs: every ```python block of docs/api.md, in a fresh folder,
on the simulator."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.M | re.S)


def test_the_api_document_has_its_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_example_in_the_api_document_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / f"example_{index}.py"
    script.write_text(BLOCKS[index])
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip(), "each example shows what it did"


def test_every_public_name_resolves_and_is_documented():
    import livctl

    text = DOC.read_text()
    for name in livctl.__all__:
        assert getattr(livctl, name) is not None
        assert name == "__version__" or f"`{name}" in text or f" {name}" in text, name
