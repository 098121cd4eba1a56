"""Which device we are on, and which DeepSeek model fits on which GPUs, with the ``vllm serve`` line to run it.

The fit arithmetic mirrors how vLLM plans memory: of each GPU's memory it may use ``gpu_memory_utilization``
(vLLM's default: 0.92 in the pinned 0.32.0, 0.9 in the CUDA-12 set's 0.19.1); the model's weights (split across
tensor- and pipeline-parallel ranks) and a runtime overhead (activations, CUDA graphs; an estimate here, measured in
notebook 03) come off first, and what is left holds the KV cache. A model "fits" when ``KV_HEADROOM`` of that cache
holds at least ``min_context`` tokens: the commands leave the rest as a margin, because vLLM refuses to start when
``--max-model-len`` is more than its KV cache holds, and its real overhead can exceed the estimate.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from course_utils import catalog, vllm_parts
from course_utils.catalog import GIB

# The commands' --max-model-len uses at most this share of the predicted KV capacity (the rest is a margin for an
# overhead above the 2 GiB estimate: a 10% margin on a T4's ~9 GiB of KV cache is ~0.9 GiB).
KV_HEADROOM = 0.9
# The runtime overhead inside vLLM's share besides weights and KV cache (activations while profiling, CUDA graphs,
# library workspaces): an estimate, the same figure for the calculator and for the engines the course starts; notebook
# 03's GPU path measures it.
RUNTIME_OVERHEAD_GIB = 2.0


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gib: float   # total memory as nvidia-smi reports it (a bit under the marketed GB)
    bf16: bool          # Ampere or newer; older GPUs serve with --dtype half
    fp8: bool           # vLLM runs fp8 weights (natively on Ada/Hopper, weight-only Marlin kernels on Ampere)


# Marketed size in the key; memory from nvidia-smi's "MiB" total divided by 1024.
GPUS = {
    "T4-16GB": GPU("T4-16GB", 15360 / 1024, bf16=False, fp8=False),
    "L4-24GB": GPU("L4-24GB", 23034 / 1024, bf16=True, fp8=True),
    "A100-40GB": GPU("A100-40GB", 40960 / 1024, bf16=True, fp8=True),
    "A100-80GB": GPU("A100-80GB", 81920 / 1024, bf16=True, fp8=True),
    "H100-80GB": GPU("H100-80GB", 81559 / 1024, bf16=True, fp8=True),
    "H200-141GB": GPU("H200-141GB", 143771 / 1024, bf16=True, fp8=True),
}
GPU_COUNTS = (1, 2, 4, 8, 16)   # 16 = two nodes of eight: tensor parallel inside a node, pipeline across


def gpu(name: str) -> GPU:
    for key, value in GPUS.items():
        if name.lower().replace(" ", "") in (key.lower(), key.split("-")[0].lower()):
            return value
    raise ValueError(f"unknown GPU {name!r}; known: {', '.join(GPUS)} "
                     "(or call plan_serving with memory_gib=... for any other GPU)")


@dataclass(frozen=True)
class ServingPlan:
    model: str
    fits: bool
    reason: str
    dtype: str
    tensor_parallel: int
    pipeline_parallel: int
    weights_gib_per_gpu: float
    kv_cache_gib_per_gpu: float
    kv_cache_tokens: int
    max_model_len: int
    command: str


def _default_dtype(facts: catalog.ModelFacts, bf16: bool) -> str:
    if facts.architecture == "DeepseekV3ForCausalLM":
        return "fp8"   # V3 and R1 are published in fp8 (stated in V3's README; the paper's 3.3 is fp8 training)
    return "bfloat16" if bf16 else "float16"


def _split(n_gpus: int, heads: int) -> tuple[int, int]:
    """Tensor-parallel size within a node (at most 8, dividing the attention heads), pipeline across the rest."""
    tp = min(n_gpus, 8)
    while heads % tp:
        tp //= 2
    return tp, n_gpus // tp


def _kv_bytes_per_gpu_per_token(facts: catalog.ModelFacts, tp: int, pp: int) -> float:
    """vLLM keeps the KV cache in 16-bit by default, whatever the weights' dtype (--kv-cache-dtype auto)."""
    c = facts.config
    full = catalog.kv_cache_bytes_per_token(facts.name, "bfloat16")
    if facts.architecture == "DeepseekV3ForCausalLM":
        return full / pp   # MLA's latent is shared by all heads, so every tensor-parallel rank keeps all of it
    kv_heads = c["num_key_value_heads"]
    return full / pp * math.ceil(kv_heads / tp) / kv_heads   # KV heads are replicated when tp > kv_heads


def _command(facts, dtype, tp, pp, max_len, util, dtype_flag) -> str:
    parts = [f"vllm serve {facts.name}"]
    if tp > 1:
        parts.append(f"--tensor-parallel-size {tp}")
    if pp > 1:
        parts.append(f"--pipeline-parallel-size {pp} --distributed-executor-backend ray")
    parts.append(f"--max-model-len {max_len}")
    if dtype_flag:
        parts.append(dtype_flag)
    if dtype == "fp8" and facts.architecture != "DeepseekV3ForCausalLM":
        parts.append("--quantization fp8")   # quantise the bf16 checkpoint to fp8 when loading
    if facts.kind in ("reasoner", "distill"):
        parts.append("--reasoning-parser deepseek_r1")
    parts.append(f"--gpu-memory-utilization {util}")   # explicit: vLLM's default differs by version (0.9, 0.92)
    return " ".join(parts)


def plan_serving(model: str, gpu_name: str | None = None, n_gpus: int = 1, *, use_all: bool = False,
                 **options) -> ServingPlan:
    """Will ``model`` serve on up to ``n_gpus`` GPUs of one kind (by name, or by ``memory_gib`` each), and how?
    Uses the fewest GPUs that fit (the rest can serve more replicas), or exactly ``n_gpus`` if ``use_all``."""
    if n_gpus not in GPU_COUNTS:
        raise ValueError(f"n_gpus must be one of {GPU_COUNTS}, got {n_gpus!r}")
    counts = [n_gpus] if use_all else [n for n in GPU_COUNTS if n <= n_gpus]
    for count in counts:
        plan = _plan_on(model, gpu_name, count, **options)
        if plan.fits:
            return plan
    return plan


def _plan_on(model: str, gpu_name: str | None, n_gpus: int, *, memory_gib: float | None = None,
             bf16: bool = True, fp8: bool = True, dtype: str | None = None, min_context: int = 4096,
             gpu_memory_utilization: float | None = None, overhead_gib: float = RUNTIME_OVERHEAD_GIB) -> ServingPlan:
    facts = catalog.resolve(model)
    if gpu_memory_utilization is None:   # the installed vLLM's default; the command states it either way
        gpu_memory_utilization = vllm_parts.default_memory_share()
    if gpu_name is not None:
        card = gpu(gpu_name)
        memory_gib, bf16, fp8 = card.memory_gib, card.bf16, card.fp8
    if memory_gib is None or not memory_gib > 0:
        raise ValueError(f"GPU memory must be a positive number of GiB, got {memory_gib!r}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization!r}")
    dtype = catalog.normalise_dtype(dtype or _default_dtype(facts, bf16))
    tp, pp = _split(n_gpus, facts.config["num_attention_heads"])
    weights = catalog.weight_bytes(facts.name, dtype) / (tp * pp) / GIB
    kv_gib = memory_gib * gpu_memory_utilization - overhead_gib - weights
    per_token = _kv_bytes_per_gpu_per_token(facts, tp, pp)
    tokens = max(0, int(kv_gib * GIB / per_token))
    max_len = min(facts.context_length, int(tokens * KV_HEADROOM) // 1024 * 1024)

    problem = ""
    if dtype == "bfloat16" and not bf16:
        problem = "this GPU has no bfloat16: use dtype='float16' (vLLM: --dtype half)"
    elif dtype == "fp8" and not fp8:
        problem = "this GPU cannot run fp8 weights in vLLM"
    elif dtype == "int4":
        problem = "int4 needs a pre-quantised (AWQ/GPTQ) checkpoint, which DeepSeek does not publish"
    elif kv_gib <= 0:
        available = memory_gib * gpu_memory_utilization - overhead_gib
        problem = f"weights need {weights:.1f} GiB per GPU, more than the {available:.1f} GiB available"
    elif max_len < min_context:
        problem = (f"room for {tokens} tokens of KV cache; with a {1 - KV_HEADROOM:.0%} margin that is under the "
                   f"{min_context} asked for")
    dtype_flag = "--dtype half" if dtype == "float16" else ""
    return ServingPlan(
        model=facts.name, fits=not problem, reason=problem or "fits",
        dtype=dtype, tensor_parallel=tp, pipeline_parallel=pp, weights_gib_per_gpu=round(weights, 2),
        kv_cache_gib_per_gpu=round(max(kv_gib, 0.0), 2), kv_cache_tokens=tokens, max_model_len=max(max_len, 0),
        command="" if problem else _command(facts, dtype, tp, pp, max_len, gpu_memory_utilization, dtype_flag),
    )


def what_fits(gpu_name: str, n_gpus: int = 1, **options) -> list[ServingPlan]:
    """One plan per model in the catalog, for this GPU kind and count."""
    return [plan_serving(name, gpu_name, n_gpus, **options) for name in catalog.MODELS
            if name != "deepseek-ai/DeepSeek-V3-Base"]


def recommend(memory_gib: float, n_gpus: int = 1, *, bf16: bool = True, min_context: int = 32768,
              candidates: list[str] | None = None) -> ServingPlan | None:
    """The largest model (by parameters) that fits with ``min_context`` tokens, or None if none does.
    DeepSeek recommends a 32,768-token generation budget for the distills (R1 model card, usage)."""
    best = None
    for name in candidates or catalog.DISTILLS + ["deepseek-ai/DeepSeek-R1"]:
        plan = plan_serving(name, n_gpus=n_gpus, memory_gib=memory_gib, bf16=bf16, fp8=bf16,
                            min_context=min_context)
        if plan.fits and (best is None or catalog.count_parameters(name)[0] > catalog.count_parameters(best.model)[0]):
            best = plan
    return best


# ---------------------------------------------------------------- this machine


@dataclass(frozen=True)
class Device:
    kind: str          # "cuda", "mps" or "cpu"
    name: str
    count: int
    total_gib: float   # per GPU; for a CPU, the RAM
    free_gib: float
    bf16: bool
    cpu_cores: int
    ram_gib: float
    capability: tuple[int, int] = (0, 0)   # a CUDA GPU's compute capability; (0, 0) elsewhere
    cuda_total_gib: float = 0.0            # the total as CUDA reports it, where it was asked (a MIG slice); else 0

    @property
    def torch(self):
        """This device as a ``torch.device``: where the course puts tensors and models."""
        import torch

        return torch.device(self.kind)


def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):
        return float("nan")


def native_bf16(capability: tuple[int, int]) -> bool:
    """Does a CUDA GPU of this compute capability compute in bfloat16 natively? Ampere (8.0) and newer do.
    (torch's ``is_bf16_supported()`` also says True on a T4, 7.5, where bf16 is only emulated: slow, and vLLM
    refuses it there. Such GPUs serve in float16: ``--dtype half``.)"""
    return tuple(capability) >= (8, 0)


# A CUDA context (the CUDA runtime, cuBLAS and the kernels torch loads) takes memory of its own on the GPU, outside
# any tensor: about 0.3-0.5 GiB with recent CUDA versions (the figure in the course's GPU review; not measured here,
# no GPU was lent). Every process that touches CUDA pays it once; the course keeps this much free per process it
# still has to start, because vLLM refuses to start when less than its share of the GPU is free.
CUDA_CONTEXT_GIB = 0.5


@dataclass(frozen=True)
class GPUFacts:
    name: str
    total_gib: float
    free_gib: float
    capability: tuple[int, int]
    mig: bool = False          # MIG mode on: nvidia-smi's memory figures are the whole GPU's, not the slice's
    cuda_total_gib: float = 0.0


def parse_nvidia_smi_gpus(text: str) -> list[GPUFacts]:
    """The GPUs in ``nvidia-smi --query-gpu=name,memory.total,memory.free,compute_cap[,mig.mode.current]
    --format=csv,noheader,nounits`` (memory in MiB); lines it cannot read are skipped."""
    gpus = []
    for line in text.strip().splitlines():
        fields = [field.strip() for field in line.split(",")]
        try:
            name, total, free, capability = fields[0], float(fields[1]), float(fields[2]), fields[3]
            major, minor = (int(part) for part in capability.split("."))
        except (IndexError, ValueError):
            continue
        mig = len(fields) > 4 and fields[4].lower() == "enabled"
        gpus.append(GPUFacts(name, total / 1024, free / 1024, (major, minor), mig))
    return gpus


def visible(gpus: list, cuda_visible_devices: str | None) -> list:
    """The GPUs torch sees, in its order, when ``CUDA_VISIBLE_DEVICES`` lists indices (anything else: all)."""
    if not cuda_visible_devices:
        return gpus
    indices = [part.strip() for part in cuda_visible_devices.split(",")]
    if not all(index.isdigit() for index in indices):
        return gpus
    return [gpus[int(index)] for index in indices if int(index) < len(gpus)]


def nvidia_smi_gpus() -> list[GPUFacts]:
    """The visible GPUs as the driver reports them (through nvidia-smi, which asks NVML): unlike torch's memory
    queries this opens no CUDA context, so asking costs no GPU memory. [] where nvidia-smi is missing or fails."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    fields = "name,memory.total,memory.free,compute_cap"
    for query in (fields + ",mig.mode.current", fields):    # drivers too old to know the MIG field: ask without it
        try:
            out = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return []
        if out.returncode == 0:
            return visible(parse_nvidia_smi_gpus(out.stdout), os.environ.get("CUDA_VISIBLE_DEVICES"))
    return []


def _torch_gpu_facts() -> GPUFacts:
    """The first GPU's facts from torch, for drivers whose nvidia-smi cannot answer the query (this opens a CUDA
    context in this process)."""
    import torch

    free, total = torch.cuda.mem_get_info(0)
    return GPUFacts(torch.cuda.get_device_name(0), total / GIB, free / GIB,
                    tuple(torch.cuda.get_device_capability(0)), cuda_total_gib=total / GIB)


def check_capability(capability: tuple[int, int]) -> None:
    """Refuse a GPU older than the course's wheels support (``flavour.MIN_CAPABILITY``), with what to do instead,
    before torch fails inside a kernel."""
    from course_utils.flavour import capability_problem

    if problem := capability_problem([tuple(capability)]):
        raise RuntimeError(problem[0].upper() + problem[1:])


def detect_device() -> Device:
    """What ``torch`` can use here: a CUDA GPU (with its free memory, from the driver), Apple's MPS, or the CPU."""
    import torch

    cores, ram = os.cpu_count() or 1, _ram_gib()
    if torch.cuda.is_available():    # asks the driver how many GPUs there are; opens no context
        gpus = nvidia_smi_gpus()
        # nvidia-smi gives a MIG slice the whole GPU's memory: ask CUDA, which sees the slice (this opens a context)
        first = gpus[0] if gpus and not gpus[0].mig else _torch_gpu_facts()
        check_capability(first.capability)
        count = len(gpus) or torch.cuda.device_count()
        return Device("cuda", first.name, count, first.total_gib, first.free_gib, native_bf16(first.capability),
                      cores, ram, tuple(first.capability), first.cuda_total_gib)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return Device("mps", "Apple GPU (MPS)", 1, ram, ram, True, cores, ram)
    return Device("cpu", "CPU", 0, ram, ram, True, cores, ram)


def startable_share(device: Device, wanted: float, processes: int = 1) -> float:
    """The largest GPU-memory share, at most ``wanted``, that a vLLM engine started now will accept: vLLM refuses to
    start unless ``share x total`` is free, and each of the ``processes`` still to start (the engine, a transformers
    copy in the kernel) first takes a CUDA context. Rounded down to 0.01; a clear error when even 0.1 is out of
    reach."""
    room = (device.free_gib - processes * CUDA_CONTEXT_GIB) / device.total_gib
    share = math.floor(min(wanted, room) * 100) / 100
    if share < 0.1:
        raise MemoryError(f"only {device.free_gib:.1f} GiB of this {device.name}'s {device.total_gib:.1f} GiB are "
                          "free: stop other kernels or processes that hold the GPU (nvidia-smi lists them)")
    return share


def torch_dtype(kind: str, bf16: bool):
    """The dtype for a transformers copy of a model on a device of this ``kind``: on a GPU bfloat16 where it computes
    it natively (``bf16``), else float16 (a T4: bf16 there is emulated, slow, and unlike vLLM's fp16 engine); float32
    on a CPU or Apple GPU."""
    import torch

    if kind != "cuda":
        return torch.float32
    return torch.bfloat16 if bf16 else torch.float16


# CUDA reports a little less memory than nvidia-smi: 14.56 of 15.0 GiB on a T4, 79.15 of 80.0 on an A100-80GB (the
# course's GPU review). A straight line through those two points; used only where no CUDA context is open to ask.
CUDA_RESERVED = (0.345, 0.0063)   # GiB: reserved = a + b x nvidia-smi total


def cuda_total_estimate(device: Device) -> float:
    """The GPU's total memory as CUDA reports it, which is what vLLM's share is a share of: the device's own figure
    where it came from CUDA (a MIG slice), else nvidia-smi's total less the estimated reservation."""
    if device.cuda_total_gib:
        return device.cuda_total_gib
    a, b = CUDA_RESERVED
    return device.total_gib - (a + b * device.total_gib)


def cuda_total_now(device: Device) -> float:
    """The GPU's total memory as CUDA reports it, asked of CUDA where this process already holds a context (asking
    then opens none: notebook 03 has loaded a transformers copy on the GPU by then), else ``cuda_total_estimate``."""
    import torch

    if device.kind == "cuda" and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.mem_get_info(0)[1] / GIB
    return cuda_total_estimate(device)


def release_memory() -> None:
    """Give back the memory of models and engines the caller has just dropped (``del model`` first). Python frees
    objects caught in reference cycles only when the garbage collector runs, and PyTorch keeps freed CUDA memory
    cached for itself: without both steps, a vLLM server started next finds the GPU still full."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
