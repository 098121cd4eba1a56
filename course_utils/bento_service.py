"""A DeepSeek distill as a BentoML service: vLLM's engine in the service's own process, two ways to call it.

    bentoml serve course_utils.bento_service:DeepSeekDistill      # or: make serve

- ``/v1/chat/completions``, ``/v1/models``, ``/health``: vLLM's own OpenAI-compatible routes, with R1's thinking
  returned apart by the ``deepseek_r1`` reasoning parser, so any OpenAI client works unchanged.
- ``POST /solve``: one typed endpoint. BentoML checks its inputs against the annotations below and answers a bad
  value with HTTP 400 and the allowed range, before any token is generated.
- ``/readyz``, ``/livez``: BentoML's probes (ready once the engine is up); ``/metrics``: BentoML's Prometheus
  metrics with vLLM's (``vllm:...``) appended.

What it serves comes from ``SERVICE_*`` environment variables (see ``course_utils.deploy``): by default the toy R1
on a CPU, and on a GPU the largest distill notebook 00's calculator fits.
"""

import contextlib
import os
import uuid
from typing import Annotated

import bentoml
from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel

from course_utils import vllm_parts
from course_utils.deploy import ServiceSettings, service_argv, settings_from_env
from course_utils.inference import messages_for, thinking_left_open
from course_utils.reasoning import extract_boxed, split_reasoning

SETTINGS = settings_from_env()      # read once, at import: a bad variable stops `bentoml serve` with its message
for _name, _value in vllm_parts.ENGINE_ENV.items():   # before the engine reads them (a value set by hand wins)
    os.environ.setdefault(_name, _value)
MAX_QUESTION_CHARS = 4000
DEFAULT_MAX_TOKENS = min(SETTINGS.max_model_len // 2, 4096)
TOP_P = 0.95                        # DeepSeek's recommended sampling (R1 model card): temperature 0.6, top-p 0.95


def vllm_args(settings: ServiceSettings):
    """The arguments ``vllm serve`` would get, parsed and checked by vLLM's own command-line parser."""
    return vllm_parts.serve_args(service_argv(settings))


class VLLMRoutes:
    """An ASGI app BentoML can mount before the engine exists; it hands each request to vLLM's FastAPI app once
    the start-up hook has built it (and answers 503 before that, or after shutdown)."""

    def __init__(self):
        self.app = None

    async def __call__(self, scope, receive, send):
        if self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"the vLLM engine is not running"})


def vllm_metrics_text() -> str:
    """The ``vllm:`` metric families of this process's default Prometheus registry, in the text format (the rest of
    that registry is BentoML's own, which BentoML's /metrics already shows)."""
    from prometheus_client import REGISTRY, generate_latest

    class VLLMOnly:
        def collect(self):
            return [family for family in REGISTRY.collect() if family.name.startswith("vllm:")]

    return generate_latest(VLLMOnly()).decode()


class Solution(BaseModel):
    reasoning: str                 # the thinking, between <think> and </think>
    answer: str                    # what follows it
    boxed: str | None              # the content of the last \boxed{...} in the answer
    completion_tokens: int
    finish_reason: str             # "stop", or "length" when max_tokens cut it off


vllm_routes = VLLMRoutes()


@bentoml.asgi_app(vllm_routes)     # at "/": every path BentoML does not answer itself goes to vLLM
@bentoml.service(
    name="deepseek-distill",
    # One worker: each worker would load its own copy of the model. No max_concurrency: vLLM batches every
    # request in flight, so a cap here would only queue requests the engine could have batched.
    workers=1,
    traffic={"timeout": 600, "concurrency": 64},   # `concurrency`: what BentoCloud's autoscaler aims at
    resources={"gpu": 1} if SETTINGS.on_gpu else {"cpu": str(os.cpu_count() or 1)},
    # BentoML wraps every request in an OpenTelemetry span, and each chunk of a streamed reply in one more. With the
    # toy R1 at one request in flight, that raised the HTTP side's CPU time per token from 0.53 to 0.69 ms
    # (benchmarks/bento_overhead.py, 2 CPU cores). The OpenAI routes are left out of tracing; /solve keeps it.
    # SERVICE_TRACE_OPENAI=1 restores BentoML's default.
    tracing={"excluded_urls": [] if os.environ.get("SERVICE_TRACE_OPENAI") else ["/v1/chat/completions",
                                                                                  "/v1/completions"]},
)
class DeepSeekDistill:
    def __init__(self):
        self.exit_stack = contextlib.AsyncExitStack()
        self.engine = None

    @bentoml.on_startup
    async def start_engine(self):
        init_app_state = vllm_parts.server_part("init_app_state")
        build_app = vllm_parts.server_part("build_app")
        build_async_engine_client = vllm_parts.server_part("build_async_engine_client")
        if not SETTINGS.on_gpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(SETTINGS.kv_cache_gib))
        args = vllm_args(SETTINGS)
        self.engine = await self.exit_stack.enter_async_context(build_async_engine_client(args))
        tasks = await self.engine.get_supported_tasks()
        app = build_app(args, tasks, self.engine.model_config)
        await init_app_state(self.engine, app.state, args, tasks)
        await self.exit_stack.enter_async_context(app.router.lifespan_context(app))
        self.tokenizer = self.engine.get_tokenizer()
        vllm_routes.app = app

    @bentoml.on_shutdown
    async def stop_engine(self):
        vllm_routes.app = None
        await self.exit_stack.aclose()       # shuts the engine (and its engine-core process) down

    def __metrics__(self, bentoml_metrics: str) -> str:
        """BentoML's /metrics, followed by vLLM's."""
        return bentoml_metrics + vllm_metrics_text()

    @bentoml.api
    async def solve(
        self,
        question: Annotated[str, MinLen(1), MaxLen(MAX_QUESTION_CHARS)],
        max_tokens: Annotated[int, Ge(1), Le(SETTINGS.max_model_len)] = DEFAULT_MAX_TOKENS,
        temperature: Annotated[float, Ge(0.0), Le(2.0)] = 0.6,
    ) -> Solution:
        """Answer one question: the model's thinking, its answer and the boxed result, apart."""
        from vllm import SamplingParams

        prompt = self.tokenizer.apply_chat_template(messages_for(question), tokenize=False,
                                                    add_generation_prompt=True)
        prompt_tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if prompt_tokens + max_tokens > SETTINGS.max_model_len:
            raise bentoml.exceptions.InvalidArgument(
                f"the prompt has {prompt_tokens} tokens, so max_tokens can be at most "
                f"{SETTINGS.max_model_len - prompt_tokens} (max_model_len is {SETTINGS.max_model_len})")
        sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=TOP_P)
        async for result in self.engine.generate(prompt, sampling, request_id=f"solve-{uuid.uuid4().hex}"):
            output = result.outputs[0]      # each result holds the whole completion so far; keep the last
        reasoning, answer = split_reasoning(output.text, thinking_left_open(prompt))
        return Solution(reasoning=reasoning, answer=answer, boxed=extract_boxed(answer),
                        completion_tokens=len(output.token_ids), finish_reason=output.finish_reason or "")
