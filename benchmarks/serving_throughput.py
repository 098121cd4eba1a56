"""Greedy generation throughput of the toy R1: vLLM's offline engine against transformers ``generate``, side by side
in one run (ratios, not absolute claims), and the server under load at several concurrencies.

    python benchmarks/serving_throughput.py           # about 1 minute on 2 CPU cores (engine and server start included)

Compared on the same prompts and the same greedy completions (the script checks that the texts agree):
vLLM's engine (continuous batching, paged KV cache); transformers with all prompts in one padded batch; and
transformers one prompt at a time. Then the OpenAI-compatible server with 1, 4 and 16 requests in flight.
On a GPU with a real distill the ratios are very different (see notebook 03): the toy is so small that per-step
overhead, not arithmetic, is what gets timed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from course_utils import toy_reasoner as R  # noqa: E402
from course_utils.hardware import release_memory  # noqa: E402
from course_utils.inference import TransformersChat, chat_prompts, offline_engine, shutdown_engine  # noqa: E402
from course_utils.serving import VLLMServer  # noqa: E402
from course_utils.speed import engine_table, load_summary, load_test, time_transformers, time_vllm  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "build" / "benchmarks" / "serving_throughput.json"


def main(prompts: int = 64, max_tokens: int = 96, concurrency=(1, 4, 16)) -> dict:
    model = R.checkpoint_path()
    questions = [R.question(a, b, instruction=True) for a, b in R.held_out_problems(prompts)]
    llm = offline_engine(model, max_model_len=256, dtype="float32")
    texts = chat_prompts(llm.get_tokenizer(), questions)
    runs = {"vLLM": time_vllm(llm, texts, max_tokens)}
    shutdown_engine(llm)
    del llm
    release_memory()
    fallback = TransformersChat(model, device="cpu")
    runs["transformers, one batch"] = time_transformers(fallback, texts, max_tokens)
    runs["transformers, one at a time"] = time_transformers(fallback, texts, max_tokens, batch_size=1)
    engines = engine_table(runs)
    load = []
    with VLLMServer(model, max_model_len=256, dtype="float32") as server:
        client = server.client()
        for c in concurrency:
            records, wall = load_test(client, server.model_name, questions, c, progress=False, max_tokens=max_tokens)
            load.append(load_summary(records, wall, c))
        startup = server.startup_seconds
    return {"engines": engines, "server_start_seconds": startup, "load": load}


if __name__ == "__main__":
    result = main()
    print(f"{'engine':28} {'tokens/s':>10} {'vLLM speed / this':>18} {'same text':>10}")
    for row in result["engines"]:
        print(f"{row['engine']:28} {row['output tokens/s']:>10.0f} {row['vLLM speed / this']:>18.2f} "
              f"{row['same text as vLLM']:>10.2f}")
    print(f"\nserver start: {result['server_start_seconds']:.1f} s")
    print(f"{'in flight':>9} {'tokens/s':>10} {'TTFT p50 ms':>12} {'latency p90 ms':>15}")
    for row in result["load"]:
        print(f"{row['concurrency']:>9} {row['output_tokens_per_s']:>10.0f} {row['ttft_p50_ms']:>12.1f} "
              f"{row['latency_p90_ms']:>15.1f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
