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
    """GiB of KV cache for one 32,768-token request on R1-Distill-Llama-8B in bf16."""
    from course_utils import catalog

    gib = 32768 * catalog.kv_cache_bytes_per_token("R1-Distill-Llama-8B") / GIB
    return check("Exercise 1", answer, gib, hint="per token: 2 (K and V) x layers x KV heads x head_dim x 2 bytes",
                 mistakes=[(gib / 2, "that is K or V alone; the cache holds both"),
                           (gib * 2, "that is 4 bytes per value (fp32); bf16 takes 2"),
                           (gib * 4, "the cache has one K and one V per *KV* head (8 here), not per attention head "
                                     "(32): that is grouped-query attention's saving")])


def exercise_00_2(answer) -> bool:
    """Fewest 80 GB H100s for R1-Distill-Llama-70B in bf16 with a 32,768-token context."""
    from course_utils import hardware

    n = hardware.plan_serving("R1-Distill-Llama-70B", "H100", 8, min_context=32768).tensor_parallel
    return check("Exercise 2", answer, n, rel=0, hint="weights are 131 GiB in bf16; try "
                 "hardware.plan_serving(..., min_context=32768) with 1, 2 and 4 GPUs",
                 mistakes=[(1, "131 GiB of weights do not fit one 80 GB GPU"),
                           (8, "that fits, but fewer GPUs do too")])


def exercise_00_3(answer) -> bool:
    """US$ for 10 million R1 output tokens in the off-peak window (prices of 2025-03-06)."""
    from course_utils import pricing

    price = pricing.API_PRICES["deepseek-reasoner"]
    return check("Exercise 3", answer, pricing.api_cost("deepseek-reasoner", 0, 10_000_000, off_peak=True),
                 hint="the off-peak output price listed for deepseek-reasoner: pricing.API_PRICES",
                 mistakes=[(10 * price.output, "that is the peak price; the window is off-peak"),
                           (10 * price.off_peak_input_cache_miss, "that is the off-peak *input* price"),
                           (10 * price.output / 2, "the off-peak discount for R1 is larger than half")])


# ---------------------------------------------------------------- 01 · MoE routing


def exercise_01_1(answer) -> bool:
    """MaxVio of a batch sending 600, 200, 100, 100 of 1,000 assignments to four experts."""
    return check("Exercise 1", answer, (600 - 250) / 250, hint="(max - mean) / mean, with the mean load per expert",
                 mistakes=[(600 / 250, "that is max / mean; MaxVio subtracts the mean first (0 = balanced)"),
                           ((600 - 100) / 250, "that is (max - min) / mean; MaxVio compares the max with the mean"),
                           ((600 - 250) / 1000, "divide by the mean load, not by the total")])


def exercise_01_2(answer) -> bool:
    """Growth of the number of expert combinations: 16 experts top-2 -> 64 experts top-8."""
    return check("Exercise 2", answer, math.comb(64, 8) / math.comb(16, 2), hint="combinations of k experts out of "
                 "N: math.comb(N, k), before and after",
                 mistakes=[(64 / 16, "that is the growth of the number of experts, not of their combinations"),
                           (math.comb(64, 8), "that is the number of combinations after; divide by the number before"),
                           (math.perm(64, 8) / math.perm(16, 2), "the order of the chosen experts does not matter: "
                                                               "combinations, not permutations")])


def exercise_01_3(answer, routing) -> bool:
    """The Switch auxiliary loss alpha * N * sum(f * P) for the notebook's four experts."""
    from course_utils import moe

    loss = moe.switch_aux_loss(routing, 4, alpha=0.01).item()
    return check("Exercise 3", answer, loss, hint="alpha times N times the sum over experts of f times P",
                 mistakes=[(loss / 4, "the N in front is missing (it makes a balanced router score alpha)"),
                           (loss / 0.01, "alpha is missing"),
                           (0.01 * 4 * 1.0, "that is sum(f) * sum(P): multiply expert by expert, then sum")])


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


def exercise_03_1(answer, toy_kv: float) -> bool:
    """Tokens a 2 GiB KV cache holds for the toy, in whole blocks of 128."""
    from course_utils.kv_cache import kv_cache_capacity

    return check("Exercise 1", answer, kv_cache_capacity(2 * GIB, toy_kv, 128), rel=0,
                 hint="how many whole tokens fit in 2 GiB, and then how many whole blocks of 128 tokens?",
                 mistakes=[(2 * GIB // toy_kv, "right number of whole tokens, but vLLM hands out whole blocks of "
                                               "128: the last partial block is never used"),
                           (2 * GIB / toy_kv, "tokens come whole, and then in whole blocks of 128"),
                           (kv_cache_capacity(GIB, toy_kv, 128), "that is the 1 GiB the notebook uses; the "
                                                                 "exercise sets 2 GiB")])


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


def exercise_04_3(answer, tips) -> bool:
    """The setting of the tips table that lost the most accuracy against the first row (ties all count)."""
    loss = tips["accuracy"].iloc[0] - tips["accuracy"]
    worst = set(loss.index[loss == loss.max()])
    best_other = tips["accuracy"].iloc[1:].idxmax()
    return check("Exercise 3", answer, worst, hint="subtract each row's accuracy from the first row's and take the "
                 "largest", mistakes=[(tips.index[0], "that is the reference row: it loses nothing against itself"),
                                      (best_other, "that setting lost the least, not the most")])


# ---------------------------------------------------------------- 05 · R1-Zero's RL


def exercise_05_1(answer) -> bool:
    """Advantage of the first completion of a group with rewards [2, 0, 0, 1] (sample std, eps = 1e-4)."""
    from course_utils.grpo import group_advantages

    rewards = [2.0, 0.0, 0.0, 1.0]
    advantage = group_advantages(rewards, 4)[0].item()
    centred = rewards[0] - statistics.mean(rewards)
    return check("Exercise 1", answer, advantage, hint="subtract the group's mean, divide by its sample standard "
                 "deviation (n - 1 in the denominator) plus eps",
                 mistakes=[(centred, "the reward minus the mean is half of it: divide by the standard deviation"),
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


def exercise_06_3(answer, bad_inputs) -> bool:
    """The bad input the type annotations could not catch, so that the method itself raised."""
    others = [name for name in bad_inputs if name != "max_tokens past the context"]
    return check("Exercise 3", answer, "max_tokens past the context",
                 hint="which rule depends on the prompt's length? look at the messages in the refusals table",
                 mistakes=[(name, "the annotations catch that one (read its message in the refusals table)")
                           for name in others])
