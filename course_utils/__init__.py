"""Shared, tested code for the "DeepSeek, hands-on" notebooks: one module per idea (the README's layout table says
which modules a learner reads and which only run the course)."""

import os

__version__ = "0.1.0"

# torch's CPU build runs its parallel operations on GNU OpenMP threads, which spin between operations before they
# sleep. When another program holds one of a laptop's cores, that spinning made a toy training loop 20x slower on 2
# cores; spinning briefly (10,000 rounds) made it 3.7x slower instead, for 13% more time when idle, with the same
# results (benchmarks/omp_spin.py). OpenMP reads the setting once, when torch loads it: importing course_utils
# before torch sets it for this process and every process it starts (each notebook's first cell does so; `make`
# targets and the test suite import it first too). A value you set yourself wins.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
