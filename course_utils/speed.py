"""Measuring a server as its users feel it, and reading what the server measures about itself.

- ``load_test``: N requests, ``concurrency`` at a time, each streamed so that the time to the first token (TTFT)
  is seen; returns one record per request.
- ``load_summary``: requests and tokens per second, TTFT and latency percentiles.
- ``read_metrics``: vLLM's Prometheus ``/metrics`` as {metric: [(labels, value), ...]}, and ``histogram``
  to turn one of its histograms into bucket counts for a plot.
- ``compare_engines``: vLLM's offline engine against ``transformers`` ``generate`` on the same prompts, in one run.
"""

from __future__ import annotations

import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from course_utils.catalog import GIB
from course_utils.inference import sampling_options, stream_server
from course_utils.processes import proc_stat, process_tree


def _one_streamed_request(client, model: str, question: str, sampling: dict) -> dict:
    started = time.perf_counter()
    first = usage = None
    for kind, piece in stream_server(client, model, question, **sampling):
        if kind == "usage":
            usage = piece
        elif first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    tokens = usage.completion_tokens if usage else 0
    return {"ttft_s": (first or ended) - started, "latency_s": ended - started, "completion_tokens": tokens,
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            # time per output token after the first (what a reader of a streamed answer waits between words)
            "tpot_s": (ended - (first or ended)) / max(1, tokens - 1)}


def load_test(client, model: str, questions: list[str], concurrency: int = 8, progress: bool = True,
              **sampling) -> tuple[list[dict], float]:
    """Send every question, ``concurrency`` requests in flight at a time. Returns (records, wall seconds)."""
    from course_utils.progress import bar

    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive whole number, got {concurrency!r}")
    sampling_options(None, **sampling)          # bad settings fail here, before any request is sent
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(_one_streamed_request, client, model, q, sampling) for q in questions]
        done = bar(as_completed(futures), total=len(futures), desc=f"{concurrency} in flight", disable=not progress)
        records = [f.result() for f in done]
    return records, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between the two nearest ranks (numpy's default): the
    value at position q/100 x (n - 1) of the sorted values."""
    if len(values) == 0 or not 0 <= q <= 100:
        raise ValueError(f"need at least one value and q in [0, 100]; got {len(values)} values and q={q!r}")
    return float(np.percentile(np.asarray(values, dtype=float), q))


def load_summary(records: list[dict], wall_seconds: float, concurrency: int) -> dict:
    ttft = np.array([r["ttft_s"] for r in records])
    latency = np.array([r["latency_s"] for r in records])
    tokens = sum(r["completion_tokens"] for r in records)
    row = {"concurrency": concurrency, "requests": len(records), "requests_per_s": len(records) / wall_seconds,
           "output_tokens_per_s": tokens / wall_seconds,
           "mean_tpot_ms": 1000 * float(np.mean([r["tpot_s"] for r in records]))}
    for q in (50, 90, 99):
        row[f"ttft_p{q}_ms"] = 1000 * percentile(ttft, q)
    for q in (50, 90, 99):
        row[f"latency_p{q}_ms"] = 1000 * percentile(latency, q)
    return row


# ---------------------------------------------------------------- the server's own metrics


def read_metrics(base_url: str) -> dict[str, list[tuple[dict, float]]]:
    """Every ``vllm:`` sample of the server's ``/metrics`` page (``base_url`` may end in ``/v1``)."""
    from prometheus_client.parser import text_string_to_metric_families

    root = base_url.removesuffix("/").removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("vllm:"):
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def metric_total(metrics: dict, name: str) -> float:
    """Sum of a metric's samples over all label sets (e.g. all engines)."""
    if name not in metrics:
        raise KeyError(f"the server reported no {name!r}; it has: {', '.join(sorted(metrics)[:8])}, ...")
    return sum(value for _, value in metrics[name])


def histogram(metrics: dict, name: str) -> tuple[list[float], list[float]]:
    """(upper bounds, requests per bucket) of a Prometheus histogram such as
    ``vllm:time_to_first_token_seconds`` (its ``_bucket`` samples are cumulative; this returns per-bucket counts)."""
    buckets: dict[float, float] = {}
    for labels, value in metrics.get(f"{name}_bucket", []):
        bound = float(labels["le"])
        buckets[bound] = buckets.get(bound, 0.0) + value
    if not buckets:
        raise KeyError(f"no histogram {name!r} in the metrics")
    bounds = sorted(buckets)
    cumulative = [buckets[b] for b in bounds]
    return bounds, [c - p for c, p in zip(cumulative, [0.0] + cumulative[:-1], strict=True)]


# ---------------------------------------------------------------- vLLM against transformers


def _timed(complete, prompts: list[str], max_tokens: int) -> dict:
    complete(prompts[:2], temperature=0, max_tokens=8)          # warm-up, not timed
    started = time.perf_counter()
    replies = complete(prompts, temperature=0, max_tokens=max_tokens)
    seconds = time.perf_counter() - started
    tokens = sum(r.completion_tokens for r in replies)
    return {"prompts": len(prompts), "seconds": seconds, "output_tokens": tokens, "tokens_per_s": tokens / seconds,
            "texts": [r.text for r in replies]}


def time_vllm(llm, prompts: list[str], max_tokens: int = 96) -> dict:
    """Greedy completions of ``prompts`` by vLLM's offline engine (continuous batching, paged KV cache), timed."""
    from course_utils.inference import complete_offline

    return _timed(lambda p, **kw: [r[0] for r in complete_offline(llm, p, **kw)], prompts, max_tokens)


def time_transformers(fallback, prompts: list[str], max_tokens: int = 96, batch_size: int | None = None) -> dict:
    """The same with ``transformers`` ``generate``: all prompts as one padded batch (static batching) by default,
    or ``batch_size=1``: one request at a time, as a naive server would."""
    size = batch_size or len(prompts)
    return _timed(lambda p, **kw: fallback.complete(p, batch_size=size, **kw), prompts, max_tokens)


def engine_table(runs: dict[str, dict], reference: str = "vLLM") -> list[dict]:
    """One row per run: tokens/s, the reference's speed over it, and how many greedy texts equal the reference's
    (greedy decoding: they should nearly all agree, up to float rounding)."""
    base = runs[reference]
    return [{"engine": name, "output tokens/s": round(run["tokens_per_s"], 1), "seconds": round(run["seconds"], 2),
             f"{reference} speed / this": round(base["tokens_per_s"] / run["tokens_per_s"], 2),
             f"same text as {reference}": sum(a == b for a, b in zip(base["texts"], run["texts"], strict=True))
             / len(base["texts"])} for name, run in runs.items()]


# ---------------------------------------------------------------- one server against another


LOADS = ((1, 12), (4, 24), (16, 64))      # (requests in flight, requests sent): about 3 s each for the toy on a CPU


ENGINE_PROCESSES = ("VLLM::EngineCore", "VLLM::Worker")    # the titles vLLM gives its engine processes


def resident_gib(pid: int) -> float:
    """Resident memory (RSS) of a process and all its descendants, in GiB: for a server, its API process and its
    engine's. Linux: read from /proc (0 elsewhere). Shared pages count once per process, so it can overstate."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        if "VmRSS:" in status:
            total += int(status.split("VmRSS:")[1].split()[0]) * 1024      # the line is in kB
    return total / GIB


def cpu_seconds(pids: list[int]) -> dict[str, float]:
    """CPU time (user + system) used so far by these processes, split into vLLM's engine processes and the rest
    (the HTTP side: the API server, or BentoML's supervisor and worker). Linux: read from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {"engine": 0.0, "http": 0.0}
    for pid in pids:
        fields = proc_stat(pid)
        try:
            title = Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            continue
        if fields is not None:          # fields 11 and 12 after the name: user and system time, in clock ticks
            side = "engine" if title.startswith(ENGINE_PROCESSES) else "http"
            used[side] += (int(fields[11]) + int(fields[12])) / ticks
    return used


def _measured_load(server, client, questions, concurrency, sampling) -> dict:
    before = cpu_seconds(server.processes())
    records, wall = load_test(client, server.model_name, questions, concurrency, progress=False, **sampling)
    after = cpu_seconds(server.processes())
    tokens = max(1, sum(r["completion_tokens"] for r in records))
    return {**load_summary(records, wall, concurrency),
            "http_cpu_ms_per_token": 1000 * (after["http"] - before["http"]) / tokens}


def compare_servers(start: dict, questions: list[str], loads=LOADS, repeats: int = 3, **sampling) -> list[dict]:
    """The same load tests against several servers, for a ratio measured in one run.

    ``start`` maps a name to a function that returns a server (``with``-able, with ``.client()``, ``.model_name``
    and ``.processes()``). The servers run one after another, never two at once (on a CPU they would share the
    cores). Each is warmed up, then every load is sent ``repeats`` times; a row per server and load gives the
    median of the repeats, the range of the throughput (how far to trust a ratio), and the CPU time the HTTP side
    (everything but vLLM's engine processes) spent per output token: the layer's own work, which does not depend
    on how the engine happened to batch."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive whole number, got {repeats!r}")
    rows = []
    for name, make in start.items():
        with make() as server:
            client = server.client()
            load_test(client, server.model_name, questions[:8], 8, progress=False, **sampling)   # warm-up
            for concurrency, requests in loads:
                runs = [_measured_load(server, client, questions[:requests], concurrency, sampling)
                        for _ in range(repeats)]
                speeds = [run["output_tokens_per_s"] for run in runs]
                rows.append({"server": name, "concurrency": concurrency, "requests": requests,
                             "output_tokens_per_s": float(np.median(speeds)), "tokens_per_s_min": min(speeds),
                             "tokens_per_s_max": max(speeds),
                             **{key: float(np.median([run[key] for run in runs]))
                                for key in ("ttft_p50_ms", "latency_p50_ms", "latency_p90_ms",
                                            "http_cpu_ms_per_token")}})
    return rows


def overhead_table(rows: list[dict], reference: str, layered: str) -> list[dict]:
    """Per load: the layered server's throughput and latencies as ratios to the reference's (1.00 = no cost;
    a throughput ratio below 1 and latency ratios above 1 are what the layer costs)."""
    by_key = {(row["server"], row["concurrency"]): row for row in rows}
    table = []
    for concurrency in sorted({row["concurrency"] for row in rows}):
        base, other = by_key[(reference, concurrency)], by_key[(layered, concurrency)]
        table.append({"in flight": concurrency,
                      f"{reference} tokens/s": round(base["output_tokens_per_s"]),
                      f"{layered} tokens/s": round(other["output_tokens_per_s"]),
                      "throughput ratio": round(other["output_tokens_per_s"] / base["output_tokens_per_s"], 2),
                      "p50 latency ratio": round(other["latency_p50_ms"] / base["latency_p50_ms"], 2),
                      "p90 latency ratio": round(other["latency_p90_ms"] / base["latency_p90_ms"], 2),
                      "HTTP-side CPU per token ratio": round(other["http_cpu_ms_per_token"]
                                                             / base["http_cpu_ms_per_token"], 2),
                      "throughput, read from the ranges": range_verdict(base, other, layered)})
    return table


def range_verdict(base: dict, other: dict, layered: str) -> str:
    """What the throughput ranges of the repeats allow one to say: a difference only where they do not overlap."""
    if other["tokens_per_s_max"] < base["tokens_per_s_min"]:
        return f"slower through {layered}"
    if other["tokens_per_s_min"] > base["tokens_per_s_max"]:
        return f"faster through {layered}"
    return "no difference measurable here (the ranges overlap)"
