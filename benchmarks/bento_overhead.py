"""What BentoML costs on top of vLLM: the same streamed load against the bare vLLM server and through the course's
BentoML service, in one run, as ratios (1.00 = no cost).

    python benchmarks/bento_overhead.py         # about 7 minutes on 2 CPU cores (three server starts included)

Three servers, one after another (never two at once: on a CPU they would share the cores), each warmed up and
then sent 1, 4 and 16 requests in flight, every load repeated (median kept, throughput range shown):
- vLLM's OpenAI-compatible server (``serving.VLLMServer``);
- the course's service (``deploy.BentoServer``): BentoML with vLLM's engine in-process, OpenAI routes not traced;
- the same service with BentoML's default tracing (SERVICE_TRACE_OPENAI=1): a span per streamed chunk.
On the toy the engine is so fast that per-token HTTP work is what gets timed, the worst case for a layer; a real
distill on a GPU spends far longer per token in the engine.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from course_utils import toy_reasoner as R  # noqa: E402
from course_utils.deploy import BentoServer  # noqa: E402
from course_utils.serving import VLLMServer  # noqa: E402
from course_utils.speed import compare_servers, overhead_table  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "build" / "benchmarks" / "bento_overhead.json"
BARE, SERVICE, TRACED = "vLLM", "BentoML + vLLM", "BentoML + vLLM, streams traced"


def main(repeats: int = 7, max_tokens: int = 96) -> dict:
    model = R.checkpoint_path()
    options = {"max_model_len": 256, "dtype": "float32"}
    questions = [R.question(a, b, instruction=True) for a, b in R.held_out_problems(64)]
    rows = compare_servers({BARE: lambda: VLLMServer(model, **options),
                            SERVICE: lambda: BentoServer(model, **options),
                            TRACED: lambda: BentoServer(model, **options, extra_env={"SERVICE_TRACE_OPENAI": "1"})},
                           questions, repeats=repeats, max_tokens=max_tokens, temperature=0)
    return {"rows": rows, SERVICE: overhead_table(rows, BARE, SERVICE), TRACED: overhead_table(rows, BARE, TRACED)}


if __name__ == "__main__":
    result = main()
    for row in result["rows"]:
        print(f"{row['server']:32} {row['concurrency']:>3} in flight: {row['output_tokens_per_s']:7.0f} tokens/s "
              f"(range {row['tokens_per_s_min']:.0f}-{row['tokens_per_s_max']:.0f}), "
              f"p50 {row['latency_p50_ms']:6.0f} ms, p90 {row['latency_p90_ms']:6.0f} ms, "
              f"HTTP-side CPU {row['http_cpu_ms_per_token']:.3f} ms/token")
    for name in (SERVICE, TRACED):
        print(f"\n{name} / {BARE}")
        for row in result[name]:
            print(f"  {row['in flight']:>3} in flight: throughput x{row['throughput ratio']:.2f}, "
                  f"p50 latency x{row['p50 latency ratio']:.2f}, p90 latency x{row['p90 latency ratio']:.2f}, "
                  f"HTTP-side CPU per token x{row['HTTP-side CPU per token ratio']:.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
