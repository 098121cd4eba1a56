"""Shared, tested code for the "DeepSeek, hands-on" notebooks: one module per idea (the README's layout table says
which modules a learner reads and which only run the course)."""

import os

__version__ = "0.1.0"

# torch's CPU build runs its parallel operations on GNU OpenMP threads, which spin between operations before they
# sleep. When another program holds one of a laptop's cores, the threads wait for the core it took. In one run of
# benchmarks/omp_spin.py (2 cores, medians of 3) a toy training loop took 20x as long beside one busy process, and
# 3.7x with brief spinning (10,000 rounds), for 13% more time when idle, with the same results. The gain depends on
# the machine: on a 2-core AMD EPYC (2026-12-06, medians of 2) the default took 3.4x and 10,000 rounds 5.2x, while
# one torch thread took 1.7x (the quick mode's setting, below). OpenMP reads the setting once, when torch loads it:
# importing course_utils before torch sets it for this process and every process it starts (each notebook's first
# cell does so; `make` targets and the test suite import it first too). A value you set yourself wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

# The quick mode (COURSE_QUICK=1, course_utils.quick) is for a busy laptop, where one torch thread per kernel beats
# two, which wait on each other for the core the other program holds. Beside one busy process on 2 cores: notebook
# 02's toy teacher, 80 steps in 8.2 s with one thread against 25.5 s with two (5.3 s with two, 8.3 s with one when
# idle; benchmarks/omp_spin.py); notebook 01's toy (a one-off run), 100 steps in 4.1 s against 16.8 s (3.8 s with
# two when idle).
if os.environ.get("COURSE_QUICK", "") not in ("", "0"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
