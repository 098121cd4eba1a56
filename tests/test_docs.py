"""The README and the guides state figures the code computes or measures: each table here must equal its source, so
that a change to a plan or a new measurement cannot leave a page behind."""

import re
from pathlib import Path

from course_utils import run_plans

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
MAINTAINING = (ROOT / "docs" / "maintaining.md").read_text()
WORKSHOP = (ROOT / "docs" / "workshop.md").read_text()


def table_rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_readme_time_table_is_the_measured_one():
    course = table_rows(README, "| notebook | what you build and measure |")
    assert len(course) == len(run_plans.MEASURED_SECONDS)
    for row, (notebook, (full, fast)) in zip(course, run_plans.MEASURED_SECONDS.items(), strict=True):
        assert row[0].startswith(notebook)
        assert (row[2], row[3]) == (run_plans.minutes(full), run_plans.minutes(fast)), notebook
    assert run_plans.MEASURED_ON.removeprefix("a ") in README


def test_the_gpu_table_in_the_maintainers_guide_is_the_plans_own():
    rows = table_rows(MAINTAINING, "| GPU |")
    expected = run_plans.gpu_minutes_table()
    assert rows == [[str(value) for value in row.values()] for row in expected]


def test_the_workshop_guide_s_gpu_times_are_the_plans_own():
    rows = {row["GPU"]: row for row in run_plans.gpu_minutes_table()}
    line_03 = next(line for line in WORKSHOP.splitlines() if line.startswith("| 03 "))
    line_04 = next(line for line in WORKSHOP.splitlines() if line.startswith("| 04 "))
    for gpu, row in rows.items():
        assert f"{gpu} {row['notebook 03 generation (min)']} min" in line_03, gpu
        assert f"{gpu} {row['notebook 04 generation (min)']} min" in line_04, gpu


def test_no_page_is_left_with_a_placeholder():
    for text in (README, MAINTAINING, WORKSHOP):
        assert not re.search(r"\bTBD\b|\bTODO\b|MEASURED_[A-Z]+|GPU_MINUTES_TABLE", text)


def test_the_readme_stays_a_learners_page():
    """The README had grown into a maintainer's log (5,689 words); the learner's pages of comparable courses run
    1,100-2,100 words. The history lives in docs/maintaining.md and benchmarks/README.md."""
    assert len(README.split()) <= 2100
    assert README.index("## Start here") < README.index("## The course") < README.index("## For maintainers")


def test_every_make_target_the_pages_name_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.M))
    for text in (README, MAINTAINING, WORKSHOP):
        for target in re.findall(r"`[^`]*\bmake ([a-z][a-z0-9-]*)", text):
            assert target in targets, f"make {target}"
