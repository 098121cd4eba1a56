"""Point the course at its repository: every notebook's Colab set-up cell (REPO_URL) and every "Open in Colab" badge
link, in the notebooks and in README.md.

    python tools/set_repo_url.py https://github.com/you/fork.git      (make set-repo-url URL=...)

Colab opens notebooks from GitHub only, so for a repository elsewhere the badges are left as they are (said so).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
REPO_URL = re.compile(r'^REPO_URL = ".*"$', re.MULTILINE)
BADGE_LINK = re.compile(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/")
GITHUB = re.compile(r"github\.com[/:]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


def github_path(url: str) -> str | None:
    """"OWNER/REPO" of a GitHub URL (https or ssh form), or None for a repository elsewhere."""
    found = GITHUB.search(url)
    return f"{found.group(1)}/{found.group(2)}" if found else None


def rewrite(text: str, url: str, *, code: bool) -> tuple[str, int]:
    """``text`` with REPO_URL (in code) or the badge links (in markdown) pointing at ``url``; and how many changed."""
    if code:
        return REPO_URL.subn(f'REPO_URL = "{url}"', text)
    path = github_path(url)
    if path is None:
        return text, 0
    return BADGE_LINK.subn(f"https://colab.research.google.com/github/{path}/blob/main/", text)


def set_repo_url(root: Path, url: str) -> list[str]:
    """Rewrite the notebooks under ``root`` and its README.md; one line per file saying what changed."""
    report = []
    for path in sorted(root.glob("notebooks/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        changed = 0
        for cell in nb.cells:
            cell.source, n = rewrite(cell.source, url, code=cell.cell_type == "code")
            changed += n
        nbformat.write(nb, path)
        report.append(f"{path.name}: {changed} place(s) updated")
    readme = root / "README.md"
    text, n = rewrite(readme.read_text(), url, code=False)
    readme.write_text(text)
    report.append(f"README.md: {n} badge link(s) updated")
    if github_path(url) is None:
        report.append("not a GitHub URL: Colab cannot open notebooks from it, so the badges were left as they were")
    return report


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].startswith(("https://", "git@")):
        print("usage: python tools/set_repo_url.py https://github.com/OWNER/REPO.git", file=sys.stderr)
        return 2
    print("\n".join(set_repo_url(ROOT, sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
