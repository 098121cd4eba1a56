"""Automatic checks for the notebooks' exercises: a clear verdict, a hint, and no exception for 'not yet'."""

from __future__ import annotations

import math


def check(name: str, answer, expected, *, rel: float = 0.01, hint: str = "") -> bool:
    """Compare a learner's answer with the expected value. ``None`` means not answered yet (no failure). A set of
    expected values accepts any of them (e.g. settings that tie). ``rel=0`` asks for the exact number."""
    if answer is None:
        print(f"{name}: not answered yet. Replace None with your answer and run this cell again.")
        return False
    if isinstance(expected, (set, frozenset)):
        ok = any(answer == option for option in expected)   # no hashing: an answer may be a list
    elif isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            ok = math.isclose(float(answer), float(expected), rel_tol=rel)
        except (TypeError, ValueError):
            ok = False
    else:
        ok = answer == expected
    if ok:
        print(f"{name}: correct.")
    else:
        print(f"{name}: {answer!r} is not right yet." + (f" Hint: {hint}" if hint else ""))
    return ok
