"""A workshop under load: N simulated students, each running a small notebook-04 workload (a few problems, chat
requests with DeepSeek's sampling, one streamed) at the same time against the course's workshop server, on loopback.
Reports errors, latency percentiles and tokens per second, per request and for the room.

    python benchmarks/workshop_load.py                        # starts the toy workshop server here (CPU), 30 students
    python benchmarks/workshop_load.py --students 30 --endpoint http://127.0.0.1:8000/v1   # a running one
                                                              # (its key in COURSE_API_KEY)

Bounded: each student sends its requests one after another; every request and the whole run have a timeout. Writes
build/benchmarks/workshop_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import course_utils  # noqa: E402,F401  (first: it sets the OpenMP spin before torch loads)


def student(number: int, base_url: str, key: str, model: str, problems: int, max_tokens: int) -> list[dict]:
    """One student's notebook-04 workload: ``problems`` chats, then one streamed reply; one record per request."""
    from openai import OpenAI

    from course_utils import toy_reasoner
    from course_utils.inference import chat_server, stream_server

    client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)
    pairs = toy_reasoner.held_out_problems(400)[number * problems:(number + 1) * problems + 1]
    records = []
    for i, (a, b) in enumerate(pairs):
        question = toy_reasoner.question(a, b, instruction=True)
        started = time.perf_counter()
        try:
            if i < problems:
                reply = chat_server(client, model, question, max_tokens=max_tokens, seed=None)
                tokens = reply.completion_tokens
            else:
                parts = list(stream_server(client, model, question, max_tokens=max_tokens, seed=None))
                tokens = next((piece.completion_tokens for kind, piece in parts if kind == "usage"), 0)
            records.append({"ok": True, "seconds": time.perf_counter() - started, "tokens": tokens})
        except Exception as error:   # counted, not raised: the room's error rate is the measurement
            records.append({"ok": False, "seconds": time.perf_counter() - started, "tokens": 0,
                            "error": type(error).__name__})
    return records


def percentile(values: list[float], q: float) -> float:
    from course_utils.speed import percentile as course_percentile

    return course_percentile(values, q) if values else float("nan")


def run_room(base_url: str, key: str, students: int, problems: int, max_tokens: int) -> dict:
    from openai import OpenAI

    model = OpenAI(base_url=base_url, api_key=key, max_retries=0).models.list().data[0].id
    started = time.perf_counter()
    with ThreadPoolExecutor(students) as pool:
        rooms = list(pool.map(lambda n: student(n, base_url, key, model, problems, max_tokens), range(students)))
    wall = time.perf_counter() - started
    records = [r for records in rooms for r in records]
    seconds = [r["seconds"] for r in records if r["ok"]]
    tokens = sum(r["tokens"] for r in records)
    return {"students": students, "requests": len(records), "errors": sum(not r["ok"] for r in records),
            "latency_p50_s": round(percentile(seconds, 50), 2), "latency_p95_s": round(percentile(seconds, 95), 2),
            "room_tokens_per_s": round(tokens / wall, 1),
            "tokens_per_s_per_student": round(tokens / wall / students, 1),
            "wall_s": round(wall, 1), "model": model,
            "error_kinds": sorted({r["error"] for r in records if not r["ok"]})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--problems", type=int, default=4, help="chat requests per student, before one streamed")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--endpoint", help="a running workshop server's base URL (its key in COURSE_API_KEY)")
    parser.add_argument("--out", default=str(ROOT / "build" / "benchmarks" / "workshop_load.json"))
    args = parser.parse_args()
    if args.endpoint:
        result = run_room(args.endpoint, os.environ.get("COURSE_API_KEY", ""), args.students, args.problems,
                          args.max_tokens)
    else:
        from course_utils import hardware, workshop

        plan = workshop.plan_workshop(hardware.detect_device(), args.students)
        with workshop.WorkshopServer(plan) as server:
            print(plan.describe(), flush=True)
            result = run_room(server.base_url, server.key, args.students, args.problems, args.max_tokens)
    print(f"{result['students']} students, {result['requests']} requests: {result['errors']} errors; latency p50 "
          f"{result['latency_p50_s']} s, p95 {result['latency_p95_s']} s; {result['room_tokens_per_s']} tokens/s "
          f"for the room, {result['tokens_per_s_per_student']} per student; {result['wall_s']} s in all "
          f"({result['model']}, {os.cpu_count()} CPU cores)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "cores": os.cpu_count(), "when": time.strftime("%Y-%m-%d")}, indent=1))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
