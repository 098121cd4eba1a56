"""The splitter, extractor and grader: examples, and property-based tests (hypothesis) on any text."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.reasoning import (
    cons_at_k,
    extract_boxed,
    is_correct,
    majority_answer,
    pass_at_1,
    split_reasoning,
    token_counts,
)


@pytest.mark.parametrize("text, expected", [
    ("<think>\nplan\n</think>\n\nThe answer is \\boxed{4}.", ("plan", "The answer is \\boxed{4}.")),
    ("plan\n</think>\n\n\\boxed{4}", ("plan", "\\boxed{4}")),            # prompt ended in <think>\n
    ("<think>\nstill thinking", ("still thinking", "")),                  # cut off before </think>
    ("3+8+0=11: write 1, carry", ("3+8+0=11: write 1, carry", "")),       # cut off, prompt ended in <think>\n
    ("\n</think>\n\n\\boxed{4}", ("", "\\boxed{4}")),                     # empty thinking
])
def test_split_reasoning(text, expected):
    assert split_reasoning(text) == expected


def test_a_prompt_that_closed_the_thinking_makes_the_completion_all_answer():
    assert split_reasoning("Just the answer: 4", thinking_open=False) == ("", "Just the answer: 4")
    assert split_reasoning("4}\n</think> 5", thinking_open=False) == ("", "4}\n</think> 5")


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{42}", "42"),
    ("so \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),                    # nested braces
    ("\\boxed{1} then \\boxed{2}", "2"),                                  # the last box counts
    ("no box here", None),
    ("\\boxed{unclosed", None),
    ("\\fbox{7}", "7"),
    ("\\boxed{a{b{c}}d}", "a{b{c}}d"),
    ("\\boxed {12}", "12"),                                             # LaTeX accepts a space before the brace
    ("\\boxed\n{12}", "12"),
    ("\\fbox {3} and then \\boxed  {4}", "4"),
    ("\\boxedx{5}", None),                                              # another command, not a box
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize("prediction, gold, expected", [
    ("0.5", "1/2", True), ("\\frac{1}{2}", "0.5", True), ("\\boxed{\\frac{1}{2}}", "1/2", True),
    ("1431", "1431", True), ("1432", "1431", False), (None, "1", False), ("", "1", False),
    ("The answer is \\boxed{1,431}.", "1431", True),
])
def test_is_correct_uses_math_equivalence(prediction, gold, expected):
    assert is_correct(prediction, gold) is expected


def test_pass_at_1_and_cons_at_k():
    assert pass_at_1([[True, False], [True, True]]) == 0.75
    assert majority_answer(["3", "4", "3", None]) == "3" and majority_answer([None, ""]) is None
    assert cons_at_k([["3", "4", "3"], ["1", "2", "2"]], ["3", "1"]) == 0.5
    with pytest.raises(ValueError):
        pass_at_1([[]])
    with pytest.raises(ValueError):
        cons_at_k([["1"]], ["1", "2"])


class CharTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text)}


def test_token_counts():
    assert token_counts("ab</think>cde", CharTokenizer()) == {"reasoning_tokens": 2, "answer_tokens": 3}
    assert token_counts("abcde", CharTokenizer()) == {"reasoning_tokens": 5, "answer_tokens": 0}   # cut off
    assert token_counts("abcde", CharTokenizer(), thinking_open=False) == {"reasoning_tokens": 0, "answer_tokens": 5}


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_crash_on_any_text(text):
    reasoning, answer = split_reasoning(text)
    assert isinstance(reasoning, str) and isinstance(answer, str)
    boxed = extract_boxed(text)
    assert boxed is None or isinstance(boxed, str)


safe_text = st.text(alphabet=st.characters(blacklist_characters="<>{}\\"), max_size=60)


@settings(max_examples=300, deadline=None)
@given(safe_text, safe_text, st.booleans())
def test_round_trip_on_generated_traces(thinking, answer, opening_tag):
    text = ("<think>\n" if opening_tag else "") + thinking + "\n</think>\n\n" + answer
    assert split_reasoning(text) == (thinking.strip(), answer.strip())


@settings(max_examples=300, deadline=None)
@given(safe_text, safe_text)
def test_boxed_round_trip(prefix, content):
    assert extract_boxed(f"{prefix}\\boxed{{{content}}}") == content
