"""Where `make test`'s time goes: seconds per notebook and per test file, from the JUnit report `make test` writes.

    python tools/time_table.py [build/test-times.xml]

Prints a Markdown table, longest first: each file's tests, their summed seconds, and its share of the total. With two
workers the files run side by side, so the sum is about twice the wall-clock time; conftest.py's LONGEST_FIRST order
comes from this table.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def file_of(case) -> str:
    """The file a JUnit test case belongs to: nbval names a notebook's cells after the notebook."""
    classname = case.get("classname", "")
    name = case.get("name", "")
    if ".ipynb" in classname or ".ipynb" in name:
        text = classname if ".ipynb" in classname else name
        return "notebooks/" + text.split(".ipynb")[0].split("/")[-1].split(".")[-1] + ".ipynb"
    parts = classname.split(".")
    return "/".join(parts[:2]) + ".py" if len(parts) >= 2 else classname   # tests.test_x(.TestClass)


def seconds_per_file(report: Path) -> dict[str, tuple[int, float]]:
    totals: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        entry = totals[file_of(case)]
        entry[0] += 1
        entry[1] += float(case.get("time", 0))
    return {name: (count, seconds) for name, (count, seconds) in totals.items()}


def table(per_file: dict[str, tuple[int, float]]) -> str:
    total = sum(seconds for _, seconds in per_file.values())
    lines = ["| file | tests | seconds | share |", "|---|---|---|---|"]
    for name, (count, seconds) in sorted(per_file.items(), key=lambda item: -item[1][1]):
        lines.append(f"| `{name}` | {count} | {seconds:.0f} | {seconds / total:.0%} |")
    lines.append(f"| all | {sum(c for c, _ in per_file.values())} | {total:.0f} | |")
    return "\n".join(lines)


def main() -> int:
    report = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "test-times.xml"
    if not report.exists():
        print(f"no report at {report}: run `make test` first", file=sys.stderr)
        return 2
    print(table(seconds_per_file(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
