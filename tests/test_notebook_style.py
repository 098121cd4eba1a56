"""How the notebooks read, checked on their sources: short set-up cells found by a tag, the builders' checks in one
tagged cell, no one-letter module aliases, and course_utils imported before anything loads torch (it sets torch's
OpenMP spin, which OpenMP reads once, when torch loads it). Line length and statement chains are ruff's job
(tests/test_lint.py, with notebooks/ruff.toml's 100 characters)."""

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def code_lines(cell: dict) -> list[str]:
    return [line for line in "".join(cell["source"]).splitlines() if line.strip() and
            not line.strip().startswith("#")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_set_up_cell_is_short_tagged_and_first(path):
    code = [cell for cell in cells(path) if cell["cell_type"] == "code"]
    assert "setup" in code[0].get("metadata", {}).get("tags", []), "the first code cell is the set-up cell"
    assert len(code_lines(code[0])) <= 14
    assert "from course_utils import colab" in "".join(code[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_course_utils_is_imported_before_anything_loads_torch(path):
    """The set-up cell imports course_utils (which sets GOMP_SPINCOUNT) before any cell imports torch or a library
    that loads it."""
    loaders = re.compile(r"^\s*(import|from)\s+(torch|transformers|vllm|course_utils\.(?!colab))\b", re.M)
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if "from course_utils import colab" in source:
            return
        assert not loaders.search(source), f"{path.name}: torch may load before course_utils"
    pytest.fail(f"{path.name}: no cell imports course_utils")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_tagged_checks_cell_holds_the_assertions_on_trained_figures(path):
    tagged = [cell for cell in cells(path) if "checks" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "assert" in "".join(tagged[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_modules_are_named_in_full(path):
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                for alias in node.names:
                    assert not (alias.asname and len(alias.asname) == 1 and alias.asname != "F"), (
                        f"{path.name}: {alias.name} as {alias.asname}")


def test_the_spin_setting_is_set_by_importing_course_utils_and_a_users_value_wins():
    import os
    import subprocess
    import sys

    environment = {key: value for key, value in os.environ.items() if key != "GOMP_SPINCOUNT"}
    script = "import course_utils, os; print(os.environ['GOMP_SPINCOUNT'])"
    out = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert out.stdout.strip() == "10000"
    out = subprocess.run([sys.executable, "-c", script], env={**environment, "GOMP_SPINCOUNT": "300"},
                         capture_output=True, text=True)
    assert out.stdout.strip() == "300"


def test_the_quick_mode_keeps_torch_to_one_thread_unless_the_user_chose():
    import os
    import subprocess
    import sys

    environment = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "COURSE_QUICK")}
    script = "import course_utils, torch; print(torch.get_num_threads())"

    def threads(**extra):
        out = subprocess.run([sys.executable, "-c", script], env={**environment, **extra}, capture_output=True,
                             text=True, check=True)
        return int(out.stdout.strip())

    assert threads(COURSE_QUICK="1") == 1
    assert threads(COURSE_QUICK="1", OMP_NUM_THREADS="2") == 2
    unset = "import course_utils, os; print(os.environ.get('OMP_NUM_THREADS'))"
    full_mode = subprocess.run([sys.executable, "-c", unset],
                               env={**environment, "COURSE_QUICK": "0"}, capture_output=True, text=True, check=True)
    assert full_mode.stdout.strip() == "None", "the full mode leaves torch's thread count alone"


BAR = re.compile(r"(\d+)/(\d+) \[")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_progress_bars_show_where_they_ended(path):
    """A finished run's bar reads "500/500" in the committed notebook, not tqdm widgets' frozen "0/500"."""
    for cell in cells(path):
        for output in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), "a widget bar"
            for line in "".join(output.get("text", "")).split("\n"):
                shown = BAR.findall(line.split("\r")[-1])      # Jupyter draws each \r over the last
                assert all(done == total for done, total in shown), f"{path.stem}: a bar left at {line[-80:]!r}"
