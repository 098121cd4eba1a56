"""Notebooks 03, 04 and 06 on a machine without vLLM (macOS): the labelled transformers fallback runs their offline
parts (06: the cells that need no server) and every vLLM-only cell says it is skipped. COURSE_NO_VLLM=1 simulates
such a machine here."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("name", ["03_serving_distills", "04_examining_reasoning", "06_serving_as_a_service"])
def test_notebook_runs_with_the_transformers_fallback(name, monkeypatch):
    monkeypatch.setenv("COURSE_NO_VLLM", "1")
    monkeypatch.setenv("COURSE_QUICK", "1")     # the fallback's mechanics; the full mode's figures are nbval's job
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    # The kernel inherits this environment; execute() raises CellExecutionError on any failing cell.
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    if name == "06_serving_as_a_service":      # no fallback for a service on vLLM: it says so, the rest runs
        assert "skipped: this needs vLLM" in text and "checks passed" in text
        return
    assert "using the transformers generate (fallback, not vLLM)" in text
    if name == "03_serving_distills":
        assert "skipped: this needs vLLM" in text
