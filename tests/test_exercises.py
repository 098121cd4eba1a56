from course_utils.exercises import check


def test_check_accepts_close_numbers_and_rejects_others(capsys):
    assert check("e", 4.0, 4.01, rel=0.01)
    assert not check("e", 5.0, 4.0, hint="think")
    assert "Hint: think" in capsys.readouterr().out
    assert not check("e", "abc", 4.0)
    assert check("e", "R1", "R1") and not check("e", "V3", "R1")


def test_unanswered_is_reported_not_raised(capsys):
    assert check("e", None, 1.0) is False
    assert "not answered yet" in capsys.readouterr().out


def test_a_set_accepts_any_of_its_answers_and_rel_zero_is_exact():
    ties = {"thinking free", "thinking skipped"}
    assert check("e", "thinking skipped", ties) and check("e", "thinking free", ties)
    assert not check("e", "T=1.5", ties) and not check("e", ["thinking free"], ties)
    blocks = (2 * 2**30 // 768) // 128 * 128                    # notebook 03 exercise 1: whole blocks of 128
    assert check("e", blocks, blocks, rel=0)
    assert not check("e", 2 * 2**30 // 768, blocks, rel=0)     # not rounded to whole blocks
    assert not check("e", 2 * 2**30 / 768, blocks, rel=0)      # not even whole tokens


def test_check_function_says_not_written_right_or_which_input_failed(capsys):
    from course_utils.exercises import check_function
    from course_utils.reasoning import majority_answer

    cases = [([None, "4", "4"],), (["3", "5", "3"],), (["7", None, "8", "8"],), (["1", "2"],), ([None],)]

    def stub(answers):
        raise NotImplementedError

    def right(answers):
        counts = {}
        for a in answers:
            if a:
                counts[a.strip()] = counts.get(a.strip(), 0) + 1
        return max(counts, key=counts.get) if counts else None   # max keeps the first of equal counts

    def last_on_ties(answers):
        from collections import Counter
        counts = Counter(a for a in answers if a)
        return max(reversed(list(counts)), key=counts.get) if counts else None

    def crashes_on_none(answers):
        return answers[0].strip()

    assert not check_function("Ex", stub, majority_answer, cases)
    assert "not written yet" in capsys.readouterr().out
    assert check_function("Ex", right, majority_answer, cases)
    assert "correct on all 5 cases" in capsys.readouterr().out
    assert not check_function("Ex", last_on_ties, majority_answer, cases, hint="ties: the first seen")
    out = capsys.readouterr().out
    assert "case 4 of 5" in out and "input: (['1', '2'])" in out and "first difference: expected '1', got '2'" in out
    assert "Hint: ties" in out
    assert not check_function("Ex", last_on_ties, majority_answer, cases, hint="ties: the first seen",
                              mistakes=[(last_on_ties, "a tie goes to the answer seen first")])
    out = capsys.readouterr().out
    assert "Looks like a classic mistake: a tie goes to the answer seen first" in out and "Hint" not in out
    assert not check_function("Ex", crashes_on_none, majority_answer, cases)
    assert "case 1 of 5 raised AttributeError" in capsys.readouterr().out


def test_check_function_compares_numbers_and_tensors_with_tolerance():
    import torch

    from course_utils.exercises import check_function

    cases = [(torch.tensor([1.0, 2.0]),)]
    assert check_function("t", lambda x: x * 2 + 1e-7, lambda x: x * 2, cases)
    assert not check_function("t", lambda x: x * 2.01, lambda x: x * 2, cases)
    assert not check_function("t", lambda x: (x * 2).tolist(), lambda x: x * 2, cases)     # a list is not a tensor
    assert check_function("n", lambda a: a / 3, lambda a: a / 3 + 1e-12, [(1.0,)])
    assert not check_function("n", lambda a: True, lambda a: 1, [(1,)])                   # bool is not the number 1


def _solution_cell(snippet: str):
    """The functions a notebook's worked-solutions cell defines (so the tests check the notebook's own solution)."""
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).parent.parent / "notebooks" / "04_examining_reasoning.ipynb").read_text())
    source = next("".join(c["source"]) for c in nb["cells"] if snippet in "".join(c["source"]))
    namespace = {}
    exec(source.split("\nassert ")[0], namespace)          # the definitions, not the checks
    return namespace


def test_notebook_04_majority_exercise_accepts_the_solution_and_rejects_classic_mistakes():
    from collections import Counter

    from course_utils.exercise_cases import random_votes
    from course_utils.exercises import check_function
    from course_utils.reasoning import majority_answer

    cases = random_votes(200)
    solution = _solution_cell("def my_majority(answers):")["my_majority"]
    assert check_function("5", solution, majority_answer, cases)
    no_strip = lambda answers: (Counter(a for a in answers if a).most_common(1) or [(None,)])[0][0]
    last_on_ties = lambda answers: (max(reversed(list(Counter(a.strip() for a in answers if a))),
                                        key=Counter(a.strip() for a in answers if a).get, default=None))
    counts_empty = lambda answers: Counter(answers).most_common(1)[0][0]
    for wrong in (no_strip, last_on_ties, counts_empty):
        assert not check_function("5", wrong, majority_answer, cases)


def test_notebook_04_boxed_exercise_accepts_the_solution_and_rejects_classic_mistakes():
    import re

    from course_utils.exercise_cases import random_completions
    from course_utils.exercises import check_function
    from course_utils.reasoning import extract_boxed

    cases = random_completions(200)
    solution = _solution_cell("def my_boxed(text):")["my_boxed"]
    assert check_function("6", solution, extract_boxed, cases)
    no_nesting = lambda text: (re.findall(r"\\boxed\{([^{}]*)\}", text) or [None])[-1]
    first_box = lambda text: solution(text[: text.find("\\boxed{", text.find("\\boxed{") + 1)]
                                      if text.count("\\boxed{") > 1 else text)
    unclosed_to_end = lambda text: (solution(text) if solution(text) is not None or "\\boxed{" not in text
                                    else text[text.rfind("\\boxed{") + 7:])
    for wrong in (no_nesting, first_box, unclosed_to_end):
        assert not check_function("6", wrong, extract_boxed, cases)
