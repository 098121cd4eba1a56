"""How long each notebook takes in the quick mode (``COURSE_QUICK=1``) on this machine, with one busy process beside
it (a learner's laptop with a browser or a build running) and, for comparison, idle.

    python benchmarks/quick_mode.py [--idle] [--only 01 02]

Each notebook runs headless in a fresh kernel (``tools/run_notebooks.py``'s executor) into build/quick/; the busy
process is one pure-Python loop, started before and stopped after each notebook. Prints one row per notebook and
writes build/benchmarks/quick_mode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def run_quick(path: Path, out: Path, busy: bool) -> float:
    from run_notebooks import run

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    os.environ["COURSE_QUICK"] = "1"            # the kernel inherits it
    try:
        started = time.perf_counter()
        run(path, out, timeout=900)
        return time.perf_counter() - started
    finally:
        os.environ.pop("COURSE_QUICK", None)
        if hog:
            hog.kill()
            hog.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", action="store_true", help="no busy process beside the notebooks")
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args()
    out_dir = ROOT / "build" / "quick"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        if args.only and not any(key in path.name for key in args.only):
            continue
        seconds = run_quick(path, out_dir / path.name, busy=not args.idle)
        rows.append({"notebook": path.stem, "seconds": round(seconds)})
        print(f"{path.stem:28s} {seconds:6.0f} s", flush=True)
    load = "idle" if args.idle else "one busy process beside it"
    print(f"quick mode, {os.cpu_count()} cores, {load}: longest {max(r['seconds'] for r in rows)} s")
    report = ROOT / "build" / "benchmarks" / "quick_mode.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"cores": os.cpu_count(), "load": load, "rows": rows,
                                  "when": time.strftime("%Y-%m-%d")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
