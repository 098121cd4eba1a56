"""The real-distill path rehearsed on a CPU (``make rehearse``): the shape twin of DeepSeek-R1-Distill-Qwen-1.5B
(random weights, the real shapes, ``course_utils.twin``) served through the same functions the notebooks' Hub
branch calls, offline, with every figure beside the course calculator's prediction.

    python benchmarks/rehearse_twin.py [--notebooks]     # about 5 minutes on 2 cores, 3.6 GB of disk

1. builds the twin in its own Hub cache (nothing is downloaded), then, with that cache as the Hub cache:
2. notebook 03's offline engine: start time, the process's resident memory and the KV tokens the engine reports
   against the calculator (weights + KV pool); greedy tokens/s at 1 and 8 sequences in flight;
3. transformers ``generate`` (bf16) on the same prompts: tokens/s at 1 and 8, and vLLM's ratio over it; notebook
   04's per-token probabilities on one completion;
4. notebook 03's OpenAI server with the ``deepseek_r1`` reasoning parser: start time, resident memory of its
   processes, KV tokens, a chat whose thinking comes back in ``reasoning``, and everything stopped afterwards;
5. notebook 06's BentoML service over the same engine: one chat, then stopped;
6. with ``--notebooks``, notebooks 03 and 04 executed with ``COURSE_REAL_DISTILL=1`` into build/rehearse/.

Writes build/benchmarks/rehearse.json, and a copy where ``course_utils.real_distill`` looks for this machine's own
figures (``real_distill.REHEARSAL``, in the course's cache).
The weights are random: the texts are noise, and nothing here says anything about the real model's answers.
"""

from __future__ import annotations

# isort: split
import course_utils  # noqa: F401  (before torch: the OpenMP spin setting)

# isort: split
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from course_utils import twin
from course_utils.catalog import GIB

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "benchmarks" / "rehearse.json"
NEW_TOKENS = 64           # per sequence, greedy: the same work for every engine
IN_FLIGHT = (1, 8)


def gib(n_bytes: float) -> float:
    return round(n_bytes / GIB, 2)


def prediction(block_size: int) -> dict:
    """The calculator's figures for the 1.5B: bf16 weights, KV bytes per token, the 1 GiB pool in tokens."""
    from course_utils import catalog
    from course_utils.kv_cache import kv_cache_capacity
    from course_utils.real_distill import KV_CACHE_GIB, MODEL

    per_token = catalog.kv_cache_bytes_per_token(MODEL, "bfloat16")
    return {"weights_gib": gib(catalog.weight_bytes(MODEL, "bfloat16")), "kv_bytes_per_token": per_token,
            "kv_cache_gib": KV_CACHE_GIB,
            "kv_tokens": kv_cache_capacity(KV_CACHE_GIB * GIB, per_token, block_size)}


def offline_part(questions: list[str]) -> dict:
    from course_utils import speed
    from course_utils.hardware import release_memory
    from course_utils.inference import chat_prompts, offline_engine, shutdown_engine
    from course_utils.real_distill import MAX_MODEL_LEN, MODEL

    before = speed.resident_gib(os.getpid())
    started = time.perf_counter()
    llm = offline_engine(MODEL, max_model_len=MAX_MODEL_LEN)
    start_s = time.perf_counter() - started
    rss = speed.resident_gib(os.getpid()) - before
    # the engine core (in this process on a CPU) holds the cache settings as sized at start-up
    cache = llm.llm_engine.engine_core.engine_core.vllm_config.cache_config
    block_size, kv_tokens = cache.block_size, cache.num_gpu_blocks * cache.block_size   # (shutdown clears them)
    prompts = chat_prompts(llm.get_tokenizer(), questions)
    runs = {n: speed.time_vllm(llm, prompts[:n], NEW_TOKENS) for n in IN_FLIGHT}
    shutdown_engine(llm)
    del llm
    release_memory()
    return {"engine_start_s": round(start_s, 1), "engine_rss_gib": round(rss, 2), "block_size": block_size,
            "kv_tokens": kv_tokens, "prompts": prompts,
            "runs": runs, "tokens_per_s": {str(n): round(r["tokens_per_s"], 2) for n, r in runs.items()}}


def transformers_part(prompts: list[str]) -> dict:
    import torch

    from course_utils import speed
    from course_utils.inference import TransformersChat
    from course_utils.real_distill import MODEL
    from course_utils.token_probs import token_probabilities

    chat = TransformersChat(MODEL, device="cpu", dtype=torch.bfloat16)
    runs = {n: speed.time_transformers(chat, prompts[:n], NEW_TOKENS) for n in IN_FLIGHT}
    started = time.perf_counter()
    rows = token_probabilities(chat.model, chat.tokenizer, prompts[0], runs[1]["texts"][0])
    probs_s = time.perf_counter() - started
    return {"runs": runs, "tokens_per_s": {str(n): round(r["tokens_per_s"], 2) for n, r in runs.items()},
            "token_probabilities": {"tokens": len(rows), "seconds": round(probs_s, 2)}}


def server_part(question: str) -> dict:
    from course_utils.inference import chat_server
    from course_utils.processes import is_running, port_is_free
    from course_utils.real_distill import MAX_MODEL_LEN, MODEL
    from course_utils.serving import VLLMServer
    from course_utils.speed import resident_gib

    server = VLLMServer(MODEL, max_model_len=MAX_MODEL_LEN, startup_timeout=600).start()
    try:
        rss = resident_gib(server.process.pid)
        reply = chat_server(server.client(), server.model_name, question, max_tokens=NEW_TOKENS)
        report = server.memory_report()
        pid = server.process.pid
    finally:
        server.stop()               # (it forgets its process)
    time.sleep(1)
    gone = not is_running(pid) and port_is_free(server.port)
    return {"server_start_s": round(server.startup_seconds, 1), "server_rss_gib": round(rss, 2), "log": report,
            "reasoning_chars": len(reply.reasoning or ""), "content": reply.content,
            "completion_tokens": reply.completion_tokens, "stopped": gone}


def service_part(question: str) -> dict:
    from course_utils.deploy import BentoServer
    from course_utils.inference import chat_server
    from course_utils.real_distill import MAX_MODEL_LEN, MODEL

    with BentoServer(MODEL, max_model_len=MAX_MODEL_LEN, dtype="auto", startup_timeout=600) as service:
        reply = chat_server(service.client(), service.model_name, question, max_tokens=16)
        start = service.startup_seconds
    return {"service_start_s": round(start, 1), "reasoning_chars": len(reply.reasoning or ""),
            "stopped": not service.process or service.process.poll() is not None}


def run_notebooks(out: Path) -> dict:
    """Notebooks 03 and 04 with the real-distill switch on: the twin stands in for the download."""
    sys.path.insert(0, str(ROOT / "tools"))
    from run_notebooks import run

    os.environ["COURSE_REAL_DISTILL"] = "1"          # each notebook's kernel inherits it
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    for name in ("03_serving_distills", "04_examining_reasoning"):
        path = ROOT / "notebooks" / f"{name}.ipynb"
        timings[name] = round(run(path, out / path.name, timeout=1800))
    return timings


def measure(with_notebooks: bool) -> dict:
    from course_utils import speed, toy_reasoner

    questions = [toy_reasoner.question(a, b, instruction=True) for a, b in toy_reasoner.held_out_problems(8)]
    offline = offline_part(questions)
    hf = transformers_part(offline["prompts"])
    # what a notebook's own process holds beside the server (torch, vLLM and transformers loaded, models freed)
    client_gib = round(speed.resident_gib(os.getpid()), 2)
    served = server_part(questions[0])
    result = {
        "cores": os.cpu_count(), "new_tokens": NEW_TOKENS, "prediction": prediction(offline["block_size"]),
        "engine_start_s": offline["engine_start_s"], "engine_rss_gib": offline["engine_rss_gib"],
        "kv_tokens": offline["kv_tokens"], "tokens_per_s": offline["tokens_per_s"],
        "transformers_tokens_per_s": hf["tokens_per_s"], "token_probabilities": hf["token_probabilities"],
        "same_text_1": offline["runs"][1]["texts"] == hf["runs"][1]["texts"], **served,
        "client_process_gib": client_gib,
        "service": service_part(questions[1]), "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    overhead = served["server_rss_gib"] - result["prediction"]["weights_gib"] - result["prediction"]["kv_cache_gib"]
    result["runtime_overhead_gib"] = round(max(overhead, 0.0), 2)
    if with_notebooks:
        result["notebook_seconds"] = run_notebooks(ROOT / "build" / "rehearse")
    return result


def show(result: dict, build_s: float | None) -> None:
    p = result["prediction"]
    predicted_gib = round(p["weights_gib"] + p["kv_cache_gib"], 2)     # weights + KV pool
    if build_s is not None:
        print(f"twin built in {build_s:.0f} s (random weights: its text is noise)")
    print(f"{'':44} {'measured':>10} {'calculator':>11}")
    rows = [("offline engine start (s)", result["engine_start_s"], "-"),
            ("offline engine: this process grew by (GiB)", result["engine_rss_gib"], predicted_gib),
            ("server processes: resident memory (GiB)", result["server_rss_gib"], predicted_gib),
            ("  of which runtime beyond weights + KV (GiB)", result["runtime_overhead_gib"], "-"),
            ("  measured / calculator", round(result["server_rss_gib"] / predicted_gib, 2), 1.0),
            ("the client process beside it (GiB)", result["client_process_gib"], "-"),
            ("KV cache (tokens), offline engine", result["kv_tokens"], p["kv_tokens"]),
            ("KV cache (tokens), server log", result["log"].get("kv_cache_tokens"), p["kv_tokens"]),
            ("server start (s)", result["server_start_s"], "-"),
            ("BentoML service start (s)", result["service"]["service_start_s"], "-")]
    for name, value, predicted in rows:
        print(f"{name:44} {value!s:>10} {predicted!s:>11}")
    print(f"\ngreedy, {result['new_tokens']} new tokens per sequence, {result['cores']} cores:")
    print(f"{'in flight':>9} {'vLLM tok/s':>11} {'transformers tok/s':>19} {'vLLM / transformers':>20}")
    for n in map(str, IN_FLIGHT):
        v, t = result["tokens_per_s"][n], result["transformers_tokens_per_s"][n]
        print(f"{n:>9} {v:>11.2f} {t:>19.2f} {v / t:>20.2f}")
    probs = result["token_probabilities"]
    print(f"\nper-token probabilities (notebook 04's function): {probs['tokens']} tokens in {probs['seconds']} s")
    print(f"server chat: reasoning field {result['reasoning_chars']} characters; server stopped: {result['stopped']}; "
          f"service chat: reasoning {result['service']['reasoning_chars']} characters, stopped: "
          f"{result['service']['stopped']}")
    for name, seconds in result.get("notebook_seconds", {}).items():
        print(f"{name} with COURSE_REAL_DISTILL=1 on the twin: {seconds} s")


def main(argv: list[str]) -> int:
    if os.environ.get("HF_HUB_CACHE") != str(twin.home()):
        started = time.perf_counter()
        fresh = not (twin.snapshot() / "model.safetensors").exists()
        twin.build()
        build_s = time.perf_counter() - started if fresh else None
        env = dict(os.environ, **twin.environment(), REHEARSE_BUILD_S=str(build_s or ""))
        return subprocess.run([sys.executable, __file__, *argv], env=env).returncode
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    result = measure("--notebooks" in argv)
    result.pop("prompts", None)          # the chat-formatted inputs: long, and the same every run
    from course_utils import real_distill

    for path in (OUT, real_distill.REHEARSAL):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, default=str))
    build = os.environ.get("REHEARSE_BUILD_S")
    show(result, float(build) if build else None)
    print(f"\nwritten to {OUT} and {real_distill.REHEARSAL}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
