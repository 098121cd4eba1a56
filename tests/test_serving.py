"""The vLLM server lifecycle, for real on the CPU with the toy R1 checkpoint, and its failures."""

import importlib.util
import json
import math
import os

import pytest

from course_utils import toy_reasoner
from course_utils.inference import chat_server, stream_server
from course_utils.processes import port_is_free
from course_utils.serving import VLLMServer
from course_utils.speed import histogram, load_summary, load_test, metric_total, read_metrics

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
server = pytest.mark.server


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_missing_model_path_is_refused_at_once(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model at"):
        VLLMServer(tmp_path / "no-such-model")


@needs_vllm
def test_busy_port_is_refused_at_once(busy_port):
    with pytest.raises(OSError, match=f"port {busy_port} .* already in use"):
        VLLMServer(toy_reasoner.checkpoint_path(), port=busy_port)


@needs_vllm
@server
def test_a_server_that_dies_during_startup_raises_with_its_log(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    server = VLLMServer(tmp_path, startup_timeout=120)
    with pytest.raises(RuntimeError, match="exited during start-up") as info:
        server.start()
    assert "End of its log" in str(info.value)
    assert server.process is None and port_is_free(server.port)


@needs_vllm
@server
def test_real_server_chat_stream_reasoning_and_stopped_even_by_an_interrupt():
    """One server start for all of it: the reasoning parser on plain and streamed replies, the course's helpers,
    and at the end a KeyboardInterrupt inside the block (a learner's stop button) still stops the server."""
    server = VLLMServer(toy_reasoner.checkpoint_path(), max_model_len=256, dtype="float32")
    with pytest.raises(KeyboardInterrupt), server:
        pid = server.process.pid
        assert server.base_url.endswith("/v1")
        client = server.client()
        reply = client.chat.completions.create(
            model=server.model_name, messages=[{"role": "user", "content": toy_reasoner.question(473, 958)}],
            temperature=0, max_tokens=96)
        message = reply.choices[0].message
        assert message.content.strip() == "\\boxed{1431}"                  # the answer, without the thinking
        assert "carry" in message.reasoning and "</think>" not in message.reasoning
        assert reply.usage.completion_tokens > 20 and reply.usage.prompt_tokens > 10
        reasoning, content = "", ""
        for chunk in client.chat.completions.create(
                model=server.model_name, messages=[{"role": "user", "content": toy_reasoner.question(286, 749)}],
                temperature=0, max_tokens=96, stream=True):
            delta = chunk.choices[0].delta if chunk.choices else None
            reasoning += (getattr(delta, "reasoning", None) or "") if delta else ""
            content += (delta.content or "") if delta else ""
        assert "carry" in reasoning and content.strip() == "\\boxed{1035}"
        check_helpers_load_test_metrics_and_memory(server, client)
        raise KeyboardInterrupt
    assert not alive(pid) and server.process is None and port_is_free(server.port)


@needs_vllm
@server
def test_server_dies_when_the_kernel_is_killed(tmp_path):
    """A Python process (standing in for a Jupyter kernel) starts a server and is then SIGKILLed: no orphan."""
    import subprocess
    import sys
    import time

    script = (f"from course_utils.serving import VLLMServer\n"
              f"s = VLLMServer({str(toy_reasoner.checkpoint_path())!r}, max_model_len=256, dtype='float32').start()\n"
              # written aside, then renamed: the test must never read a file that exists but is still empty
              f"import os; open({str(tmp_path / 'pid.tmp')!r}, 'w').write(str(s.process.pid))\n"
              f"os.replace({str(tmp_path / 'pid.tmp')!r}, {str(tmp_path / 'pid')!r})\n"
              "import time; time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    pid_file = tmp_path / "pid"
    deadline = time.time() + 180
    while not pid_file.exists() and time.time() < deadline and parent.poll() is None:
        time.sleep(0.5)
    assert pid_file.exists(), "the server did not start"
    server_pid = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    deadline = time.time() + 30
    while alive(server_pid) and time.time() < deadline:
        time.sleep(0.5)
    assert not alive(server_pid)


def check_helpers_load_test_metrics_and_memory(server, client):
    """On the running server: the course's helpers, a small load test, /metrics and the memory report."""
    reply = chat_server(client, server.model_name, toy_reasoner.question(473, 958), temperature=0, max_tokens=96)
    assert reply.content == "\\boxed{1431}" and "carry" in reply.reasoning and reply.finish_reason == "stop"
    question = toy_reasoner.question(286, 749)
    pieces = list(stream_server(client, server.model_name, question, temperature=0, max_tokens=96))
    kinds = [kind for kind, _ in pieces]
    assert kinds[0] == "reasoning" and "content" in kinds and kinds[-1] == "usage"
    assert "".join(p for k, p in pieces if k == "content").strip() == "\\boxed{1035}"
    before = metric_total(read_metrics(server.base_url), "vllm:generation_tokens_total")
    questions = [toy_reasoner.question(a, b) for a, b in toy_reasoner.held_out_problems(12)]
    records, wall = load_test(client, server.model_name, questions, concurrency=4, progress=False, max_tokens=96)
    row = load_summary(records, wall, 4)
    assert row["requests"] == 12 and row["output_tokens_per_s"] > 0
    assert all(0 < r["ttft_s"] <= r["latency_s"] for r in records)
    metrics = read_metrics(server.base_url)
    # the server counted exactly the tokens the clients received
    generated = metric_total(metrics, "vllm:generation_tokens_total") - before
    assert generated == sum(r["completion_tokens"] for r in records)
    bounds, counts = histogram(metrics, "vllm:time_to_first_token_seconds")
    assert sum(counts) >= 12 + 3 and len(bounds) == len(counts)
    cache_config = metrics["vllm:cache_config_info"][0][0]       # notebook 03 reads the engine's settings here
    assert int(cache_config["block_size"]) == 128 and 0 < float(cache_config["gpu_memory_utilization"]) <= 1
    memory = server.memory_report()
    assert memory["kv_cache_gib"] == 1.0
    # the prediction from config.json: 2 (K and V) x 3 layers x 1 KV head x 32 dims x 4 bytes = 768 bytes a token
    assert memory["kv_cache_tokens"] == (1024**3 // 768) // 128 * 128


def test_kv_tokens_tolerance_follows_vllms_rounding():
    from course_utils.kv_cache import kv_tokens_tolerance

    assert kv_tokens_tolerance(768, 16, gib_logged_exactly=True) == 0          # the toy on a CPU: exact
    # R1-Distill-Qwen-1.5B: 28 layers x 2 KV heads x 128 x 2 (K, V) x 2 bytes = 28,672 bytes per token
    per_token = 28 * 2 * 128 * 2 * 2
    tolerance = kv_tokens_tolerance(per_token, 16, gib_logged_exactly=False)
    assert tolerance == math.ceil(0.005 * 2**30 / per_token) + 16 == 204
    # a logged 10.00 GiB may be 9.995-10.005 GiB: the predictions from both ends differ by about twice the bound
    low, high = (int(g * 2**30 // per_token) // 16 * 16 for g in (9.995, 10.005))
    assert high - low <= 2 * tolerance
    with pytest.raises(ValueError):
        kv_tokens_tolerance(0, 16, gib_logged_exactly=False)
