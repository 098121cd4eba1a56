"""The GPU path's sizes and time estimates, on faked GPUs (a T4, an L4, an A100, an H100)."""

import pytest

from course_utils import catalog, gpu_path, hardware

GPUS = {"T4": ("Tesla T4", 15.0, (7, 5)), "L4": ("NVIDIA L4", 22.5, (8, 9)),
        "A100-40GB": ("NVIDIA A100-SXM4-40GB", 40.0, (8, 0)), "H100": ("NVIDIA H100 80GB HBM3", 79.6, (9, 0))}


@pytest.mark.parametrize("gpu", GPUS)
def test_notebook_04_fits_the_budget_on_every_gpu_class(fake_cuda, gpu):
    fake_cuda(*GPUS[gpu])
    device = hardware.detect_device()
    sizes = gpu_path.reasoning_sizes(device)
    assert sizes.estimated_minutes <= gpu_path.BUDGET_MINUTES
    problems = sizes.word_problems + sizes.math_problems
    assert sizes.completions == gpu_path.reasoning_completions(problems, sizes.n_samples, sizes.k_problems,
                                                               sizes.second_model is not None)
    # the model fits in 45% of the free memory with the whole context, and the engine gets half the GPU
    plan = hardware.plan_serving(sizes.model, memory_gib=device.free_gib * 0.45, bf16=device.bf16,
                                 min_context=sizes.max_model_len)
    assert plan.fits and sizes.engine_share == 0.5 and sizes.max_tokens < sizes.max_model_len
    assert sizes.k_problems <= sizes.word_problems + sizes.math_problems
    assert f"{sizes.download_gb:.1f} GB" in sizes.describe() and "not a measurement" in sizes.describe()


def test_size_comparison_only_where_two_sizes_fit(fake_cuda):
    fake_cuda(*GPUS["T4"])
    t4 = gpu_path.reasoning_sizes(hardware.detect_device())
    assert t4.model == gpu_path.SMALLEST and t4.second_model is None    # no second "size" that is the same model
    assert t4.download_gb == pytest.approx(catalog.weight_bytes(gpu_path.SMALLEST) / 1e9)
    assert t4.gpu == "T4-16GB" and t4.max_tokens == 4096                # the T4 gets the small tier
    fake_cuda(*GPUS["H100"])
    h100 = gpu_path.reasoning_sizes(hardware.detect_device())
    assert h100.second_model == gpu_path.SMALLEST and h100.model != gpu_path.SMALLEST
    assert h100.download_gb > t4.download_gb


def test_too_little_memory_is_a_clear_error():
    tiny = hardware.Device("cuda", "small GPU", 1, 4.0, 3.5, True, 8, 32)
    with pytest.raises(MemoryError, match="no R1 distill fits"):
        gpu_path.reasoning_sizes(tiny)


def test_generation_time_grows_with_work_and_falls_with_bandwidth():
    args = dict(model=gpu_path.SMALLEST, max_tokens=4096, kv_cache_gib=4.0)
    t4 = gpu_path.generation_minutes(gpu_name="T4", completions=100, **args)
    assert gpu_path.generation_minutes(gpu_name="T4", completions=200, **args) > t4
    assert gpu_path.generation_minutes(gpu_name="H100", completions=100, **args) < t4 / 5   # 10x the bandwidth
    assert gpu_path.generation_minutes(gpu_name="T4", completions=0, **args) == 0
    with pytest.raises(ValueError):
        gpu_path.generation_minutes(gpu_path.SMALLEST, "T4", completions=10, max_tokens=0, kv_cache_gib=1)


def test_one_sequence_is_bound_by_reading_the_weights():
    # batch 1: each token reads the weights once, at EFFICIENCY x the T4's 320 GB/s
    minutes = gpu_path.generation_minutes(gpu_path.SMALLEST, "T4", 1, 2, kv_cache_gib=0.0001, prompt_tokens=1)
    per_token = catalog.weight_bytes(gpu_path.SMALLEST) / (320e9 * gpu_path.EFFICIENCY)
    assert minutes * 60 == pytest.approx(per_token * 1, rel=0.01)   # 1 new token: half of max_tokens=2


def test_stated_times_table_and_cell_timeout():
    rows = gpu_path.minutes_table()
    assert [r["GPU"] for r in rows] == ["T4-16GB", "L4-24GB", "A100-40GB", "H100-80GB"]
    assert all(r["notebook 04 generation (min)"] <= gpu_path.BUDGET_MINUTES for r in rows)
    assert gpu_path.cell_timeout(on_gpu=False) == 900 and gpu_path.cell_timeout(on_gpu=True) == 3600
    assert gpu_path.gpu_class(15.0) == "T4-16GB" and gpu_path.gpu_class(79.6) == "H100-80GB"


def test_pytest_raises_the_cell_timeout_on_a_gpu(fake_cuda):
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).parent.parent / "conftest.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    cpu = SimpleNamespace(option=SimpleNamespace(nbval_cell_timeout=900))
    hook.pytest_configure(cpu)
    assert cpu.option.nbval_cell_timeout == 900
    fake_cuda(*GPUS["T4"])
    gpu = SimpleNamespace(option=SimpleNamespace(nbval_cell_timeout=900))
    hook.pytest_configure(gpu)
    assert gpu.option.nbval_cell_timeout == 3600


def test_the_readme_states_the_same_times():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for row in gpu_path.minutes_table():
        assert "| " + " | ".join(str(v) for v in row.values()) + " |" in readme, row["GPU"]


def test_the_workshop_guide_states_the_same_gpu_times():
    from pathlib import Path

    guide = (Path(__file__).parent.parent / "docs" / "workshop.md").read_text().splitlines()
    line = {nb: next(g for g in guide if g.startswith(f"| {nb} ")) for nb in ("03", "04")}
    short = {"T4-16GB": "T4", "L4-24GB": "L4", "A100-40GB": "A100-40GB", "H100-80GB": "H100"}
    for row in gpu_path.minutes_table():
        assert f"{short[row['GPU']]} {row['notebook 03 generation (min)']} min" in line["03"], row["GPU"]
        assert f"{short[row['GPU']]} {row['notebook 04 generation (min)']} min" in line["04"], row["GPU"]


@pytest.mark.parametrize("name, total_gib, expected", [
    ("NVIDIA A100-SXM4-80GB", 79.14, "A100-80GB"),     # nearer an H100's 79.6 GiB than its own 80.0
    ("NVIDIA A100 80GB PCIe", 79.14, "A100-80GB"),
    ("NVIDIA A100-SXM4-40GB", 39.4, "A100-40GB"),
    ("NVIDIA H100 80GB HBM3", 79.1, "H100-80GB"),
    ("Tesla T4", 14.56, "T4-16GB"),
    ("NVIDIA L40S", 44.4, "A100-40GB"),                # not an L4: a name the catalog lacks goes by memory
    ("NVIDIA H200", 139.8, "H200-141GB"),
])
def test_a_gpu_is_classed_by_its_name_first(name, total_gib, expected):
    assert gpu_path.gpu_class(total_gib, name) == expected


def test_an_a100_80gb_gets_a100_estimates_not_h100_ones(fake_cuda):
    fake_cuda("NVIDIA A100-SXM4-80GB", 79.14, (8, 0))
    device = hardware.detect_device()
    assert gpu_path.reasoning_sizes(device).gpu == "A100-80GB"
    _, a100_minutes = gpu_path.serving_choice(device)
    fake_cuda("NVIDIA H100 80GB HBM3", 79.14, (9, 0))
    _, h100_minutes = gpu_path.serving_choice(hardware.detect_device())
    assert a100_minutes > 1.5 * h100_minutes          # 2,039 against 3,350 GB/s


def test_a_t4_s_engine_share_leaves_room_for_the_contexts(fake_cuda):
    """A T4 that torch reports as 14.56 GiB: the engine gets half of it while two CUDA contexts still fit in what is
    free; with half of it held by another process, a clear error at once instead of vLLM refusing to start."""
    fake_cuda("Tesla T4", 14.56, (7, 5), free_gib=14.2)
    assert gpu_path.reasoning_sizes(hardware.detect_device()).engine_share == 0.5
    fake_cuda("Tesla T4", 14.56, (7, 5), free_gib=7.5)
    with pytest.raises(MemoryError, match="free GPU memory"):
        gpu_path.reasoning_sizes(hardware.detect_device())
