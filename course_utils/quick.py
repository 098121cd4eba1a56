"""The quick mode, for a slow or busy laptop: ``COURSE_QUICK=1`` (e.g. ``make lab QUICK=1``). Each notebook's run plan
(``course_utils.run_plans``) cuts its training and sampling; torch keeps to one thread (set by ``import
course_utils``, before torch loads). Where a short run could not show a lesson's effect, the plan loads what the full
recipe trained (shipped in the package) and trains only a labelled demonstration. Every figure that differs from the
full run is marked QUICK MODE; the checks cells assert the lessons' directions in both modes, the reference bars only
in the full mode, which is the default and what ``make test`` runs.
"""

from __future__ import annotations

import os

SWITCH = "COURSE_QUICK"
LABEL = "QUICK MODE"


def on() -> bool:
    """Is the quick mode switched on (``COURSE_QUICK`` set to anything but empty or 0)?"""
    return os.environ.get(SWITCH, "") not in ("", "0")


def banner() -> str:
    """The line the set-up cell prints: which mode this run is in."""
    if on():
        return (f"{LABEL} ({SWITCH}=1): shorter training and fewer samples (the README's time table); figures "
                "marked quick are not the reference run's, and the lessons' directions are still checked.")
    return f"Full mode: the reference run (set {SWITCH}=1 for a quick run on a slow or busy machine)."


def label(text: str, short: bool = False) -> str:
    """``text``, marked as a quick-mode figure when the quick mode is on (``short``: for titles and table heads)."""
    if not on():
        return text
    return f"{text} [{LABEL}]" if short else f"{text} [{LABEL}: not the reference figure]"
