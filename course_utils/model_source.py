"""What to serve, checked before anything starts: a local model folder or a DeepSeek model from the course catalog,
refused at once and with advice when vLLM would refuse it slowly or with a deep stack trace (an unknown model, a
context longer than the model's, a model too big for this machine, a Hub model while offline).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from course_utils import catalog, hardware
from course_utils.catalog import GIB


def _looks_like_path(model: str) -> bool:
    """A Hub id is "owner/name"; anything starting like a path, or deeper, is a local folder."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1


@dataclass(frozen=True)
class ModelSource:
    """What to load: a local folder or a catalog model on the Hub, with the facts the checks need."""

    model: str               # absolute folder path, or Hub id
    name: str                # short name to serve it under
    local: bool
    max_positions: int       # the longest context the config allows (vLLM refuses a larger max_model_len)
    weights_gib: float       # bf16 weights for a Hub model; the files' size for a folder


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _in_hub_cache(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo, "config.json"), str)
    except ImportError:
        return False


def resolve_model(model: str | os.PathLike) -> ModelSource:
    """A local model folder, or a DeepSeek model from the course catalog (Hub id or short name)."""
    text = str(model)
    if _looks_like_path(text) or Path(text).expanduser().exists():
        path = Path(text).expanduser()
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no model at {path} (a model folder holds a config.json). For the toy R1 use "
                                    "course_utils.toy_reasoner.checkpoint_path()")
        config = json.loads((path / "config.json").read_text())
        size = sum(f.stat().st_size for f in path.iterdir() if f.suffix in (".safetensors", ".bin"))
        return ModelSource(str(path.resolve()), path.resolve().name, True,
                           int(config.get("max_position_embeddings", 0)) or 10**9, size / GIB)
    try:
        facts = catalog.resolve(text)
    except ValueError as error:
        raise ValueError(f"{error} Any other model: pass the path of its downloaded folder.") from None
    return ModelSource(facts.name, facts.name.split("/")[1], False, facts.config["max_position_embeddings"],
                       catalog.weight_bytes(facts.name, "bfloat16") / GIB)


def check_model(model: str | os.PathLike, max_model_len: int | None = None, device=None) -> ModelSource:
    """Refuse, at once and with advice, what vLLM would refuse slowly or with a deep stack trace: an unknown model,
    a ``max_model_len`` above the model's, a model too big for this machine, a Hub model while offline."""
    source = resolve_model(model)
    if max_model_len is not None:
        if not isinstance(max_model_len, int) or max_model_len < 1:
            raise ValueError(f"max_model_len must be a positive whole number of tokens, got {max_model_len!r}")
        if max_model_len > source.max_positions:
            raise ValueError(f"max_model_len={max_model_len} is above what {source.name} supports "
                             f"({source.max_positions} tokens, max_position_embeddings in its config.json); "
                             f"use max_model_len <= {source.max_positions}")
    device = device or hardware.detect_device()
    if device.kind != "cuda":
        budget = 0.8 * device.ram_gib
        if source.weights_gib + 1 > budget:
            raise MemoryError(f"{source.name} needs {source.weights_gib:.1f} GiB for its weights alone; this "
                              f"{device.kind.upper()} machine has {device.ram_gib:.0f} GiB of RAM. Serve it on a GPU "
                              "(see notebook 00's calculator), or on this machine serve the toy R1: "
                              "course_utils.toy_reasoner.checkpoint_path()")
    elif not source.local:
        plan = hardware.plan_serving(source.model, memory_gib=device.free_gib, bf16=device.bf16, fp8=device.bf16,
                                     min_context=max_model_len or 4096)
        if not plan.fits:
            smaller = hardware.recommend(device.free_gib, bf16=device.bf16, min_context=max_model_len or 4096)
            advice = f"; the largest that fits: {smaller.model}" if smaller else ""
            raise MemoryError(f"{source.name} does not fit on this {device.name} with {device.free_gib:.0f} GiB "
                              f"free: {plan.reason}{advice}")
    if not source.local and not _in_hub_cache(source.model) and not hub_reachable():
        raise ConnectionError(f"{source.model} is not downloaded here and huggingface.co cannot be reached. "
                              "Connect to the internet (or copy the model folder here and pass its path)")
    return source
