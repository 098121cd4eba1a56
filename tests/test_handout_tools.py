"""tools/make_student.py (make student) and tools/set_repo_url.py (make set-repo-url), on copies of the notebooks."""

import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_student = load_tool("make_student")
EXERCISE = re.compile(r'(answers\.exercise_\d\d_\w+|coding_checks\.check|check_endpoint)\("?(Exercise)?')
set_repo_url = load_tool("set_repo_url")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copies_keep_the_exercises_and_drop_outputs_and_solutions(path):
    nb = nbformat.read(path, as_version=4)
    copy = make_student.student_copy(nb)
    sources = [c.source for c in copy.cells]
    assert not any(c.get("outputs") or c.get("execution_count") for c in copy.cells if c.cell_type == "code")
    assert not any(s.lstrip().startswith("## Worked solutions") for s in sources)
    exercises = [c.source for c in nb.cells if c.cell_type == "code" and EXERCISE.search(c.source)
                 and not c.metadata.get("jupyter", {}).get("source_hidden")]
    coding = [e for e in exercises if "coding_checks.check(" in e or "check_endpoint(\"Exercise" in e]
    assert len(coding) >= 2, "each notebook has at least two coding exercises"
    assert all(e in sources for e in exercises)                             # the exercise cells themselves stay
    solutions = [c for c in nb.cells if c.source.lstrip().startswith("## Worked solutions")]
    assert len(solutions) == 1 and len(copy.cells) < len(nb.cells)          # a solutions section was removed
    hidden = [c for c in nb.cells if c.metadata.get("jupyter", {}).get("source_hidden")]
    assert hidden and not any(c.metadata.get("jupyter", {}).get("source_hidden") for c in copy.cells)
    hand_out_link = nb.cells[0].source.replace("/blob/main/notebooks/", "/blob/main/handouts/")
    assert copy.cells[0].source == hand_out_link and any(c.get("outputs") for c in nb.cells)   # original intact
    checks = [c for c in nb.cells if "checks" in c.metadata.get("tags", [])]
    assert len(checks) == 1 and "assert" in checks[0].source                # the harness: one tagged cell
    assert not any("checks" in c.metadata.get("tags", []) for c in copy.cells)   # gone from the hand-out
    nbformat.validate(copy)


def test_the_section_after_the_solutions_survives():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercises"), nbformat.v4.new_code_cell("answer_1 = None"),
        nbformat.v4.new_markdown_cell("## Worked solutions"), nbformat.v4.new_code_cell("answer_1 = 42"),
        nbformat.v4.new_markdown_cell("## Appendix"), nbformat.v4.new_code_cell("x = 1")])
    assert [c.source for c in make_student.student_copy(nb).cells] == ["## Exercises", "answer_1 = None",
                                                                        "## Appendix", "x = 1"]


@pytest.mark.parametrize("url, path", [("https://github.com/you/fork.git", "you/fork"),
                                       ("git@github.com:you/fork.git", "you/fork"),
                                       ("https://github.com/you/my.course", "you/my.course"),
                                       ("https://gitlab.com/you/fork.git", None)])
def test_github_path(url, path):
    assert set_repo_url.github_path(url) == path


def test_set_repo_url_rewrites_the_install_cell_and_every_badge(tmp_path):
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    report = set_repo_url.set_repo_url(tmp_path, "https://github.com/you/fork.git")
    assert all(line.endswith("2 place(s) updated") for line in report[:-1])   # REPO_URL and the badge, per notebook
    assert report[-1] == f"README.md: {2 * len(NOTEBOOKS)} badge link(s) updated"   # each notebook and hand-out
    for path in (tmp_path / "notebooks").glob("[0-9]*.ipynb"):
        text = path.read_text()
        assert 'REPO_URL = \\"https://github.com/you/fork.git\\"' in text
        assert f"colab.research.google.com/github/you/fork/blob/main/notebooks/{path.name}" in text
        assert "deepseek-hands-on/deepseek-hands-on" not in text
    elsewhere = set_repo_url.set_repo_url(tmp_path, "https://gitlab.com/you/fork.git")
    assert "not a GitHub URL" in elsewhere[-1]
    assert "colab.research.google.com/github/you/fork/" in (tmp_path / "README.md").read_text()   # badges kept


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_an_id(path):
    # nbformat 4.5 requires cell ids (a missing one is a warning today, an error in future nbformat versions)
    assert all("id" in cell for cell in nbformat.reads(path.read_text(), as_version=nbformat.NO_CONVERT).cells)


def test_streamed_pieces_are_stored_as_one_block():
    run_notebooks = load_tool("run_notebooks")
    cell = nbformat.v4.new_code_cell("stream()", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="[thinking] 3"),
        nbformat.v4.new_output("stream", name="stdout", text="+8"),
        nbformat.v4.new_output("stream", name="stderr", text="a warning\n"),
        nbformat.v4.new_output("stream", name="stdout", text="=11\n"),
        nbformat.v4.new_output("stream", name="stdout", text="done\n")])
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("text")])
    run_notebooks.coalesce_streams(nb)
    assert [(o.name, o.text) for o in nb.cells[0].outputs] == [("stdout", "[thinking] 3+8"), ("stderr", "a warning\n"),
                                                               ("stdout", "=11\ndone\n")]


def test_the_committed_hand_outs_are_the_notebooks_current_copies():
    """handouts/ is what `make student` writes from notebooks/ (committed so that Colab can open a hand-out): each
    equal to a fresh copy, and its Colab link opening the hand-out, not the notebook with the worked solutions."""
    for path in NOTEBOOKS:
        handout = ROOT / "handouts" / path.name
        assert handout.exists(), f"{handout} missing: run `make student`"
        expected = make_student.student_copy(nbformat.read(path, as_version=4))
        committed = nbformat.read(handout, as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in expected.cells], (
            f"{handout.name} is out of date: run `make student`")
        first = committed.cells[0].source
        assert "/blob/main/handouts/" in first and "/blob/main/notebooks/" not in first
