"""The coding exercises' checks, out of the learner's sight: for each exercise the course's tested function it is
compared with, its random inputs (``exercise_cases``), a hint, and the classic mistakes a first attempt makes, each
written out so that a check can recognise it and name it.

    coding_checks.check("01.4", my_sequence_balance_loss)    # in a notebook's exercise cell
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from course_utils import catalog, exercise_cases, grpo, moe, pricing, r1_zero, speed
from course_utils.distill import kd_loss
from course_utils.exercises import check_function
from course_utils.kv_cache import kv_cache_capacity
from course_utils.reasoning import extract_boxed, majority_answer


@dataclass(frozen=True)
class Exercise:
    reference: object                     # the course's tested function
    cases: object                         # () -> list of argument tuples
    hint: str
    mistakes: list = field(default_factory=list)   # (wrong function, what it got wrong)
    rel: float = 1e-4


# ---------------------------------------------------------------- 00 · KV cache from a config


def _dense_kv(config, dtype, *, per_attention_head=False, no_head_dim=False):
    heads = config["num_attention_heads"] if per_attention_head else config["num_key_value_heads"]
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    if not no_head_dim:
        head_dim = config.get("head_dim") or head_dim
    return 2 * config["num_hidden_layers"] * heads * head_dim * catalog.BYTES_PER_PARAM[dtype]


def _mla_kv(config, dtype, *, no_rope=False):
    per_layer = config["kv_lora_rank"] + (0 if no_rope else config["qk_rope_head_dim"])
    return config["num_hidden_layers"] * per_layer * catalog.BYTES_PER_PARAM[dtype]


# ---------------------------------------------------------------- 01 · balancing


def sequence_balance_loss(scores, indices, n_experts, seq_len, top_k, alpha):
    """Exercise 01.4's reference: ``moe.sequence_balance_loss`` called on bare tensors."""
    routing = moe.Routing(None, scores, indices, None)
    return moe.sequence_balance_loss(routing, n_experts, seq_len, top_k, alpha)


def _sequence_loss(scores, indices, n_experts, seq_len, top_k, alpha, *, normalise=True, scale=True,
                   per_sequence=True):
    length = seq_len if per_sequence else scores.shape[0]
    chosen = F.one_hot(indices, n_experts).sum(dim=1).float().view(-1, length, n_experts)
    f = chosen.sum(dim=1) * (n_experts / (top_k * length) if scale else 1 / length)
    s = scores / scores.sum(dim=-1, keepdim=True) if normalise else scores
    p = s.view(-1, length, n_experts).mean(dim=1)
    return alpha * (f * p).sum(dim=-1).mean()


def _kept(indices, capacity_factor, n_experts, *, rounding=math.ceil, with_k=True, expert_major=False):
    tokens, k = indices.shape
    capacity = rounding(capacity_factor * tokens * (k if with_k else 1) / n_experts)
    order = indices.t() if expert_major else indices            # expert_major: slot by slot, not token by token
    one_hot = F.one_hot(order.reshape(-1), n_experts)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1
    keep = (position < capacity).reshape(order.shape)
    return keep.t() if expert_major else keep


# ---------------------------------------------------------------- 02 · distillation


def sequence_kd(student_logits, teacher_logits, labels, temperature):
    """Exercise 02.4's reference: token-level distillation on the answer's tokens only (``kd_loss``, alpha = 1)."""
    return kd_loss(student_logits, teacher_logits, labels, temperature=temperature, alpha=1.0)


def _sequence_kd(student, teacher, labels, T, *, mask=True, t2=True):
    keep = labels != -100 if mask else torch.ones_like(labels, dtype=torch.bool)
    log_p = F.log_softmax(teacher[keep] / T, dim=-1)
    log_q = F.log_softmax(student[keep] / T, dim=-1)
    return (T**2 if t2 else 1) * (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def soft_loss_gradient(student_logits, teacher_logits, temperature):
    """Exercise 02.5's reference: the gradient of the soft loss (``kd_loss``, alpha = 1) with respect to the student's
    logits, by autograd."""
    student = student_logits.detach().clone().requires_grad_(True)
    kd_loss(student, teacher_logits, temperature=temperature, alpha=1.0).backward()
    return student.grad


def _soft_gradient(s, t, T, *, t2=True, flipped=False, batch_mean=True):
    q, p = (s / T).softmax(dim=-1), (t / T).softmax(dim=-1)
    gradient = (q - p) / T * (T**2 if t2 else 1) / (s.shape[0] if batch_mean else 1)
    return -gradient if flipped else gradient


# ---------------------------------------------------------------- 03 · load tests and the KV pool


def _percentile(values, q, *, nearest=False, n_not_n_minus_1=False):
    ordered = sorted(values)
    if nearest:
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
    position = q / 100 * (len(ordered) - (0 if n_not_n_minus_1 else 1))
    below = min(int(position), len(ordered) - 1)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


# ---------------------------------------------------------------- 04 · reading answers


def _majority(answers, *, strip=True, first_wins=True):
    counts = {}
    for answer in answers:
        if answer and answer.strip():
            key = answer.strip() if strip else answer
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return None
    ranked = list(counts) if first_wins else sorted(counts)
    return max(ranked, key=counts.get)


def _boxed(text, *, first=False, nested=True):
    start = text.find("\\boxed{") if first else text.rfind("\\boxed{")
    if start < 0:
        return None
    begin = start + len("\\boxed{")
    if not nested:
        end = text.find("}", begin)
        return text[begin:end] if end >= 0 else None
    depth = 1
    for i in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i]
    return None


# ---------------------------------------------------------------- 05 · rule rewards and pass@k


def _english_share(text, *, whole_text=False, digits_are_words=False, empty=1.0):
    parsed = r1_zero.parse(text)
    thinking = text if whole_text or not parsed else parsed[0]
    words = thinking.split() if digits_are_words else re.findall(r"[A-Za-z]+", thinking)
    if not words:
        return empty
    return 1 - sum(word in r1_zero.GERMAN_WORDS for word in words) / len(words)


EXERCISES = {
    "00.4": Exercise(
        catalog.config_kv_bytes_per_token, lambda: exercise_cases.random_dense_configs(100),
        "per layer, each KV head (not each attention head) stores a key and a value of head_dim numbers",
        [(lambda c, d: _dense_kv(c, d) / 2, "that counts the keys or the values, not both"),
         (lambda c, d: _dense_kv(c, d, per_attention_head=True),
          "that stores a key and a value for every attention head; with grouped-query attention only the KV heads "
          "store them"),
         (lambda c, d: _dense_kv(c, d, no_head_dim=True),
          "that ignores the config's head_dim: when it is given, it is the size of each head")]),
    "00.5": Exercise(
        catalog.config_kv_bytes_per_token, lambda: exercise_cases.random_mla_configs(100),
        "one latent and one RoPE key per layer, shared by every head",
        [(lambda c, d: 2 * _mla_kv(c, d), "MLA caches one latent, not a key and a value: no factor 2"),
         (lambda c, d: _mla_kv(c, d, no_rope=True), "the decoupled RoPE key (qk_rope_head_dim) is cached too")]),
    "01.4": Exercise(
        sequence_balance_loss, lambda: exercise_cases.random_sequence_routings(60),
        "per sequence: f_i = N / (K T) x (tokens that chose i), P_i = mean over the sequence of s_i / sum_j s_j",
        [(lambda *a: _sequence_loss(*a, normalise=False),
          "the affinities are normalised per token first (each divided by that token's sum)"),
         (lambda *a: _sequence_loss(*a, scale=False), "f_i carries the factor N / K: it is 1 when balanced"),
         (lambda *a: _sequence_loss(*a, per_sequence=False),
          "that treats the whole batch as one sequence; the loss is per sequence, then averaged")]),
    "01.5": Exercise(
        moe.capacity_mask, lambda: exercise_cases.random_capacity_cases(60), "capacity = ceil(factor x tokens x k "
        "/ experts); assignments arrive token by token, and an expert takes them until it is full",
        [(lambda *a: _kept(*a, rounding=math.floor), "the capacity is rounded up (ceil), not down"),
         (lambda *a: _kept(*a, with_k=False), "each token makes k assignments: the capacity counts tokens x k"),
         (lambda *a: _kept(*a, expert_major=True),
          "that fills the experts slot by slot (every token's first choice, then every second choice); they "
          "arrive token by token: token 0's k choices, then token 1's")], rel=0),
    "02.4": Exercise(
        sequence_kd, lambda: exercise_cases.random_sequence_distill(60),
        "average the per-token KL over the positions whose label is not -100; multiply by T²",
        [(lambda *a: _sequence_kd(*a, mask=False), "that averages over every position, prompt and padding too: "
                                                   "only the answer's tokens (label not -100) count"),
         (lambda *a: _sequence_kd(*a, t2=False), "the soft loss is multiplied by T²")]),
    "02.5": Exercise(
        soft_loss_gradient, lambda: exercise_cases.random_distill_logits(60),
        "d/ds of T² x KL(p_T || q_T), averaged over the batch: T x (q_T - p_T) / batch size",
        [(lambda *a: _soft_gradient(*a, t2=False),
          "that is the gradient without the T² factor: it shrinks as 1/T"),
         (lambda *a: _soft_gradient(*a, flipped=True), "the sign: the loss falls as q moves towards p"),
         (lambda *a: _soft_gradient(*a, batch_mean=False), "the loss is a mean over the batch: divide by its size")]),
    "03.4": Exercise(
        speed.percentile, lambda: exercise_cases.random_latencies(100),
        "with 5 values, p90 sits at position 3.6: 60% of the way from the 4th smallest to the 5th",
        [(lambda v, q: _percentile(v, q, nearest=True), "that is the nearest rank; interpolate between the two"),
         (lambda v, q: _percentile(v, q, n_not_n_minus_1=True),
          "positions run from 0 to n - 1: q / 100 x (n - 1), not x n")]),
    "03.5": Exercise(
        kv_cache_capacity, lambda: exercise_cases.random_kv_budgets(100), "an int: // twice, not /",
        [(lambda b, kv, block: int(b // kv), "vLLM hands the pool out in whole blocks: round down to a block"),
         (lambda b, kv, block: round(b / kv / block) * block, "a partial block is never used: round down, not to "
                                                              "the nearest"),
         (lambda b, kv, block: math.ceil(b / kv / block) * block, "round down: the last partial block is lost")],
        rel=0),
    "04.4": Exercise(
        majority_answer, lambda: exercise_cases.random_votes(200),
        "count with a dict in the order answers appear; strip spaces before counting",
        [(lambda a: _majority(a, strip=False), "' 12' and '12' are the same answer: strip spaces first"),
         (lambda a: _majority(a, first_wins=False), "a tie goes to the answer seen first")]),
    "04.5": Exercise(
        extract_boxed, lambda: exercise_cases.random_completions(200),
        "find the last '\\boxed{', then walk on counting '{' up and '}' down until the count is back to 0",
        [(lambda t: _boxed(t, first=True), "the last box counts (models box a draft, then the answer)"),
         (lambda t: _boxed(t, nested=False), "braces nest: \\boxed{\\frac{3}{8}} holds \\frac{3}{8}")]),
    "05.2": Exercise(
        r1_zero.english_share, lambda: exercise_cases.random_language_texts(200),
        "the thinking is what r1_zero.parse returns first (the whole text when it has no format); its words are "
        "its runs of letters; German words are those in r1_zero.GERMAN_WORDS",
        [(lambda t: _english_share(t, whole_text=True), "only the thinking counts, not the tags and the answer: "
                                                        "r1_zero.parse(text)[0]"),
         (lambda t: _english_share(t, digits_are_words=True), "numbers and symbols are not words: count the runs "
                                                              "of letters only (re.findall)"),
         (lambda t: _english_share(t, empty=0.0), "a thinking with no words has no German in it: its share is 1")]),
    "05.5": Exercise(
        grpo.pass_at_k, lambda: exercise_cases.random_pass_counts(200),
        "1 minus the chance that all k drawn samples are wrong: choose k of the n - c wrong ones",
        [(lambda n, c, k: 1 - (1 - c / n) ** k, "that draws with replacement; the k samples are k different ones"),
         (lambda n, c, k: c / n, "that is pass@1 whatever k is"),
         (lambda n, c, k: min(1.0, c * k / n), "chances do not add: use the chance that all k are wrong")]),
    "06.6": Exercise(
        pricing.break_even_tokens_per_second, lambda: exercise_cases.random_break_evens(60),
        "the GPUs cost dollars per second; the API charges dollars per token; divide one by the other",
        [(lambda h, n, api: h / 3600 / (api / 1e6), "every GPU costs: multiply by n_gpus"),
         (lambda h, n, api: h * n / (api / 1e6), "the price is per hour: per second is / 3600"),
         (lambda h, n, api: h * n / 3600 / api, "the API's price is per million tokens")]),
}


def check(key: str, function) -> bool:
    """Run a learner's ``function`` against exercise ``key``'s reference on its random cases (see
    ``exercises.check_function``): the first input where they differ, and the mistake if it is a classic one."""
    exercise = EXERCISES[key]
    return check_function(f"Exercise {key.split('.')[1]}", function, exercise.reference, exercise.cases(),
                          rel=exercise.rel, hint=exercise.hint, mistakes=exercise.mistakes)
