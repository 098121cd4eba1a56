"""The KV cache in tokens: how many a pool of memory holds, how close a prediction can be to what vLLM reports, and
notebook 03's table of what a server reserved beside what was predicted."""

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


def memory_rows(plan, reported: dict, server_pid: int, share: float | None, device) -> dict:
    """Notebook 03's memory table beyond the KV cache, as (what vLLM reports, the prediction) per row: on a GPU the
    weights, the runtime overhead (``share`` of CUDA's total, which vLLM's share is of, less weights and KV cache) and
    the KV capacity the plan expected; serving a real distill on a CPU, the server's resident memory beside weights
    + KV pool; for the toy, the weights file beside parameters x 4 bytes (vLLM's log rounds them to 0.00 GiB)."""
    from pathlib import Path

    from course_utils import catalog, hardware, speed

    rows = {}
    if plan.on_gpu:
        predicted_weights = catalog.weight_bytes(plan.model, "bfloat16") / GIB
        rows["weights (GiB)"] = (reported["weights_gib"], round(predicted_weights, 2))
        overhead = share * hardware.cuda_total_now(device) - reported["weights_gib"] - reported["kv_cache_gib"]
        rows["runtime overhead (GiB)"] = (round(overhead, 2),
                                          f"{hardware.RUNTIME_OVERHEAD_GIB} (the calculator's estimate)")
        rows["KV capacity, the plan's prediction (tokens)"] = (reported["kv_cache_tokens"], plan.predicted_kv_tokens)
    elif plan.real:
        predicted_weights = catalog.weight_bytes(plan.model, "bfloat16") / GIB
        predicted = predicted_weights + reported["kv_cache_gib"]
        rows["resident memory of the server (GiB)"] = (round(speed.resident_gib(server_pid), 2),
                                                       f"{predicted:.2f} (weights + KV)")
    else:
        files = sorted(Path(plan.model).glob("*.safetensors"))
        size = sum(f.stat().st_size for f in files) / 2**20
        rows["weights (MiB)"] = (round(size, 2), round(stored_parameters(files) * 4 / 2**20, 2))
    return rows


def stored_parameters(files) -> int:
    """The number of parameters in safetensors files, read from their headers (nothing is loaded)."""
    import math

    from safetensors import safe_open

    count = 0
    for path in files:
        with safe_open(str(path), "pt") as f:
            count += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return count
