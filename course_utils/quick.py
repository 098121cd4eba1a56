"""The quick mode, for a slow or busy laptop: ``COURSE_QUICK=1`` (e.g. ``make lab QUICK=1``) cuts each notebook's
training and sampling, and keeps torch to one thread (set by ``import course_utils``, before torch loads: two
threads wait on each other for the core another program holds), so that a notebook runs in about two minutes beside
a busy program on two cores (11-132 s measured, README). Its figures are not the reference run's (shorter training
learns less), every output that differs says so, and the notebooks' checks of the reference figures are skipped. The
full mode is the default, and what the tests run.
"""

from __future__ import annotations

import os

SWITCH = "COURSE_QUICK"
LABEL = "QUICK MODE"
SKIPPED = (f"{LABEL}: the checks of the reference run's figures are skipped (shorter training and fewer samples "
           f"give other figures). Unset {SWITCH} for the full run.")


def on() -> bool:
    """Is the quick mode switched on (``COURSE_QUICK`` set to anything but empty or 0)?"""
    return os.environ.get(SWITCH, "") not in ("", "0")


def choose(full, quick):
    """``quick`` in the quick mode, else ``full``: how the notebooks size their work."""
    return quick if on() else full


def banner() -> str:
    """The line the set-up cell prints: which mode this run is in."""
    if on():
        return (f"{LABEL} ({SWITCH}=1): shorter training and fewer samples, about 2 minutes a notebook; figures "
                "marked quick are not the reference run's.")
    return f"Full mode: the reference run (set {SWITCH}=1 for a quick run on a slow or busy machine)."


def label(text: str) -> str:
    """``text``, marked as a quick-mode figure when the quick mode is on."""
    return f"{text} [{LABEL}: not the reference figure]" if on() else text
