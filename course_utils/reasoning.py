"""Reading R1-style completions: split the thinking from the answer, find the boxed answer, grade it.

An R1 distill writes ``<think>\\n ... \\n</think>\\n\\n`` and then its answer, with the final result in
``\\boxed{...}``. Its chat template already ends the prompt with ``<think>\\n``, so a raw completion usually starts
inside the thinking, without the opening tag; vLLM's reasoning parser returns the two parts apart.
"""

from __future__ import annotations

import re
from collections import Counter

THINK_START, THINK_END = "<think>", "</think>"
# DeepSeek's instruction for math problems, in the user's message (R1 model card, "Usage Recommendations")
BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def split_reasoning(text: str, thinking_open: bool = True) -> tuple[str, str]:
    """(reasoning, answer) of a completion, read the way vLLM's ``deepseek_r1`` reasoning parser reads it.

    ``thinking_open`` (the default): the prompt left the thinking open, as the R1 distills' chat template does (it
    ends in ``<think>\\n``). A ``<think>`` in the completion is dropped, the text before the first ``</think>`` is
    the reasoning and the rest the answer; a completion with no ``</think>`` was cut off while thinking, so it is
    all reasoning and no answer. ``thinking_open=False``: the prompt closed the thinking itself (e.g. a prefilled
    ``<think>\\n\\n</think>\\n\\n``), so all of the completion is answer.
    Surrounding whitespace is stripped from both parts.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    if not thinking_open:
        return "", text.strip()
    before, opened, after = text.partition(THINK_START)
    body = after if opened else before
    reasoning, closed, answer = body.partition(THINK_END)
    return (reasoning.strip(), answer.strip()) if closed else (body.strip(), "")


_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")   # LaTeX allows spaces (and a line break) before the brace


def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or with spaces before the brace, which LaTeX
    accepts too), braces balanced; None if there is none."""
    if not isinstance(text, str):
        return None
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    i = begin = starts[-1]
    depth = 1
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:i]
        i += 1
    return None   # unbalanced: the box was never closed (e.g. generation cut off)


def is_correct(prediction: str | None, gold: str) -> bool:
    """Does ``prediction`` equal ``gold`` mathematically (1/2 = 0.5 = \\frac{1}{2})? Graded by math-verify.
    A full completion is accepted too: its last boxed answer is graded."""
    if prediction is None:
        return False
    boxed = extract_boxed(prediction)
    candidate = boxed if boxed is not None else prediction
    if candidate.strip() == str(gold).strip():
        return True
    from math_verify import parse, verify

    def read(s: str):
        s = s.strip()
        return parse(s if s.startswith("$") else f"${s}$")

    try:
        return bool(verify(read(str(gold)), read(candidate)))
    except Exception:   # math-verify gives up on some inputs: then it is not a match
        return False


def pass_at_1(correct: list[list[bool]]) -> float:
    """Mean over problems of the fraction of the k samples that are right (the R1 paper's pass@1 with k samples)."""
    if not correct or any(len(c) == 0 for c in correct):
        raise ValueError("need at least one sample for every problem")
    return sum(sum(c) / len(c) for c in correct) / len(correct)


def majority_answer(answers: list[str | None]) -> str | None:
    """Most frequent non-empty answer (ties: the one seen first)."""
    counts = Counter(a.strip() for a in answers if a)
    return counts.most_common(1)[0][0] if counts else None


def cons_at_k(answers: list[list[str | None]], golds: list[str]) -> float:
    """Majority vote over each problem's k answers, then accuracy (the R1 paper's cons@64 with k = 64)."""
    if len(answers) != len(golds):
        raise ValueError(f"{len(answers)} answer lists for {len(golds)} gold answers")
    return sum(is_correct(majority_answer(a), g) for a, g in zip(answers, golds, strict=True)) / len(golds)


def token_counts(text: str, tokenizer, thinking_open: bool = True) -> dict[str, int]:
    """Reasoning and answer tokens of a completion, counted with the model's own tokenizer."""
    reasoning, answer = split_reasoning(text, thinking_open)
    count = lambda s: len(tokenizer(s, add_special_tokens=False)["input_ids"]) if s else 0
    return {"reasoning_tokens": count(reasoning), "answer_tokens": count(answer)}


# ---------------------------------------------------------------- reading traces and curves

# Words with which R1-style models pause, doubt or re-check (the R1 paper's "aha moment" is a "Wait").
REFLECTION_MARKERS = ("Wait", "Hmm", "But wait", "Alternatively", "Let me check", "Let me verify", "double-check",
                      "Actually", "However")


def annotate_trace(reasoning: str) -> list[dict]:
    """One row per non-empty paragraph (or line) of a trace: its text, length and the reflection words in it."""
    parts = [p for p in reasoning.split("\n\n") if p.strip()]
    if len(parts) <= 1:
        parts = [p for p in reasoning.splitlines() if p.strip()]
    return [{"step": i + 1, "text": p.strip(), "chars": len(p.strip()),
             "markers": [m for m in REFLECTION_MARKERS if m.lower() in p.lower()]} for i, p in enumerate(parts)]


def cons_curve(answers: list[list[str | None]], golds: list[str], ks: list[int]) -> dict[int, float]:
    """cons@k for each k, averaged over the disjoint groups of k samples that each problem's answers allow
    (k = 1 is then pass@1 over all samples). Every problem needs at least max(ks) answers."""
    need = max(ks)
    if any(len(a) < need for a in answers):
        raise ValueError(f"cons@{need} needs {need} answers for every problem")
    curve = {}
    for k in ks:
        groups = need // k
        curve[k] = sum(cons_at_k([a[g * k:(g + 1) * k] for a in answers], golds) for g in range(groups)) / groups
    return curve
