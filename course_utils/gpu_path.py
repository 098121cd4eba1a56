"""The GPU path's sizes and run times: which distill a notebook runs on this GPU, how many problems, samples and
tokens, and about how long that takes. The notebooks' GPU branches are one call into this module, so the choices
are tested on a CPU with faked devices (a T4, an L4, an A100, an H100) instead of living untested in cells.

Run times here are **estimates, not measurements**. Decoding is bound by memory bandwidth: each engine step reads
the weights once, plus the KV cache of every sequence in the batch, and produces one token per sequence. The batch
is what the KV cache holds. With the datasheet bandwidth and an assumed efficiency, that gives seconds per token;
the completions' length is assumed too (half of ``max_tokens`` on average). ``make gpu-check`` measures the real
thing on a GPU you have.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from course_utils import catalog, hardware
from course_utils.catalog import GIB

# Memory bandwidth (GB/s) and dense fp16/bf16 tensor throughput (TFLOP/s) from NVIDIA's datasheets (A100 80 GB
# and H100/H200 in their SXM versions).
DATASHEET = {
    "T4-16GB": (320, 65), "L4-24GB": (300, 121), "A100-40GB": (1555, 312), "A100-80GB": (2039, 312),
    "H100-80GB": (3350, 989), "H200-141GB": (4800, 989),
}
EFFICIENCY = 0.5          # the assumed share of the datasheet figures a serving engine reaches (an assumption)
MEAN_LENGTH_SHARE = 0.5   # assumed: completions use half of max_tokens on average (reasoning traces run long)
BUDGET_MINUTES = 30       # each notebook's GPU path should finish well under an hour, even on a T4
SMALLEST = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


def gpu_class(total_gib: float, name: str = "") -> str:
    """The catalog GPU a device is: by its name first ("NVIDIA A100-SXM4-80GB" is an A100), then, within that family
    (or among all, for a name the catalog lacks), the one closest in memory. Memory alone misleads: an A100-80GB
    reports about 79.1 GiB, nearer an H100's 79.6 than its own 80.0."""
    family = re.search(r"\b(T4|L4|A100|H100|H200)\b", name.upper())
    candidates = [key for key in hardware.GPUS if family and key.startswith(family.group(1) + "-")] or hardware.GPUS
    return min(candidates, key=lambda key: abs(hardware.GPUS[key].memory_gib - total_gib))


def generation_minutes(model: str, gpu_name: str, completions: int, max_tokens: int, kv_cache_gib: float,
                       prompt_tokens: int = 200, dtype: str = "bfloat16") -> float:
    """Estimated minutes for vLLM to write ``completions`` completions of up to ``max_tokens`` each on one GPU."""
    if completions < 0 or max_tokens <= 0 or kv_cache_gib <= 0:
        raise ValueError("completions >= 0, max_tokens > 0 and kv_cache_gib > 0 are needed")
    bandwidth, flops = DATASHEET[hardware.gpu(gpu_name).name]
    new_tokens = MEAN_LENGTH_SHARE * max_tokens
    kv_per_token = catalog.kv_cache_bytes_per_token(model, dtype)
    batch = max(1, min(completions, int(kv_cache_gib * GIB // (kv_per_token * (prompt_tokens + new_tokens)))))
    mean_context = prompt_tokens + new_tokens / 2
    bytes_per_step = catalog.weight_bytes(model, dtype) + batch * mean_context * kv_per_token
    read_seconds = bytes_per_step / (bandwidth * 1e9 * EFFICIENCY)
    compute_seconds = 2 * catalog.count_parameters(model)[0] * batch / (flops * 1e12 * EFFICIENCY)
    steps = completions * new_tokens / batch
    return steps * max(read_seconds, compute_seconds) / 60


# ---------------------------------------------------------------- notebook 04


@dataclass(frozen=True)
class ReasoningSizes:
    """Notebook 04's GPU path on one GPU."""
    model: str
    second_model: str | None   # the 1.5B for section 6's size comparison, or None where only the 1.5B fits
    gpu: str
    max_model_len: int
    max_tokens: int
    engine_share: float        # the engine's gpu_memory_utilization; the rest holds the transformers copy (section 5)
    word_problems: int
    math_problems: int
    n_samples: int
    k_problems: int
    completions: int
    download_gb: float
    estimated_minutes: float

    def describe(self) -> str:
        second = f" and {self.second_model.split('/')[1]}" if self.second_model else ""
        return (f"GPU path on a {self.gpu}: {self.model.split('/')[1]}{second}; {self.word_problems} word problems + "
                f"{self.math_problems} MATH-500 problems, {self.n_samples} samples x {self.k_problems} problems for "
                f"pass@k, up to {self.max_tokens} new tokens: {self.completions:,} completions. First use downloads "
                f"about {self.download_gb:.1f} GB. Estimated generation time {self.estimated_minutes:.0f} min "
                "(bandwidth estimate, not a measurement).")


# (word problems, MATH-500 problems, samples, problems for pass@k, max new tokens), largest first: the first whose
# estimate fits the budget wins. Halving max_tokens cuts more completions short (counted apart in notebook 04).
REASONING_TIERS = [(20, 60, 8, 40, 8192), (20, 30, 8, 20, 8192), (10, 20, 4, 20, 8192), (10, 20, 4, 20, 4096),
                   (10, 10, 4, 10, 4096)]
TIP_SETTINGS = 8   # notebook 04 section 3 runs every problem under 8 settings


def reasoning_completions(problems: int, n_samples: int, k_problems: int, second_model: bool) -> int:
    """Notebook 04's completions on the GPU: the baseline, 8 tip settings, the hot run and (with a second size) its
    run, each over every problem; and pass@k's samples at two temperatures."""
    return problems * (1 + TIP_SETTINGS + 1 + int(second_model)) + 2 * n_samples * k_problems


def reasoning_sizes(device: hardware.Device, context: int = 16384) -> ReasoningSizes:
    """What notebook 04 runs on this GPU: the largest distill that fits in 45% of the free memory (the engine takes
    half; the other half holds a transformers copy for token probabilities), and the largest problem set whose
    estimated time stays within ``BUDGET_MINUTES``."""
    share = 0.45
    # the engine's share of the whole GPU, less where two CUDA contexts (the kernel's, the engine's) would not fit
    engine_share = hardware.startable_share(device, 0.5, processes=2)
    chosen = hardware.recommend(min(device.free_gib * share, device.total_gib * engine_share), bf16=device.bf16,
                                min_context=context)
    if chosen is None:
        raise MemoryError(f"no R1 distill fits in {share:.0%} of this GPU's {device.free_gib:.1f} GiB free with a "
                          f"{context}-token context; free GPU memory (other kernels) or run on a CPU (the toy R1)")
    second = SMALLEST if chosen.model != SMALLEST else None
    gpu_name = gpu_class(device.total_gib, device.name)
    kv_gib = chosen.kv_cache_gib_per_gpu
    for word, math_problems, samples, k, max_tokens in REASONING_TIERS:
        completions = reasoning_completions(word + math_problems, samples, k, second is not None)
        minutes = generation_minutes(chosen.model, gpu_name, completions, max_tokens, kv_gib, dtype=chosen.dtype)
        if minutes <= BUDGET_MINUTES:
            break
    download = catalog.weight_bytes(chosen.model) + (catalog.weight_bytes(second) if second else 0)
    return ReasoningSizes(chosen.model, second, gpu_name, context, max_tokens, engine_share, word, math_problems,
                          samples, k, completions, download / 1e9, round(minutes, 1))


# ---------------------------------------------------------------- notebook 03


def serving_choice(device: hardware.Device) -> tuple[hardware.ServingPlan | None, float | None]:
    """Notebook 03's model on this GPU (the largest distill with an 8,192-token context in its free memory) and its
    estimated generation minutes; (None, None) when nothing fits."""
    plan = hardware.recommend(device.free_gib, bf16=device.bf16, min_context=8192)
    if plan is None:
        return None, None
    return plan, serving_minutes(plan.model, gpu_class(device.total_gib, device.name), plan.kv_cache_gib_per_gpu,
                                 plan.dtype)


def serving_minutes(model: str, gpu_name: str, kv_cache_gib: float, dtype: str = "bfloat16") -> float:
    """Estimated vLLM generation time of notebook 03's GPU path: 8 chats of up to 4,096 tokens, 16 x 256 tokens for
    the speed table, 64 x 512 tokens at each of 3 load levels, and the server's chat and streaming calls."""
    parts = [(8, 4096), (16, 256), (3 * 64, 512), (4, 4096)]
    return sum(generation_minutes(model, gpu_name, n, tokens, kv_cache_gib, dtype=dtype) for n, tokens in parts)


def cell_timeout(on_gpu: bool, cpu_seconds: int = 900) -> int:
    """nbval's per-cell limit: the CPU path's cells finish in minutes; on a GPU one cell generates hundreds of
    reasoning completions (notebook 04) or downloads a distill, so the limit is an hour there."""
    return max(cpu_seconds, 3600) if on_gpu else cpu_seconds


def minutes_table(gpu_names=("T4-16GB", "L4-24GB", "A100-40GB", "H100-80GB")) -> list[dict]:
    """The README's and notebooks' stated GPU times for notebooks 03 and 04, one row per GPU class."""
    rows = []
    for name in gpu_names:
        card = hardware.gpu(name)
        device = hardware.Device("cuda", name, 1, card.memory_gib, card.memory_gib - 0.5, card.bf16, 8, 64)
        reasoning = reasoning_sizes(device)
        served, serving = serving_choice(device)
        rows.append({"GPU": name,
                     "notebook 03 model": served.model.split("/")[1],
                     "notebook 03 download (GB)": round(catalog.weight_bytes(served.model) / 1e9, 1),
                     "notebook 03 generation (min)": math.ceil(serving),
                     "notebook 04 model": reasoning.model.split("/")[1]
                     + (f" + {reasoning.second_model.split('/')[1]}" if reasoning.second_model else ""),
                     "notebook 04 download (GB)": round(reasoning.download_gb, 1),
                     "notebook 04 completions": reasoning.completions,
                     "notebook 04 generation (min)": math.ceil(reasoning.estimated_minutes)})
    return rows
