"""Execute every notebook headless and write the executed copies (for instructors preparing a workshop).

    python tools/run_notebooks.py                 # all notebooks -> build/executed/
    python tools/run_notebooks.py --inplace 01    # re-run notebooks whose name contains "01", saving in place

Shows one progress bar per notebook (cell by cell) and the time each took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent


class ProgressClient(NotebookClient):
    """nbclient's executor with a progress bar that advances after each cell."""

    def __init__(self, nb, bar, **kw):
        super().__init__(nb, **kw)
        self.bar = bar

    async def async_execute_cell(self, cell, cell_index, **kw):
        result = await super().async_execute_cell(cell, cell_index, **kw)
        self.bar.update(1)
        return result


def coalesce_streams(nb) -> None:
    """Join each cell's consecutive stdout (or stderr) pieces into one output: a streamed reply printed token by token
    is stored as one block of text instead of hundreds of outputs (it still streams live in Jupyter)."""
    for cell in nb.cells:
        merged = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (output.output_type == "stream" and previous is not None and previous.output_type == "stream"
                    and previous.name == output.name):
                previous.text += output.text
            else:
                merged.append(output)
        if "outputs" in cell:
            cell.outputs = merged


def run(path: Path, out: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    started = time.time()
    with tqdm(total=len(nb.cells), desc=path.stem, unit="cell") as bar:
        ProgressClient(nb, bar, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    coalesce_streams(nb)
    nbformat.write(nb, out)
    return time.time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="run only notebooks whose file name contains one of these")
    parser.add_argument("--inplace", action="store_true", help="overwrite the notebooks instead of build/executed/")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    notebooks = [p for p in notebooks if not args.only or any(o in p.name for o in args.only)]
    out_dir = ROOT / "build" / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in notebooks:
        out = path if args.inplace else out_dir / path.name
        try:
            seconds = run(path, out, args.timeout)
            print(f"{path.name}: ran in {seconds:.0f} s -> {out.relative_to(ROOT)}")
        except Exception as err:  # report every notebook, then fail at the end
            failed.append(path.name)
            print(f"{path.name}: FAILED: {type(err).__name__}: {str(err)[-2000:]}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
