"""Every notebook's run plan, on a table of real machines: the engine each plan starts must start under vLLM 0.32's
own rule, and each plan must say what it does before any work."""

import dataclasses
from pathlib import Path

import pytest

from course_utils import catalog, gpu_path, hardware, real_distill, run_plans

GIB = catalog.GIB
# name: (nvidia-smi name, nvidia-smi total GiB, free GiB, compute capability, CUDA's own total where known)
GPUS = {
    "T4": ("Tesla T4", 15360 / 1024, 14.7, (7, 5), 14.56),
    "T4, 0.6 GiB held by another kernel": ("Tesla T4", 15360 / 1024, 14.1, (7, 5), 14.56),
    "RTX 3060 12 GB": ("NVIDIA GeForce RTX 3060", 12288 / 1024, 11.5, (8, 6), None),
    "RTX 4070 12 GB": ("NVIDIA GeForce RTX 4070", 12282 / 1024, 11.2, (8, 9), None),
    "11 GiB free": ("NVIDIA GeForce RTX 2080 Ti", 11264 / 1024, 11.0, (7, 5), None),
    "L4": ("NVIDIA L4", 23034 / 1024, 22.0, (8, 9), None),
    "A100-40GB": ("NVIDIA A100-SXM4-40GB", 40960 / 1024, 39.5, (8, 0), None),
    "A100-80GB": ("NVIDIA A100-SXM4-80GB", 81920 / 1024, 79.3, (8, 0), 79.15),
    "H100-80GB": ("NVIDIA H100 80GB HBM3", 81559 / 1024, 79.1, (9, 0), None),
    "H200": ("NVIDIA H200", 143771 / 1024, 139.8, (9, 0), None),
}


def gpu(key: str, count: int = 1) -> hardware.Device:
    name, total, free, capability, _ = GPUS[key]
    return hardware.Device("cuda", name, count, total, free, capability >= (8, 0), 16, 128, capability)


def cuda_total(key: str) -> float:
    """What CUDA reports where the review measured it, else the estimate (the test's rule uses the same)."""
    known = GPUS[key][4]
    return known or hardware.cuda_total_estimate(gpu(key))


def starts_under_vllms_rule(key: str, model: str, share: float, max_model_len: int, processes: int,
                            beside_gib: float = 0.0) -> bool:
    """vLLM 0.32 (vllm/v1/worker/utils.py request_memory; v1/core/kv_cache_utils.py): free memory once the contexts
    are open must hold share x CUDA total, and weights + runtime + one max-length request must fit in that share.
    ``beside_gib``: a transformers copy that must fit in what the engine leaves."""
    device, total = gpu(key), cuda_total(key)
    dtype = "bfloat16" if device.bf16 else "float16"
    weights = catalog.weight_bytes(model, dtype) / GIB
    kv = catalog.kv_cache_bytes_per_token(model, "bfloat16") * max_model_len / GIB
    free_after_contexts = device.free_gib - processes * hardware.CUDA_CONTEXT_GIB
    return (free_after_contexts >= share * total
            and weights + hardware.RUNTIME_OVERHEAD_GIB + kv <= share * total
            and free_after_contexts - share * total >= beside_gib)


@pytest.mark.parametrize("key", GPUS)
def test_notebook_04_plans_an_engine_that_starts_on_every_gpu(key):
    plan = run_plans.notebook_04(gpu(key), quick_mode=False)
    share = plan.engine["gpu_memory_utilization"]
    if plan.free_engine_first:     # alone on the GPU; the transformers copy loads after it stops
        assert starts_under_vllms_rule(key, plan.model, share, plan.max_model_len, processes=1)
        assert gpu_path.transformers_need_gib(plan.model, gpu(key)) <= gpu(key).free_gib - 0.5
    else:                          # the engine and the kernel's transformers copy side by side
        beside = gpu_path.transformers_need_gib(plan.model, gpu(key))
        assert starts_under_vllms_rule(key, plan.model, share, plan.max_model_len, processes=2, beside_gib=beside)
    assert plan.max_tokens < plan.max_model_len and plan.k_problems <= plan.word_problems + plan.math_problems
    assert plan.estimated_minutes <= run_plans.BUDGET_MINUTES
    assert plan.engine.get("attention_backend") == ("TRITON_ATTN" if GPUS[key][3] < (8, 0) else None)
    assert not plan.checks_reference and plan.real
    text = plan.describe()
    assert "GB from the Hugging Face Hub" in text and "not a measurement" in text and plan.model in text + plan.path


def test_notebook_04_plans_a_run_on_11_gib_free_and_a_busy_t4():
    for key in ("11 GiB free", "RTX 3060 12 GB", "RTX 4070 12 GB", "T4, 0.6 GiB held by another kernel"):
        plan = run_plans.notebook_04(gpu(key), quick_mode=False)
        assert plan.model == gpu_path.SMALLEST and plan.max_model_len >= 8192, key


@pytest.mark.parametrize("key", GPUS)
def test_notebook_03_caps_its_share_like_04_and_06(key):
    plan = run_plans.notebook_03(gpu(key), quick_mode=False)
    share = plan.engine["gpu_memory_utilization"]
    assert starts_under_vllms_rule(key, plan.model, share, plan.max_model_len, processes=2)
    assert plan.server_args[:2] == ("--gpu-memory-utilization", str(share))
    assert plan.free_engine_first and plan.on_gpu and "not a measurement" in plan.describe()


@pytest.mark.parametrize("key", GPUS)
def test_notebook_06_s_service_starts_under_the_same_rule(key, monkeypatch):
    for name in ("SERVICE_MODEL", "SERVICE_MAX_MODEL_LEN", "SERVICE_GPU_MEMORY_UTILIZATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("course_utils.model_source._in_hub_cache", lambda repo: True)
    plan = run_plans.notebook_06(gpu(key), quick_mode=False)
    settings = plan.settings
    assert starts_under_vllms_rule(key, settings.model, settings.gpu_memory_utilization, settings.max_model_len, 1)
    assert settings.attention_backend == ("TRITON_ATTN" if GPUS[key][3] < (8, 0) else None)


def test_a_gpu_too_full_for_any_engine_is_a_clear_error_at_once():
    full = hardware.Device("cuda", "Tesla T4", 1, 15.0, 3.0, False, 8, 64, (7, 5))
    for plan in (run_plans.notebook_03, run_plans.notebook_04):
        with pytest.raises(MemoryError, match="nvidia-smi lists them"):
            plan(full, quick_mode=False)


def test_several_gpus_and_a_mig_slice_plan_on_one_gpu():
    for count in (2, 8):
        assert run_plans.notebook_04(gpu("H100-80GB", count), quick_mode=False).model.endswith("32B")
    mig = hardware.Device("cuda", "NVIDIA A100-SXM4-80GB MIG 2g.20gb", 1, 19.5, 19.2, True, 16, 128, (8, 0), 19.5)
    plan = run_plans.notebook_04(mig, quick_mode=False)
    budget = plan.engine["gpu_memory_utilization"] * 19.5
    weights = catalog.weight_bytes(plan.model) / GIB
    assert weights + hardware.RUNTIME_OVERHEAD_GIB < budget <= 19.2 - 0.5


def test_the_doctor_s_threshold_is_the_plans_own():
    need = run_plans.smallest_gpu_free_gib(15.0)
    at = hardware.Device("cuda", "GPU", 1, 15.0, need, True, 8, 64, (8, 0))
    below = dataclasses.replace(at, free_gib=need - 0.2)
    assert run_plans.notebook_04(at, quick_mode=False).model == gpu_path.SMALLEST
    run_plans.notebook_03(at, quick_mode=False)
    refused = 0
    for plan in (run_plans.notebook_03, run_plans.notebook_04):
        try:
            plan(below, quick_mode=False)
        except MemoryError:
            refused += 1
    assert refused >= 1
    from course_utils.doctor import gpu_memory_warning

    assert gpu_memory_warning(at) is None and f"{need:.1f} GiB" in gpu_memory_warning(below)
    assert 5 < need < 11          # the 1.5B in 16 bits, its runtime and a short context: well under 11 GiB


CPU = hardware.Device("cpu", "CPU", 0, 24.0, 24.0, True, 2, 24.0)
TOY = real_distill.Choice(None, "CPU path: the toy R1")


@pytest.mark.parametrize("quick_mode", [False, True])
def test_cpu_plans_describe_themselves_and_check_the_reference_only_in_full_mode(quick_mode):
    plans = [run_plans.notebook_00(CPU), run_plans.notebook_01(CPU, quick_mode), run_plans.notebook_02(CPU, quick_mode),
             run_plans.notebook_03(CPU, quick_mode, real=TOY), run_plans.notebook_04(CPU, quick_mode, real=TOY),
             run_plans.notebook_05(CPU, quick_mode), run_plans.notebook_06(CPU, quick_mode),
             run_plans.notebook_07(CPU, quick_mode)]
    for plan in plans[1:]:
        assert plan.quick == quick_mode and plan.checks_reference == (not quick_mode), plan.notebook
        assert ("QUICK MODE" in plan.describe()) == quick_mode
    for plan in plans:
        text = plan.describe()
        assert text.startswith(f"Notebook {plan.notebook}") and "downloads: nothing" in text and "measured" in text
        assert dataclasses.is_dataclass(plan) and plan.__dataclass_params__.frozen
        sizes = text.split("  sizes: ")[1].split("\n")[0]     # this machine's folders are not shown, nested or not
        assert str(Path(__file__).resolve().parent.parent) not in sizes, sizes


def test_comparisons_keep_a_spread_in_quick_mode():
    assert len(run_plans.notebook_01(CPU, True).seeds) >= 2 and len(run_plans.notebook_02(CPU, True).seeds) >= 2
    assert run_plans.notebook_06(CPU, True).repeats >= 2
    assert len(run_plans.notebook_07(CPU, True).seeds) >= 2


def test_notebook_07_gives_a_verdict_only_where_the_sweep_showed_one_sign():
    """MLA minus MHA kept one sign over seeds 0-4 at the full plan's steps and took both at the quick plan's."""
    low, high = run_plans.FULL_GAP_RANGE
    assert 0 < low < high < 0.15 and run_plans.notebook_07(CPU, False).compares_losses
    low, high = run_plans.QUICK_GAP_RANGE
    assert low < 0 < high and not run_plans.notebook_07(CPU, True).compares_losses
    assert run_plans.notebook_01(CPU, True).gammas == run_plans.notebook_01(CPU, False).gammas


def test_quick_plans_load_what_the_full_recipe_trained_where_a_short_run_would_mislead():
    assert run_plans.notebook_02(CPU, True).load_trained and not run_plans.notebook_02(CPU, False).load_trained
    assert run_plans.notebook_05(CPU, True).load_trained and not run_plans.notebook_05(CPU, False).load_trained


def twin_choice(ram_gib=24.0):
    cost = real_distill.cost(ram_gib, cached=False, avx512=True, avx512_bf16=True)
    return real_distill.Choice(real_distill.MODEL, "CPU path: the real distill", cost=cost)


def test_the_real_1_5b_on_a_cpu_plans_a_token_budget_and_states_its_cost():
    for plan in (run_plans.notebook_03(CPU, False, real=twin_choice()),
                 run_plans.notebook_04(CPU, False, real=twin_choice())):
        assert plan.real and plan.model == real_distill.MODEL and plan.free_engine_first
        assert plan.max_tokens == 384 and not plan.checks_reference
        text = plan.describe()
        assert "3.55 GB" in text and "GiB of RAM" in text and "min" in text
    assert len(run_plans.notebook_04(CPU, False, real=twin_choice()).tips) == 4


def test_the_gpu_minutes_table_comes_from_the_plans():
    rows = run_plans.gpu_minutes_table()
    assert [row["GPU"] for row in rows] == ["T4-16GB", "L4-24GB", "A100-40GB", "H100-80GB"]
    for row in rows:
        assert row["notebook 04 generation (min)"] <= run_plans.BUDGET_MINUTES
        device = gpu_path.fake_device(row["GPU"])
        assert row["notebook 04 model"].split(" + ")[0] == run_plans.notebook_04(device, False).model.split("/")[1]


def test_notebook_00_says_what_fits_on_this_gpu_and_nothing_on_a_cpu():
    assert run_plans.notebook_00(CPU).this_gpu_note == ""
    t4 = run_plans.notebook_00(gpu("T4"))
    assert t4.this_gpu is not None and t4.this_gpu_note.endswith(t4.this_gpu.command)
    tiny = hardware.Device("cuda", "a 4 GiB card", 1, 4.0, 3.5, False, 8, 32.0, (7, 5))
    assert run_plans.notebook_00(tiny).this_gpu_note.endswith("no R1 distill fits with a 32k context")
