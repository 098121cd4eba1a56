"""One GPU server for a whole workshop: the best distill this machine's GPU serves (on a CPU the toy R1, for a
rehearsal), behind an API key, exposing only what the students' notebooks need.

    make serve-workshop                      # loopback only: a rehearsal on this machine
    HOST=0.0.0.0 PORT=8000 make serve-workshop   # reachable from the room's network

Why a proxy in front of vLLM, not vLLM's own ``--api-key``: in the pinned vLLM 0.32 the key guards only paths under
/v1, /v2, /inference and /cohere (``vllm/entrypoints/serve/middleware/authenticate.py``, ``GUARDED_PREFIX``), so
/invocations (inference), /tokenize, /pause, /abort_requests and others stay open, and vLLM's security guide says not
to rely on the key alone. Here vLLM listens on loopback only, with a key of its own; the proxy is the only door:
every route needs the workshop key (compared in constant time), and only three routes exist behind it (``ROUTES``).
The course's BentoML service would have the same problem (it mounts vLLM's whole app), and a proxy of 100 lines is
easier to read than an allowlist inside it.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sys
from dataclasses import dataclass

from course_utils import catalog, gpu_path, hardware
from course_utils.catalog import GIB
from course_utils.processes import BackgroundServer, claim_port

ROUTES = {("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/health")}
KEY_VARIABLE = "WORKSHOP_API_KEY"
UPSTREAM_KEY_VARIABLE = "WORKSHOP_UPSTREAM_KEY"     # the proxy's key to vLLM, passed by environment, never argv
MAX_BODY_BYTES = 1_000_000
STUDENTS = 30
# The KV cache each student gets when the whole class is busy at once: room for a reasoning trace of this many
# tokens (R1's traces run to thousands). A larger model that leaves less is passed over for a smaller one.
TOKENS_PER_STUDENT = 2048


def new_key() -> str:
    return "ws-" + secrets.token_urlsafe(24)


# ---------------------------------------------------------------- what to serve, for how many


@dataclass(frozen=True)
class WorkshopPlan:
    model: str
    max_model_len: int
    dtype: str | None
    students: int
    kv_cache_tokens: int
    engine_flags: tuple[str, ...]

    @property
    def kv_tokens_per_student(self) -> int:
        return self.kv_cache_tokens // self.students

    def describe(self) -> str:
        name = self.model.split("/")[-1]
        return (f"serving {name} (max_model_len {self.max_model_len:,}) to {self.students} students: "
                f"{self.kv_cache_tokens:,} KV-cache tokens, about {self.kv_tokens_per_student:,} per student "
                f"when all are busy at once (vLLM queues the rest); at most {self.students} requests in flight")


def plan_workshop(device: hardware.Device, students: int = STUDENTS) -> WorkshopPlan:
    """The largest distill whose engine starts on this GPU (vLLM's own memory rule, ``gpu_path.engine_fit``) with the
    longest context of 16,384, 8,192 or 4,096 tokens and a KV cache that leaves every student ``TOKENS_PER_STUDENT``
    when all are busy; at most ``students`` requests in flight. On a CPU the toy R1 with its 1 GiB KV cache."""
    from course_utils import toy_reasoner

    if not isinstance(students, int) or students < 1:
        raise ValueError(f"students must be a positive whole number, got {students!r}")
    seqs = ("--max-num-seqs", str(students))
    if device.kind != "cuda":
        per_token = catalog.config_kv_bytes_per_token(_toy_config(), "float32")
        return WorkshopPlan(str(toy_reasoner.checkpoint_path()), 256, "float32", students,
                            int(GIB // per_token) // 128 * 128, seqs)
    by_size = sorted(catalog.DISTILLS, key=lambda name: -catalog.count_parameters(name)[0])
    fits = (gpu_path.engine_fit(model, device, context=context) for model in by_size for context in (16384, 8192, 4096))
    fit = next((f for f in fits if f and f.kv_cache_tokens >= students * TOKENS_PER_STUDENT), None)
    if fit is None:
        raise MemoryError(f"no R1 distill's engine starts in the {device.free_gib:.1f} GiB free on this "
                          f"{device.name} with {TOKENS_PER_STUDENT:,} KV tokens for each of {students} students: "
                          "free the GPU (nvidia-smi lists what holds it), or plan for fewer students")
    flags = ("--gpu-memory-utilization", str(fit.share), *seqs)
    if backend := gpu_path.attention_backend(device.capability):
        flags += ("--attention-backend", backend)
    return WorkshopPlan(fit.model, fit.max_model_len, None, students, fit.kv_cache_tokens, flags)


def _toy_config() -> dict:
    import json

    from course_utils import toy_reasoner

    return json.loads((toy_reasoner.checkpoint_path() / "config.json").read_text())


def room_table(students=(10, 30, 60), gpus=("T4-16GB", "L4-24GB", "A100-80GB", "H100-80GB"),
               context: int = 4096) -> list[dict]:
    """For the workshop guide: per GPU class and class size, the distill ``plan_workshop`` serves, the KV cache each
    student gets when all are busy, and the tokens per second each sees (a bandwidth estimate: one decoding step
    reads the weights once and every busy student's KV cache, at ``gpu_path.EFFICIENCY`` of the datasheet
    bandwidth, each student ``context``/2 tokens into a reply). Estimates, not measurements."""
    rows = []
    for name in gpus:
        for count in students:
            try:
                plan = plan_workshop(gpu_path.fake_device(name), count)
            except MemoryError:
                rows.append({"GPU": name, "students": count, "model": "none fits", "KV tokens each": "-",
                             "tokens/s each": "-"})
                continue
            bandwidth = gpu_path.DATASHEET[name][0] * 1e9 * gpu_path.EFFICIENCY
            per_token = catalog.kv_cache_bytes_per_token(plan.model, "bfloat16")
            weights = catalog.weight_bytes(plan.model, "bfloat16" if hardware.gpu(name).bf16 else "float16")
            busy = min(count, plan.kv_cache_tokens // (context // 2))   # the rest wait for room in the cache
            step = (weights + busy * context / 2 * per_token) / bandwidth
            rows.append({"GPU": name, "students": count, "model": plan.model.split("/")[1],
                         "KV tokens each": f"{plan.kv_tokens_per_student:,}",
                         "tokens/s each": round(busy / step / count, 1)})
    return rows


def scale_out_commands(model: str, gpus: int = 2, first_port: int = 8001) -> dict[str, list[str]]:
    """Past one GPU, as command lines (the contract tests parse each ``vllm serve`` with the pinned vLLM's parser):
    one server per GPU, each on loopback, behind a load balancer; or vLLM's data parallelism in one server."""
    flags = "--max-model-len 8192 --reasoning-parser deepseek_r1 --host 127.0.0.1"
    one_per_gpu = [f"CUDA_VISIBLE_DEVICES={i} vllm serve {model} {flags} --port {first_port + i}"
                   for i in range(gpus)]
    return {"one server per GPU, behind a load balancer (nginx, HAProxy) that holds the key": one_per_gpu,
            "vLLM's data parallelism: one server, one engine per GPU": [
                f"vllm serve {model} {flags} --port {first_port} --data-parallel-size {gpus}"]}


# ---------------------------------------------------------------- the proxy


def proxy_app(upstream: str, key: str, upstream_key: str = "", max_body: int = MAX_BODY_BYTES):
    """An ASGI app in front of vLLM at ``upstream``: every request needs ``Authorization: Bearer <key>`` (401
    otherwise, whatever the path), only ``ROUTES`` exist (404 for the rest), bodies above ``max_body`` bytes are
    refused (413); what passes is forwarded with vLLM's own key, streamed back as it arrives; when vLLM does not
    answer, a 502 says so in JSON (a client shows its message)."""
    import httpx
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    if not key:
        raise ValueError("the workshop needs a key: every route answers only with it")
    # A fresh connection per request: a pooled one that vLLM's server closes after its keep-alive timeout can be
    # reused in the same instant, and that request fails (httpx's RemoteProtocolError). On loopback a connect costs
    # well under a millisecond.
    client = httpx.AsyncClient(base_url=upstream, timeout=httpx.Timeout(None, connect=10.0),
                               limits=httpx.Limits(max_keepalive_connections=0))
    expected = f"Bearer {key}".encode()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "code": status}}, status_code=status)

    async def handle(request):
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return error(401, "a valid workshop key is needed: Authorization: Bearer <key> (COURSE_API_KEY)")
        if (request.method, request.url.path) not in ROUTES:
            return error(404, f"{request.method} {request.url.path} is not served here")
        body = await request.body()
        if len(body) > max_body:
            return error(413, f"the request body is over {max_body:,} bytes")
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        if upstream_key:
            headers["authorization"] = f"Bearer {upstream_key}"
        forwarded = client.build_request(request.method, request.url.path, content=body, headers=headers)
        try:
            reply = await client.send(forwarded, stream=True)
        except httpx.TransportError as failure:
            return error(502, f"the model server behind this room did not answer ({type(failure).__name__}): "
                              "try again; if it keeps failing, tell the instructor")
        return StreamingResponse(reply.aiter_raw(), status_code=reply.status_code,
                                 media_type=reply.headers.get("content-type"), background=BackgroundTask(reply.aclose))

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", handle, methods=methods)])


class ProxyServer(BackgroundServer):
    """The proxy as a subprocess (``python -m course_utils.workshop proxy``): the keys travel in its environment,
    never on its command line, where ``ps`` would show them."""

    what = "workshop proxy"

    def __init__(self, upstream: str, key: str, upstream_key: str, host: str = "127.0.0.1",
                 port: int | None = None, startup_timeout: float = 30.0):
        self.host, self.port, self.startup_timeout = host, claim_port(port), startup_timeout
        self.health_headers = {"Authorization": f"Bearer {key}"}
        self.env = {**os.environ, KEY_VARIABLE: key, UPSTREAM_KEY_VARIABLE: upstream_key}
        self.args = [sys.executable, "-m", "course_utils.workshop", "proxy", "--upstream", upstream,
                     "--host", host, "--port", str(self.port)]
        self._prepare("workshop-proxy-")

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '::') else self.host}:{self.port}"


class WorkshopServer:
    """vLLM on loopback with a key of its own, and the proxy in front of it on ``host``:``port``; both stop on
    leaving a ``with`` block, on an error, and with the Python process."""

    def __init__(self, plan: WorkshopPlan, key: str | None = None, host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout: float = 1800.0):
        from course_utils.serving import VLLMServer

        self.plan, self.key = plan, key or os.environ.get(KEY_VARIABLE) or new_key()
        self.upstream_key = new_key()
        self.vllm = VLLMServer(plan.model, max_model_len=plan.max_model_len, dtype=plan.dtype,
                               startup_timeout=startup_timeout, extra_args=list(plan.engine_flags))
        self.vllm.env["VLLM_API_KEY"] = self.upstream_key   # vLLM's own key, by environment: not on `ps`
        self.proxy = ProxyServer(self.vllm.url, self.key, self.upstream_key, host, port)

    @property
    def base_url(self) -> str:
        return f"{self.proxy.url}/v1"

    def start(self):
        self.vllm.start()
        try:
            self.proxy.start()
        except BaseException:
            self.vllm.stop()
            raise
        return self

    def stop(self) -> None:
        self.proxy.stop()
        self.vllm.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def paste_lines(base_url: str, key: str) -> str:
    """The two lines each student pastes (printed once, on the instructor's terminal)."""
    return f"export COURSE_ENDPOINT={base_url}\nexport COURSE_API_KEY={key}"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="The course's workshop server, or its proxy alone.")
    parser.add_argument("command", choices=["serve", "proxy"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--students", type=int, default=STUDENTS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "proxy":
        import uvicorn

        app = proxy_app(args.upstream, os.environ.get(KEY_VARIABLE, ""), os.environ.get(UPSTREAM_KEY_VARIABLE, ""))
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
    try:
        plan = plan_workshop(hardware.detect_device(), args.students)
        server = WorkshopServer(plan, host=args.host, port=args.port)
    except (ValueError, OSError, MemoryError, ConnectionError) as error:
        print(f"Cannot start the workshop server: {error}", file=sys.stderr)
        return 2
    print(plan.describe(), flush=True)
    with server:
        where = "this machine only (loopback)" if args.host in ("127.0.0.1", "localhost") else f"{args.host}"
        students_url = server.base_url.replace("127.0.0.1", _address(args.host))
        print(f"\nThe workshop server answers on {where}, port {args.port}. Students paste these two lines "
              f"(then `make lab`):\n\n{paste_lines(students_url, server.key)}\n\nThe key is shown here only. "
              "Ctrl-C stops the server.", flush=True)
        try:
            import time

            while server.vllm.process and server.vllm.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


def _address(host: str) -> str:
    """The address students use: the host named, or this machine's address on the network for 0.0.0.0."""
    if host not in ("0.0.0.0", "::"):
        return host
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))   # no packet is sent: it only picks the outgoing interface
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()


if __name__ == "__main__":
    raise SystemExit(main())
