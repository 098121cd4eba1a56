import pytest

from course_utils import hardware


def test_v3_and_r1_need_eight_h200s():
    four = hardware.plan_serving("R1", "H200", 4, use_all=True)
    eight = hardware.plan_serving("R1", "H200", 8, use_all=True)
    assert not four.fits and "weights need" in four.reason
    assert eight.fits and eight.tensor_parallel == 8 and eight.dtype == "fp8"
    assert "--tensor-parallel-size 8" in eight.command and "--reasoning-parser deepseek_r1" in eight.command


def test_eight_h100s_are_not_enough_but_two_nodes_are():
    assert not hardware.plan_serving("V3", "H100", 8).fits
    two_nodes = hardware.plan_serving("V3", "H100", 16)
    assert two_nodes.fits and two_nodes.pipeline_parallel == 2
    assert "--pipeline-parallel-size 2" in two_nodes.command


def test_t4_has_no_bf16_so_it_serves_in_half():
    plan = hardware.plan_serving("R1-Distill-Qwen-1.5B", "T4")
    assert plan.fits and plan.dtype == "float16" and "--dtype half" in plan.command
    forced = hardware.plan_serving("R1-Distill-Qwen-1.5B", "T4", dtype="bfloat16")
    assert not forced.fits and "half" in forced.reason


def test_fewest_gpus_and_heads_divisible_by_tensor_parallel():
    assert hardware.plan_serving("R1-Distill-Qwen-7B", "H100", 8).tensor_parallel == 1
    seventy = hardware.plan_serving("R1-Distill-Llama-70B", "H100", 8)
    assert seventy.fits and seventy.tensor_parallel == 2
    # Qwen-1.5B has 12 heads: 8-way tensor parallelism is impossible, so 8 GPUs split 4 x 2
    forced = hardware.plan_serving("R1-Distill-Qwen-1.5B", "T4", 8, use_all=True)
    assert (forced.tensor_parallel, forced.pipeline_parallel) == (4, 2)


def test_context_grows_with_memory_and_is_capped_by_the_model():
    small = hardware.plan_serving("R1-Distill-Llama-8B", "L4")
    big = hardware.plan_serving("R1-Distill-Llama-8B", "H200")
    assert small.fits and small.max_model_len < big.max_model_len == 131072


def test_recommend_picks_the_largest_distill_that_fits():
    assert hardware.recommend(15, bf16=False).model.endswith("Qwen-1.5B")
    assert hardware.recommend(140.4).model.endswith("Qwen-32B")
    assert hardware.recommend(140.4, 8).model == "deepseek-ai/DeepSeek-R1"
    assert hardware.recommend(2.0) is None


@pytest.mark.parametrize("bad", [0, -8, float("nan")])
def test_bad_memory_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="positive"):
        hardware.plan_serving("R1-Distill-Qwen-1.5B", memory_gib=bad)


def test_bad_gpu_name_count_and_dtype():
    with pytest.raises(ValueError, match="known: T4-16GB"):
        hardware.gpu("RTX-9090")
    with pytest.raises(ValueError, match="n_gpus"):
        hardware.plan_serving("R1", "H200", 3)
    with pytest.raises(ValueError, match="accepted"):
        hardware.plan_serving("R1", "H200", 8, dtype="float12")


def test_detect_device_answers_on_any_machine():
    dev = hardware.detect_device()
    assert dev.kind in ("cuda", "mps", "cpu") and dev.cpu_cores >= 1


def test_a_t4_is_not_bf16_even_when_torch_says_it_is(fake_cuda):
    fake_cuda("Tesla T4", 15.0, (7, 5))
    dev = hardware.detect_device()
    assert dev.kind == "cuda" and dev.bf16 is False
    plan = hardware.recommend(dev.free_gib, bf16=dev.bf16)
    assert plan.dtype == "float16" and "--dtype half" in plan.command


@pytest.mark.parametrize("name, capability", [("NVIDIA A100-SXM4-80GB", (8, 0)), ("NVIDIA L4", (8, 9)),
                                              ("NVIDIA H100 80GB HBM3", (9, 0))])
def test_ampere_and_newer_are_bf16(fake_cuda, name, capability):
    fake_cuda(name, 80.0, capability)
    dev = hardware.detect_device()
    assert dev.bf16 is True
    assert "--dtype half" not in hardware.recommend(dev.free_gib, bf16=dev.bf16).command


def test_release_memory_collects_cycles_and_empties_the_cuda_cache(monkeypatch):
    import gc
    import weakref

    import torch

    class Model:   # a model caught in a reference cycle, as real modules often are (hooks, closures)
        def __init__(self):
            self.weights = torch.zeros(1000)
            self.me = self

    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)          # a fake GPU: record the cache release
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    gc.disable()   # so that only release_memory can collect the cycle
    try:
        model = Model()
        alive = weakref.ref(model)
        del model
        assert alive() is not None            # dropped, but not freed: the cycle keeps it
        hardware.release_memory()
        assert alive() is None and emptied == [True]
    finally:
        gc.enable()


def test_the_commands_state_the_memory_share_they_assume():
    """vLLM's default share differs by version (0.92 in 0.32.0, 0.9 in 0.19.1): the commands always state it."""
    from course_utils import vllm_parts

    share = vllm_parts.default_memory_share()
    assert f"--gpu-memory-utilization {share}" in hardware.plan_serving("R1-Distill-Qwen-7B", "L4").command
    most = hardware.plan_serving("R1-Distill-Qwen-7B", "H100", gpu_memory_utilization=0.5)
    assert "--gpu-memory-utilization 0.5" in most.command


def test_serve_commands_keep_a_margin_below_the_predicted_kv_capacity():
    for gpu_name in ("T4", "L4", "A100-40GB", "H100"):
        for plan in hardware.what_fits(gpu_name, min_context=4096):
            if plan.fits and plan.max_model_len < hardware.catalog.resolve(plan.model).context_length:
                assert plan.max_model_len <= hardware.KV_HEADROOM * plan.kv_cache_tokens
                assert f"--max-model-len {plan.max_model_len}" in plan.command


def test_nvidia_smi_facts_are_read_without_a_cuda_context():
    text = "Tesla T4, 15360, 14913, 7.5\nNVIDIA A100-SXM4-80GB, 81920, 81038, 8.0\nbroken line\n"
    t4, a100 = hardware.parse_nvidia_smi_gpus(text)
    assert t4 == hardware.GPUFacts("Tesla T4", 15.0, 14913 / 1024, (7, 5))
    assert a100.capability == (8, 0) and a100.total_gib == 80.0
    assert hardware.visible([t4, a100], "1") == [a100] and hardware.visible([t4, a100], "GPU-uuid") == [t4, a100]


def test_detect_device_asks_the_driver_not_torch(fake_cuda):
    fake_cuda("Tesla T4", 14.56, (7, 5), free_gib=14.0)     # torch.cuda.mem_get_info fails if called
    device = hardware.detect_device()
    assert (device.name, device.total_gib, device.free_gib, device.bf16) == ("Tesla T4", 14.56, 14.0, False)


def test_the_share_vllm_gets_leaves_room_for_the_contexts_still_to_open():
    t4 = hardware.Device("cuda", "Tesla T4", 1, 14.56, 14.1, False, 8, 64)
    assert hardware.startable_share(t4, 0.92) == 0.92                  # (14.1 - 0.5) / 14.56 = 0.934
    busy = hardware.Device("cuda", "Tesla T4", 1, 14.56, 13.5, False, 8, 64)
    share = hardware.startable_share(busy, 0.92)
    assert share < 0.92 and share * 14.56 <= 13.5 - hardware.CUDA_CONTEXT_GIB
    assert hardware.startable_share(busy, 0.5, processes=2) == 0.5
    full = hardware.Device("cuda", "Tesla T4", 1, 14.56, 1.0, False, 8, 64)
    with pytest.raises(MemoryError, match="nvidia-smi lists them"):
        hardware.startable_share(full, 0.92)


def test_transformers_copies_use_fp16_where_the_gpu_has_no_bf16():
    import torch

    assert hardware.torch_dtype("cuda", bf16=False) == torch.float16       # a T4
    assert hardware.torch_dtype("cuda", bf16=True) == torch.bfloat16
    assert hardware.torch_dtype("cpu", bf16=True) == torch.float32


def test_a_mig_slice_is_sized_by_cuda_not_by_nvidia_smi(fake_cuda, monkeypatch):
    """In MIG mode nvidia-smi reports the whole GPU's memory: the device is then asked of CUDA, which sees the
    slice (a 3g.40gb slice of an A100-80GB here)."""
    import torch

    text = "NVIDIA A100-SXM4-80GB, 81920, 81000, 8.0, Enabled\n"
    facts = hardware.parse_nvidia_smi_gpus(text)[0]
    assert facts.mig and facts.total_gib == 80.0
    fake_cuda("NVIDIA A100-SXM4-80GB", 80.0, (8, 0))
    monkeypatch.setattr(hardware, "nvidia_smi_gpus", lambda: [facts])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (38 * 2**30, 39.25 * 2**30))
    device = hardware.detect_device()
    assert (device.total_gib, device.free_gib, device.cuda_total_gib) == (39.25, 38.0, 39.25)
    assert hardware.cuda_total_estimate(device) == 39.25
    assert not hardware.parse_nvidia_smi_gpus("Tesla T4, 15360, 14913, 7.5, Disabled\n")[0].mig


def test_a_gpu_older_than_the_wheels_is_refused_with_what_to_do(fake_cuda):
    fake_cuda("Tesla P100-PCIE-16GB", 16.0, (6, 0))
    with pytest.raises(RuntimeError, match="COURSE_FLAVOUR=cpu make setup"):
        hardware.detect_device()
    fake_cuda("Tesla T4", 15.0, (7, 5))
    assert hardware.detect_device().capability == (7, 5)


def test_the_cuda_total_is_asked_of_cuda_only_where_a_context_is_open(fake_cuda, monkeypatch):
    import torch

    fake_cuda("Tesla T4", 15.0, (7, 5))
    device = hardware.detect_device()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert hardware.cuda_total_now(device) == pytest.approx(14.56, abs=0.02)    # estimated, no context opened
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (10 * 2**30, 14.58 * 2**30))
    assert hardware.cuda_total_now(device) == 14.58
