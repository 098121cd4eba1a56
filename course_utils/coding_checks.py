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

from course_utils import catalog, exercise_cases, grpo, mla, moe, pricing, r1_zero, speed
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
    preview: object = None                # args -> the input's fields the exercise is about (default: in brief)


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


def _config_preview(fields):
    def preview(args) -> str:
        config, dtype = args
        shown = {name: config[name] for name in fields if name in config}
        return f"config {shown}, dtype {dtype!r}"
    return preview


def _thinking_preview(args) -> str:
    parsed = r1_zero.parse(args[0])
    thinking = parsed[0] if parsed else args[0]
    where = "its thinking" if parsed else "no <think> format, so the whole text"
    return f"{where}: {thinking[:90]!r}" + (" ..." if len(thinking) > 90 else "")


def _box_preview(args) -> str:
    text = args[0]
    at = text.rfind("\\boxed")
    return repr(text if len(text) <= 70 else ("..." + text[max(0, at - 20):][:70]))


# ---------------------------------------------------------------- 01 · balancing


def sequence_balance_loss(scores, indices, n_experts, seq_len, top_k, alpha):
    """Exercise 01.4's reference: ``moe.sequence_balance_loss`` called on bare tensors."""
    routing = moe.Routing(None, scores, indices, None)
    return moe.sequence_balance_loss(routing, n_experts, seq_len, top_k, alpha)


def _sequence_loss(scores, indices, n_experts, seq_len, top_k, alpha, *, normalise=True, scale=True,
                   per_sequence=True, raw_counts=False, with_alpha=True):
    length = seq_len if per_sequence else scores.shape[0]
    chosen = F.one_hot(indices, n_experts).sum(dim=1).float().view(-1, length, n_experts)
    f = chosen.sum(dim=1) * (n_experts / (top_k * length) if scale else 1 / length)
    if raw_counts:
        f = chosen.sum(dim=1)                                     # tokens that chose i, not f_i
    s = scores / scores.sum(dim=-1, keepdim=True) if normalise else scores
    p = s.view(-1, length, n_experts).mean(dim=1)
    return (alpha if with_alpha else 1.0) * (f * p).sum(dim=-1).mean()


def _kept(indices, capacity_factor, n_experts, *, rounding=math.ceil, with_k=True, expert_major=False, extra=0,
          last_first=False, whole_tokens=False):
    tokens, k = indices.shape
    capacity = rounding(capacity_factor * tokens * (k if with_k else 1) / n_experts) + extra
    order = indices.t() if expert_major else indices            # expert_major: slot by slot, not token by token
    if last_first:
        order = order.flip(0)                                     # the last arrivals kept, the first dropped
    one_hot = F.one_hot(order.reshape(-1), n_experts)
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1
    keep = (position < capacity).reshape(order.shape)
    keep = keep.flip(0) if last_first else keep
    keep = keep.t() if expert_major else keep
    if whole_tokens:                                              # a token dropped whole when one assignment is
        keep = keep.all(dim=1, keepdim=True).expand_as(keep)
    return keep


# ---------------------------------------------------------------- 02 · distillation


def sequence_kd(student_logits, teacher_logits, labels, temperature):
    """Exercise 02.4's reference: token-level distillation on the answer's tokens only (``kd_loss``, alpha = 1)."""
    return kd_loss(student_logits, teacher_logits, labels, temperature=temperature, alpha=1.0)


def _sequence_kd(student, teacher, labels, T, *, mask=True, t2=True, swapped=False):
    keep = labels != -100 if mask else torch.ones_like(labels, dtype=torch.bool)
    log_p = F.log_softmax(teacher[keep] / T, dim=-1)
    log_q = F.log_softmax(student[keep] / T, dim=-1)
    if swapped:                                                   # KL(student || teacher)
        log_p, log_q = log_q, log_p
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


def _english_share(text, *, whole_text=False, digits_are_words=False, empty=1.0, characters=False, tags=False,
                   percent=False):
    parsed = r1_zero.parse(text)
    thinking = text if whole_text or not parsed else parsed[0]
    if tags and parsed:
        thinking = f"<think>{thinking}</think>"                   # the tags' word "think" counted as a word
    words = thinking.split() if digits_are_words else re.findall(r"[A-Za-z]+", thinking)
    if not words:
        return empty * (100 if percent else 1)
    if characters:                                                # letters of German words over all letters
        german = sum(len(w) for w in words if w in r1_zero.GERMAN_WORDS)
        share = 1 - german / sum(len(w) for w in words)
    else:
        share = 1 - sum(word in r1_zero.GERMAN_WORDS for word in words) / len(words)
    return share * 100 if percent else share


# ---------------------------------------------------------------- 07 · multi-head latent attention


def softmax_scale(qk_nope_head_dim, qk_rope_head_dim, rope_scaling):
    """Exercise 07.1's reference: ``mla.MLAConfig.softmax_scale``."""
    return mla.MLAConfig(64, 1, 16, qk_nope_head_dim, qk_rope_head_dim, 16, rope_scaling=rope_scaling).softmax_scale()


def _scale(nope, rope, yarn, *, with_mscale=True, squared=True, rope_only=False, nope_only=False):
    dim = rope if rope_only else nope if nope_only else nope + rope
    scale = dim ** -0.5
    if with_mscale and yarn and yarn.get("mscale_all_dim"):
        m = mla.yarn_mscale(yarn["factor"], yarn["mscale_all_dim"])
        scale *= m * m if squared else m
    return scale


def cache_entry(x, w_kv_a, norm_weight, positions, kv_lora_rank, rope_dim):
    """Exercise 07.2's reference: what MLA caches for ``x`` (``mla.MLA.cache_entries``), from these weights."""
    layer = mla.MLA(mla.MLAConfig(x.shape[-1], 1, kv_lora_rank, 2, rope_dim, 2))
    with torch.no_grad():
        layer.kv_a.weight.copy_(w_kv_a)
        layer.kv_norm.weight.copy_(norm_weight)
        return layer.cache_entries(x, positions)


def _entry(x, w, norm, positions, latent_size, rope_size, *, normalise=True, rope_on_latent=False,
           rotate_key=True, from_zero=False):
    config = mla.MLAConfig(x.shape[-1], 1, latent_size, 2, rope_size, 2)
    latent, k_rope = (x @ w.T).split([latent_size, rope_size], dim=-1)
    if normalise:
        latent = norm * (latent * torch.rsqrt(latent.pow(2).mean(-1, keepdim=True) + config.rms_norm_eps))
    where = torch.arange(len(positions)) if from_zero else positions
    if rope_on_latent:                                            # the latent turned like a rope key of its size
        latent = mla.rotate(latent, where, mla.MLAConfig(x.shape[-1], 1, latent_size, 2, latent_size, 2))
    if rotate_key:
        k_rope = mla.rotate(k_rope, where, config)
    return latent, k_rope


EXERCISES = {
    "00.4": Exercise(
        catalog.config_kv_bytes_per_token, lambda: exercise_cases.random_dense_configs(100),
        "per layer, each KV head (not each attention head) stores a key and a value of head_dim numbers",
        [(lambda c, d: _dense_kv(c, d) / 2, "that counts the keys or the values, not both"),
         (lambda c, d: _dense_kv(c, d, per_attention_head=True),
          "that stores a key and a value for every attention head; with grouped-query attention only the KV heads "
          "store them"),
         (lambda c, d: _dense_kv(c, d, no_head_dim=True),
          "that ignores the config's head_dim: when it is given, it is the size of each head")],
        preview=_config_preview(("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "hidden_size",
                                 "head_dim"))),
    "00.5": Exercise(
        catalog.config_kv_bytes_per_token, lambda: exercise_cases.random_mla_configs(100),
        "one latent and one RoPE key per layer, shared by every head",
        [(lambda c, d: 2 * _mla_kv(c, d), "MLA caches one latent, not a key and a value: no factor 2"),
         (lambda c, d: _mla_kv(c, d, no_rope=True), "the decoupled RoPE key (qk_rope_head_dim) is cached too")],
        preview=_config_preview(("num_hidden_layers", "num_attention_heads", "kv_lora_rank", "qk_rope_head_dim"))),
    "01.4": Exercise(
        sequence_balance_loss, lambda: exercise_cases.random_sequence_routings(60),
        "per sequence: f_i = N / (K T) x (tokens that chose i), P_i = mean over the sequence of s_i / sum_j s_j",
        [(lambda *a: _sequence_loss(*a, normalise=False),
          "the affinities are normalised per token first (each divided by that token's sum)"),
         (lambda *a: _sequence_loss(*a, scale=False), "f_i carries the factor N / K: it is 1 when balanced"),
         (lambda *a: _sequence_loss(*a, raw_counts=True),
          "that uses the raw top-k counts; f_i is the count times N / (K T), which is 1 when balanced"),
         (lambda *a: _sequence_loss(*a, with_alpha=False), "the loss is multiplied by alpha, its (tiny) weight"),
         (lambda *a: _sequence_loss(*a, per_sequence=False),
          "that treats the whole batch as one sequence; the loss is per sequence, then averaged")]),
    "01.5": Exercise(
        moe.capacity_mask, lambda: exercise_cases.random_capacity_cases(60), "capacity = ceil(factor x tokens x k "
        "/ experts); assignments arrive token by token, and an expert takes them until it is full",
        [(lambda *a: _kept(*a, rounding=math.floor), "the capacity is rounded up (ceil), not down"),
         (lambda *a: _kept(*a, extra=1), "one assignment too many kept: an expert is full once it holds capacity "
                                         "assignments (taken < capacity, not <=), or the capacity got a +1"),
         (lambda *a: _kept(*a, with_k=False), "each token makes k assignments: the capacity counts tokens x k"),
         (lambda *a: _kept(*a, whole_tokens=True), "that drops a whole token when one of its assignments overflows; "
                                                   "each assignment is kept or dropped on its own"),
         (lambda *a: _kept(*a, last_first=True), "that keeps the last arrivals; an expert takes assignments in "
                                                 "order until it is full, so the first ones are kept"),
         (lambda *a: _kept(*a, expert_major=True),
          "that fills the experts slot by slot (every token's first choice, then every second choice): GShard's "
          "convention, a sound one, but this exercise's order is token by token (token 0's k choices, then "
          "token 1's)")], rel=0),
    "02.4": Exercise(
        sequence_kd, lambda: exercise_cases.random_sequence_distill(60),
        "average the per-token KL over the positions whose label is not -100; multiply by T²",
        [(lambda *a: _sequence_kd(*a, mask=False), "that averages over every position, prompt and padding too: "
                                                   "only the answer's tokens (label not -100) count"),
         (lambda *a: _sequence_kd(*a, t2=False), "the soft loss is multiplied by T²"),
         (lambda *a: _sequence_kd(*a, swapped=True), "teacher and student are swapped in the KL: it is KL(teacher "
                                                     "|| student), the teacher's probabilities weighting the log ratio "
                                                     "log p_teacher - log q_student")]),
    "02.5": Exercise(
        soft_loss_gradient, lambda: exercise_cases.random_distill_logits(60),
        "d/ds of T² x KL(p_T || q_T), averaged over the batch: T x (q_T - p_T) / batch size",
        [(lambda *a: _soft_gradient(*a, t2=False),
          "that is the gradient without the T² factor: it shrinks like 1/T² as T grows"),
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
         (lambda t: _boxed(t, nested=False), "braces nest: \\boxed{\\frac{3}{8}} holds \\frac{3}{8}")],
        preview=_box_preview),
    "05.2": Exercise(
        r1_zero.english_share, lambda: exercise_cases.random_language_texts(200),
        "the thinking is what r1_zero.parse returns first (the whole text when it has no format); its words are "
        "its runs of letters; German words are those in r1_zero.GERMAN_WORDS",
        [(lambda t: _english_share(t, whole_text=True), "only the thinking counts, not the tags and the answer: "
                                                        "r1_zero.parse(text)[0]"),
         (lambda t: _english_share(t, digits_are_words=True), "numbers and symbols are not words: count the runs "
                                                              "of letters only (re.findall)"),
         (lambda t: _english_share(t, empty=0.0), "a thinking with no words has no German in it: its share is 1"),
         (lambda t: _english_share(t, characters=True), "that counts letters; the share is of words (each German "
                                                        "word counts once, however long)"),
         (lambda t: _english_share(t, tags=True), "the tags are not words of the thinking: take what "
                                                  "r1_zero.parse(text)[0] returns, without <think> and </think>"),
         (lambda t: _english_share(t, percent=True), "a share between 0 and 1, not a percentage")],
        preview=_thinking_preview),
    "05.5": Exercise(
        grpo.pass_at_k, lambda: exercise_cases.random_pass_counts(200),
        "1 minus the chance that all k drawn samples are wrong: choose k of the n - c wrong ones",
        [(lambda n, c, k: 1 - (1 - c / n) ** k, "that draws with replacement; the k samples are k different ones"),
         (lambda n, c, k: c / n, "that is pass@1 whatever k is"),
         (lambda n, c, k: min(1.0, c * k / n), "chances do not add: use the chance that all k are wrong")]),
    "07.1": Exercise(
        softmax_scale, lambda: exercise_cases.random_softmax_scales(60),
        "1 / sqrt(nope + rope dims), times mla.yarn_mscale(factor, mscale_all_dim) squared when YaRN sets "
        "mscale_all_dim",
        [(lambda n, r, y: _scale(n, r, y, with_mscale=False), "YaRN's mscale is missing: with mscale_all_dim set, "
                                                              "the scale is multiplied by mscale squared"),
         (lambda n, r, y: _scale(n, r, y, squared=False), "mscale once: the query and the key each carry it, so the "
                                                          "scale gets it squared"),
         (lambda n, r, y: _scale(n, r, y, nope_only=True), "the head's size for the scale is nope + rope: the score "
                                                           "adds both dot products"),
         (lambda n, r, y: _scale(n, r, y, rope_only=True), "the head's size is nope + rope, not the rope part alone")]),
    "07.2": Exercise(
        cache_entry, lambda: exercise_cases.random_cache_inputs(40),
        "split x @ W_kv_a.T into the latent and the rope key; RMS-normalise the latent (times its weight); rotate "
        "only the rope key, at the given positions",
        [(lambda *a: _entry(*a, rope_on_latent=True), "RoPE on the compressed part: the latent stays "
                                                      "position-free (that is why the rope key is separate), only "
                                                      "the rope key turns"),
         (lambda *a: _entry(*a, normalise=False), "the latent is RMS-normalised (times its norm weight) before it is "
                                                  "cached"),
         (lambda *a: _entry(*a, rotate_key=False), "the shared rope key is cached rotated, at its position"),
         (lambda *a: _entry(*a, from_zero=True), "rotate at the given positions, not 0, 1, 2, ...: a token's place "
                                                 "in the sequence sets its angle")]),
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
                          rel=exercise.rel, hint=exercise.hint, mistakes=exercise.mistakes,
                          **({"preview": exercise.preview} if exercise.preview else {}))
