"""What each notebook runs on this machine, decided once, before any work: one function per notebook returns a frozen
plan of *named* sizes (model, context, max tokens, problems, samples, seeds, timeouts, memory share...) with a
``describe()`` the notebook prints first: the path taken, what downloads, the memory and the time.

    plan = run_plans.notebook_04(device)
    print(plan.describe())
    completions = run_setting(max_tokens=plan.max_tokens)

A lesson reads ``plan.max_tokens``; it does not branch on the device. The plan's inputs are the device facts
(``hardware.detect_device``), the quick mode (``COURSE_QUICK``), the real-distill switch (``COURSE_REAL_DISTILL``)
and an endpoint (``COURSE_ENDPOINT``); each function takes them as arguments too, so that tests can plan for any
machine (a T4, an RTX 3060, an A100, a MIG slice, a laptop) on this CPU.

**The quick mode teaches the same lesson.** A quick plan is smaller, never the opposite lesson: where a short run
cannot show an effect, the plan loads what the full recipe trained (``load_trained``) and trains only a short,
labelled demonstration; comparisons that need a spread keep two seeds. ``checks_reference`` says whether the
notebook's checks cell asserts the reference run's figures (the full mode on a CPU) or only the directions that
every mode must show.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from course_utils import catalog, gpu_path, hardware, quick
from course_utils.catalog import GIB

# Each notebook's measured run time, in seconds: full mode on 2 idle cores, and quick mode with one busy program
# beside it (tools/run_notebooks.py and benchmarks/quick_mode.py, each in a fresh kernel; docs/maintaining.md has
# the history). The README's time table is written from this one (a test keeps them equal).
MEASURED_SECONDS = {
    "00": (11, 12), "01": (181, 81), "02": (378, 111), "03": (71, 50), "04": (62, 27), "05": (381, 70),
    "06": (184, 106), "07": (68, 45),
}
MEASURED_ON = "a 2-core AMD EPYC"


def minutes(seconds: float) -> str:
    """A measured run time as the tables state it: whole minutes from 90 s, else to the nearest 10 s (finer would
    only repeat one run's noise)."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(10, int(seconds / 10 + 0.5) * 10)} s"


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What every plan says about itself; each notebook's plan adds its named sizes."""
    notebook: str
    path: str                        # where it runs and on what, in one line
    quick: bool = False
    checks_reference: bool = True    # the checks cell asserts the reference run's figures (full mode, CPU)
    downloads: str = "nothing"
    memory: str = ""
    time: str = ""
    notes: tuple[str, ...] = ()

    def sizes(self) -> dict:
        """The plan's own named sizes (the fields a notebook's plan adds to ``Plan``'s)."""
        common = {f.name for f in dataclasses.fields(Plan)}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in common and f.repr}

    def describe(self) -> str:
        mode = quick.LABEL if self.quick else "full mode"
        lines = [f"Notebook {self.notebook} ({mode}): {self.path}"]
        sizes = ", ".join(f"{name}={_short(value)}" for name, value in self.sizes().items())
        lines.append(f"  sizes: {sizes}")
        lines.append(f"  downloads: {self.downloads}")
        if self.memory:
            lines.append(f"  memory: {self.memory}")
        if self.time:
            lines.append(f"  time: {self.time}")
        lines += [f"  {note}" for note in self.notes]
        checks = ("the reference run's figures are asserted" if self.checks_reference
                  else "only the directions every run must show are asserted (not the reference figures)")
        lines.append(f"  checks: {checks}")
        return "\n".join(lines)


def _short(value, nested: bool = False) -> str:
    """A size as ``describe`` prints it: strings quoted at the top level, as a dataclass prints them inside one."""
    if isinstance(value, str) and os.path.isabs(value):     # a local folder: its last two parts say enough
        value = os.path.join("...", *value.split(os.sep)[-2:])
    if dataclasses.is_dataclass(value):
        fields = ", ".join(f"{k}={_short(v, nested=True)}" for k, v in vars(value).items())
        return f"{type(value).__name__}({fields})"
    return repr(value) if isinstance(value, str) and not nested else str(value)


def _is_quick(quick_mode: bool | None) -> bool:
    return quick.on() if quick_mode is None else quick_mode


def _cpu_time(notebook: str, quick_mode: bool) -> str:
    full, fast = MEASURED_SECONDS[notebook]
    if quick_mode:
        return f"about {minutes(fast)} (measured on {MEASURED_ON} beside a busy program)"
    return f"about {minutes(full)} (measured on {MEASURED_ON}, 2 idle cores); a laptop in use may take longer"


# ---------------------------------------------------------------- notebook 00


@dataclass(frozen=True, kw_only=True)
class FamilyPlan(Plan):
    this_gpu: hardware.ServingPlan | None = field(default=None, repr=False)   # what fits on this machine's GPU
    this_gpu_note: str = field(default="", repr=False)                        # ... said in one line ("" on a CPU)


def notebook_00(device: hardware.Device) -> FamilyPlan:
    """Notebook 00 is arithmetic, the same everywhere; on a GPU it also says what fits on this one."""
    this_gpu, note = None, ""
    if device.kind == "cuda":
        this_gpu = hardware.recommend(device.free_gib, 1, bf16=device.bf16)
        note = (f"On this machine's {device.name} ({device.free_gib:.0f} GiB free): "
                + (this_gpu.command if this_gpu else "no R1 distill fits with a 32k context"))
    where = f"{device.name}, {device.free_gib:.0f} GiB free" if device.kind == "cuda" else device.name
    return FamilyPlan(notebook="00", path=f"calculators from the models' configs (the same anywhere; here: {where})",
                      time=_cpu_time("00", False), this_gpu=this_gpu, this_gpu_note=note)


# ---------------------------------------------------------------- notebook 01


@dataclass(frozen=True, kw_only=True)
class MoEPlan(Plan):
    size: dict                 # the toy MoE LM: d_model, expert_size, n_experts, top_k
    train: object              # moe_lm.TrainConfig: steps, learning rate, batch
    seeds: tuple[int, ...]     # every balancing method is trained once per seed (the spread is the noise)
    gammas: tuple[float, ...]  # the bias update's step sizes compared in section 5


def notebook_01(device: hardware.Device, quick_mode: bool | None = None) -> MoEPlan:
    """A small toy MoE LM on a CPU (500 steps), a larger one on a GPU; the quick mode trains 150 steps, still with two
    seeds (a comparison needs a spread) and all three step sizes."""
    from course_utils.moe_lm import TrainConfig

    fast = _is_quick(quick_mode)
    if device.kind == "cuda":
        size = dict(d_model=128, expert_size=128, n_experts=16, top_k=2)
        train = TrainConfig(steps=300 if fast else 1500, lr=6e-3, batch_size=48)
        path, time = f"a larger toy MoE LM on this {device.name}", "a few minutes (not measured on a GPU)"
    else:
        size = dict(d_model=64, expert_size=64, n_experts=8, top_k=2)
        train = TrainConfig(steps=150 if fast else 500, lr=6e-3, batch_size=24)
        path, time = "small toy MoE LMs on this CPU", _cpu_time("01", fast)
    return MoEPlan(notebook="01", path=path, quick=fast, checks_reference=not fast and device.kind != "cuda",
                   time=time, size=size, train=train, seeds=(0, 1), gammas=(0.001, 0.01, 0.1))


# ---------------------------------------------------------------- notebooks 03 and 04: which model, where


def _real_choice(device: hardware.Device, real):
    """The real-distill switch's verdict on a CPU (``real_distill.choose``), or None on a GPU (always a real distill
    there) or when ``real`` was decided already."""
    from course_utils import real_distill

    if real is not None or device.kind == "cuda":
        return real
    return real_distill.choose(device.ram_gib, wanted_real=real_distill.wanted())


def engine_extras(device: hardware.Device, fit: gpu_path.EngineFit | None) -> tuple[dict, tuple[str, ...]]:
    """The offline engine's extra keyword arguments and the server's extra flags for this device: on a GPU the
    memory share the plan found startable and, below compute capability 8.0, the Triton attention backend."""
    if device.kind != "cuda" or fit is None:
        return {}, ()
    engine, args = {"gpu_memory_utilization": fit.share}, ["--gpu-memory-utilization", str(fit.share)]
    if backend := gpu_path.attention_backend(device.capability):
        engine["attention_backend"] = backend
        args += ["--attention-backend", backend]
    return engine, tuple(args)


def distill_fit_rows(device: hardware.Device) -> list[dict]:
    """Notebook 03's first table: each distill's bf16 weights and whether it would serve here (an 8,192-token context
    on this GPU under vLLM's rule; on a CPU, whether its weights fit in RAM)."""
    rows = []
    for name in catalog.DISTILLS:
        weights = catalog.weight_bytes(name, "bfloat16") / GIB
        if device.kind == "cuda":
            fit = gpu_path.engine_fit(name, device, context=8192, processes=2)
            verdict = f"fits (share {fit.share})" if fit else "does not fit"
        else:
            verdict = "fits in RAM (slow)" if weights + 1 <= 0.8 * device.ram_gib else "too big for RAM"
        rows.append({"model": name.split("/")[1], "bf16 weights (GiB)": round(weights, 1), "here": verdict})
    return rows


# ---------------------------------------------------------------- notebook 03


@dataclass(frozen=True, kw_only=True)
class ServingRunPlan(Plan):
    model: str                       # a local folder (the toy R1) or a Hub id (a real distill)
    real: bool                       # a real distill (or its twin) from the Hub, not the toy's folder
    is_twin: bool = False            # the Hub cache holds the course's shape twin (random weights)
    max_model_len: int
    dtype: str | None                # None: the model's own (bf16; fp16 on GPUs without bf16)
    max_tokens: int
    startup_timeout: int
    offline_problems: int
    speed_prompts: int
    speed_tokens: int
    load_requests: int
    load_tokens: int
    concurrency: tuple[int, ...]
    engine: dict = field(default_factory=dict)          # extra vllm.LLM arguments (GPU: memory share, backend)
    server_args: tuple[str, ...] = ()                   # the same for the server's command line
    transformers_dtype: str | None = None               # the transformers copy of section 5
    free_engine_first: bool = False                     # one copy of a real model in memory at a time
    too_big: str = "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"   # for the "bad input" demonstration
    on_gpu: bool = False
    predicted_kv_tokens: int = 0                         # GPU: the KV cache the plan expects vLLM to reserve
    endpoint: object = field(default=None, repr=False)   # endpoint.Endpoint: a remote model, no local engine

    @property
    def local_engine(self) -> bool:
        """Does this run start vLLM engines here (not in endpoint mode)?"""
        return self.endpoint is None


def notebook_03(device: hardware.Device, quick_mode: bool | None = None, real=None, endpoint=None,
                ask_key=None) -> ServingRunPlan:
    """The toy R1 on a CPU (the quick mode sends fewer requests); the real 1.5B on a CPU when asked for and it fits;
    on a GPU the largest distill whose engine starts with an 8,192-token context (4,096 on small cards). With an
    endpoint (``COURSE_ENDPOINT``) only the client half runs: chat, streaming, a small timed run."""
    from course_utils import real_distill, toy_reasoner

    fast = _is_quick(quick_mode)
    endpoint = endpoint or _endpoint_from_env(ask_key)
    if endpoint is not None:
        return _notebook_03_endpoint(endpoint, fast)
    if device.kind == "cuda":
        return _notebook_03_gpu(device, fast)
    real = _real_choice(device, real)
    if real is not None and real.model is not None:
        sizes = dict(offline_problems=4, speed_prompts=4, speed_tokens=32, load_requests=8, load_tokens=32,
                     concurrency=(1, 4), max_tokens=384)
        jobs = [(4, 384, 4)] * 2 + [(2, 384, 1), (4, 32, 4)] + [(8, 32, c) for c in (1, 4)]
        estimate = real.cost.minutes(jobs, starts=2, cores=device.cpu_cores)
        return ServingRunPlan(
            notebook="03", path=real.message, quick=fast, checks_reference=False, real=True, is_twin=real.is_twin,
            model=real.model, max_model_len=real_distill.MAX_MODEL_LEN, dtype=None, startup_timeout=900,
            transformers_dtype="bfloat16", free_engine_first=True,
            downloads=f"{real.cost.download_gb:.2f} GB (once)" if real.cost.download_gb else "nothing (cached)",
            memory=f"about {real.cost.need_gib:.1f} GiB of RAM",
            time=(f"at most about {estimate:.0f} min of generation, if every answer runs to its budget (tokens/s "
                  f"measured on the twin, {real.cost.figures['machine']}, scaled by cores), plus transformers' copy"),
            notes=("the real 1.5B on a CPU: the serving mechanics are checked; its answers are not (a budget of 384 "
                   "tokens cuts many traces off before the box)",), **sizes)
    toy = toy_reasoner.checkpoint_path()
    notes = (real.message,) if real is not None and real.cost else ()
    return ServingRunPlan(
        notebook="03", path=f"the toy R1 ({toy.name}/, float32) on vLLM's CPU engine", quick=fast,
        checks_reference=not fast, real=False, model=str(toy), max_model_len=256, dtype="float32", max_tokens=128,
        startup_timeout=180, offline_problems=8, speed_prompts=8 if fast else 32, speed_tokens=96,
        load_requests=16 if fast else 48, load_tokens=128, concurrency=(1, 8) if fast else (1, 4, 16),
        memory="about 3 GiB of RAM (a 1 GiB KV cache per engine)", time=_cpu_time("03", fast), notes=notes)


def serving_minutes(fit: gpu_path.EngineFit) -> float:
    """Estimated vLLM generation time of notebook 03's GPU path: 8 chats of up to 4,096 tokens, 16 x 256 tokens for
    the speed table, 64 x 512 tokens at each of 3 load levels, and the server's chat and streaming calls."""
    parts = [(8, 4096), (16, 256), (3 * 64, 512), (4, 4096)]
    return sum(gpu_path.generation_minutes(fit.model, fit.gpu, n, tokens, fit.kv_cache_gib, dtype=fit.dtype)
               for n, tokens in parts)


def _notebook_03_gpu(device: hardware.Device, fast: bool) -> ServingRunPlan:
    # three engines one after the other (offline, then the server); the kernel holds a CUDA context from section 5 on
    fit = gpu_path.largest_engine(device, (8192, 4096), processes=2)
    if fit is None:
        raise MemoryError(f"no R1 distill's engine starts in the {device.free_gib:.1f} GiB free on this "
                          f"{device.name}, even with a 4,096-token context: free GPU memory (other kernels: "
                          "nvidia-smi lists them) or run on a CPU (the toy R1)")
    engine, args = engine_extras(device, fit)
    estimate = serving_minutes(fit)
    return ServingRunPlan(
        notebook="03", path=f"{fit.model} on this {device.name} (memory share {fit.share}, {fit.dtype})",
        quick=fast, checks_reference=False, real=True, model=fit.model, max_model_len=fit.max_model_len, dtype=None,
        max_tokens=min(4096, fit.max_model_len // 2), startup_timeout=1200, offline_problems=8, speed_prompts=16,
        speed_tokens=256, load_requests=16 if fast else 64, load_tokens=512, concurrency=(1, 8) if fast else (1, 8, 32),
        engine=engine, server_args=args, free_engine_first=True, too_big="deepseek-ai/DeepSeek-R1", on_gpu=True,
        predicted_kv_tokens=fit.kv_cache_tokens,
        downloads=f"about {catalog.weight_bytes(fit.model, 'bfloat16') / 1e9:.1f} GB from the Hugging Face Hub (once)",
        memory=(f"weights {fit.weights_gib:.1f} GiB + KV cache {fit.kv_cache_gib:.1f} GiB ({fit.kv_cache_tokens:,} "
                f"tokens) in a {fit.share} share of the GPU"),
        time=f"about {estimate:.0f} min of generation (a bandwidth estimate for a {fit.gpu}, not a measurement), "
             "plus vLLM's start-ups")


def _endpoint_from_env(ask_key):
    from course_utils import endpoint

    return endpoint.from_env(ask=ask_key)


def is_toy(model: str) -> bool:
    """Does an endpoint serve the course's toy R1 (the course's own servers name it after its folder)?"""
    return model.split("/")[-1].startswith("toy_r1")


def _notebook_03_endpoint(endpoint, fast: bool) -> ServingRunPlan:
    toy = is_toy(endpoint.model)
    max_tokens = 128 if toy else 2048
    sizes = dict(offline_problems=4, speed_prompts=0, speed_tokens=0, load_requests=4 if fast else 8,
                 load_tokens=max_tokens, concurrency=(1, 4))
    return ServingRunPlan(
        notebook="03", path=endpoint.describe(), quick=fast, checks_reference=False, real=not toy,
        model=endpoint.model, max_model_len=0, dtype=None, max_tokens=max_tokens, startup_timeout=0,
        endpoint=endpoint, downloads="nothing (the model runs at the endpoint)",
        notes=("endpoint mode: the sections that start vLLM engines here (offline engine, transformers, memory, "
               "/metrics) are skipped; chat, streaming and a small timed run go to the endpoint",), **sizes)


# ---------------------------------------------------------------- notebook 04

TIP_SETTINGS = {
    "recommended: T=0.6, boxed, no system, <think> forced": {},
    "greedy (T=0)": {"temperature": 0},
    "T=1.0": {"temperature": 1.0},
    "T=1.5 (beyond the range)": {"temperature": 1.5},
    "with a system prompt": {"system": "You are a helpful assistant."},
    "without the boxed instruction": {"instruction": False},
    "thinking free (no <think> at the prompt's end)": {"thinking": "free"},
    "thinking skipped (empty thinking prefilled)": {"thinking": "skipped"},
}
# (word problems, MATH-500 problems, samples, problems for pass@k, max new tokens), largest first: the first whose
# estimate fits the budget wins. Halving max_tokens cuts more completions short (counted apart in notebook 04).
REASONING_TIERS = [(20, 60, 8, 40, 8192), (20, 30, 8, 20, 8192), (10, 20, 4, 20, 8192), (10, 20, 4, 20, 4096),
                   (10, 10, 4, 10, 4096)]
BUDGET_MINUTES = 30       # notebook 04's GPU path should finish well under an hour, even on a T4


@dataclass(frozen=True, kw_only=True)
class ReasoningPlan(Plan):
    model: str
    real: bool                             # a real distill (prose traces) rather than the toy (column traces)
    is_twin: bool = False
    second_model: str | None = None        # the 1.5B for section 6's size comparison, where a larger one ran
    max_model_len: int
    dtype: str | None
    max_tokens: int
    engine: dict = field(default_factory=dict)
    toy_problems: int = 0                  # held-out additions (CPU)
    word_problems: int = 0                 # the course's word problems, then MATH-500 problems (GPU)
    math_problems: int = 0
    n_samples: int                         # samples per problem for pass@k and cons@k
    k_problems: int                        # problems those samples are drawn for
    hot_temperature: float                 # a temperature with enough slips to study
    tips: tuple[str, ...] = field(default=tuple(TIP_SETTINGS), repr=False)   # section 3's settings, by name
    transformers_dtype: str | None = None  # the transformers copy for token probabilities (section 5)
    free_engine_first: bool = False        # stop the engine before that copy loads (one copy in memory at a time)
    estimated_minutes: float | None = None
    endpoint: object = field(default=None, repr=False)   # endpoint.Endpoint: a remote model, no local engine

    @property
    def local_engine(self) -> bool:
        """Does this run start a vLLM engine here (not in endpoint mode)?"""
        return self.endpoint is None

    def load_problems(self) -> list[dict]:
        """The problems this plan runs: held-out additions, or word problems then MATH-500 problems (MATH-500 is
        downloaded through ``datasets``, 0.4 MB)."""
        from course_utils import problems

        if self.toy_problems:
            return problems.toy_problems(self.toy_problems)
        words = problems.word_problems()[:self.word_problems]
        return words + (problems.benchmark("MATH-500", n=self.math_problems) if self.math_problems else [])

    def tip_settings(self) -> dict[str, dict]:
        """Section 3's settings, each a change from DeepSeek's recommendation."""
        return {name: TIP_SETTINGS[name] for name in self.tips}


def reasoning_completions(problems: int, n_samples: int, k_problems: int, second_model: bool) -> int:
    """Notebook 04's completions on the GPU: the baseline, 8 tip settings, the hot run and (with a second size) its
    run, each over every problem; and pass@k's samples at two temperatures."""
    return problems * (1 + len(TIP_SETTINGS) + 1 + int(second_model)) + 2 * n_samples * k_problems


def notebook_04(device: hardware.Device, quick_mode: bool | None = None, real=None, endpoint=None,
                ask_key=None) -> ReasoningPlan:
    """The toy R1 on a CPU (its 500 held-out problems; the quick mode 100); the real 1.5B on a CPU when asked for
    (a few problems, a token budget); on a GPU the largest distill whose engine starts with a long context, the
    course's word problems and a MATH-500 subset sized to take under ``BUDGET_MINUTES``; with an endpoint
    (``COURSE_ENDPOINT``), the word problems sized to the spending cap."""
    from course_utils import real_distill, toy_reasoner

    fast = _is_quick(quick_mode)
    endpoint = endpoint or _endpoint_from_env(ask_key)
    if endpoint is not None:
        return _notebook_04_endpoint(endpoint, fast)
    if device.kind == "cuda":
        return _notebook_04_gpu(device, fast)
    real = _real_choice(device, real)
    if real is not None and real.model is not None:
        kept = ("recommended", "greedy", "T=1.5", "thinking skipped")   # four tips, to finish in minutes
        tips = tuple(name for name in TIP_SETTINGS if name.startswith(kept))
        jobs = [(4, 384, 4)] * (2 + len(tips)) + [(8, 384, 8)] * 2
        estimate = real.cost.minutes(jobs, starts=1, cores=device.cpu_cores)
        return ReasoningPlan(
            notebook="04", path=real.message, quick=fast, checks_reference=False, model=real.model, real=True,
            is_twin=real.is_twin, max_model_len=real_distill.MAX_MODEL_LEN, dtype=None, max_tokens=384,
            toy_problems=4, n_samples=4, k_problems=2, hot_temperature=1.0, tips=tips,
            transformers_dtype="bfloat16", free_engine_first=True,
            downloads=f"{real.cost.download_gb:.2f} GB (once)" if real.cost.download_gb else "nothing (cached)",
            memory=f"about {real.cost.need_gib:.1f} GiB of RAM",
            time=(f"at most about {estimate:.0f} min of generation, if every answer runs to its budget (tokens/s "
                  f"measured on the twin, {real.cost.figures['machine']}, scaled by cores)"),
            notes=("4 problems with a budget of 384 tokens are too few to check the reference run's figures",))
    toy = toy_reasoner.checkpoint_path()
    return ReasoningPlan(
        notebook="04", path=f"the toy R1 ({toy.name}/, float32) on vLLM's CPU engine", quick=fast,
        checks_reference=not fast, model=str(toy), real=False, max_model_len=256, dtype="float32", max_tokens=128,
        toy_problems=100 if fast else 500, n_samples=8 if fast else 16, k_problems=32 if fast else 128,
        hot_temperature=1.5,   # the toy slips almost never at T = 1.0 (the tips table shows it): studied hotter
        memory="about 2 GiB of RAM (a 1 GiB KV cache)", time=_cpu_time("04", fast),
        notes=(real.message,) if real is not None and real.cost else ())


# Tips that need the prompt's text (an edited end of the chat template): a chat endpoint builds the prompt itself.
PROMPT_EDITING_TIPS = ("thinking free (no <think> at the prompt's end)", "thinking skipped (empty thinking prefilled)")
# (word problems, samples, problems for pass@k, max new tokens), largest first: the first whose worst case (every
# reply running to max_tokens) stays within the endpoint's spending cap wins.
ENDPOINT_TIERS = [(10, 4, 5, 4096), (6, 4, 3, 4096), (4, 2, 2, 4096), (3, 2, 2, 2048)]
PROBE_USD_SHARE = 0.1      # kept back from the cap for the capability probes


def _notebook_04_endpoint(endpoint, fast: bool) -> ReasoningPlan:
    from course_utils.endpoint import Budget, EndpointError

    tips = tuple(name for name in TIP_SETTINGS if name not in PROMPT_EDITING_TIPS)
    note = ("the two tips that edit the prompt's end (thinking free, thinking skipped) are skipped: a chat endpoint "
            "builds the prompt itself",)
    if is_toy(endpoint.model):
        return ReasoningPlan(
            notebook="04", path=endpoint.describe(), quick=fast, checks_reference=False, model=endpoint.model,
            real=False, max_model_len=0, dtype=None, max_tokens=128, toy_problems=20 if fast else 100,
            n_samples=4 if fast else 8, k_problems=16 if fast else 32, hot_temperature=1.5, tips=tips,
            endpoint=endpoint, downloads="nothing (the model runs at the endpoint)", notes=note)
    budget = Budget(endpoint)
    room = endpoint.max_usd * (1 - PROBE_USD_SHARE)
    for word, samples, k, max_tokens in (ENDPOINT_TIERS[-1:] if fast else ENDPOINT_TIERS):
        completions = word * (2 + len(tips)) + 2 * samples * k
        worst = budget.cost(completions * 150, completions * max_tokens)
        if worst <= room:
            break
    else:
        raise EndpointError(f"{endpoint.max_usd:.2f} US$ (COURSE_MAX_USD) is too little for even the smallest run "
                            f"here ({completions} replies of up to {max_tokens} tokens: up to ${worst:.2f}): raise "
                            "COURSE_MAX_USD, or use a self-hosted endpoint")
    return ReasoningPlan(
        notebook="04", path=endpoint.describe(), quick=fast, checks_reference=False, model=endpoint.model, real=True,
        max_model_len=0, dtype=None, max_tokens=max_tokens, word_problems=word, n_samples=samples, k_problems=k,
        hot_temperature=1.0, tips=tips, endpoint=endpoint, downloads="nothing (the model runs at the endpoint)",
        time=f"{completions} replies of up to {max_tokens} tokens; at most ${worst:.2f} at the price above",
        notes=note)


def reasoning_engines(device: hardware.Device):
    """Notebook 04's candidate engines on this GPU, best first, each with whether it must stop before the
    transformers copy loads: the largest distills first, each with the longest context it can have (16,384 tokens;
    8,192, then 4,096 on small cards), beside its transformers copy where both fit, else alone (the copy loads after
    the engine stops)."""
    by_size = sorted(catalog.DISTILLS, key=lambda name: -catalog.count_parameters(name)[0])
    for model in by_size:
        for context in (16384, 8192, 4096):
            beside = gpu_path.transformers_need_gib(model, device)
            shared = gpu_path.engine_fit(model, device, context=context, processes=2, leave_gib=beside)
            if shared:
                yield shared, False
                break
            alone = gpu_path.engine_fit(model, device, context=context, processes=1)
            if alone and beside <= device.free_gib - hardware.CUDA_CONTEXT_GIB:
                yield alone, True
                break


def reasoning_sizes(fit: gpu_path.EngineFit, fast: bool) -> tuple[tuple, int, float]:
    """The largest tier of problems, samples and tokens whose estimated time stays within ``BUDGET_MINUTES`` with
    this engine (the quick mode: the smallest tier), its completions and its estimate."""
    second = fit.model != gpu_path.SMALLEST
    for word, math_problems, samples, k, max_tokens in (REASONING_TIERS[-1:] if fast else REASONING_TIERS):
        tier = (word, math_problems, samples, k, min(max_tokens, fit.max_model_len // 2))
        completions = reasoning_completions(word + math_problems, samples, k, second)
        estimate = gpu_path.generation_minutes(fit.model, fit.gpu, completions, tier[-1], fit.kv_cache_gib,
                                               dtype=fit.dtype)
        if estimate <= BUDGET_MINUTES:
            break
    return tier, completions, estimate


def _notebook_04_gpu(device: hardware.Device, fast: bool) -> ReasoningPlan:
    candidates = list(reasoning_engines(device))
    if not candidates:
        raise MemoryError(f"no R1 distill's engine starts in the {device.free_gib:.1f} GiB free on this "
                          f"{device.name}, even with a 4,096-token context: free GPU memory (other kernels: "
                          "nvidia-smi lists them) or run on a CPU (the toy R1)")
    # the largest model whose work fits the time budget (a large model with a small KV cache decodes slowly)
    sized = [(fit, alone, *reasoning_sizes(fit, fast)) for fit, alone in candidates]
    fit, alone, tier, completions, estimate = next((row for row in sized if row[-1] <= BUDGET_MINUTES), sized[-1])
    word, math_problems, samples, k, max_tokens = tier
    second = gpu_path.SMALLEST if fit.model != gpu_path.SMALLEST else None
    engine, _ = engine_extras(device, fit)
    download = catalog.weight_bytes(fit.model) + (catalog.weight_bytes(second) if second else 0)
    both = f" and {second.split('/')[1]}" if second else ""
    return ReasoningPlan(
        notebook="04", path=f"{fit.model.split('/')[1]}{both} on this {device.name} (memory share {fit.share}, "
                            f"{fit.dtype}, a {fit.max_model_len:,}-token context)",
        quick=fast, checks_reference=False, model=fit.model, real=True, second_model=second,
        max_model_len=fit.max_model_len, dtype=None, max_tokens=max_tokens, engine=engine, word_problems=word,
        math_problems=math_problems, n_samples=samples, k_problems=k, hot_temperature=1.0,
        transformers_dtype=None, free_engine_first=alone, estimated_minutes=round(estimate, 1),
        downloads=f"about {download / 1e9:.1f} GB from the Hugging Face Hub (once), and MATH-500 (0.4 MB)",
        memory=(f"engine: weights {fit.weights_gib:.1f} GiB + KV cache {fit.kv_cache_gib:.1f} GiB; the transformers "
                f"copy ({gpu_path.transformers_need_gib(fit.model, device):.1f} GiB) "
                + ("after the engine stops" if alone else "beside it")),
        time=(f"about {estimate:.0f} min of generation for {completions:,} completions (a bandwidth estimate for a "
              f"{fit.gpu}, not a measurement), plus vLLM's start-ups"))


def smallest_gpu_free_gib(total_gib: float = 16.0) -> float:
    """The least free GPU memory with which the GPU paths of notebooks 03 and 04 both plan a run (the 1.5B at the
    shortest context), found by bisection on their own engine choices: ``make doctor``'s threshold."""
    def plans(free_gib: float) -> bool:
        device = hardware.Device("cuda", "GPU", 1, total_gib, free_gib, True, 8, 64, (8, 0))
        return any(reasoning_engines(device)) and gpu_path.largest_engine(device, (8192, 4096), processes=2)

    low, high = 0.5, total_gib
    while high - low > 0.05:
        middle = (low + high) / 2
        low, high = (low, middle) if plans(middle) else (middle, high)
    return round(high, 1)


# ---------------------------------------------------------------- notebook 02


@dataclass(frozen=True, kw_only=True)
class DistillPlan(Plan):
    seeds: tuple[int, ...]            # part 1: every student is trained once per seed
    temperatures: tuple[float, ...]   # part 1's temperature sweep
    student_sizes: tuple[int, ...]    # part 1's student-size sweep (hidden units)
    recipe: object                    # toy_reasoner.Recipe: part 2's teacher, traces and students
    load_trained: bool = False        # part 2 loads what the full recipe trained and trains a short demonstration
    demo_steps: int = 0               # the demonstration's steps (the quick mode)
    mnist: bool = False               # section 3's real MNIST (a GPU, and torchvision's download)


def notebook_02(device: hardware.Device, quick_mode: bool | None = None) -> DistillPlan:
    """Part 1 (Hinton's experiments on 8x8 digits) trains in seconds: three seeds, two in the quick mode, the same
    recipe. Part 2's toy R1 takes minutes: the quick mode loads the teacher and students the full recipe trained
    (shipped with the course) and trains one student for a short, labelled demonstration."""
    from course_utils import toy_reasoner

    fast = _is_quick(quick_mode)
    on_gpu = device.kind == "cuda"
    return DistillPlan(
        notebook="02", path="toy teachers and students (the MNIST section " + ("runs on this GPU)" if on_gpu
                                                                                else "needs a GPU)"),
        quick=fast, checks_reference=not fast, time=_cpu_time("02", fast), seeds=(0, 1) if fast else (0, 1, 2),
        temperatures=(1, 2, 4, 8, 16, 32), student_sizes=(16, 32, 64, 128), recipe=toy_reasoner.Recipe(),
        load_trained=fast, demo_steps=100 if fast else 0, mnist=on_gpu,
        downloads="MNIST through torchvision (about 12 MB)" if on_gpu else "nothing",
        notes=("part 2 loads the teacher and students the full recipe trained (course_utils/toy_r1_recipe, "
               "rebuilt by `python -m course_utils.toy_reasoner build-recipe`)",) if fast else ())


# ---------------------------------------------------------------- notebook 05


@dataclass(frozen=True, kw_only=True)
class RLPlan(Plan):
    settings: object                  # r1_zero.Settings: model, pretraining, GRPO and distillation budgets
    eval_problems: int                # held-out problems every measurement uses
    eval_every: int                   # GRPO steps between evaluations of the main run
    pass_samples: int                 # samples per problem for pass@k
    pass_problems: int
    pretrain_here: bool = False       # a GPU pretrains a larger base; a CPU loads the committed one
    load_trained: bool = False        # the quick mode loads what the full recipe trained (course_utils/toy_r1_zero)
    demo_steps: int = 0               # ... and runs a short, labelled GRPO demonstration


def notebook_05(device: hardware.Device, quick_mode: bool | None = None) -> RLPlan:
    """GRPO from the committed toy base on a CPU (40 steps), a larger toy pretrained on a GPU. The quick mode loads
    the policies the full recipe trained (shipped with the course) and runs a few GRPO steps as a demonstration."""
    from course_utils import r1_zero

    fast = _is_quick(quick_mode)
    if device.kind == "cuda":
        return RLPlan(notebook="05", path=f"a larger toy base, pretrained on this {device.name}", quick=fast,
                      checks_reference=False, time="a few minutes (not measured on a GPU)",
                      settings=r1_zero.Settings.gpu(), eval_problems=200, eval_every=10, pass_samples=64,
                      pass_problems=50, pretrain_here=True)
    return RLPlan(
        notebook="05", path="GRPO on the committed toy base, on this CPU", quick=fast, checks_reference=not fast,
        time=_cpu_time("05", fast), settings=r1_zero.Settings(), eval_problems=100, eval_every=10,
        pass_samples=16 if fast else 64, pass_problems=20 if fast else 50, load_trained=fast,
        demo_steps=4 if fast else 0,
        notes=("sections 2-5 load the policies the full recipe trained (course_utils/toy_r1_zero, rebuilt by "
               "`python -m course_utils.r1_zero build-trained`)",) if fast else ())


# ---------------------------------------------------------------- notebook 06


@dataclass(frozen=True, kw_only=True)
class ServicePlan(Plan):
    settings: object                  # deploy.ServiceSettings: what the service serves, and how
    startup_timeout: int
    max_tokens: int
    temperature: float                # greedy for the toy (its checks are exact); DeepSeek's 0.6 for a real distill
    repeats: int                      # each load level is measured this many times (a comparison needs a spread)
    loads: tuple[tuple[int, int], ...]   # (requests in flight, requests sent)
    load_tokens: int
    target_gpu: str                   # the GPU class the deploy commands are written for
    on_gpu: bool = False


def notebook_06(device: hardware.Device, quick_mode: bool | None = None) -> ServicePlan:
    """The course's BentoML service over the toy R1 on a CPU; on a GPU over the largest distill whose engine starts
    with an 8,192-token context. The quick mode sends fewer requests, still measured twice."""
    from course_utils import deploy, speed

    fast = _is_quick(quick_mode)
    settings = deploy.settings_from_env(device=device)
    loads = ((1, 6), (16, 32)) if fast else speed.LOADS
    if device.kind == "cuda":
        return ServicePlan(
            notebook="06", path=f"BentoML + vLLM serving {settings.model} on this {device.name} (memory share "
                                f"{settings.gpu_memory_utilization})", quick=fast, checks_reference=False,
            settings=settings, startup_timeout=1800, max_tokens=2048, temperature=0.6, repeats=2 if fast else 3,
            loads=loads, load_tokens=512, target_gpu=gpu_path.gpu_class(device.total_gib, device.name), on_gpu=True,
            downloads=f"about {catalog.weight_bytes(settings.model, 'bfloat16') / 1e9:.1f} GB (once)",
            time="a few minutes plus the download (not measured on a GPU)")
    return ServicePlan(
        notebook="06", path="BentoML + vLLM serving the toy R1 on this CPU", quick=fast, checks_reference=not fast,
        settings=settings, startup_timeout=300, max_tokens=96, temperature=0.0, repeats=2 if fast else 3,
        loads=loads, load_tokens=96, target_gpu="L4-24GB", time=_cpu_time("06", fast),
        memory="about 3 GiB of RAM per server (two run side by side in section 4)")


def gpu_minutes_table(gpu_names=("T4-16GB", "L4-24GB", "A100-40GB", "H100-80GB")) -> list[dict]:
    """The GPU time table the docs state for notebooks 03 and 04, one row per GPU class, from the plans themselves
    (each GPU with all but half a GiB free)."""
    import math

    rows = []
    for name in gpu_names:
        device = gpu_path.fake_device(name)
        served, reasoning = notebook_03(device, quick_mode=False), notebook_04(device, quick_mode=False)
        served_fit = gpu_path.largest_engine(device, (8192, 4096), processes=2)
        second = f" + {reasoning.second_model.split('/')[1]}" if reasoning.second_model else ""
        download = catalog.weight_bytes(reasoning.model) + (catalog.weight_bytes(reasoning.second_model)
                                                            if reasoning.second_model else 0)
        completions = reasoning_completions(reasoning.word_problems + reasoning.math_problems, reasoning.n_samples,
                                            reasoning.k_problems, reasoning.second_model is not None)
        rows.append({"GPU": name,
                     "notebook 03 model": served.model.split("/")[1],
                     "notebook 03 download (GB)": round(catalog.weight_bytes(served.model) / 1e9, 1),
                     "notebook 03 generation (min)": math.ceil(serving_minutes(served_fit)),
                     "notebook 04 model": reasoning.model.split("/")[1] + second,
                     "notebook 04 download (GB)": round(download / 1e9, 1),
                     "notebook 04 completions": completions,
                     "notebook 04 generation (min)": math.ceil(reasoning.estimated_minutes)})
    return rows


# ---------------------------------------------------------------- notebook 07


@dataclass(frozen=True, kw_only=True)
class MLAPlan(Plan):
    steps: int                        # training steps of each tiny LM in section 6
    seeds: tuple[int, ...]            # each attention kind is trained once per seed (the spread is the noise)
    decode_tokens: tuple[int, ...]    # cached tokens at which one decoding step is timed
    repeats: int                      # timings per point; the median is kept
    equivalence_configs: int          # random configurations checked against transformers
    compares_losses: bool             # long enough training for MLA's loss to separate from MHA's (not in quick)


# MLA's validation loss minus MHA's, one seed at a time, at the full plan's 400 steps over seeds 0-4 x 1-2 threads
# (benchmarks/robustness.py --recipes attention, 2026-12-07; benchmarks/README.md). At the quick plan's 150 steps the
# same sweep ranged QUICK_GAP_RANGE, both signs: so the quick mode shows the full range instead of a verdict.
FULL_GAP_RANGE = (0.044, 0.117)
QUICK_GAP_RANGE = (-0.024, 0.091)


def notebook_07(device: hardware.Device, quick_mode: bool | None = None) -> MLAPlan:
    """MLA built small and checked on random configurations; decoding timed on the toy's and V3's real attention
    shapes (one layer, random weights: 0.75 GB in float32); three tiny LMs trained on the toy corpus (the quick mode:
    fewer steps, still two seeds)."""
    fast = _is_quick(quick_mode)
    return MLAPlan(notebook="07", path="MLA on this " + ("GPU's machine, on the CPU" if device.kind == "cuda"
                                                          else "CPU"),
                   quick=fast, checks_reference=not fast and device.kind != "cuda", time=_cpu_time("07", fast),
                   steps=150 if fast else 400, seeds=(0, 1), decode_tokens=(64, 256), repeats=3 if fast else 5,
                   equivalence_configs=8 if fast else 20, compares_losses=not fast,
                   memory="about 2 GiB of RAM (V3's attention weights for one layer, in float32)")
