"""The workshop server without starting vLLM: what it serves to how many students, the guide's table, and the proxy
in front of vLLM (every route behind the key, only three routes, the key forwarded as vLLM's own)."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from course_utils import catalog, gpu_path, hardware, workshop

ROOT = Path(__file__).resolve().parent.parent
CPU = hardware.Device("cpu", "CPU", 0, 16.0, 16.0, True, 2, 16.0)


def test_a_cpu_rehearses_with_the_toy_and_each_student_has_one_request_in_flight():
    plan = workshop.plan_workshop(CPU, students=30)
    assert Path(plan.model).name == "toy_r1" and plan.engine_flags == ("--max-num-seqs", "30")
    assert plan.kv_tokens_per_student >= workshop.TOKENS_PER_STUDENT
    with pytest.raises(ValueError, match="students"):
        workshop.plan_workshop(CPU, students=0)


@pytest.mark.parametrize("gpu", ["T4-16GB", "L4-24GB", "A100-80GB", "H100-80GB"])
def test_on_a_gpu_the_largest_distill_that_leaves_every_student_a_trace(gpu):
    device = gpu_path.fake_device(gpu)
    plan = workshop.plan_workshop(device, students=30)
    assert plan.kv_cache_tokens >= 30 * workshop.TOKENS_PER_STUDENT
    flags = dict(zip(plan.engine_flags[::2], plan.engine_flags[1::2], strict=True))
    assert flags["--max-num-seqs"] == "30" and 0 < float(flags["--gpu-memory-utilization"]) < 1
    assert ("--attention-backend" in flags) == (device.capability < (8, 0))     # TRITON_ATTN on a T4
    larger = [m for m in catalog.DISTILLS if catalog.count_parameters(m)[0] > catalog.count_parameters(plan.model)[0]]
    for model in larger:     # every larger distill either does not start or leaves a student too little room
        fits = [gpu_path.engine_fit(model, device, context=c) for c in (16384, 8192, 4096)]
        assert all(f is None or f.kv_cache_tokens < 30 * workshop.TOKENS_PER_STUDENT for f in fits), model


def test_a_gpu_too_small_for_the_class_says_so_at_once():
    with pytest.raises(MemoryError, match="fewer students"):
        workshop.plan_workshop(gpu_path.fake_device("T4-16GB"), students=100_000)


def test_the_guide_s_room_table_is_the_course_s_own():
    guide = (ROOT / "docs" / "workshop.md").read_text()
    for row in workshop.room_table():
        line = (f"| {row['GPU']} | {row['students']} | {row['model']} | {row['KV tokens each']} | "
                f"{row['tokens/s each']} |")
        assert line in guide, line


def test_the_paste_lines_are_exactly_the_two_variables_endpoint_mode_reads():
    lines = workshop.paste_lines("http://10.0.0.5:8000/v1", "ws-abc").splitlines()
    assert lines == ["export COURSE_ENDPOINT=http://10.0.0.5:8000/v1", "export COURSE_API_KEY=ws-abc"]
    assert workshop.new_key().startswith("ws-") and workshop.new_key() != workshop.new_key()


def ask(app, method: str, path: str, key: str | None, body: bytes = b"{}"):
    async def go():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://room") as client:
            return await client.request(method, path, headers=headers, content=body if method == "POST" else None)
    return asyncio.run(go())


def test_the_proxy_refuses_without_the_key_serves_three_routes_and_forwards_vllm_s_key(monkeypatch):
    seen = []

    async def upstream(request):          # stands in for vLLM: records what the proxy forwarded
        seen.append((request.method, request.url.path, request.headers.get("authorization")))
        return httpx.Response(200, headers={"content-type": "application/json"},
                              stream=httpx.ByteStream(b'{"ok": true}'))

    real_client = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: real_client(transport=httpx.MockTransport(upstream), **kw))
    app = workshop.proxy_app("http://vllm", key="room-key", upstream_key="vllm-key", max_body=100)
    monkeypatch.setattr(httpx, "AsyncClient", real_client)
    for method, path in [("GET", "/v1/models"), ("POST", "/tokenize"), ("POST", "/invocations"), ("GET", "/")]:
        for key in (None, "wrong", "room-key-but-longer"):
            assert ask(app, method, path, key).status_code == 401
    assert ask(app, "POST", "/tokenize", "room-key").status_code == 404
    assert ask(app, "GET", "/metrics", "room-key").status_code == 404
    assert ask(app, "POST", "/v1/chat/completions", "room-key", b"x" * 101).status_code == 413
    reply = ask(app, "GET", "/v1/models", "room-key")
    assert reply.status_code == 200 and json.loads(reply.content) == {"ok": True}
    assert seen == [("GET", "/v1/models", "Bearer vllm-key")]          # the room's key never reaches vLLM
    with pytest.raises(ValueError, match="key"):
        workshop.proxy_app("http://vllm", key="")


def test_the_proxy_opens_one_connection_per_request_and_says_502_when_vllm_does_not_answer():
    """A pooled keep-alive connection that vLLM closes as the proxy reuses it failed one request in a CI run
    (a bare 500): the proxy keeps no idle connection, and a dead upstream gives a 502 with a message."""
    import socket
    import threading

    connections, stop = [], threading.Event()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)

    def serve():             # answers each request on its connection, then, from the third on, hangs up unanswered
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections.append(conn)
            with conn:
                conn.recv(65536)
                if len(connections) <= 2:
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
                                 b"connection: keep-alive\r\n\r\n{}")
                    conn.recv(65536)     # waits for the proxy to close its side: it keeps no idle connection

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        app = workshop.proxy_app(f"http://127.0.0.1:{listener.getsockname()[1]}", key="room-key")
        assert [ask(app, "GET", "/v1/models", "room-key").status_code for _ in range(2)] == [200, 200]
        assert len(connections) == 2
        failed = ask(app, "GET", "/v1/models", "room-key")
        assert failed.status_code == 502 and "did not answer" in failed.json()["error"]["message"]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
