"""``make gpu-check``: run the GPU paths of notebooks 03 and 04 on this machine's CUDA GPU and print a short report
(the device, the course's time estimates, each notebook's measured time and results summary), for anyone with a
GPU to send back. The executed notebooks go to build/gpu-check/.

    python tools/gpu_check.py [--only 03]

It downloads the distills the notebooks choose for this GPU (sizes printed first). Without a CUDA GPU, or without
access to the Hugging Face Hub, it stops at once and says why.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_notebooks import ROOT, run  # noqa: E402

from course_utils import flavour, hardware, run_plans  # noqa: E402
from course_utils.model_source import hub_reachable  # noqa: E402

NOTEBOOKS = {"03": "03_serving_distills.ipynb", "04": "04_examining_reasoning.ipynb"}
CELL_TIMEOUT = 3600   # one GPU cell may generate hundreds of reasoning completions or download a distill


def plan_lines(device: hardware.Device, driver_cuda: tuple[int, int] | None) -> list[str]:
    """What this GPU is, what the notebooks will run on it, and the course's estimates (before anything runs)."""
    driver = ".".join(map(str, driver_cuda)) if driver_cuda else "unknown"
    lines = [f"GPU: {device.name} x{device.count}, {device.total_gib:.1f} GiB ({device.free_gib:.1f} free), "
             f"native bf16: {device.bf16}, driver CUDA: {driver}"]
    for plan in (run_plans.notebook_03, run_plans.notebook_04):
        try:
            lines.append(plan(device, quick_mode=False).describe())
        except MemoryError as error:
            lines.append(f"{plan.__name__}: {error}")
    return lines


def summary_text(path: Path) -> str:
    """The text output of the executed notebook's results-summary cell (the one that defines ``summary``)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "summary = Summary(" in cell.source:
            texts = [o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", [])]
            return "\n".join(texts).strip() or "(no text output)"
    return "(no summary cell found)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(NOTEBOOKS), default=sorted(NOTEBOOKS))
    args = parser.parse_args()
    device = hardware.detect_device()
    if device.kind != "cuda":
        print("make gpu-check needs a CUDA GPU and found none here (`make test` checks the CPU path).")
        return 2
    driver = flavour.driver_cuda_version()
    import torch

    if problem := flavour.driver_problem(driver, flavour.installed_cuda_set(torch.__version__)):
        print(problem)
        return 2
    if not hub_reachable():
        print("huggingface.co cannot be reached: the GPU paths download the distills listed below. Run with network "
              "access, or download them first (`huggingface-cli download <model>`) into the Hub cache.")
    print("\n".join(plan_lines(device, driver)), flush=True)
    out_dir = ROOT / "build" / "gpu-check"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for key in args.only:
        path = ROOT / "notebooks" / NOTEBOOKS[key]
        started = time.time()
        try:
            run(path, out_dir / path.name, timeout=CELL_TIMEOUT)
            minutes = (time.time() - started) / 60
            print(f"\n== {path.name}: ran in {minutes:.1f} min\n{summary_text(out_dir / path.name)}")
        except Exception as err:   # report each notebook, then fail at the end
            failed += 1
            print(f"\n== {path.name}: FAILED after {(time.time() - started) / 60:.1f} min: "
                  f"{type(err).__name__}: {str(err)[-1500:]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
