"""The KV cache in tokens: how many a pool of memory holds, and how close a prediction can be to what vLLM reports."""

from __future__ import annotations

import math

from course_utils.catalog import GIB


def kv_cache_capacity(cache_bytes: float, kv_bytes_per_token: float, block_size: int) -> int:
    """Tokens a KV pool of ``cache_bytes`` holds: whole tokens, then whole blocks of ``block_size`` tokens (vLLM
    hands memory out a block at a time, so a partial block at the end is never used)."""
    if not kv_bytes_per_token > 0 or not isinstance(block_size, int) or block_size < 1:
        raise ValueError("kv_bytes_per_token must be positive and block_size a positive whole number")
    return int(cache_bytes // kv_bytes_per_token) // block_size * block_size


def kv_tokens_tolerance(kv_bytes_per_token: float, block_size: int, gib_logged_exactly: bool) -> int:
    """How far the KV-cache capacity predicted from vLLM's logged KV memory may be from the capacity vLLM logs.

    On a GPU, vLLM logs the memory it left for the KV cache rounded to 0.01 GiB (``format_gib``), so the true size
    is up to 0.005 GiB away from the logged one; the capacity also counts whole blocks. On a CPU the course sets the
    KV cache in whole GiB (``VLLM_CPU_KVCACHE_SPACE``), the logged size is exact, and so is the prediction: 0."""
    if not kv_bytes_per_token > 0 or not isinstance(block_size, int) or block_size < 1:
        raise ValueError("kv_bytes_per_token must be positive and block_size a positive whole number")
    if gib_logged_exactly:
        return 0
    return math.ceil(0.005 * GIB / kv_bytes_per_token) + block_size
