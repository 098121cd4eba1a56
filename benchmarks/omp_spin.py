"""What another busy program costs torch's training loop on this machine, under seven OpenMP settings.

torch's CPU build runs its parallel operations on GNU OpenMP threads, and between operations those threads spin
(busy-wait) before they sleep. On a 2-core laptop or CI machine, one other busy program (a browser tab, a second
process) takes a core the spinning thread is waiting on, and every operation then waits for the scheduler.
``import course_utils`` sets ``GOMP_SPINCOUNT=10000`` (spin briefly, then sleep) before torch loads, in every
notebook and entry point, and in the quick mode also keeps torch to one thread; this script measures why, and that
the import takes effect, as ratios side by side in one run: 80 training steps of notebook 02's toy teacher (same
seed, so every run with the same thread count computes the same weights, checked), each in a fresh process, with the
machine idle and with one busy-looping process beside it; the settings take turns, repeated, and the median is
reported with the range.

    python benchmarks/omp_spin.py [--steps 80] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# name -> (environment, what the process imports before torch)
SETTINGS = {"OpenMP default (long spin)": ({}, ""),
            **{f"GOMP_SPINCOUNT={n}": ({"GOMP_SPINCOUNT": str(n)}, "") for n in (30000, 10000, 3000)},
            "OMP_WAIT_POLICY=PASSIVE (no spin)": ({"OMP_WAIT_POLICY": "PASSIVE"}, ""),
            # nothing in the environment: `import course_utils` before torch sets the course's value itself
            "set by importing course_utils first": ({}, "import course_utils\n"),
            # the quick mode also keeps torch to one thread (course_utils/__init__.py)
            "course_utils in the quick mode (one thread)": ({"COURSE_QUICK": "1"}, "import course_utils\n")}
TRAIN = """{prelude}
import json, time, torch
from course_utils import toy_reasoner as R
tokenizer = R.build_tokenizer()
data = R.task_examples(tokenizer, R.problems(2000, seed=1), seed=0)
model = R.new_model(tokenizer, 96, 3, seed=0)
started = time.perf_counter()
R.train(model, data, R.TrainSettings({steps}), progress=False)
print(json.dumps({{"seconds": time.perf_counter() - started, "threads": torch.get_num_threads(),
                  "checksum": sum(p.double().sum().item() for p in model.parameters())}}))
"""


def train_once(steps: int, extra_env: dict, prelude: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "COURSE_QUICK")}
    out = subprocess.run([sys.executable, "-c", TRAIN.format(steps=steps, prelude=prelude)],
                         env={**env, **extra_env}, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds, checksums = {}, {}
    for load in ("idle", "one busy process beside it"):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
        try:
            for _ in range(args.repeats):
                for name, (env, prelude) in SETTINGS.items():
                    result = train_once(args.steps, env, prelude)
                    checksums.setdefault(result["threads"], set()).add(round(result["checksum"], 6))
                    seconds.setdefault((load, name), []).append(result["seconds"])
                    print(f"{load:28s} {name:36s} {result['seconds']:7.1f} s", flush=True)
        finally:
            if hog:
                hog.kill()
                hog.wait()
    base = statistics.median(seconds["idle", "OpenMP default (long spin)"])
    same_weights = all(len(sums) == 1 for sums in checksums.values())
    print(f"\n{args.steps} steps, {args.repeats} runs each; the runs with the same thread count computed the same "
          f"weights: {same_weights}")
    print("median seconds (min-max), and relative to the default on an idle machine:")
    rows = []
    for (load, name), runs in seconds.items():
        median = statistics.median(runs)
        rows.append({"machine": load, "setting": name, "median_s": round(median, 2), "min_s": round(min(runs), 2),
                     "max_s": round(max(runs), 2), "vs_idle_default": round(median / base, 2)})
        print(f"  {load:28s} {name:36s} {median:6.1f} s ({min(runs):.1f}-{max(runs):.1f})  x{median / base:.2f}")
    out = ROOT / "build" / "benchmarks" / "omp_spin.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": args.steps, "repeats": args.repeats, "cores": os.cpu_count(), "rows": rows,
                               "same_weights": same_weights, "when": time.strftime("%Y-%m-%d")}, indent=1))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
