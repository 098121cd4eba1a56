"""Shared, tested code for the "DeepSeek, hands-on" notebooks: one module per idea (docs/maintaining.md, "The
package", says which modules a learner reads and which only run the course)."""

import os

__version__ = "0.1.0"

# torch's OpenMP threads spin while they wait; beside another busy program that stalls training many times over, and
# OpenMP reads this once, when torch loads: so it is set here, before any torch import (docs/maintaining.md, "Busy
# machines", has the measurements).
os.environ.setdefault("GOMP_SPINCOUNT", "10000")

# The quick mode runs one torch thread: on a busy laptop two threads wait on each other for the taken core.
if os.environ.get("COURSE_QUICK", "") not in ("", "0"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
