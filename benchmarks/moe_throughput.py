"""Forward + backward throughput of MoE implementations, side by side in one run (ratios, not absolute claims).

    python benchmarks/moe_throughput.py            # the default sizes (about a minute on 2 CPU cores)
    python benchmarks/moe_throughput.py --quick    # one small size (the one notebook 01 runs in-process)

Compared at each size, on the same input: the course MoE with vectorised dispatch, the course MoE with the
readable per-expert loop, transformers' DeepseekV3MoE (same weights), and a dense SwiGLU FFN whose width equals
the MoE's *active* width (k routed experts + the shared expert), i.e. the same compute per token in theory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import course_utils  # noqa: F401  (first: it sets the OpenMP spin before torch loads OpenMP)

# isort: split
import torch

from course_utils.moe_speed import QUICK, SIZES, run, table


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="build/benchmarks/moe_throughput.json")
    args = parser.parse_args()
    results = run(QUICK if args.quick else SIZES)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, forward + backward")
    print(table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
