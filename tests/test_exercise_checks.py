"""Every exercise check accepts the right answer and rejects classic wrong ones: the numeric checks of
``course_utils.answers`` (one right, at least two wrong answers each) and the coding exercises' checks (a right
implementation and at least two wrong ones each, on the notebooks' own random cases)."""

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from course_utils import answers, catalog, grpo, hardware, pricing, speed
from course_utils import exercise_cases as cases
from course_utils import moe as M
from course_utils.distill import kd_loss
from course_utils.exercises import check_function
from course_utils.kv_cache import kv_cache_capacity

GIB = 2**30
KV_8B = catalog.kv_cache_bytes_per_token("R1-Distill-Llama-8B")
KV_7B = catalog.kv_cache_bytes_per_token("DeepSeek-R1-Distill-Qwen-7B")
NORMS = {"without T²": [1.0, 0.25, 0.0625, 0.0156, 0.0039, 0.00098]}     # about 1/T² at T = 1, 2, 4, 8, 16, 32
TEMPERATURES = [1, 2, 4, 8, 16, 32]
TIPS = pd.DataFrame({"accuracy": [0.98, 0.97, 0.10, 0.10, 0.60]},
                    index=["recommended", "greedy", "thinking skipped", "no <think>", "system prompt"])
KS = [1, 2, 4, 8, 16, 32, 64]
PASSK = pd.DataFrame({"base": [0.30, 0.45, 0.60, 0.72, 0.80, 0.86, 0.90],
                      "after RL": [0.55, 0.65, 0.72, 0.78, 0.815, 0.87, 0.905]}, index=KS)
ROUTING = M.Routing(None, torch.tensor([0.35, 0.3, 0.2, 0.15]).repeat(10, 1),
                    torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])[:, None], None)
TOY_KV = 768.0
H100 = hardware.gpu("H100").memory_gib
W7B = catalog.weight_bytes("DeepSeek-R1-Distill-Qwen-7B") / GIB
BAD = {"temperature above 2": {}, "max_tokens of 0": {}, "max_tokens past the context": {}}

NUMERIC = {   # exercise: (check, extra arguments, right answer, wrong answers)
    "00.1": (answers.exercise_00_1, (), 4.0, [2.0, 16.0, 32768 * KV_8B / 1e9]),
    "00.2": (answers.exercise_00_2, (), 2, [1, 4]),
    "00.3": (answers.exercise_00_3, (), 5.5, [21.9, 1.35]),
    "01.1": (answers.exercise_01_1, (), 1.4, [2.4, 2.0, 0.35]),
    "01.2": (answers.exercise_01_2, (), math.comb(64, 8) / 120, [4, math.comb(64, 8)]),
    "01.3": (answers.exercise_01_3, (ROUTING,), 0.01 * 4 * (0.4 * 0.35 + 0.3 * 0.3 + 0.2 * 0.2 + 0.1 * 0.15),
             [0.4 * 0.35 + 0.3 * 0.3 + 0.2 * 0.2 + 0.1 * 0.15, 0.04]),
    "02.1": (answers.exercise_02_1, (), math.e / (math.e + math.exp(0.5) + 1), [0.665, 2 / 3]),
    "02.2": (answers.exercise_02_2, (), 0.8, [0.2, 0.48]),
    "02.3": (answers.exercise_02_3, (NORMS, TEMPERATURES), 16, [4, 1 / 16]),
    "03.1": (answers.exercise_03_1, (TOY_KV,), (2 * GIB // 768) // 128 * 128, [2 * GIB // 768, 2 * GIB / 768]),
    "03.2": (answers.exercise_03_2, (), 32768 * KV_7B / GIB, [32768 * KV_7B / 1e9, 32768 * KV_7B / GIB / 2]),
    "03.2b": (answers.exercise_03_2b, (), int((H100 * 0.9 - 2 - W7B) // (32768 * KV_7B / GIB)),
              [int((H100 - 2 - W7B) // (32768 * KV_7B / GIB)), int((H100 * 0.9 - W7B) // (32768 * KV_7B / GIB))]),
    "04.1": (answers.exercise_04_1, (), 7 / 12, [1 / 3, 1.0, 2 / 3]),
    "04.3": (answers.exercise_04_3, (TIPS,), "no <think>", ["recommended", "greedy"]),
    "05.1": (answers.exercise_05_1, (), 1.25 / (math.sqrt(2.75 / 3) + 1e-4), [1.25, 1.25 / math.sqrt(2.75 / 4), 2.089]),
    "05.3": (answers.exercise_05_3, (PASSK, KS), 16, [64, 1]),
    "06.1": (answers.exercise_06_1, (0.8, 400.0), 0.8 / (400 * 0.5 * 3600) * 1e6,
             [0.8 / (400 * 3600) * 1e6, 0.8 / (400 * 0.5) * 1e6]),
    "06.2": (answers.exercise_06_2, (0.8, 400.0, 2.19), 0.8e6 / (400 * 3600 * 2.19),
             [400 * 3600 * 2.19 / 0.8e6, 0.8e6 / (400 * 3600 * 2.19) / 3600]),
    "06.3": (answers.exercise_06_3, (BAD,), "max_tokens past the context", ["temperature above 2", "max_tokens of 0"]),
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
    assert not answers.exercise_00_1(2.0)
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


def _dense_kv(config, dtype):
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * catalog.BYTES_PER_PARAM[dtype]


def _mla_kv(config, dtype):
    return config["num_hidden_layers"] * (config["kv_lora_rank"] + config["qk_rope_head_dim"]) * \
        catalog.BYTES_PER_PARAM[dtype]


def _v3_route(logits, bias, k, n_group, topk_group, *, bias_in_weights=False, groups=True, softmax=False):
    scores = logits.softmax(-1) if softmax else logits.sigmoid()
    biased = scores + bias
    tokens, experts = scores.shape
    if groups:
        group_score = biased.view(tokens, n_group, -1).topk(2, dim=-1).values.sum(-1)
        allowed = torch.zeros_like(group_score, dtype=torch.bool).scatter(
            1, group_score.topk(topk_group, dim=-1).indices, True).repeat_interleave(experts // n_group, dim=1)
        biased = biased.masked_fill(~allowed, float("-inf"))
    chosen = biased.topk(k, dim=-1).indices.sort(dim=-1).values
    weights = (scores + bias if bias_in_weights else scores).gather(1, chosen)
    return chosen, weights / weights.sum(-1, keepdim=True)


def _bias_update(bias, indices, n_experts, gamma, *, unseen=True, sign=True, flipped=False):
    load = torch.bincount(indices.flatten(), minlength=n_experts if unseen else 0).float()  # unseen=False: experts
    step = torch.sign(load.mean() - load) if sign else load.mean() - load                   # never chosen go missing
    return bias[:len(load)] + (-gamma if flipped else gamma) * step


def _soft(s, t, T, *, t2=True, reverse=False, student_t=True):
    log_p = F.log_softmax(t / T, -1)
    log_q = F.log_softmax(s / T if student_t else s, -1)
    if reverse:
        log_p, log_q = log_q, log_p
    return (T**2 if t2 else 1) * (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def _full(s, t, y, T, a, *, hard_at_t=False, t2=True):
    hard = F.cross_entropy(s / T if hard_at_t else s, y)
    return a * _soft(s, t, T, t2=t2) + (1 - a) * hard


def _percentile(values, q, *, nearest=False, n_not_n_minus_1=False):
    ordered = sorted(values)
    if nearest:
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
    position = q / 100 * (len(ordered) - (0 if n_not_n_minus_1 else 1))
    below = min(int(position), len(ordered) - 1)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


CODING = {   # exercise: (reference, cases, rel, right, wrong implementations)
    "00.4 KV bytes, dense": (catalog.config_kv_bytes_per_token, cases.random_dense_configs(100), 1e-4, _dense_kv, [
        lambda c, d: _dense_kv(c, d) / 2,                                                       # K or V only
        lambda c, d: _dense_kv({**c, "num_key_value_heads": c["num_attention_heads"]}, d),       # every head
        lambda c, d: _dense_kv({k: v for k, v in c.items() if k != "head_dim"}, d)]),           # head_dim ignored
    "00.5 KV bytes, MLA": (catalog.config_kv_bytes_per_token, cases.random_mla_configs(100), 1e-4, _mla_kv, [
        lambda c, d: 2 * _mla_kv(c, d),                                                          # K and V of it
        lambda c, d: c["num_hidden_layers"] * c["kv_lora_rank"] * catalog.BYTES_PER_PARAM[d]]),  # RoPE key left out
    "01.4 V3 router": (answers.v3_route_sorted, cases.random_router_logits(60), 1e-4, _v3_route, [
        lambda *a: _v3_route(*a, bias_in_weights=True), lambda *a: _v3_route(*a, groups=False),
        lambda *a: _v3_route(*a, softmax=True)]),
    "01.5 bias update": (M.balance_bias_step, cases.random_expert_choices(60), 1e-4, _bias_update, [
        lambda *a: _bias_update(*a, flipped=True), lambda *a: _bias_update(*a, sign=False),
        lambda *a: _bias_update(*a, unseen=False)]),
    "02.4 soft loss": (lambda s, t, T: kd_loss(s, t, temperature=T, alpha=1.0), cases.random_distill_logits(60), 1e-4,
                       _soft, [lambda s, t, T: _soft(s, t, T, t2=False), lambda s, t, T: _soft(s, t, T, reverse=True),
                               lambda s, t, T: _soft(s, t, T, student_t=False)]),
    "02.5 distillation loss": (lambda s, t, y, T, a: kd_loss(s, t, y, temperature=T, alpha=a),
                               cases.random_distill_logits(60, labels=True), 1e-4, _full,
                               [lambda *a: _full(*a, hard_at_t=True), lambda *a: _full(*a, t2=False)]),
    "03.4 percentile": (speed.percentile, cases.random_latencies(100), 1e-4, _percentile, [
        lambda v, q: _percentile(v, q, nearest=True), lambda v, q: _percentile(v, q, n_not_n_minus_1=True)]),
    "03.5 KV capacity": (kv_cache_capacity, cases.random_kv_budgets(100), 0,
                         lambda b, kv, block: int(b // kv) // block * block, [
                             lambda b, kv, block: int(b // kv),                       # no whole blocks
                             lambda b, kv, block: round(b / kv / block) * block,      # nearest block
                             lambda b, kv, block: math.ceil(b / kv / block) * block]),  # rounds up
    "05.2 k3 KL": (grpo.k3_kl, cases.random_logprob_pairs(60), 1e-4,
                   lambda lp, ref: torch.exp(ref - lp) - (ref - lp) - 1, [
                       lambda lp, ref: lp - ref,                                     # k1: can be negative
                       lambda lp, ref: torch.exp(lp - ref) - (lp - ref) - 1,          # the other direction
                       lambda lp, ref: (torch.exp(ref - lp) - (ref - lp) - 1).mean()]),  # not per token
    "05.5 pass@k": (grpo.pass_at_k, cases.random_pass_counts(200), 1e-4,
                    lambda n, c, k: 1 - math.comb(n - c, k) / math.comb(n, k), [
                        lambda n, c, k: 1 - (1 - c / n) ** k,                     # with replacement
                        lambda n, c, k: c / n,                                    # pass@1 for every k
                        lambda n, c, k: min(1.0, c * k / n)]),
    "06.6 break-even": (pricing.break_even_tokens_per_second, cases.random_break_evens(60), 1e-4,
                        lambda h, n, api: h * n / 3600 / (api / 1e6), [
                            lambda h, n, api: h / 3600 / (api / 1e6),              # one GPU only
                            lambda h, n, api: h * n / (api / 1e6),                 # per hour, not per second
                            lambda h, n, api: h * n / 3600 / api]),                # per token, not per million
}


@pytest.mark.parametrize("exercise", sorted(CODING))
def test_coding_check_accepts_a_right_solution_and_rejects_wrong_ones(exercise, capsys):
    reference, exercise_cases, rel, right, wrongs = CODING[exercise]
    assert len(wrongs) >= 2
    assert check_function(exercise, right, reference, exercise_cases, rel=rel), capsys.readouterr().out
    for number, wrong in enumerate(wrongs, 1):
        passed = check_function(exercise, wrong, reference, exercise_cases, rel=rel)
        assert not passed, f"wrong solution {number} passed"
    out = capsys.readouterr().out
    assert "input:" in out or "raised" in out       # a mismatch names the input that shows it


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
