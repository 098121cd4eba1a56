"""Problem sets, trace reading, cons@k curves and token probabilities."""

from fractions import Fraction

import pytest

from course_utils import problems, toy_reasoner
from course_utils.reasoning import annotate_trace, cons_curve, is_correct
from course_utils.token_probs import plot_token_probabilities, token_probabilities

# Each word problem's answer, computed independently of the hand-written gold.
COMPUTED = [14 * 24 - 37, Fraction(180) / Fraction(5, 2), 1 - Fraction(3, 8) - Fraction(1, 4),
            Fraction(40) * Fraction(85, 100) * Fraction(110, 100), 204 // 3 + 1, (46 // 2 - 15) * 15,
            Fraction(135, 100) / 5 * 12, 180, 250 - 100, Fraction(5, 36), 12, Fraction(2, 3) * Fraction(30, 12),
            sum(72 % d == 0 for d in range(1, 73)), Fraction(12500) / Fraction(64, 100), 5 * 18 - (12 + 15 + 20 + 25),
            2**10 % 7, abs(30 * 3.5 - 6 * 30), 7 * 6 * 5, 10**2 // 2, 40]


def test_word_problem_golds_match_an_independent_computation():
    rows = problems.word_problems()
    assert len(rows) == len(COMPUTED) == 20
    for row, value in zip(rows, COMPUTED, strict=True):
        assert Fraction(row["gold"]) == Fraction(value), row["question"]
        assert is_correct(str(value) if not isinstance(value, Fraction) else f"{value.numerator}/{value.denominator}",
                          row["gold"])


def test_toy_problems_are_the_held_out_set():
    rows = problems.toy_problems(5)
    assert [r["gold"] for r in rows] == [str(a + b) for a, b in toy_reasoner.held_out_problems(5)]
    first = toy_reasoner.held_out_problems(1)[0]
    assert problems.with_instruction(rows[0]["question"]) == toy_reasoner.question(*first, instruction=True)


def test_benchmark_offline_and_unknown_names_are_clear(monkeypatch):
    from course_utils import model_source

    with pytest.raises(ValueError, match="unknown benchmark"):
        problems.benchmark("GSM9K")
    monkeypatch.setattr(model_source, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ConnectionError, match="cannot be reached.*word_problems"):
        problems.benchmark("MATH-500", n=10)


def test_check_steps_finds_the_wrong_line():
    good = toy_reasoner.column_trace(478, 958)
    assert all(row["right"] for row in toy_reasoner.check_steps(good)) and len(toy_reasoner.check_steps(good)) == 4
    bad = good.replace("7+5+1=13: write 3", "7+5+1=12: write 2")
    assert [row["right"] for row in toy_reasoner.check_steps(bad)] == [True, False, True, True]
    dropped = good.replace("carry 1\n7+5+1", "carry 1\n7+5+0")          # the carry was not taken over
    assert not all(row["right"] for row in toy_reasoner.check_steps(dropped))
    assert toy_reasoner.check_steps("I think it is 5")[0]["right"] is False


def test_annotate_trace_finds_reflection_words():
    rows = annotate_trace("First, 2+2=4.\n\nWait, let me check that again.\n\nYes, 4.")
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[1]["markers"] == ["Wait", "Let me check"]
    assert [r["text"] for r in annotate_trace("a\nb")] == ["a", "b"]


def test_cons_curve_averages_disjoint_groups():
    answers = [["1", "2", "1", "1"], ["5", "6", "6", "7"]]
    curve = cons_curve(answers, ["1", "6"], [1, 2, 4])
    assert curve[1] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert curve[4] == 1.0            # majority 1 for the first, 6 for the second
    with pytest.raises(ValueError, match="cons@8 needs 8"):
        cons_curve(answers, ["1", "6"], [8])


def test_token_probabilities_of_the_toy_and_their_picture():
    model, tokenizer = toy_reasoner.load()
    prompt = toy_reasoner.prompt_text(tokenizer, toy_reasoner.question(473, 958))
    rows = token_probabilities(model, tokenizer, prompt, toy_reasoner.completion(473, 958))
    assert "".join(piece for piece, _, _ in rows) == toy_reasoner.completion(473, 958)
    assert all(0 < p <= 1 and h >= 0 for _, p, h in rows)
    assert sum(p for _, p, _ in rows) / len(rows) > 0.9             # it knows this task well
    wrong = token_probabilities(model, tokenizer, prompt, toy_reasoner.completion(473, 958).replace("1431", "1531"))
    at = next(i for i, (a, b) in enumerate(zip(rows, wrong, strict=True)) if a[0] != b[0])   # the changed answer digit
    assert wrong[at][1] < 0.1 < rows[at][1]                          # the wrong digit is improbable, the right one not
    ax = plot_token_probabilities(rows)
    assert len(ax.patches) == len(rows)


def test_token_probabilities_in_chunks_equal_one_full_forward_pass():
    import torch

    model, tokenizer = toy_reasoner.load()
    prompt = toy_reasoner.prompt_text(tokenizer, toy_reasoner.question(473, 958))
    completion = toy_reasoner.completion(473, 958)
    chunked = token_probabilities(model, tokenizer, prompt, completion, chunk=3)
    whole = token_probabilities(model, tokenizer, prompt, completion, chunk=10_000)
    # reference: the plain recipe, full logits of one forward pass
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p_ids + c_ids])).logits[0, len(p_ids) - 1:-1]
    log_p = torch.log_softmax(logits.float(), -1)
    reference = log_p.gather(1, torch.tensor(c_ids)[:, None])[:, 0].exp()
    assert [r[0] for r in chunked] == [r[0] for r in whole]
    torch.testing.assert_close(torch.tensor([r[1:] for r in chunked]), torch.tensor([r[1:] for r in whole]))
    torch.testing.assert_close(torch.tensor([r[1] for r in chunked]), reference)
    with pytest.raises(ValueError, match="chunk must be a positive"):
        token_probabilities(model, tokenizer, prompt, completion, chunk=0)
