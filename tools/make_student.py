"""``make student``: copies of the notebooks to hand out, without outputs and without the worked solutions.

    python tools/make_student.py [OUT]      # default: handouts/ (committed, so that Colab can open them)

Each copy keeps every lesson and exercise cell; it drops each cell's outputs and execution count (the learner runs
them), the cells tagged "checks" (the builders' checks of the reference run's figures: the test suite runs them), and
the "## Worked solutions" section (the cells from that heading to the next "## " heading, or the end). Its
"Open in Colab" link opens the hand-out itself, not the notebook with the solutions. A test keeps the committed
hand-outs equal to what this writes: after editing a notebook, run `make student`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = "## Worked solutions"
HARNESS_TAG = "checks"
NOTEBOOK_LINK, HANDOUT_LINK = "/blob/main/notebooks/", "/blob/main/handouts/"


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without outputs, checks cells and worked solutions (a new object; ``nb`` is unchanged)."""
    copy = nbformat.from_dict(nb)
    kept, in_solutions = [], False
    for cell in copy.cells:
        heading = cell.source.lstrip() if cell.cell_type == "markdown" else ""
        if heading.startswith(SOLUTIONS):
            in_solutions = True
            continue
        if in_solutions and heading.startswith("## "):
            in_solutions = False
        if in_solutions or HARNESS_TAG in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        elif NOTEBOOK_LINK in cell.source:
            cell.source = cell.source.replace(NOTEBOOK_LINK, HANDOUT_LINK)   # Colab opens the hand-out
        kept.append(cell)
    copy.cells = kept
    return copy


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        copy = student_copy(nb)
        nbformat.write(copy, out / path.name)
        print(f"{path.name}: {len(copy.cells)} of {len(nb.cells)} cells, no outputs -> {out / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "handouts"))
