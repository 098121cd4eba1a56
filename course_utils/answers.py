"""The numeric exercises' checks, kept out of the notebooks so that an exercise cell does not show its answer.

Each ``exercise_NN_K(answer, ...)`` computes the expected value from the course's tested code (or from the run's own
measurements, passed in), lists the classic wrong answers with what went wrong in each, and prints a verdict through
``exercises.check``. A learner who wants the answer reads the worked solutions at the end of the notebook.
"""

from __future__ import annotations

import math
import statistics

from course_utils.catalog import GIB
from course_utils.exercises import check

# ---------------------------------------------------------------- 00 · the DeepSeek family


def exercise_00_1(answer) -> bool:
    """GiB of KV cache for one 20,000-token request on R1-Distill-Qwen-14B in bf16."""
    from course_utils import catalog

    gib = 20_000 * catalog.kv_cache_bytes_per_token("R1-Distill-Qwen-14B") / GIB
    return check("Exercise 1", answer, gib, hint="per token: 2 (K and V) x layers x KV heads x head_dim x 2 bytes",
                 mistakes=[(gib / 2, "that is K or V alone; the cache holds both"),
                           (gib * 2, "that is 4 bytes per value (fp32); bf16 takes 2"),
                           (gib * 5, "the cache has one K and one V per *KV* head (8 here), not per attention head "
                                     "(40): that is grouped-query attention's saving"),
                           (gib * GIB / 1e9, "GiB are 2**30 bytes, not 10**9")])


def exercise_00_2(answer) -> bool:
    """Fewest 40 GB A100s for R1-Distill-Qwen-32B in bf16 with a 32,768-token context."""
    from course_utils import hardware

    n = hardware.plan_serving("R1-Distill-Qwen-32B", "A100-40GB", 8, min_context=32768).tensor_parallel
    return check("Exercise 2", answer, n, rel=0, hint="weights are 61 GiB in bf16; try "
                 "hardware.plan_serving(..., use_all=True, min_context=32768) with 1, 2 and 4 GPUs",
                 mistakes=[(1, "61 GiB of weights do not fit one 40 GB GPU"),
                           (2, "the weights fit on two, but too little is left for a 32,768-token KV cache (the "
                               "margin included)"),
                           (8, "that fits, but fewer GPUs do too")])


def exercise_00_3(answer) -> bool:
    """US$ for 3 million input tokens (40% of them cache hits) and 1.5 million output tokens of deepseek-chat at
    the peak prices of 2025-03-06."""
    from course_utils import pricing

    cost = pricing.api_cost("deepseek-chat", 3_000_000, 1_500_000, cache_hit_rate=0.4)
    no_hits = pricing.api_cost("deepseek-chat", 3_000_000, 1_500_000)
    reasoner = pricing.api_cost("deepseek-reasoner", 3_000_000, 1_500_000, cache_hit_rate=0.4)
    off_peak = pricing.api_cost("deepseek-chat", 3_000_000, 1_500_000, cache_hit_rate=0.4, off_peak=True)
    return check("Exercise 3", answer, cost, hint="input: 40% at the cache-hit price, 60% at the miss price; output "
                 "at its price; all per million tokens (pricing.API_PRICES)",
                 mistakes=[(no_hits, "every input token billed as a cache miss: 40% of them are hits"),
                           (reasoner, "those are deepseek-reasoner's prices (R1); the question is deepseek-chat"),
                           (off_peak, "those are the off-peak prices; the question asks for the peak ones")])


# ---------------------------------------------------------------- 01 · MoE routing


def exercise_01_1(answer) -> bool:
    """MaxVio of a batch sending 600, 200, 100, 100 of 1,000 assignments to four experts."""
    return check("Exercise 1", answer, (600 - 250) / 250, hint="(max - mean) / mean, with the mean load per expert",
                 mistakes=[(600 / 250, "that is max / mean; MaxVio subtracts the mean first (0 = balanced)"),
                           ((600 - 100) / 250, "that is (max - min) / mean; MaxVio compares the max with the mean"),
                           ((600 - 250) / 1000, "divide by the mean load, not by the total")])


def exercise_01_2(answer) -> bool:
    """Growth of the number of expert combinations: 32 experts top-4 -> each split in four: 128 experts top-16."""
    before, after = math.comb(32, 4), math.comb(128, 16)
    return check("Exercise 2", answer, after / before, hint="combinations of k experts out of N: math.comb(N, k), "
                 "before and after",
                 mistakes=[(128 / 32, "that is the growth of the number of experts, not of their combinations"),
                           (after, "that is the number of combinations after; divide by the number before"),
                           (math.perm(128, 16) / math.perm(32, 4), "the order of the chosen experts does not matter: "
                                                                   "combinations, not permutations")])


F_01_3, P_01_3 = [0.5, 0.2, 0.2, 0.1], [0.4, 0.25, 0.2, 0.15]


def exercise_01_3(answer) -> bool:
    """The Switch auxiliary loss alpha x N x sum(f x P) for f = F_01_3 (shares of tokens) and P = P_01_3 (mean router
    probabilities) of four experts, alpha = 0.01."""
    total = sum(f * p for f, p in zip(F_01_3, P_01_3, strict=True))
    loss = 0.01 * 4 * total
    return check("Exercise 3", answer, loss, hint="alpha times N times the sum over experts of f times P",
                 mistakes=[(loss / 4, "the N in front is missing (it makes a balanced router score alpha)"),
                           (loss / 0.01, "alpha is missing"),
                           (0.01 * 4 * sum(F_01_3) * sum(P_01_3), "that is sum(f) x sum(P): multiply expert by "
                                                                  "expert, then sum")])


# ---------------------------------------------------------------- 02 · distillation


def exercise_02_1(answer) -> bool:
    """Probability of the first class for logits [2, 1, 0] at T = 2."""
    import torch

    from course_utils.distill import softmax_t

    logits = torch.tensor([2.0, 1.0, 0.0])
    return check("Exercise 1", answer, softmax_t(logits, 2)[0].item(), hint="divide the logits by T, then softmax",
                 mistakes=[(softmax_t(logits, 1)[0].item(), "that is the ordinary softmax (T = 1)"),
                           (softmax_t(logits, 0.5)[0].item(), "the logits are divided by T, not multiplied"),
                           (2 / 3, "a softmax exponentiates: exp(z / T), not z / T")])


def exercise_02_2(answer) -> bool:
    """Share of the gap closed: teacher 20 errors, student from scratch 50, distilled 26."""
    from course_utils.distill import gap_closed

    return check("Exercise 2", answer, gap_closed(20, 50, 26), hint="(student - distilled) / (student - teacher)",
                 mistakes=[((26 - 20) / (50 - 20), "that is the share of the gap left open"),
                           ((50 - 26) / 50, "divide by the gap (student - teacher), not by the student's errors"),
                           (20 / 26, "that is teacher / distilled errors, not the gap")])


def exercise_02_3(answer, norms: dict, temperatures: list) -> bool:
    """By what factor the soft gradient shrinks from T = 4 to T = 16 without the T² factor (measured in ``norms``,
    one value per temperature)."""
    without = dict(zip(temperatures, norms["without T²"], strict=True))
    measured = without[4] / without[16]
    return check("Exercise 3", answer, measured, rel=0.15,
                 hint="Hinton's approximation: at high T the soft gradient goes like 1/T²",
                 mistakes=[(4, "that is 16 / 4, as if the gradient went like 1/T; it goes like 1/T²"),
                           (1 / measured, "it shrinks: the factor is the gradient at T = 4 over the one at T = 16")])


# ---------------------------------------------------------------- 03 · serving


def exercise_03_1(answer) -> bool:
    """Tokens a 3 GiB KV pool holds for R1-Distill-Qwen-1.5B (bf16: 28,672 bytes per token) in whole blocks of 16
    tokens, vLLM's block size on a GPU."""
    from course_utils import catalog
    from course_utils.kv_cache import kv_cache_capacity

    per_token = catalog.kv_cache_bytes_per_token("R1-Distill-Qwen-1.5B")
    return check("Exercise 1", answer, kv_cache_capacity(3 * GIB, per_token, 16), rel=0,
                 hint="how many whole tokens fit in 3 GiB, and then how many whole blocks of 16 tokens?",
                 mistakes=[(3 * GIB // per_token, "right number of whole tokens, but vLLM hands out whole blocks: "
                                                  "the last partial block is never used"),
                           (3 * GIB / per_token, "tokens come whole, and then in whole blocks of 16"),
                           (kv_cache_capacity(3 * GIB, per_token, 128), "blocks of 16 here (a GPU's); 128 is the "
                                                                        "CPU backend's"),
                           (kv_cache_capacity(3e9, per_token, 16), "GiB are 2**30 bytes, not 10**9")])


def exercise_03_2(answer) -> bool:
    """GiB of KV cache for one 32,768-token conversation with R1-Distill-Qwen-7B in bf16."""
    from course_utils import catalog

    gib = catalog.kv_cache_bytes_per_token("DeepSeek-R1-Distill-Qwen-7B") * 32768 / GIB
    return check("Exercise 2", answer, gib, hint="bytes per token x 32,768 / 2**30",
                 mistakes=[(gib * GIB / 1e9, "GiB are 2**30 bytes, not 10**9"),
                           (gib / 2, "that is K or V alone; the cache holds both"),
                           (gib * 7, "one K and one V per KV head (4 here), not per attention head (28)")])


def exercise_03_2b(answer) -> bool:
    """Whole 32,768-token conversations beside the 7B's weights on one H100 at 90% with 2 GiB overhead."""
    from course_utils import catalog, hardware

    one = catalog.kv_cache_bytes_per_token("DeepSeek-R1-Distill-Qwen-7B") * 32768 / GIB
    memory, weights = hardware.gpu("H100").memory_gib, catalog.weight_bytes("DeepSeek-R1-Distill-Qwen-7B") / GIB
    fit = int((memory * 0.9 - 2 - weights) // one)
    return check("Exercise 2b", answer, fit, rel=0, hint="(0.9 x memory - overhead - weights) // one conversation",
                 mistakes=[(int((memory - 2 - weights) // one), "vLLM uses 90% of the GPU here, not all of it"),
                           (int((memory * 0.9 - weights) // one), "the 2 GiB of overhead come off first"),
                           (round((memory * 0.9 - 2 - weights) / one), "a part of a conversation does not fit: round "
                                                                        "down")])


# ---------------------------------------------------------------- 04 · examining reasoning

SCORES_04 = [[True, False, True, True], [False, False, True, False], [False, True, True, True]]
FORMS_04 = ["0.375", "\\frac{3}{8}", "6/16", "3:8", "0.38"]


def exercise_04_1(answer) -> bool:
    """pass@1 (the R1 paper's definition) of three problems with four samples each."""
    from course_utils.reasoning import pass_at_1

    return check("Exercise 1", answer, pass_at_1(SCORES_04),
                 hint="pass@1 uses every sample, not only the first, and does not ask for one right sample per problem",
                 mistakes=[(1 / 3, "that scores the first sample only; pass@1 averages all k samples"),
                           (1.0, "that is pass@4: at least one of four right"),
                           (2 / 3, "that is cons@4, a majority vote per problem")])


def exercise_04_2(answer) -> bool:
    """Which spellings of 3/8 does ``is_correct`` (math-verify) accept? A list of True/False."""
    from course_utils.reasoning import is_correct

    verdicts = [is_correct(form, "3/8") for form in FORMS_04]
    return check("Exercise 2", answer, verdicts, hint="math-verify compares values, not spellings; and it reads each "
                 "answer as LaTeX",
                 mistakes=[([True] * 5, "0.38 is close to 3/8 but not equal: math-verify compares values exactly"),
                           ([True, True, True, False, False], "in LaTeX a colon is a ratio: 3:8 is 3/8"),
                           ([True, True, False, False, False], "6/16 reduces to 3/8: values, not spellings")])


def row_label(answer, labels) -> str | object:
    """The table row a learner means: its label as the table shows it, or any unambiguous part of it ("thinking
    skipped", "T=1.5"), case and spacing aside. Anything else is returned unchanged (and then judged wrong)."""
    if not isinstance(answer, str) or not answer.strip():
        return answer
    typed = " ".join(answer.lower().split())
    exact = [label for label in labels if " ".join(str(label).lower().split()) == typed]
    if exact:
        return exact[0]
    found = [label for label in labels if typed in " ".join(str(label).lower().split())]
    return found[0] if len(found) == 1 else answer


def exercise_04_3(answer, tips) -> bool:
    """The setting of the tips table that lost the most accuracy against the first row (ties all count)."""
    loss = tips["accuracy"].iloc[0] - tips["accuracy"]
    worst = set(loss.index[loss == loss.max()])
    best_other = tips["accuracy"].iloc[1:].idxmax()
    return check("Exercise 3", row_label(answer, tips.index), worst,
                 hint="subtract each row's accuracy from the first row's and take the largest; answer with the "
                      "row's label as the table shows it, or any part of it that names one row",
                 mistakes=[(tips.index[0], "that is the reference row: it loses nothing against itself"),
                           (best_other, "that setting lost the least, not the most")])


# ---------------------------------------------------------------- 05 · R1-Zero's RL


REWARDS_05_1 = [3.0, 1.0, 0.0, 2.0, 2.0, 0.0]


def exercise_05_1(answer) -> bool:
    """Advantage of the first completion of a group of G = 6 with rewards REWARDS_05_1 (sample std, eps = 1e-4)."""
    from course_utils.grpo import group_advantages

    rewards = REWARDS_05_1
    advantage = group_advantages(rewards, len(rewards))[0].item()
    centred = rewards[0] - statistics.mean(rewards)
    return check("Exercise 1", answer, advantage, hint="subtract the group's mean, divide by its sample standard "
                 "deviation (n - 1 in the denominator) plus eps",
                 mistakes=[(centred, "that is the reward minus the mean: divide by the standard deviation too"),
                           (centred / statistics.pstdev(rewards), "that is the population std (divide by n); GRPO's "
                                                                  "uses n - 1"),
                           (rewards[0] / statistics.stdev(rewards), "subtract the group's mean reward first")])


def exercise_05_3(answer, passk, ks) -> bool:
    """The smallest k at which RL's lead over the base is at most 0.02 in the pass@k table."""
    lead = {k: passk.loc[k, "after RL"] - passk.loc[k, "base"] for k in ks}
    close = [k for k in ks if lead[k] <= 0.02]
    if not close:
        print("Exercise 3: in this run RL's lead stayed above 0.02 at every k; nothing to find (read the table).")
        return answer is None
    return check("Exercise 3", answer, min(close), rel=0, hint="subtract the two columns row by row",
                 mistakes=[(max(ks), "a smaller k already qualifies: the smallest one is asked"),
                           (max(lead, key=lead.get), "that is where RL's lead is the largest")])


# ---------------------------------------------------------------- 06 · the service


def exercise_06_1(answer, hourly_usd: float, tokens_per_second: float) -> bool:
    """Dollars per million output tokens at 50% utilisation, from the hourly price and the measured throughput."""
    from course_utils import pricing

    cost = pricing.self_hosted_cost_per_million(hourly_usd, 1, tokens_per_second, 0.5)
    return check("Exercise 1", answer, cost, hint="an hour at 50% busy produces tokens_per_second x 0.5 x 3600 tokens",
                 mistakes=[(cost / 2, "that is at 100% busy: idle hours are paid too"),
                           (cost * 3600, "the price is per hour and the throughput per second: multiply by 3600"),
                           (cost / 1e6, "that is per token; the question asks per million")])


def exercise_06_2(answer, hourly_usd: float, tokens_per_second: float, api_usd_per_million: float) -> bool:
    """The utilisation at which self-hosting costs the API's price per output token: the break-even rate over the
    rate the GPU reaches while busy."""
    from course_utils import pricing

    share = pricing.break_even_tokens_per_second(hourly_usd, 1, api_usd_per_million) / tokens_per_second
    return check("Exercise 2", answer, share, hint="set the self-hosted cost per million equal to the API's and solve "
                 "for the utilisation", mistakes=[(1 / share, "upside down: a busier GPU makes each token cheaper"),
                                                 (share / 3600, "the price is per hour, the throughput per second")])


def exercise_06_3(answer, max_model_len: int) -> bool:
    """The largest ``max_tokens`` the service's ``/solve`` accepts for a question whose prompt takes 100 tokens."""
    right = max_model_len - 100
    return check("Exercise 3", answer, right, rel=0,
                 hint="prompt + max_tokens must fit max_model_len (the rule the method checks itself)",
                 mistakes=[(max_model_len, "the annotation's bound alone (Le(max_model_len)); the prompt takes room "
                                           "too, which only the method can check"),
                           (right - 1, "prompt + max_tokens may equal max_model_len: the method refuses only more"),
                           (max_model_len // 2, "that is the default max_tokens, not the largest accepted")])


# ---------------------------------------------------------------- 07 · multi-head latent attention


def exercise_07_3(answer) -> bool:
    """How many times fewer bytes V3's MLA caches per token and layer than caching every head's expanded key and
    value (V3's config: 128 heads, key 128 + 64, value 128, latent 512 + rope key 64)."""
    from course_utils import catalog

    c = catalog.resolve("deepseek-ai/DeepSeek-V3").config
    latent = c["kv_lora_rank"] + c["qk_rope_head_dim"]
    key, value = c["qk_nope_head_dim"] + c["qk_rope_head_dim"], c["v_head_dim"]
    heads = c["num_attention_heads"]
    return check("Exercise 3", answer, heads * (key + value) / latent,
                 hint="expanded: every head's key (nope + rope) and value; MLA: the latent and the one rope key",
                 mistakes=[(heads * (key + value) / c["kv_lora_rank"], "the shared rope key is cached too: latent + "
                                                                        "rope"),
                           (heads * key / latent, "the expanded cache holds the values too, not only the keys"),
                           (heads * (c["qk_nope_head_dim"] + value) / latent, "each expanded key has its rope part "
                                                                             "too: nope + rope"),
                           ((key + value) / latent, "every head has its own key and value: times the heads")])
