"""Set REPO_URL in every notebook's Colab set-up cell:  python tools/set_repo_url.py https://github.com/you/fork.git"""

import re
import sys
from pathlib import Path

import nbformat

PATTERN = re.compile(r'^REPO_URL = ".*"$', re.MULTILINE)


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].startswith(("https://", "git@")):
        print("usage: python tools/set_repo_url.py https://github.com/OWNER/REPO.git", file=sys.stderr)
        return 2
    for path in sorted(Path(__file__).resolve().parent.parent.glob("notebooks/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        changed = 0
        for cell in nb.cells:
            if cell.cell_type == "code" and PATTERN.search(cell.source):
                cell.source, n = PATTERN.subn(f'REPO_URL = "{sys.argv[1]}"', cell.source)
                changed += n
        nbformat.write(nb, path)
        print(f"{path.name}: {changed} cell(s) updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
