"""The GPU path's arithmetic: will a vLLM engine start on this GPU, with which model, context and memory share, and
about how long its work takes. The run plans (``run_plans``) size each notebook's GPU path with these functions, so
the choices are tested on a CPU with faked devices (a T4, an RTX 3060, an L4, an A100, an H100, a MIG slice) instead
of living untested in cells.

**vLLM 0.32's rule for starting an engine** (``vllm/v1/worker/utils.py``, ``request_memory``; the KV check in
``vllm/v1/core/kv_cache_utils.py``): the engine asks for ``gpu_memory_utilization x total`` bytes, where *total* is
what CUDA reports (a little less than nvidia-smi's figure), and refuses to start unless that much is free once its
own CUDA context exists. Inside that share go the weights, a runtime overhead (activations while profiling, CUDA
graphs, library workspaces) and the KV cache, which must hold at least one request of ``max_model_len`` tokens.

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

from course_utils import catalog, hardware, vllm_parts
from course_utils.catalog import GIB

# Memory bandwidth (GB/s) and dense fp16/bf16 tensor throughput (TFLOP/s) from NVIDIA's datasheets (A100 80 GB
# and H100/H200 in their SXM versions).
DATASHEET = {
    "T4-16GB": (320, 65), "L4-24GB": (300, 121), "A100-40GB": (1555, 312), "A100-80GB": (2039, 312),
    "H100-80GB": (3350, 989), "H200-141GB": (4800, 989),
}
EFFICIENCY = 0.5          # the assumed share of the datasheet figures a serving engine reaches (an assumption)
MEAN_LENGTH_SHARE = 0.5   # assumed: completions use half of max_tokens on average (reasoning traces run long)
SMALLEST = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
# What a transformers copy of a model needs beyond its weights for notebook 04's token probabilities: one forward
# pass over up to max_model_len tokens (the decoder's KV cache and one layer's activations), the output head in
# chunks of 512 positions (token_probs.token_probabilities). An estimate with a margin.
TRANSFORMERS_WORK_GIB = 1.5


def gpu_class(total_gib: float, name: str = "") -> str:
    """The catalog GPU a device is: by its name first ("NVIDIA A100-SXM4-80GB" is an A100), then, within that family
    (or among all, for a name the catalog lacks), the one closest in memory. Memory alone misleads: an A100-80GB
    reports about 79.1 GiB, nearer an H100's 79.6 than its own 80.0."""
    family = re.search(r"\b(T4|L4|A100|H100|H200)\b", name.upper())
    candidates = [key for key in hardware.GPUS if family and key.startswith(family.group(1) + "-")] or hardware.GPUS
    return min(candidates, key=lambda key: abs(hardware.GPUS[key].memory_gib - total_gib))


def dtype_for(device: hardware.Device) -> str:
    """bfloat16 where the GPU computes it natively (Ampere and newer), else float16 (a T4: vLLM's ``--dtype half``)."""
    return "bfloat16" if device.bf16 else "float16"


@dataclass(frozen=True)
class EngineFit:
    """A vLLM engine for ``model`` on one GPU that starts under vLLM's rule."""
    model: str
    max_model_len: int
    share: float             # the gpu_memory_utilization to pass
    dtype: str
    weights_gib: float
    kv_cache_gib: float      # what vLLM fills with KV cache: share x CUDA total - weights - runtime
    kv_cache_tokens: int
    gpu: str                 # the catalog class, for time estimates

    @property
    def engine_options(self) -> dict:
        """``vllm.LLM`` keyword arguments for this engine (besides the model and ``max_model_len``)."""
        return {"gpu_memory_utilization": self.share}


def engine_fit(model: str, device: hardware.Device, *, context: int, processes: int = 1, leave_gib: float = 0.0,
               wanted_share: float | None = None) -> EngineFit | None:
    """The engine for ``model`` with ``max_model_len=context`` on this GPU, or None where vLLM would refuse it.

    ``processes``: CUDA contexts still to be opened before the engine checks its memory (the engine's own, and the
    notebook kernel's where it will load a model too); ``leave_gib``: memory that must stay free beside the engine
    (a transformers copy loaded while the engine runs). The share is vLLM's default (or ``wanted_share``), lowered
    to what is free; the engine fits when weights, the runtime overhead and KV cache for ``context`` tokens (with
    ``hardware.KV_HEADROOM``'s margin) fit in it."""
    wanted = wanted_share if wanted_share is not None else vllm_parts.default_memory_share()
    room = (device.free_gib - processes * hardware.CUDA_CONTEXT_GIB - leave_gib) / device.total_gib
    share = math.floor(min(wanted, room) * 100) / 100
    if share < 0.1:
        return None
    dtype = dtype_for(device)
    weights = catalog.weight_bytes(model, dtype) / GIB
    per_token = catalog.kv_cache_bytes_per_token(model, "bfloat16")   # vLLM keeps the KV cache in 16 bits
    kv_gib = share * hardware.cuda_total_estimate(device) - weights - hardware.RUNTIME_OVERHEAD_GIB
    tokens = int(kv_gib * GIB / per_token) if kv_gib > 0 else 0
    if tokens * hardware.KV_HEADROOM < context or context > catalog.resolve(model).context_length:
        return None
    return EngineFit(model, context, share, dtype, round(weights, 2), round(kv_gib, 2), tokens,
                     gpu_class(device.total_gib, device.name))


def transformers_need_gib(model: str, device: hardware.Device) -> float:
    """Memory a transformers copy of ``model`` takes on this GPU for notebook 04's token probabilities."""
    return catalog.weight_bytes(model, dtype_for(device)) / GIB + TRANSFORMERS_WORK_GIB


def largest_engine(device: hardware.Device, contexts: tuple[int, ...], *, processes: int = 1,
                   leave_gib: float = 0.0, candidates: list[str] | None = None) -> EngineFit | None:
    """The largest distill (by parameters) whose engine starts on this GPU with the longest context it can have
    from ``contexts`` (tried in order: a shorter one only where the longer one does not fit any), or None."""
    by_size = sorted(candidates or catalog.DISTILLS, key=lambda name: -catalog.count_parameters(name)[0])
    for context in contexts:
        for model in by_size:
            fit = engine_fit(model, device, context=context, processes=processes, leave_gib=leave_gib)
            if fit:
                return fit
    return None


def attention_backend(capability: tuple[int, int] | None) -> str | None:
    """The attention backend to ask for: TRITON_ATTN below compute capability 8.0 (a T4), where vLLM 0.19.1 would pick
    FlashInfer, which compiles with nvcc (0.32 picks TRITON_ATTN there itself); else None, vLLM's own choice."""
    if capability is not None and tuple(capability) != (0, 0) and tuple(capability) < (8, 0):
        return "TRITON_ATTN"
    return None


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


def fake_device(gpu_name: str, free_gib: float | None = None, count: int = 1) -> hardware.Device:
    """A device with a catalog GPU's facts (free: all but half a GiB unless given), for tables and tests."""
    card = hardware.gpu(gpu_name)
    capability = (7, 5) if not card.bf16 else (8, 0)
    free = card.memory_gib - 0.5 if free_gib is None else free_gib
    return hardware.Device("cuda", card.name, count, card.memory_gib, free, card.bf16, 8, 64, capability)


def test_suite_environment(gpu_present: bool, vllm_cpu_build: bool) -> dict[str, str]:
    """How ``make test`` runs on a machine with an NVIDIA GPU: the suite checks the CPU path (its figures, its bars,
    the toy's engines), so the GPU is hidden from it (``CUDA_VISIBLE_DEVICES=""``); two pytest workers never start
    engines on one GPU, and no test asserts a CPU fact against a GPU engine. Where the installed vLLM is the CUDA
    build, which cannot run without a GPU, the notebooks take their labelled transformers fallback
    (``COURSE_NO_VLLM=1``) and the tests that start vLLM engines are skipped (conftest.py). The GPU path itself is
    ``make gpu-check``'s. Nothing changes on a machine without a GPU."""
    if not gpu_present:
        return {}
    hidden = {"CUDA_VISIBLE_DEVICES": ""}
    return hidden if vllm_cpu_build else {**hidden, "COURSE_NO_VLLM": "1"}
