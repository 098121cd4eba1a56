"""Problem sets with gold answers: the toy task's held-out problems, math word problems written for this course,
and (online) MATH-500 or AIME 2024 through ``datasets``.

Each problem is a dict ``{"id", "question", "gold"}``; ``question`` is the bare problem (the caller adds DeepSeek's
``\\boxed{}`` instruction or not, to test it), ``gold`` a LaTeX-free answer that ``reasoning.is_correct`` reads.
"""

from __future__ import annotations

from course_utils import toy_reasoner
from course_utils.reasoning import BOXED_INSTRUCTION

# Written for this course. The answers were worked by hand and each one is checked in tests/test_problems.py by
# an independent computation. Several answers are fractions or decimals, so that math-verify's equivalences matter.
WORD_PROBLEMS = [
    ("A baker makes 14 trays of 24 cookies and sells all but 37. How many cookies does she sell?", "299"),
    ("A train travels 180 km in 2.5 hours. What is its average speed in km per hour?", "72"),
    ("Mia reads 3/8 of a book on Monday and 1/4 of it on Tuesday. What fraction of the book is left?", "3/8"),
    ("A shirt costs $40. It is discounted by 15%, then the discounted price is raised by 10%. "
     "What is the final price in dollars?", "37.4"),
    ("The sum of three consecutive integers is 204. What is the largest of them?", "69"),
    ("A rectangle has a perimeter of 46 cm and a length of 15 cm. What is its area in square cm?", "120"),
    ("If 5 pencils cost $1.35, how many dollars do 12 pencils cost?", "3.24"),
    ("What is the least common multiple of 12, 18 and 30?", "180"),
    ("A tank holds 250 liters and is 40% full. How many liters must be added to fill it?", "150"),
    ("Two dice are rolled. What is the probability that the sum is 8?", "5/36"),
    ("Solve for x: 3x - 7 = 2x + 5.", "12"),
    ("A recipe uses 2/3 cup of sugar for 12 muffins. How many cups of sugar are needed for 30 muffins?", "5/3"),
    ("How many positive divisors does 72 have?", "12"),
    ("A car's value drops by 20% each year. It is worth $12,500 now. What was it worth two years ago, in dollars?",
     "19531.25"),
    ("The average of five numbers is 18. Four of them are 12, 15, 20 and 25. What is the fifth?", "18"),
    ("What is the remainder when 2^10 is divided by 7?", "2"),
    ("A clock shows 3:00. What is the smaller angle between the hour and minute hands, in degrees, at 3:30?", "75"),
    ("How many ways can 3 of 7 different books be arranged in a row on a shelf?", "210"),
    ("A square's diagonal is 10 cm. What is its area in square cm?", "50"),
    ("Tom is 4 times as old as his son. In 20 years he will be twice as old. How old is Tom now?", "40"),
]

BENCHMARKS = {   # name -> (Hugging Face dataset, split, question field, answer field)
    "MATH-500": ("HuggingFaceH4/MATH-500", "test", "problem", "answer"),
    "AIME-2024": ("HuggingFaceH4/aime_2024", "train", "problem", "answer"),
}


def toy_problems(n: int = 500) -> list[dict]:
    """The toy R1's held-out addition problems (never seen in its training)."""
    return [{"id": f"toy-{i}", "question": f"What is {a} + {b}?", "gold": str(a + b)}
            for i, (a, b) in enumerate(toy_reasoner.held_out_problems(n))]


def word_problems() -> list[dict]:
    return [{"id": f"word-{i}", "question": q, "gold": g} for i, (q, g) in enumerate(WORD_PROBLEMS)]


def with_instruction(question: str, instruction: bool = True) -> str:
    """DeepSeek's boxed instruction before the question (the course's toy R1 was trained with it there)."""
    return f"{BOXED_INSTRUCTION} {question}" if instruction else question


def benchmark(name: str = "MATH-500", n: int | None = None) -> list[dict]:
    """Problems of a public benchmark through ``datasets`` (a download: MATH-500 is about 0.4 MB).
    Offline or without ``datasets`` installed, says so instead of hanging."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    from course_utils.model_source import hub_reachable

    repo, split, question, answer = BENCHMARKS[name]
    if not hub_reachable():
        raise ConnectionError(f"{name} comes from the Hugging Face Hub ({repo}), which cannot be reached from here. "
                              "Connect to the internet, or use problems.word_problems() / toy_problems() offline")
    try:
        from datasets import load_dataset
    except ImportError:
        raise ImportError(f"{name} is loaded with the `datasets` package: pip install datasets") from None
    rows = load_dataset(repo, split=split)
    rows = rows.select(range(min(n, len(rows)))) if n else rows
    return [{"id": f"{name}-{i}", "question": r[question], "gold": str(r[answer])} for i, r in enumerate(rows)]
