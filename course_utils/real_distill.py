"""The real DeepSeek-R1-Distill-Qwen-1.5B on a laptop CPU, opt-in: ``COURSE_REAL_DISTILL=1`` (``make lab REAL=1``)
makes the CPU path of notebooks 03 and 04 serve the real distill instead of the toy R1, with work sized for a CPU.

Before anything is downloaded, ``choose`` says what it costs on this machine: the download, the memory (the
calculator's weights and KV cache, plus the runtime overhead measured on the distill's shape twin), the time (the
twin's tokens/s, measured, scaled by this machine's cores) and the dtype vLLM's CPU build computes in. Offline
without a downloaded copy, or short of memory, it says so within seconds and the notebook keeps the toy.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from course_utils import catalog, twin
from course_utils.catalog import GIB

SWITCH = "COURSE_REAL_DISTILL"
MODEL = twin.REPO
KV_CACHE_GIB = 1                 # the CPU engine's KV pool (VLLM_CPU_KVCACHE_SPACE), as for the toy
MAX_MODEL_LEN = 2048             # prompt + budget: far inside the 1 GiB pool (37,376 tokens of this model)
RAM_SHARE = 0.8                  # leave a fifth of the RAM to the system, the browser and the notebook
# `make rehearse` writes this machine's own figures here (in the course's cache, outside the package)
CACHE = Path(os.environ.get("DEEPSEEK_COURSE_CACHE", Path.home() / ".cache" / "deepseek-hands-on"))
REHEARSAL = CACHE / "rehearse.json"

# What `make rehearse` measured on the twin (random weights, the distill's exact shapes) on the machine named here:
# vLLM's CPU engine in bf16, greedy, 64 new tokens per sequence; the server's processes (API and engine) and the
# process beside them that calls it (torch, vLLM and transformers loaded). A rehearsal on your machine replaces these
# figures (REHEARSAL), and the estimates are then this machine's own measurement.
REFERENCE = {
    "machine": "a 2-core AMD EPYC with AVX-512 BF16 (make rehearse, 2026-12-06)", "cores": 2,
    "tokens_per_s": {"1": 7.26, "8": 38.27}, "transformers_tokens_per_s": {"1": 4.21, "8": 24.40},
    "engine_start_s": 18.7, "server_start_s": 33.2, "server_rss_gib": 7.09, "client_process_gib": 2.11,
}


def ram_needed(figures: dict | None = None) -> tuple[float, int]:
    """(GiB the real 1.5B needs while it serves, the RAM of the smallest machine that leaves the system its fifth):
    the one RAM figure the course states for it (the README, the notebooks and `make doctor` print this)."""
    figures = figures or measured()
    need = figures["server_rss_gib"] + figures["client_process_gib"]
    return round(need, 1), math.ceil(need / RAM_SHARE)


def ram_text(figures: dict | None = None) -> str:
    need, machine = ram_needed(figures)
    return f"about {need:.1f} GiB of RAM (a machine with {machine} GiB or more)"


def wanted() -> bool:
    """Did the learner switch the real distill on (``COURSE_REAL_DISTILL`` set to anything but empty or 0)?"""
    return os.environ.get(SWITCH, "") not in ("", "0")


def measured() -> dict:
    """The rehearsal's figures: this machine's own (``make rehearse``) when they exist, else REFERENCE."""
    if REHEARSAL.exists():
        found = json.loads(REHEARSAL.read_text())
        if {"tokens_per_s", "cores"} <= found.keys():
            return {**REFERENCE, **found, "machine": f"this machine (make rehearse, {found.get('when', '')})"}
    return REFERENCE


def in_flight_speed(figures: dict, in_flight: int, key: str = "tokens_per_s") -> float:
    """Output tokens/s with ``in_flight`` sequences decoding together: measured at 1 and 8, straight line between
    them (an assumption), no gain past 8."""
    one, eight = figures[key]["1"], figures[key]["8"]
    return one + (eight - one) * (min(max(in_flight, 1), 8) - 1) / 7


def core_factor(cores: int, figures: dict) -> float:
    """How much faster this machine decodes than the measured one: proportional to the cores, up to 8. An
    assumption, and an optimistic one past a few cores: decoding reads all the weights for every step, so memory
    bandwidth, which grows more slowly than the cores, soon limits it."""
    return min(max(cores, 1), 8) / figures["cores"]


def dtype_note(avx512: bool, avx512_bf16: bool) -> str:
    """The dtype vLLM's CPU build serves the distill in on this CPU, from vLLM's own source (vllm/platforms/cpu.py:
    ``supported_dtypes`` lists bfloat16 for every x86 CPU, so the config's bfloat16 stays; ``import_kernels`` picks
    the kernel library by instruction set)."""
    if avx512_bf16:
        return "bfloat16 (this CPU has AVX-512 BF16: vLLM loads its native bf16 kernels, vllm._C)"
    if avx512:
        return ("bfloat16 weights (the same memory); this CPU has AVX-512 without BF16, so vLLM loads vllm._C_AVX512 "
                "and converts bf16 in its kernels: slower than the measured machine, by how much was not measured")
    return ("bfloat16 weights (the same memory); this CPU has AVX2 only, so vLLM loads vllm._C_AVX2 and converts "
            "bf16 in its kernels: slower than the measured machine, by how much was not measured")


@dataclass(frozen=True)
class Cost:
    download_gb: float       # 0 when a copy is already in the Hub cache
    need_gib: float          # RAM while the server runs: its processes and the notebook's, as measured
    weights_gib: float
    ram_gib: float
    dtype: str
    figures: dict

    @property
    def fits(self) -> bool:
        """Leaves a fifth of the RAM (RAM_SHARE) to the system, the browser and the rest."""
        return self.need_gib <= RAM_SHARE * self.ram_gib

    def minutes(self, jobs: list[tuple[int, int, int]], starts: int, cores: int) -> float:
        """Estimated minutes for ``jobs`` of (sequences, new tokens each, in flight) and ``starts`` engine starts."""
        scale = core_factor(cores, self.figures)
        seconds = starts * self.figures["server_start_s"]
        for sequences, tokens, in_flight in jobs:
            speed = in_flight_speed(self.figures, min(in_flight, sequences)) * scale
            seconds += sequences * tokens / speed if speed > 0 else float("inf")
        return seconds / 60


@dataclass(frozen=True)
class Choice:
    model: str | None        # the Hub id to serve, or None: keep the toy
    message: str
    is_twin: bool = False    # the Hub cache holds the course's shape twin (random weights), not the download
    cost: Cost | None = None


def cost(ram_gib: float, cached: bool, avx512: bool, avx512_bf16: bool) -> Cost:
    figures = measured()
    weight_bytes = catalog.weight_bytes(MODEL, "bfloat16")
    need = figures["server_rss_gib"] + figures["client_process_gib"]    # measured: weights, KV pool, runtime
    download = 0.0 if cached else weight_bytes / 1e9
    return Cost(round(download, 2), round(need, 1), round(weight_bytes / GIB, 2), ram_gib,
                dtype_note(avx512, avx512_bf16), figures)


def vllm_cpu_isa() -> tuple[bool, bool]:
    """(AVX-512, AVX-512 BF16), asked as vLLM's CPU build asks when it picks its kernels (vllm/platforms/cpu.py
    calls these torch functions), so the dtype note says what vLLM will do here."""
    import torch

    return torch.cpu._is_avx512_supported(), torch.cpu._is_avx512_bf16_supported()


def cached_copy(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The downloaded copy's folder in the Hub cache (``cache_dir``, default the Hub's own), or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(MODEL, "config.json", cache_dir=cache_dir)
    return Path(found).parent if isinstance(found, str) else None


def choose(ram_gib: float, *, wanted_real: bool, online=None, avx512: bool | None = None,
           avx512_bf16: bool | None = None, cache_dir: str | os.PathLike | None = None) -> Choice:
    """The CPU path's model: the real distill when it was asked for and this machine can take it, else the toy,
    with the reason. ``online`` is a function that says whether huggingface.co answers (asked only when no copy
    is downloaded; default ``model_source.hub_reachable``, at most 3 s)."""
    if not wanted_real:
        return Choice(None, f"CPU path: the toy R1 (set {SWITCH}=1 for the real {MODEL.split('/')[1]})")
    from course_utils.model_source import hub_reachable

    if avx512 is None or avx512_bf16 is None:
        avx512, avx512_bf16 = vllm_cpu_isa()
    copy = cached_copy(cache_dir)
    plan = cost(ram_gib, copy is not None, avx512, avx512_bf16)
    if not plan.fits:
        return Choice(None, f"{SWITCH}=1, but the real {MODEL} needs {ram_text(plan.figures)}: weights "
                            f"{plan.weights_gib:.1f} GiB + KV cache {KV_CACHE_GIB} GiB + runtime, and this machine "
                            f"has {ram_gib:.1f} GiB: keeping the toy R1. Close other programs or use a larger "
                            "machine.", cost=plan)
    if copy is None and not (online or hub_reachable)():
        return Choice(None, offline_message(plan, cores=os.cpu_count() or 1), cost=plan)
    is_twin = copy is not None and twin.is_twin(copy)
    what = ("its shape twin: RANDOM WEIGHTS, the real shapes (its text is noise; memory and speed are the real "
            "model's)" if is_twin else "the real distill")
    fetch = (f"downloads {plan.download_gb:.2f} GB from the Hugging Face Hub the first time" if plan.download_gb
             else "already downloaded")
    return Choice(MODEL, f"CPU path: {MODEL}, {what}; {fetch}; needs about {plan.need_gib:.1f} GiB of this "
                         f"machine's {ram_gib:.1f} GiB of RAM; dtype: {plan.dtype}", is_twin, plan)


def offline_message(plan: Cost, cores: int) -> str:
    """What to do when the real 1.5B is asked for on a machine that has no copy and cannot reach the Hub: bring the
    model in from a connected machine, with what it needs here."""
    from huggingface_hub import constants

    scale = core_factor(cores, plan.figures)
    one = in_flight_speed(plan.figures, 1) * scale
    return (f"{SWITCH}=1, but {MODEL} is not downloaded here and huggingface.co cannot be reached: keeping the toy "
            f"R1. To bring it in: on a connected machine run `hf download {MODEL}` ({plan.weights_gib * GIB / 1e9:.2f} "
            f"GB; it lands in the Hugging Face cache, ~/.cache/huggingface/hub), then copy the folder "
            f"models--{MODEL.replace('/', '--')} into this machine's cache ({constants.HF_HUB_CACHE}), or set "
            f"HF_HUB_CACHE to where you copied it; then run this cell again. Here it will need "
            f"{ram_text(plan.figures)} and decode about {one:.1f} tokens/s for one answer (measured on the twin, "
            f"{plan.figures['machine']}, scaled to {cores} cores).")


def doctor_line(ram_gib: float, cores: int) -> str:
    """What ``make doctor`` says about the real 1.5B on this CPU: whether it fits and how fast it would run."""
    plan = cost(ram_gib, cached_copy() is not None, *vllm_cpu_isa())
    if not plan.fits:
        return (f"Real 1.5B distill ({SWITCH}=1): does not fit, it needs {ram_text(plan.figures)} and "
                f"{RAM_SHARE:.0%} of this machine's {ram_gib:.1f} GiB is {RAM_SHARE * ram_gib:.1f}")
    scale = core_factor(cores, plan.figures)
    one, eight = (in_flight_speed(plan.figures, n) * scale for n in (1, 8))
    fetch = f"a {plan.download_gb:.2f} GB download" if plan.download_gb else "already downloaded"
    return (f"Real 1.5B distill ({SWITCH}=1, make lab REAL=1): fits (about {plan.need_gib:.1f} of "
            f"{ram_gib:.1f} GiB of RAM; {fetch}); about {one:.1f} tokens/s for one answer, {eight:.0f} with 8 in "
            f"flight (measured on the twin, {plan.figures['machine']}, scaled to {cores} cores); "
            f"dtype: {plan.dtype}")
