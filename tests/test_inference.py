"""Checks before anything starts (clear errors within seconds), sampling settings, the transformers fallback,
and the load-test and metrics arithmetic."""

import time

import pytest

from course_utils import toy_reasoner
from course_utils.hardware import Device
from course_utils.inference import TransformersChat, generation_config_path, generation_defaults, sampling_options
from course_utils.model_source import check_model
from course_utils.serving import VLLMServer, memory_from_log
from course_utils.speed import engine_table, histogram, load_summary

CPU_24 = Device("cpu", "CPU", 0, 24.0, 24.0, True, 2, 24.0)
T4 = Device("cuda", "Tesla T4", 1, 15.0, 14.5, False, 8, 50.0)


def test_generation_defaults_come_from_the_checkpoint():
    assert generation_defaults(toy_reasoner.checkpoint_path()) == {"temperature": 0.6, "top_p": 0.95}
    assert sampling_options(toy_reasoner.checkpoint_path())["temperature"] == 0.6
    assert sampling_options(None, temperature=0)["temperature"] == 0.0


@pytest.mark.parametrize("bad, match", [
    (dict(temperature=-0.5), "temperature must be a number >= 0"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0), "top_p must be in"),
    (dict(top_p=1.5), "top_p must be in"),
    (dict(max_tokens=0), "max_tokens must be a positive"),
    (dict(n=2.5), "n must be a positive"),
])
def test_bad_sampling_settings_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        sampling_options(None, **bad)


def test_unknown_model_is_refused_with_suggestions():
    with pytest.raises(ValueError, match="unknown model 'DeepSeek-R1-Distill-Qwen-3B'.*Did you mean"):
        check_model("DeepSeek-R1-Distill-Qwen-3B", device=CPU_24)


def test_max_model_len_above_the_model_is_refused():
    with pytest.raises(ValueError, match="max_model_len=4096 is above what toy_r1 supports \\(256 tokens"):
        check_model(toy_reasoner.checkpoint_path(), max_model_len=4096, device=CPU_24)
    with pytest.raises(ValueError, match="above what DeepSeek-R1-Distill-Qwen-7B supports \\(131072"):
        check_model("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", max_model_len=200_000, device=CPU_24)
    assert check_model(toy_reasoner.checkpoint_path(), max_model_len=256, device=CPU_24).max_positions == 256


def test_gpu_sized_model_on_a_cpu_is_refused():
    with pytest.raises(MemoryError, match="Llama-70B needs 131.4 GiB .* serve the toy R1"):
        check_model("R1-Distill-Llama-70B", device=CPU_24)


def test_model_too_big_for_this_gpu_names_one_that_fits():
    with pytest.raises(MemoryError, match="Qwen-14B does not fit on this Tesla T4 .* the largest that fits: "
                                          "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"):
        check_model("DeepSeek-R1-Distill-Qwen-14B", device=T4)


def test_hub_model_while_offline_is_refused(monkeypatch):
    from course_utils import model_source

    monkeypatch.setattr(model_source, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(model_source, "_in_hub_cache", lambda repo: False)
    with pytest.raises(ConnectionError, match="not downloaded here and huggingface.co cannot be reached"):
        check_model("DeepSeek-R1-Distill-Qwen-1.5B", device=CPU_24)


def test_server_refuses_bad_input_before_starting_anything():
    started = time.time()
    with pytest.raises(ValueError, match="max_model_len"):
        VLLMServer(toy_reasoner.checkpoint_path(), max_model_len=100_000)
    with pytest.raises(ValueError, match="unknown model"):
        VLLMServer("DeepSeek-R2")
    assert time.time() - started < 5


def test_memory_is_read_from_vllm_start_up_logs():
    gpu_log = ("INFO [gpu_model_runner.py:5150] Model loading took 3.3521 GiB memory and 4.1 seconds\n"
               "INFO [gpu_worker.py:760] Available KV cache memory: 117.25 GiB\n"
               "INFO [kv_cache_utils.py:2328] GPU KV cache size: 4,390,912 tokens, Maximum concurrency ...\n")
    assert memory_from_log(gpu_log) == {"weights_gib": 3.3521, "kv_cache_gib": 117.25, "kv_cache_tokens": 4390912}
    cpu_log = ("Checkpoint size: 0.00 GiB. Available RAM: 21.50 GiB.\n"
               "[cpu_worker.py:260] Explicitly set (1.0/12.71) GiB for KV cache on node 0.\n"
               "CPU KV cache size: 1,398,016 tokens, Maximum concurrency for 256 tokens per request: 5461.00x\n")
    assert memory_from_log(cpu_log) == {"checkpoint_gib": 0.0, "kv_cache_gib": 1.0, "kv_cache_tokens": 1398016}
    assert memory_from_log("nothing here") == {}


def test_transformers_fallback_answers_like_the_toy():
    chat = TransformersChat(toy_reasoner.checkpoint_path(), device="cpu")
    assert "not vLLM" in chat.label
    pairs = toy_reasoner.held_out_problems(16)
    replies = chat.chat([toy_reasoner.question(a, b) for a, b in pairs], temperature=0, max_tokens=96)
    assert sum(r.content == f"\\boxed{{{a + b}}}" for r, (a, b) in zip(replies, pairs, strict=True)) >= 15
    assert all("carry" in r.reasoning and r.finish_reason == "stop" for r in replies)
    cut = chat.chat([toy_reasoner.question(123, 456)], temperature=0, max_tokens=5)[0]
    assert cut.finish_reason == "length" and cut.completion_tokens == 5
    with pytest.raises(ValueError, match="temperature"):
        chat.chat(["What is 1 + 1?"], temperature=-1)


def test_load_summary_percentiles_and_rates():
    records = [{"ttft_s": t / 100, "latency_s": t / 10, "completion_tokens": 10, "tpot_s": 0.01}
               for t in range(1, 101)]
    row = load_summary(records, wall_seconds=4.0, concurrency=8)
    assert row["requests_per_s"] == 25 and row["output_tokens_per_s"] == 250
    assert row["ttft_p50_ms"] == pytest.approx(505) and row["latency_p99_ms"] == pytest.approx(9901)


def test_prometheus_histogram_becomes_bucket_counts():
    metrics = {"vllm:ttft_bucket": [({"le": "0.1"}, 2.0), ({"le": "1.0"}, 5.0), ({"le": "+Inf"}, 6.0)]}
    assert histogram(metrics, "vllm:ttft") == ([0.1, 1.0, float("inf")], [2.0, 3.0, 1.0])
    with pytest.raises(KeyError):
        histogram(metrics, "vllm:nothing")


def test_engine_table_ratios():
    runs = {"vLLM": {"tokens_per_s": 300.0, "seconds": 1.0, "texts": ["a", "b"]},
            "HF": {"tokens_per_s": 100.0, "seconds": 3.0, "texts": ["a", "c"]}}
    rows = engine_table(runs)
    assert rows[1]["vLLM speed / this"] == 3.0 and rows[1]["same text as vLLM"] == 0.5


def test_generation_defaults_of_a_hub_model_come_from_the_local_cache(tmp_path):
    repo = tmp_path / "models--deepseek-ai--DeepSeek-R1-Distill-Qwen-1.5B"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "generation_config.json").write_text('{"temperature": 0.6, "top_p": 0.95}')
    name = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert generation_config_path(name, cache_dir=str(tmp_path)).name == "generation_config.json"
    assert generation_defaults(name, cache_dir=str(tmp_path)) == {"temperature": 0.6, "top_p": 0.95}
    # not in the cache: nothing to read, and nothing downloaded
    assert generation_config_path("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", cache_dir=str(tmp_path)) is None
    assert generation_config_path("./no-such-folder", cache_dir=str(tmp_path)) is None


def test_first_divergence_measures_how_close_two_greedy_texts_were_where_they_part():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from course_utils import toy_reasoner
    from course_utils.inference import chat_prompts
    from course_utils.token_probs import first_divergence

    tokenizer = AutoTokenizer.from_pretrained(toy_reasoner.checkpoint_path())
    model = AutoModelForCausalLM.from_pretrained(toy_reasoner.checkpoint_path(), dtype=torch.float32).eval()
    prompt = chat_prompts(tokenizer, [toy_reasoner.question(12, 30, True)])[0]
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    greedy = model.generate(ids, max_new_tokens=12, do_sample=False,
                            pad_token_id=tokenizer.eos_token_id)[0, ids.shape[1]:]
    text = tokenizer.decode(greedy)
    assert first_divergence(model, tokenizer, prompt, text, text) is None
    at = 5                                                    # swap the 6th token for the model's second choice
    with torch.no_grad():
        log_p = torch.log_softmax(model(torch.cat([ids[0], greedy[:at]])[None]).logits[0, -1], -1)
    top2 = log_p.topk(2)
    other = tokenizer.decode(torch.cat([greedy[:at], top2.indices[1:2]]))
    found = first_divergence(model, tokenizer, prompt, text, other)
    assert found["position"] == at and found["token b"] == tokenizer.decode(top2.indices[1:2])
    assert abs(found["gap (nats)"] - (top2.values[0] - top2.values[1]).item()) < 1e-4
    shorter = first_divergence(model, tokenizer, prompt, text, tokenizer.decode(greedy[:at]))
    assert shorter["position"] == at and shorter["token b"] == tokenizer.decode([tokenizer.eos_token_id])
