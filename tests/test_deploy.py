"""The BentoML service: its settings (with faked device facts), and the real service on the CPU with the toy R1."""

import importlib.util
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from course_utils import deploy, hardware, model_source, pricing, speed, toy_reasoner, vllm_parts
from course_utils.deploy import BentoServer, build_bento, deploy_commands, settings_from_env
from course_utils.processes import is_running, port_is_free

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
server = pytest.mark.server
CPU = hardware.Device("cpu", "CPU", 0, 24.0, 24.0, True, 2, 24.0)
T4 = hardware.Device("cuda", "Tesla T4", 1, 15.0, 14.5, False, 8, 50.0)
H100 = hardware.Device("cuda", "NVIDIA H100 80GB HBM3", 1, 79.1, 78.5, True, 16, 200.0)


def post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


# ---------------------------------------------------------------- settings


def test_cpu_defaults_serve_the_toy_r1():
    s = settings_from_env({}, CPU)
    assert s.model == str(toy_reasoner.checkpoint_path()) and s.served_model_name == "toy_r1"
    assert (s.max_model_len, s.dtype, s.kv_cache_gib, s.on_gpu) == (256, "float32", 1, False)
    assert s.gpu_memory_utilization == vllm_parts.default_memory_share()        # vLLM's own default


def test_gpu_defaults_follow_the_calculator(monkeypatch):
    """The GPU default is what notebook 00's calculator picks for the free memory, in a dtype the GPU computes in."""
    monkeypatch.setattr(model_source, "hub_reachable", lambda: True)
    for device in (T4, H100):
        s = settings_from_env({}, device)
        expected = hardware.recommend(device.free_gib, bf16=device.bf16, min_context=8192)
        assert s.model == expected.model and s.on_gpu and s.max_model_len == 8192
        assert s.dtype == ("bfloat16" if device.bf16 else "half")
    assert settings_from_env({}, T4).model != settings_from_env({}, H100).model   # a bigger GPU, a bigger distill


def test_a_gpu_default_offline_says_it_needs_the_hub(monkeypatch):
    monkeypatch.setattr(model_source, "hub_reachable", lambda: False)
    with pytest.raises(ConnectionError, match="not downloaded here and huggingface.co cannot be reached"):
        settings_from_env({}, H100)


def test_settings_come_from_the_environment():
    s = settings_from_env({"SERVICE_MODEL": str(toy_reasoner.checkpoint_path()), "SERVICE_MAX_MODEL_LEN": "128",
                           "SERVICE_DTYPE": "bfloat16", "SERVICE_KV_CACHE_GIB": "2"}, CPU)
    assert (s.max_model_len, s.dtype, s.kv_cache_gib) == (128, "bfloat16", 2)


@pytest.mark.parametrize("variables, message", [
    ({"SERVICE_MAX_MODEL_LEN": "lots"}, "SERVICE_MAX_MODEL_LEN='lots': it must be a positive whole number"),
    ({"SERVICE_MAX_MODEL_LEN": "0"}, "positive whole number"),
    ({"SERVICE_MAX_MODEL_LEN": "4096"}, "use max_model_len <= 256"),
    ({"SERVICE_KV_CACHE_GIB": "-1"}, "SERVICE_KV_CACHE_GIB"),
    ({"SERVICE_DTYPE": "fp4"}, "not a dtype vLLM takes"),
    ({"SERVICE_GPU_MEMORY_UTILIZATION": "1.5"}, r"share in \(0, 1\]"),
    ({"SERVICE_MODEL": "/no/such/model"}, "no model at"),
    ({"SERVICE_MODEL": "DeepSeek-R1-Distill-Qwen-3B"}, "Any other model"),
])
def test_bad_settings_say_what_is_wrong(variables, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        settings_from_env(variables, CPU)


def test_a_cpu_refuses_a_real_distill_with_advice():
    with pytest.raises(MemoryError, match="toy R1"):
        settings_from_env({"SERVICE_MODEL": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"}, CPU)


# ---------------------------------------------------------------- the context manager's checks


def test_bad_model_path_fails_in_seconds(tmp_path):
    started = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="no model at"):
        BentoServer(tmp_path / "missing")
    assert time.perf_counter() - started < 5


@needs_vllm
def test_busy_port_is_refused(busy_port):
    with pytest.raises(OSError, match=f"port {busy_port} .* already in use"):
        BentoServer(toy_reasoner.checkpoint_path(), port=busy_port)


def test_self_hosted_cost_counts_idle_hours():
    busy = pricing.self_hosted_cost_per_million(2.0, 1, 1000)
    assert pricing.self_hosted_cost_per_million(2.0, 1, 1000, utilisation=0.25) == pytest.approx(4 * busy)
    with pytest.raises(ValueError, match="utilisation"):
        pricing.self_hosted_cost_per_million(2.0, 1, 1000, utilisation=0)


def test_overhead_table_is_the_ratio_of_the_two_servers():
    rows = [{"server": name, "concurrency": 4, "output_tokens_per_s": tps, "latency_p50_ms": p50,
             "latency_p90_ms": p90, "http_cpu_ms_per_token": cpu, "tokens_per_s_min": low, "tokens_per_s_max": high}
            for name, tps, p50, p90, cpu, low, high in (("a", 100.0, 200.0, 400.0, 0.2, 80.0, 120.0),
                                                        ("b", 90.0, 220.0, 400.0, 0.3, 70.0, 110.0))]
    (row,) = speed.overhead_table(rows, "a", "b")
    assert (row["throughput ratio"], row["p50 latency ratio"], row["p90 latency ratio"]) == (0.9, 1.1, 1.0)
    assert row["HTTP-side CPU per token ratio"] == 1.5
    assert "no difference" in row["throughput, read from the ranges"]     # 70-110 overlaps 80-120


def test_a_difference_is_claimed_only_where_the_repeats_ranges_do_not_overlap():
    base = {"tokens_per_s_min": 80.0, "tokens_per_s_max": 120.0}
    assert speed.range_verdict(base, {"tokens_per_s_min": 40.0, "tokens_per_s_max": 79.0}, "B") == "slower through B"
    assert speed.range_verdict(base, {"tokens_per_s_min": 121.0, "tokens_per_s_max": 130.0}, "B") == "faster through B"
    assert "overlap" in speed.range_verdict(base, {"tokens_per_s_min": 100.0, "tokens_per_s_max": 100.0}, "B")


def test_cpu_seconds_splits_the_engine_from_the_http_side():
    import os

    used = speed.cpu_seconds([os.getpid()])          # this pytest process is "http side" by title
    assert used["engine"] == 0 and used["http"] > 0


# ---------------------------------------------------------------- the real service


@needs_vllm
@server
def test_a_service_whose_engine_cannot_start_fails_fast_with_the_cause(tmp_path):
    """BentoML's supervisor would restart the failing worker for ever; the context manager stops at the first
    failure and quotes the cause from the log."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    service = BentoServer(tmp_path, startup_timeout=240)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="failed to start") as info:
        service.start()
    assert "no-such-architecture" in str(info.value) and time.perf_counter() - started < 120
    assert service.process is None and port_is_free(service.port)


@needs_vllm
def test_bento_build_packs_the_service_and_the_toy_model(tmp_path):
    bento = build_bento(tmp_path / "bentoml")
    manifest = (bento / "bento.yaml").read_text()
    assert "service: course_utils.bento_service:DeepSeekDistill" in manifest
    assert (bento / "src" / "course_utils" / "toy_r1" / "model.safetensors").exists()
    assert (bento / "env" / "docker" / "Dockerfile").exists()
    assert "bentoml==1.4.40" in (bento / "env" / "python" / "requirements.txt").read_text()


@needs_vllm
@server
def test_service_answers_openai_and_solve_refuses_bad_input_and_an_interrupt_stops_it():
    """One service start for all of it; at the end a KeyboardInterrupt inside the block (a learner's stop button)
    still stops the whole process tree."""
    service = BentoServer(toy_reasoner.checkpoint_path(), max_model_len=256, dtype="float32")
    with pytest.raises(KeyboardInterrupt), service:
        tree = service.processes()
        assert len(tree) >= 3 and service.base_url == service.url + "/v1"
        client = service.client()
        assert [m.id for m in client.models.list().data] == ["toy_r1"]
        reply = client.chat.completions.create(model="toy_r1", temperature=0, max_tokens=96,
                                               messages=[{"role": "user", "content": toy_reasoner.question(473, 958)}])
        message = reply.choices[0].message
        assert message.content.strip() == "\\boxed{1431}" and "carry" in message.reasoning
        streamed = {"reasoning": "", "content": ""}
        for chunk in client.chat.completions.create(model="toy_r1", temperature=0, max_tokens=96, stream=True,
                                                    messages=[{"role": "user",
                                                            "content": toy_reasoner.question(286, 749)}]):
            delta = chunk.choices[0].delta if chunk.choices else None
            streamed["reasoning"] += (getattr(delta, "reasoning", None) or "") if delta else ""
            streamed["content"] += (delta.content or "") if delta else ""
        assert "carry" in streamed["reasoning"] and streamed["content"].strip() == "\\boxed{1035}"

        status, body = post(service.url + "/solve", {"question": toy_reasoner.question(473, 958), "temperature": 0})
        assert status == 200 and body["boxed"] == "1431" and "carry" in body["reasoning"]
        for bad, says in (({"temperature": 5}, "less than or equal to 2"), ({"max_tokens": 0}, "greater than"),
                          ({"question": ""}, "at least 1 character"), ({"max_tokens": 250}, "can be at most")):
            status, body = post(service.url + "/solve", {"question": toy_reasoner.question(1, 2), **bad})
            assert status == 400 and says in json.dumps(body), (bad, body)
            assert get_status(service.url + "/readyz") == 200          # still healthy
        status, body = post(service.url + "/solve", {"question": toy_reasoner.question(286, 749), "temperature": 0})
        assert status == 200 and body["boxed"] == "1035"

        with urllib.request.urlopen(service.url + "/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert "bentoml_service_request_total" in metrics
        assert speed.metric_total(speed.read_metrics(service.url), "vllm:generation_tokens_total") > 100
        raise KeyboardInterrupt
    assert not any(map(is_running, tree)) and port_is_free(service.port) and service.process is None


@needs_vllm
@server
def test_the_service_dies_with_the_kernel(tmp_path):
    """A Python process (standing in for a Jupyter kernel) starts the service and is SIGKILLed: no process of the
    service's tree (BentoML's supervisor, its worker in a session of its own, vLLM's engine) outlives it."""
    script = ("import json\nfrom course_utils.deploy import BentoServer\n"
              f"s = BentoServer({str(toy_reasoner.checkpoint_path())!r}, max_model_len=256).start()\n"
              # written aside, then renamed: the test must never read a file that exists but is still empty
              f"import os; open({str(tmp_path / 'tree.tmp')!r}, 'w').write(json.dumps(s.processes()))\n"
              f"os.replace({str(tmp_path / 'tree.tmp')!r}, {str(tmp_path / 'tree')!r})\n"
              "import time; time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 300
    while not (tmp_path / "tree").exists() and time.time() < deadline and parent.poll() is None:
        time.sleep(0.5)
    assert (tmp_path / "tree").exists(), "the service did not start"
    tree = json.loads((tmp_path / "tree").read_text())
    assert len(tree) >= 3
    parent.kill()
    parent.wait()
    deadline = time.time() + 60
    while any(map(is_running, tree)) and time.time() < deadline:
        time.sleep(0.5)
    assert not any(map(is_running, tree))


def test_deploy_commands_name_the_calculators_distill_for_that_gpu():
    commands = deploy_commands("deepseek-distill:v1", "T4")
    expected = hardware.recommend(hardware.gpu("T4").memory_gib, bf16=False, min_context=8192).model
    text = "\n".join(commands.values())
    assert f"SERVICE_MODEL={expected}" in text and "SERVICE_DTYPE=half" in text      # a T4 computes in float16
    assert "bentoml containerize deepseek-distill:v1" in text and text.count("deepseek-distill:v1") == 3
    assert any("nvidia-tesla-t4" in label for label in commands)
    with pytest.raises(ValueError, match="unknown GPU"):
        deploy_commands("deepseek-distill:v1", "RTX-9090")




def test_bentoml_is_run_by_this_interpreter_not_a_script_beside_it():
    """On Colab (Python in /usr/bin, scripts in /usr/local/bin) and in many conda or system installs there is no
    `bentoml` beside sys.executable: the service is started as `python -m bentoml`, which works wherever the
    package is importable."""
    pytest.importorskip("bentoml")
    from course_utils import deploy

    server = BentoServer(toy_reasoner.checkpoint_path())
    assert server.args[:3] == [sys.executable, "-m", "bentoml"] and server.process is None
    result = subprocess.run([*deploy.BENTOML, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "bentoml" in result.stdout.lower()


def test_the_bento_packs_every_course_module_the_service_imports():
    """bentofile.yaml lists the service's modules by hand: a module the service imports (directly or through another
    course module) and the list lacks would make the containerised service fail at import."""
    import ast

    import yaml

    root = toy_reasoner.checkpoint_path().parent.parent
    included = {line for line in yaml.safe_load(deploy.bentofile_text())["include"]}

    def course_imports(module: str) -> set[str]:
        tree = ast.parse((root / "course_utils" / f"{module}.py").read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "course_utils":
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils."):
                names.add(node.module.split(".")[1])
        return {name for name in names if (root / "course_utils" / f"{name}.py").exists()}

    needed, todo = set(), ["bento_service"]
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo += course_imports(module)
    assert {f"course_utils/{module}.py" for module in needed} <= included


def test_a_coloured_tag_from_bentoml_is_read_plain(monkeypatch, tmp_path):
    """Under Jupyter, BentoML's console coloured the tag's digits even into a pipe (seen once in a test run):
    the Bento's folder name must not carry the colour codes."""
    from course_utils import deploy

    coloured = "__tag__:deepseek-distill:\x1b[1;36m6j\x1b[0mu2g6xrooljyax4\n"
    seen = {}

    def fake_run(command, **kwargs):
        seen.update(kwargs["env"])
        return subprocess.CompletedProcess(command, 0, stdout=coloured, stderr="")

    monkeypatch.setattr(deploy.subprocess, "run", fake_run)
    bento = build_bento(tmp_path)
    assert bento == tmp_path.resolve() / "bentos" / "deepseek-distill" / "6ju2g6xrooljyax4"
    assert seen["NO_COLOR"] == "1"
