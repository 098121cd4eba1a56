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


def _same(got, expected, rel: float) -> bool:
    """Equal, with a relative tolerance for numbers and tensors (nested lists and tuples compared item by item)."""
    import torch

    if isinstance(expected, torch.Tensor):
        return isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(
            got.float(), expected.float(), rtol=rel, atol=1e-6)
    if isinstance(expected, float) or (isinstance(expected, int) and isinstance(got, float)):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and math.isclose(got, expected, rel_tol=rel,
                                                                                             abs_tol=1e-9)
    if isinstance(expected, (list, tuple)) and isinstance(got, (list, tuple)):
        return len(got) == len(expected) and all(_same(g, e, rel) for g, e in zip(got, expected, strict=True))
    return type(got) is type(expected) and got == expected


def check_function(name: str, function, reference, cases: list[tuple], *, rel: float = 1e-4, hint: str = "") -> bool:
    """Run a learner's ``function`` and the course's tested ``reference`` on every case (a tuple of arguments) and
    compare. A stub that raises ``NotImplementedError`` means not written yet (no failure). On the first mismatch it
    says which input, what was expected and what came back, so the learner can reproduce it."""
    for number, args in enumerate(cases, 1):
        try:
            got = function(*args)
        except NotImplementedError:
            print(f"{name}: not written yet. Fill in the function and run this cell again.")
            return False
        except Exception as error:   # the learner's code: report it, do not stop the notebook
            print(f"{name}: case {number} of {len(cases)} raised {type(error).__name__}: {error}\n  input: {args!r}")
            return False
        expected = reference(*args)
        if not _same(got, expected, rel):
            print(f"{name}: case {number} of {len(cases)} is not right yet.\n  input:    {args!r}\n"
                  f"  expected: {expected!r}\n  got:      {got!r}" + (f"\n  Hint: {hint}" if hint else ""))
            return False
    print(f"{name}: correct on all {len(cases)} cases.")
    return True


# ---------------------------------------------------------------- random inputs for the coding exercises


def random_votes(n: int = 200, seed: int = 5) -> list[tuple]:
    """Cases for notebook 04's majority-vote exercise: lists of 1-6 answers with spaces, empties and ties."""
    import random

    rng = random.Random(seed)
    return [([rng.choice(["12", " 12", "7", "3/8", None, ""]) for _ in range(rng.randint(1, 6))],) for _ in range(n)]


def random_completions(n: int = 200, seed: int = 6) -> list[tuple]:
    """Cases for notebook 04's boxed-answer exercise: text with 0-7 pieces, nested braces and unclosed boxes."""
    import random

    rng = random.Random(seed)
    pieces = ["so ", "the sum is ", "\\boxed{42}", "\\boxed{\\frac{3}{8}}", "\\boxed{x^{2}}", "\\boxed{7", "}", " done",
              "{", "\n"]
    return [("".join(rng.choice(pieces) for _ in range(rng.randint(1, 7))),) for _ in range(n)]
