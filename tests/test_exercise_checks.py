"""Every exercise check accepts the right answer and rejects classic wrong ones: the numeric checks of
``course_utils.answers`` (one right, at least two wrong answers each) and the coding exercises' checks (a right
implementation and at least two wrong ones each, on the notebooks' own random cases)."""

import math
import re
import statistics

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from course_utils import answers, catalog, coding_checks, hardware, r1_zero
from course_utils import exercise_cases as cases
from course_utils.exercises import check_function

GIB = 2**30
KV_14B = catalog.kv_cache_bytes_per_token("R1-Distill-Qwen-14B")
KV_1_5B = catalog.kv_cache_bytes_per_token("R1-Distill-Qwen-1.5B")
KV_7B = catalog.kv_cache_bytes_per_token("DeepSeek-R1-Distill-Qwen-7B")
NORMS = {"without T²": [1.0, 0.25, 0.0625, 0.0156, 0.0039, 0.00098]}     # about 1/T² at T = 1, 2, 4, 8, 16, 32
TEMPERATURES = [1, 2, 4, 8, 16, 32]
TIPS = pd.DataFrame({"accuracy": [0.98, 0.97, 0.10, 0.10, 0.60]},
                    index=["recommended", "greedy", "thinking skipped", "no <think>", "system prompt"])
KS = [1, 2, 4, 8, 16, 32, 64]
PASSK = pd.DataFrame({"base": [0.30, 0.45, 0.60, 0.72, 0.80, 0.86, 0.90],
                      "after RL": [0.55, 0.65, 0.72, 0.78, 0.815, 0.87, 0.905]}, index=KS)
H100 = hardware.gpu("H100").memory_gib
W7B = catalog.weight_bytes("DeepSeek-R1-Distill-Qwen-7B") / GIB
SHARES = sum(f * p for f, p in zip([0.5, 0.2, 0.2, 0.1], [0.4, 0.25, 0.2, 0.15], strict=True))
REWARDS = [3.0, 1.0, 0.0, 2.0, 2.0, 0.0]

NUMERIC = {   # exercise: (check, extra arguments, right answer, wrong answers)
    "00.1": (answers.exercise_00_1, (), 20_000 * KV_14B / GIB, [20_000 * KV_14B / GIB / 2, 20_000 * KV_14B / 1e9,
                                                                 20_000 * KV_14B / GIB * 5]),
    "00.2": (answers.exercise_00_2, (), 4, [1, 2, 8]),
    "00.3": (answers.exercise_00_3, (), (1.2 * 0.07 + 1.8 * 0.27 + 1.5 * 1.10), [3 * 0.27 + 1.5 * 1.10,
                                                                                1.2 * 0.14 + 1.8 * 0.55 + 1.5 * 2.19]),
    "01.1": (answers.exercise_01_1, (), 1.4, [2.4, 2.0, 0.35]),
    "01.2": (answers.exercise_01_2, (), math.comb(128, 16) / math.comb(32, 4), [4, math.comb(128, 16)]),
    "01.3": (answers.exercise_01_3, (), 0.01 * 4 * SHARES, [SHARES * 4, 0.04, 0.01 * SHARES]),
    "02.1": (answers.exercise_02_1, (), math.e / (math.e + math.exp(0.5) + 1), [0.665, 2 / 3]),
    "02.2": (answers.exercise_02_2, (), 0.8, [0.2, 0.48]),
    "02.3": (answers.exercise_02_3, (NORMS, TEMPERATURES), 16, [4, 1 / 16]),
    "03.1": (answers.exercise_03_1, (), (3 * GIB // KV_1_5B) // 16 * 16, [3 * GIB // KV_1_5B, 3 * GIB / KV_1_5B,
                                                                         (3 * GIB // KV_1_5B) // 128 * 128]),
    "03.2": (answers.exercise_03_2, (), 32768 * KV_7B / GIB, [32768 * KV_7B / 1e9, 32768 * KV_7B / GIB / 2]),
    "03.2b": (answers.exercise_03_2b, (), int((H100 * 0.9 - 2 - W7B) // (32768 * KV_7B / GIB)),
              [int((H100 - 2 - W7B) // (32768 * KV_7B / GIB)), int((H100 * 0.9 - W7B) // (32768 * KV_7B / GIB))]),
    "04.1": (answers.exercise_04_1, (), 7 / 12, [1 / 3, 1.0, 2 / 3]),
    "04.3": (answers.exercise_04_3, (TIPS,), "no <think>", ["recommended", "greedy"]),
    "05.1": (answers.exercise_05_1, (), (3 - 4 / 3) / (statistics.stdev(REWARDS) + 1e-4),
             [3 - 4 / 3, (3 - 4 / 3) / statistics.pstdev(REWARDS), 3 / statistics.stdev(REWARDS)]),
    "05.3": (answers.exercise_05_3, (PASSK, KS), 16, [64, 1]),
    "06.1": (answers.exercise_06_1, (0.8, 400.0), 0.8 / (400 * 0.5 * 3600) * 1e6,
             [0.8 / (400 * 3600) * 1e6, 0.8 / (400 * 0.5) * 1e6]),
    "06.2": (answers.exercise_06_2, (0.8, 400.0, 2.19), 0.8e6 / (400 * 3600 * 2.19),
             [400 * 3600 * 2.19 / 0.8e6, 0.8e6 / (400 * 3600 * 2.19) / 3600]),
    "06.3": (answers.exercise_06_3, (256,), 156, [256, 155, 128]),
}


@pytest.mark.parametrize("exercise", sorted(NUMERIC))
def test_numeric_check_accepts_the_answer_and_rejects_classic_mistakes(exercise, capsys):
    check, extra, right, wrongs = NUMERIC[exercise]
    assert len(wrongs) >= 2
    assert check(right, *extra), capsys.readouterr().out
    for wrong in wrongs:
        assert not check(wrong, *extra), f"{exercise} accepted the wrong answer {wrong!r}"
    assert check(None, *extra) is False and "not answered yet" in capsys.readouterr().out


def test_a_classic_mistake_gets_its_own_explanation(capsys):
    assert not answers.exercise_00_1(20_000 * KV_14B / GIB / 2)
    assert "K or V alone" in capsys.readouterr().out
    assert not answers.exercise_04_1(1 / 3)
    assert "first sample only" in capsys.readouterr().out


def test_exercise_04_2_is_checked_against_math_verify_itself():
    from course_utils.reasoning import is_correct

    truth = [is_correct(form, "3/8") for form in answers.FORMS_04]
    assert answers.exercise_04_2(truth)
    assert not answers.exercise_04_2([True] * 5) and not answers.exercise_04_2([not v for v in truth])


def test_exercise_05_3_says_so_when_no_k_qualifies(capsys):
    far = pd.DataFrame({"base": [0.1] * len(KS), "after RL": [0.5] * len(KS)}, index=KS)
    assert answers.exercise_05_3(None, far, KS) and "nothing to find" in capsys.readouterr().out


# ---------------------------------------------------------------- coding exercises: right and wrong solutions


def _sequence_balance(scores, indices, n_experts, seq_len, top_k, alpha):
    chosen = torch.zeros(indices.shape[0], n_experts).scatter(1, indices, 1.0).view(-1, seq_len, n_experts)
    f = chosen.sum(dim=1) * n_experts / (top_k * seq_len)
    p = (scores / scores.sum(dim=-1, keepdim=True)).view(-1, seq_len, n_experts).mean(dim=1)
    return alpha * (f * p).sum(dim=-1).mean()


def _kept(indices, capacity_factor, n_experts):
    tokens, k = indices.shape
    capacity = math.ceil(capacity_factor * tokens * k / n_experts)
    taken, keep = [0] * n_experts, torch.zeros(tokens, k, dtype=torch.bool)
    for t in range(tokens):
        for j in range(k):
            expert = int(indices[t, j])
            keep[t, j] = taken[expert] < capacity
            taken[expert] += 1
    return keep


def _sequence_kd(student, teacher, labels, T):
    keep = labels != -100
    log_p, log_q = F.log_softmax(teacher[keep] / T, dim=-1), F.log_softmax(student[keep] / T, dim=-1)
    return T**2 * (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def _english_share(text):
    parsed = r1_zero.parse(text)
    words = re.findall(r"[A-Za-z]+", parsed[0] if parsed else text)
    return 1 - sum(w in r1_zero.GERMAN_WORDS for w in words) / len(words) if words else 1.0


def _boxed(text):
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 1, start + len("\\boxed{")
    for i in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i]
    return None


def _majority(votes):
    counts = {}
    for vote in votes:
        if vote and vote.strip():
            counts[vote.strip()] = counts.get(vote.strip(), 0) + 1
    return max(counts, key=counts.get) if counts else None


RIGHT = {   # a right solution for each coding exercise, written as a learner would
    "00.4": lambda c, d: 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * (
        c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]) * catalog.BYTES_PER_PARAM[d],
    "00.5": lambda c, d: c["num_hidden_layers"] * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * (
        catalog.BYTES_PER_PARAM[d]),
    "01.4": _sequence_balance,
    "01.5": _kept,
    "02.4": _sequence_kd,
    "02.5": lambda s, t, T: T * ((s / T).softmax(-1) - (t / T).softmax(-1)) / s.shape[0],
    "03.4": lambda v, q: _percentile(v, q),
    "03.5": lambda b, kv, block: int(b // kv) // block * block,
    "04.4": _majority,
    "04.5": _boxed,
    "05.2": _english_share,
    "05.5": lambda n, c, k: 1 - math.comb(n - c, k) / math.comb(n, k),
    "06.6": lambda h, n, api: h * n / 3600 / (api / 1e6),
    "07.1": lambda nope, rope, yarn: _mla_scale(nope, rope, yarn),
    "07.2": lambda x, w, norm, positions, latent, rope: _mla_entry(x, w, norm, positions, latent, rope),
}


def _mla_scale(nope, rope, yarn):
    scale = 1 / math.sqrt(nope + rope)
    if yarn and yarn.get("mscale_all_dim") and yarn["factor"] > 1:
        mscale = 1 + 0.1 * yarn["mscale_all_dim"] * math.log(yarn["factor"])
        scale = scale * mscale**2
    return scale


def _mla_entry(x, w, norm, positions, latent_size, rope_size):
    from course_utils import mla

    compressed = x @ w.T
    latent, key = compressed[..., :latent_size], compressed[..., latent_size:]
    rms = (latent.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt()
    return latent / rms * norm, mla.rotate(key, positions, mla.MLAConfig(x.shape[-1], 1, latent_size, 2, rope_size, 2))


def _percentile(values, q):
    ordered = sorted(values)
    position = q / 100 * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def test_every_coding_exercise_has_a_right_solution_here():
    assert set(RIGHT) == set(coding_checks.EXERCISES)


@pytest.mark.parametrize("key", sorted(coding_checks.EXERCISES))
def test_coding_check_accepts_a_right_solution_and_names_each_classic_mistake(key, capsys):
    exercise = coding_checks.EXERCISES[key]
    assert len(exercise.mistakes) >= 2
    assert coding_checks.check(key, RIGHT[key]), capsys.readouterr().out
    capsys.readouterr()
    whys = [why for _, why in exercise.mistakes]
    for number, (wrong, _) in enumerate(exercise.mistakes, 1):
        assert not coding_checks.check(key, wrong), f"classic mistake {number} passed"
        out = capsys.readouterr().out
        assert "input: " in out and "first difference:" in out
        # the message names this mistake, or another that gives the same result on the failing input
        assert "Looks like a classic mistake:" in out and any(w in out for w in whys), out


def test_a_failing_case_shows_where_it_differs_not_the_whole_tensor(capsys):
    values = torch.arange(40.0).view(4, 10)
    wrong = values.clone()
    wrong[2, 7] = -1.0
    assert not check_function("E", lambda x: wrong, lambda x: values, [(values,)])
    out = capsys.readouterr().out
    assert "first difference: [2, 7]: expected 27, got -1" in out
    assert "tensor(4, 10) [0, 1, 2, 3, ...]" in out and "39" not in out          # the input, in brief
    assert not check_function("E", lambda x: values[0], lambda x: values, [(values,)])
    assert "expected shape (4, 10), got shape (10,)" in capsys.readouterr().out


def test_the_typed_endpoint_check_uses_bentomls_own_model(capsys):
    from typing import Annotated

    from annotated_types import Ge, Le, MaxLen, MinLen

    from course_utils.bento_service import SETTINGS, DeepSeekDistill
    from course_utils.exercises import check_endpoint

    spec = DeepSeekDistill.apis["solve"].input_spec
    bodies = cases.random_solve_payloads(SETTINGS.max_model_len)
    top = SETTINGS.max_model_len

    def right(self, question: Annotated[str, MinLen(1), MaxLen(4000)], max_tokens: Annotated[int, Ge(1), Le(top)] = 9,
              temperature: Annotated[float, Ge(0), Le(2)] = 0.6): ...

    def no_upper_bound(self, question: Annotated[str, MinLen(1)], max_tokens: Annotated[int, Ge(1), Le(top)] = 9,
                       temperature: Annotated[float, Ge(0), Le(2)] = 0.6): ...

    def zero_tokens(self, question: Annotated[str, MinLen(1), MaxLen(4000)], max_tokens: Annotated[int, Ge(0)] = 9,
                    temperature: Annotated[float, Ge(0), Le(2)] = 0.6): ...

    def strict_temperature(self, question: Annotated[str, MinLen(1), MaxLen(4000)],
                           max_tokens: Annotated[int, Ge(1), Le(top)] = 9,
                           temperature: Annotated[float, Ge(0), Le(2)] = 0.6): ...
    strict_temperature.__annotations__["temperature"] = Annotated[float, Ge(0), Le(1.99)]

    def stub(self, question: str, max_tokens: int = 9, temperature: float = 0.6): ...

    assert check_endpoint("E", right, spec, bodies)
    for wrong in (no_upper_bound, zero_tokens, strict_temperature):
        assert not check_endpoint("E", wrong, spec, bodies), wrong.__name__
    assert not check_endpoint("E", stub, spec, bodies)
    out = capsys.readouterr().out
    assert "not written yet" in out and "expected: refused" in out and "<a string of 4001 characters>" in out


def test_exercise_04_3_accepts_the_label_typed_as_the_table_shows_it(capsys):
    """The tips table shows a label's line break as \\n; a learner types it as a real line break in a string, or
    copies the two characters: both are the label."""
    label = "thinking skipped (<think>\\n\\n</think> prefilled)"          # as the notebook's dict writes it
    tips = pd.DataFrame({"accuracy": [1.0, 0.9, 0.0]}, index=["recommended", "greedy", label])
    assert answers.exercise_04_3("thinking skipped (<think>\n\n</think> prefilled)", tips)   # typed with real breaks
    assert answers.exercise_04_3(label, tips)
    assert answers.exercise_04_3("thinking skipped (<think>\n</think> prefilled)", tips)
    assert not answers.exercise_04_3("greedy", tips)


def test_exercise_04_3_accepts_any_part_of_the_label_that_names_one_row(capsys):
    tips = pd.DataFrame({"accuracy": [1.0, 0.9, 0.2, 0.0]},
                        index=["recommended: T=0.6", "T=1.5 (beyond the range)", "thinking free (no <think>)",
                               "thinking skipped (empty thinking prefilled)"])
    assert answers.exercise_04_3("thinking skipped", tips) and answers.exercise_04_3("Thinking  Skipped", tips)
    assert answers.exercise_04_3("empty thinking prefilled", tips)
    assert not answers.exercise_04_3("thinking", tips)            # two rows say "thinking": not one of them
    assert "any part of it that names one row" in capsys.readouterr().out


def test_numbers_print_as_numbers_and_the_input_shows_the_fields_the_exercise_is_about(capsys):
    import numpy as np

    from course_utils import coding_checks, exercises

    exercises.check("Exercise 9", np.float64(0.20681234), 0.5)
    assert "0.206812 is not right yet" in capsys.readouterr().out
    coding_checks.check("00.4", lambda config, dtype: 1.0)
    out = capsys.readouterr().out
    assert "input: config {'num_hidden_layers'" in out and "'model_type'" not in out
    coding_checks.check("05.2", lambda text: 0.5)
    assert "input: its thinking: " in capsys.readouterr().out
