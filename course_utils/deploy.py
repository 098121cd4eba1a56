"""Putting a distill behind a BentoML service: the service's settings, and the service as a context manager.

    with BentoServer(toy_reasoner.checkpoint_path()) as service:
        service.client().chat.completions.create(...)    # the OpenAI API, as from a bare vLLM server
        requests.post(service.url + "/solve", json={...})  # the typed endpoint BentoML validates

The service itself is ``course_utils/bento_service.py``. It reads its configuration from environment variables
(``SERVICE_MODEL``, ``SERVICE_MAX_MODEL_LEN``, ``SERVICE_DTYPE``, ``SERVICE_KV_CACHE_GIB``,
``SERVICE_GPU_MEMORY_UTILIZATION``), so one file serves the toy R1 on a CPU and a real distill on a GPU;
``settings_from_env`` turns them into checked settings, with the course's defaults for this machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from course_utils import gpu_path, hardware, toy_reasoner, vllm_parts
from course_utils.model_source import check_model
from course_utils.processes import BackgroundServer, claim_port

PACKAGE = Path(__file__).resolve().parent          # the installed (or checked-out) course_utils
SERVICE_HOME = PACKAGE.parent                       # where `bentoml serve` imports course_utils from
BENTO_FILES = PACKAGE / "bento"                     # bentofile.yaml and the Bento's requirements.txt
SERVICE = "course_utils.bento_service:DeepSeekDistill"
ENV = {"model": "SERVICE_MODEL", "max_model_len": "SERVICE_MAX_MODEL_LEN", "dtype": "SERVICE_DTYPE",
       "kv_cache_gib": "SERVICE_KV_CACHE_GIB", "gpu_memory_utilization": "SERVICE_GPU_MEMORY_UTILIZATION"}
DTYPES = ("auto", "bfloat16", "float16", "half", "float32")
GPU_CONTEXT = 8192        # the context the GPU default is chosen for (notebook 03's choice)
# BentoML's command line, run by this interpreter: its `bentoml` script is not always beside sys.executable (Colab's
# Python is /usr/bin/python3, its scripts are in /usr/local/bin; many conda and system installs differ too).
BENTOML = (sys.executable, "-m", "bentoml")


@dataclass(frozen=True)
class ServiceSettings:
    model: str                      # a local folder or a catalog model's Hub id
    served_model_name: str          # what clients pass as ``model``
    max_model_len: int              # prompt + completion, in tokens
    dtype: str
    kv_cache_gib: int               # the KV cache vLLM reserves on a CPU (VLLM_CPU_KVCACHE_SPACE)
    gpu_memory_utilization: float   # the share of GPU memory vLLM may take (weights + KV cache)
    on_gpu: bool
    attention_backend: str | None = None   # TRITON_ATTN below compute capability 8.0 (gpu_path.attention_backend)


def _whole_number(environ, key: str, default: int) -> int:
    text = environ.get(ENV[key])
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV[key]}={text!r}: it must be a positive whole number (unset it for the default, "
                         f"{default})")
    return value


def default_model(device: hardware.Device) -> tuple[str, int, str]:
    """(model, max_model_len, dtype) the service serves when nothing is set: the toy R1 on a CPU; on a GPU, the
    largest distill whose engine starts on it with an 8,192-token context (vLLM's rule, ``gpu_path.engine_fit``)."""
    if device.kind != "cuda":
        return str(toy_reasoner.checkpoint_path()), 256, "float32"
    fit = gpu_path.largest_engine(device, (GPU_CONTEXT,))
    if fit is None:
        raise MemoryError(f"no DeepSeek distill's engine starts in the {device.free_gib:.1f} GiB free on this "
                          f"{device.name} with a {GPU_CONTEXT}-token context; free GPU memory, or set "
                          f"{ENV['model']} to the toy R1's folder")
    return fit.model, GPU_CONTEXT, "bfloat16" if device.bf16 else "half"


def _share(environ, key: str, default: float) -> float:
    text = environ.get(ENV[key], str(default))
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise ValueError(f"{ENV[key]}={text!r}: it must be a share in (0, 1], e.g. {default} (vLLM's default)")
    return value


def settings_from_env(environ=None, device: hardware.Device | None = None) -> ServiceSettings:
    """The service's settings from ``SERVICE_*`` variables, each checked, with this machine's defaults."""
    environ = os.environ if environ is None else environ
    device = device or hardware.detect_device()
    on_gpu = device.kind == "cuda"
    if ENV["model"] in environ:
        model, max_len, dtype = environ[ENV["model"]], GPU_CONTEXT if on_gpu else 256, "auto" if on_gpu else "float32"
    else:
        model, max_len, dtype = default_model(device)
    max_len = _whole_number(environ, "max_model_len", max_len)
    dtype = environ.get(ENV["dtype"], dtype)
    if dtype not in DTYPES:
        raise ValueError(f"{ENV['dtype']}={dtype!r} is not a dtype vLLM takes; use one of {', '.join(DTYPES)}")
    source = check_model(model, max_len, device)
    # vLLM's default share, or less where other processes already hold part of this GPU (vLLM would refuse to start)
    share = vllm_parts.default_memory_share()
    if on_gpu:
        share = hardware.startable_share(device, share)
    return ServiceSettings(source.model, source.name, max_len, dtype, _whole_number(environ, "kv_cache_gib", 1),
                           _share(environ, "gpu_memory_utilization", share), on_gpu,
                           gpu_path.attention_backend(device.capability) if on_gpu else None)


def engine_flags(settings: ServiceSettings) -> list[str]:
    """The engine's flags for this device: on a GPU the startable memory share and, below compute capability 8.0,
    the Triton attention backend; on a CPU, eager mode (no graph capture: a much faster start)."""
    if not settings.on_gpu:
        return ["--enforce-eager"]
    flags = ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    return flags + (["--attention-backend", settings.attention_backend] if settings.attention_backend else [])


def service_argv(settings: ServiceSettings) -> list[str]:
    """What the service hands vLLM's server, as ``vllm serve`` arguments (bento_service parses them with the
    installed vLLM's own parser; the contract tests parse them for every GPU class)."""
    return ["--model", settings.model, "--served-model-name", settings.served_model_name,
            "--max-model-len", str(settings.max_model_len), "--dtype", settings.dtype,
            "--reasoning-parser", "deepseek_r1", *engine_flags(settings)]


class BentoServer(BackgroundServer):
    """``bentoml serve`` of the course's service for ``model``, on a free loopback port, stopped on leaving."""

    what = "BentoML service"
    health_path = "/readyz"        # BentoML answers 200 once the service's start-up hooks (the engine) are done
    # BentoML's supervisor restarts a worker whose start-up failed, for ever: the log line is the signal to stop
    failure_line = "Application startup failed"

    def __init__(self, model: str | os.PathLike, *, port: int | None = None, max_model_len: int | None = None,
                 dtype: str | None = None, kv_cache_gib: int = 1, startup_timeout: float = 300.0,
                 extra_env: dict[str, str] | None = None):
        source = check_model(model, max_model_len)      # a bad path or size fails here, in well under a second
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError("vLLM is not installed here (no wheel exists for macOS), and the service runs on it: "
                               "serve on Linux (`make setup`), or see notebook 06's cells that do not need a server")
        self.model_name = source.name
        self.port = claim_port(port)
        self.startup_timeout = startup_timeout
        variables = {ENV["model"]: source.model, ENV["kv_cache_gib"]: str(kv_cache_gib)}
        if max_model_len:
            variables[ENV["max_model_len"]] = str(max_model_len)
        if dtype:
            variables[ENV["dtype"]] = dtype
        self.env = {**vllm_parts.ENGINE_ENV, **os.environ, **variables, **(extra_env or {})}
        self.args = [*BENTOML, "serve", SERVICE, "--working-dir", str(SERVICE_HOME), "--host", "127.0.0.1",
                     "--port", str(self.port)]
        self._prepare("bento-service-")


def bentofile_text() -> str:
    """The Bento's recipe, ``bentofile.yaml``, as it travels inside the course package."""
    return (BENTO_FILES / "bentofile.yaml").read_text()


def is_packaged(path: str | os.PathLike) -> bool:
    """Is ``path`` a folder inside the course package (the toy R1's, for instance)?"""
    return Path(path).resolve().is_relative_to(PACKAGE)


def packaged_name(path: str | os.PathLike) -> str:
    """A folder inside the course package, named from the package: ``course_utils/toy_r1``."""
    return str(Path(path).resolve().relative_to(SERVICE_HOME))


def build_context(folder: str | os.PathLike) -> Path:
    """A folder ``bentoml build`` can run in: the packaged ``bentofile.yaml`` and ``requirements.txt``, and the
    course files the bentofile includes, copied from wherever the course is installed. BentoML reads a build context
    only below its working directory, and an installed course has no repository around it."""
    import glob
    import shutil

    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("bentofile.yaml", "requirements.txt"):
        shutil.copy2(BENTO_FILES / name, folder / name)
    for pattern in yaml.safe_load(bentofile_text())["include"]:
        for found in glob.glob(str(SERVICE_HOME / pattern)):
            target = folder / Path(found).relative_to(SERVICE_HOME)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, target)
    return folder


def build_bento(bentoml_home: str | os.PathLike, timeout: float = 120.0) -> Path:
    """``bentoml build`` of the course's service into the store at ``bentoml_home`` (BentoML's ``BENTOML_HOME``;
    the default is ~/bentoml), from a fresh build context (``build_context``). Offline: nothing is resolved or
    downloaded. Returns the Bento's folder. The service is imported during the build, so its ``SERVICE_*`` settings
    (and this machine's defaults) are what the Bento's schema and resources record: build with the variables it
    will be served with."""
    import tempfile

    bentoml_home = Path(bentoml_home).resolve()
    # NO_COLOR: under Jupyter, BentoML's console (rich) colours the tag's digits even into a pipe
    env = dict(os.environ, BENTOML_HOME=str(bentoml_home), BENTOML_DO_NOT_TRACK="true", NO_COLOR="1")
    with tempfile.TemporaryDirectory(prefix="bento-context-") as folder:
        result = subprocess.run([*BENTOML, "build", ".", "--output", "tag"], capture_output=True, text=True, env=env,
                                timeout=timeout, cwd=build_context(folder))
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)          # and any colour codes that still came through
    tag = next((line.removeprefix("__tag__:") for line in plain.splitlines() if line.startswith("__tag__:")), "")
    if result.returncode != 0 or ":" not in tag:
        raise RuntimeError(f"bentoml build failed (code {result.returncode}):\n{result.stderr[-2000:]}")
    name, version = tag.split(":")
    return bentoml_home / "bentos" / name / version


# BentoML's names for the course's GPU kinds (its `resources={"gpu_type": ...}`; BentoCloud's instance types carry them)
BENTOML_GPU_TYPES = {"T4-16GB": "nvidia-tesla-t4", "L4-24GB": "nvidia-l4", "A100-40GB": "nvidia-tesla-a100",
                     "A100-80GB": "nvidia-a100-80gb", "H100-80GB": "nvidia-h100-80gb",
                     "H200-141GB": "nvidia-h200-141gb"}


def deploy_commands(tag: str, gpu_name: str) -> dict[str, str]:
    """The commands that ship the Bento ``tag`` to one GPU of kind ``gpu_name``, serving the distill notebook 00's
    calculator picks for it (8,192-token context). Docker and BentoCloud are needed to run them. The image
    `bentoml containerize` builds is tagged like the Bento."""
    gpu = hardware.gpu(gpu_name)
    plan = hardware.recommend(gpu.memory_gib, bf16=gpu.bf16, min_context=GPU_CONTEXT)
    if plan is None:
        raise MemoryError(f"no distill fits on one {gpu.name} with a {GPU_CONTEXT}-token context")
    env = {ENV["model"]: plan.model, ENV["max_model_len"]: str(GPU_CONTEXT),
           ENV["dtype"]: "bfloat16" if gpu.bf16 else "half"}
    docker_env = " ".join(f"-e {k}={v}" for k, v in env.items())
    cloud_env = " ".join(f"--env {k}={v}" for k, v in env.items())
    return {
        "build an OCI image (Docker or Podman)": f"bentoml containerize {tag}",
        "run it on a machine with that GPU": f"docker run --rm --gpus all -p 3000:3000 {docker_env} "
                                             f"-e HF_HOME=/hf-cache -v ~/.cache/huggingface:/hf-cache {tag}",
        "BentoCloud: log in, then list the instance types": "bentoml cloud login && "
                                                            "bentoml deployment list-instance-types",
        f"BentoCloud: deploy on the {BENTOML_GPU_TYPES[gpu.name]} instance type from that list":
            f"bentoml deploy {tag} -n r1-distill --instance-type <its name> --scaling-min 0 --scaling-max 2 "
            f"{cloud_env}",
    }


def how_to_call(url: str, model_name: str) -> str:
    """What `make serve` prints: the two ways to call the service, ready to paste."""
    return f"""The course's BentoML service is starting on {url} (Ctrl-C stops it). Once it logs "Completed async
startup hook: start_engine", in another terminal:

  curl -s {url}/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{{"model": "{model_name}", "messages": [{{"role": "user", "content": "What is 473 + 958?"}}]}}'

  curl -s {url}/solve -H 'Content-Type: application/json' -d '{{"question": "What is 473 + 958?"}}'

  With the openai client (Python), the thinking and the answer arrive apart:
    from openai import OpenAI
    client = OpenAI(base_url="{url}/v1", api_key="not-needed")
    reply = client.chat.completions.create(model="{model_name}",
                                           messages=[{{"role": "user", "content": "What is 473 + 958?"}}])
    print(reply.choices[0].message.reasoning, "->", reply.choices[0].message.content)

Health: {url}/readyz   Prometheus metrics (BentoML's and vLLM's): {url}/metrics   API docs: {url}/docs
"""


def main(argv: list[str] | None = None) -> int:
    """`make serve`: check the settings and the port, print how to call the service, then become `bentoml serve`."""
    import argparse

    parser = argparse.ArgumentParser(description="Serve the course's BentoML service in the foreground.")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    try:
        settings = settings_from_env()
        port = claim_port(args.port)
    except (ValueError, OSError, MemoryError, ConnectionError) as error:
        print(f"Cannot start the service: {error}", file=sys.stderr)
        return 2
    print(how_to_call(f"http://127.0.0.1:{port}", settings.served_model_name), flush=True)
    os.execv(sys.executable, [*BENTOML, "serve", SERVICE, "--working-dir", str(SERVICE_HOME), "--host", "127.0.0.1",
                       "--port", str(port)])


if __name__ == "__main__":
    raise SystemExit(main())
