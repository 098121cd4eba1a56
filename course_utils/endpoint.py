"""Any OpenAI-compatible endpoint as the notebooks' model: DeepSeek's API, a provider serving R1 or a distill, or a
workshop's GPU server (``make serve-workshop``). One switch, read from the environment:

    COURSE_ENDPOINT=https://api.deepseek.com/v1      # a base URL ending in /v1
    COURSE_API_KEY=...                               # or the provider's usual variable (DEEPSEEK_API_KEY), or asked
    COURSE_ENDPOINT_MODEL=deepseek-reasoner          # default: the first model /v1/models lists
    COURSE_MAX_USD=0.25                              # the most a notebook may spend (estimated before it sends)

Everything here is careful with the key: it lives in a ``Secret`` whose text is ``***``, error messages are
scrubbed of it, and errors are raised without the client library's exception attached (whose message can quote the
request). What an endpoint can do is asked, never assumed (``probe``); what a run will cost is estimated before
anything is sent (``Budget``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
import urllib.parse
from dataclasses import dataclass, field

from course_utils import pricing

SWITCH = "COURSE_ENDPOINT"
KEY = "COURSE_API_KEY"
MODEL = "COURSE_ENDPOINT_MODEL"
MAX_USD = "COURSE_MAX_USD"
PRICE = "COURSE_PRICE"                 # "input,output" US$ per million tokens, for a provider the catalog lacks
DEFAULT_MAX_USD = 0.25
# A provider's usual key variable, by host: used when COURSE_API_KEY is not set.
PROVIDER_KEYS = {"api.deepseek.com": "DEEPSEEK_API_KEY", "openrouter.ai": "OPENROUTER_API_KEY",
                 "api.together.xyz": "TOGETHER_API_KEY", "api.fireworks.ai": "FIREWORKS_API_KEY"}
RETRIES_ON_429 = 3                     # a rate-limited request is retried this many times at most
LONGEST_WAIT_S = 30.0                  # ... waiting what the server's retry-after asks, up to this long
RETRIES_ON_SERVER_ERROR = 2            # a 500, 502 or 503 is retried after a brief wait (DeepSeek's error codes
SERVER_ERROR_WAITS_S = (1.0, 3.0)      # page advises exactly that: api-docs.deepseek.com/quick_start/error_codes)


class Secret:
    """A key that never shows itself: ``str()`` and ``repr()`` give ``***``; ``reveal()`` gives the key."""

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class EndpointError(RuntimeError):
    """What went wrong with an endpoint, in plain words, with the key scrubbed from the message."""


def scrub(text: str, key: Secret | None) -> str:
    """``text`` without the key, and without the masked tail some servers quote back (``sk-****abcd``)."""
    value = key.reveal() if key else ""
    if len(value) >= 4:
        text = text.replace(value, "***")
        text = re.sub(r"[\w-]*\*{3,}" + re.escape(value[-4:]), "***", text)
    return text


def is_local(base_url: str) -> bool:
    """Is the endpoint on this machine or a private network (a workshop server): no per-token price there."""
    host = urllib.parse.urlparse(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


@dataclass(frozen=True)
class Endpoint:
    base_url: str                      # ends in /v1
    model: str
    key: Secret = field(repr=False)
    max_usd: float = DEFAULT_MAX_USD
    price: tuple[float, float] | None = None   # US$ per million input, output tokens; None: self-hosted, free
    price_source: str = ""

    @property
    def host(self) -> str:
        return urllib.parse.urlparse(self.base_url).netloc

    @property
    def root(self) -> str:
        """The server's root, where a vLLM server keeps /metrics and /health."""
        return self.base_url.removesuffix("/").removesuffix("/v1")

    def client(self, timeout: float = 300.0):
        """The official openai client for this endpoint. Its own retries are off: ``call`` retries a rate-limited
        request as the server asks, and says what failed."""
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.key.reveal() or "none", max_retries=0, timeout=timeout)

    def describe(self) -> str:
        price = ("self-hosted: no per-token price" if self.price is None
                 else f"${self.price[0]:.2f} / ${self.price[1]:.2f} per million input / output tokens "
                      f"({self.price_source})")
        key = "a key" if self.key else "no key"
        return (f"endpoint {self.host}, model {self.model} ({key}; {price}); this notebook stops before it would "
                f"spend more than ${self.max_usd:.2f} ({MAX_USD})")


def _check_url(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise EndpointError(f"{SWITCH}={url!r} is not a URL: give the base URL of an OpenAI-compatible API, e.g. "
                            "https://api.deepseek.com/v1 or http://127.0.0.1:8000/v1")
    if not parsed.path.rstrip("/").endswith("/v1"):
        raise EndpointError(f"{SWITCH}={url!r} should end in /v1 (the OpenAI API's base), e.g. "
                            f"{parsed.scheme}://{parsed.netloc}/v1")
    return url.rstrip("/")


def _key_from(environ, host: str, ask) -> Secret:
    """COURSE_API_KEY, else the provider's usual variable, else asked (a notebook asks with getpass), else none."""
    for name in (KEY, PROVIDER_KEYS.get(host.split(":")[0], "")):
        if name and environ.get(name):
            return Secret(environ[name].strip())
    if ask is not None:
        try:
            return Secret((ask(f"API key for {host} (not shown, not saved): ") or "").strip())
        except Exception:   # no terminal to ask on (a headless run): go on without a key
            pass
    return Secret("")


def _price_for(environ, base_url: str, model: str) -> tuple[tuple[float, float] | None, str]:
    if text := environ.get(PRICE):
        try:
            prompt, output = (float(part) for part in text.split(","))
        except ValueError:
            raise EndpointError(f"{PRICE}={text!r}: give two numbers, US$ per million input and output tokens, "
                                "e.g. 0.55,2.19") from None
        return (prompt, output), PRICE
    if is_local(base_url):
        return None, "self-hosted"
    listed = pricing.API_PRICES.get(model)
    reasoner = listed or pricing.API_PRICES["deepseek-reasoner"]
    source = (f"DeepSeek's list price of {reasoner.as_of}" if listed else
              f"unknown here: estimated at DeepSeek's deepseek-reasoner list price of {reasoner.as_of}; set {PRICE}")
    return (reasoner.input_cache_miss, reasoner.output), source


def from_env(environ=None, ask=None, list_models=None) -> Endpoint | None:
    """The endpoint ``COURSE_ENDPOINT`` names, checked, or None when it is not set. ``ask`` asks for a missing key
    (``getpass.getpass`` in a notebook); ``list_models`` (default: ``GET /v1/models``) finds the model when
    ``COURSE_ENDPOINT_MODEL`` is not set."""
    environ = os.environ if environ is None else environ
    if not environ.get(SWITCH):
        return None
    base_url = _check_url(environ[SWITCH].strip())
    host = urllib.parse.urlparse(base_url).netloc
    key = _key_from(environ, host, ask)
    try:
        max_usd = float(environ.get(MAX_USD, DEFAULT_MAX_USD))
    except ValueError:
        raise EndpointError(f"{MAX_USD}={environ[MAX_USD]!r}: give a number of US dollars, e.g. 0.25") from None
    model = environ.get(MODEL, "").strip()
    if not model:
        found = (list_models or _list_models)(base_url, key)
        if not found:
            raise EndpointError(f"{host} lists no models at /v1/models: set {MODEL} to the model to use")
        model = found[0]
    price, source = _price_for(environ, base_url, model)
    return Endpoint(base_url, model, key, max_usd, price, source)


def _list_models(base_url: str, key: Secret) -> list[str]:
    probe = Endpoint(base_url, "", key)
    return [m.id for m in call(probe, lambda client: client.models.list()).data]


# ---------------------------------------------------------------- calling it, with plain errors


def call(endpoint: Endpoint, request, sleep=time.sleep):
    """``request(client)`` against the endpoint. A 429 is retried after the server's ``retry-after`` (at most
    ``RETRIES_ON_429`` times, waiting at most ``LONGEST_WAIT_S`` each), a 500/502/503 after a brief wait (at most
    ``RETRIES_ON_SERVER_ERROR`` times); every other failure becomes an ``EndpointError`` that says what is wrong
    and what to do, in seconds, with the key scrubbed."""
    import openai

    client = endpoint.client()
    rate_limited = server_errors = 0
    while True:
        try:
            return request(client)
        except openai.RateLimitError as error:
            if rate_limited == RETRIES_ON_429:
                raise _plain(endpoint, error) from None
            rate_limited += 1
            sleep(_retry_after(error))
        except openai.InternalServerError as error:
            if error.status_code not in (500, 502, 503) or server_errors == RETRIES_ON_SERVER_ERROR:
                raise _plain(endpoint, error) from None
            sleep(SERVER_ERROR_WAITS_S[server_errors])
            server_errors += 1
        except openai.APIError as error:
            raise _plain(endpoint, error) from None


def _retry_after(error) -> float:
    headers = getattr(getattr(error, "response", None), "headers", {}) or {}
    try:
        wait = float(headers.get("retry-after", 1.0))
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.0), LONGEST_WAIT_S)


def _plain(endpoint: Endpoint, error) -> EndpointError:
    import openai

    said = str(getattr(error, "message", error))
    body = getattr(error, "body", None)
    if isinstance(body, str) and body and body not in said:      # a plain-text body: the openai client drops it
        said = f"{said} - {body[:200]}"
    host, said = endpoint.host, scrub(said, endpoint.key)
    status = getattr(error, "status_code", None)
    if isinstance(error, openai.APIConnectionError):
        text = (f"cannot reach {host} ({type(error).__name__}): check {SWITCH}, that the server runs and that this "
                "machine can reach it (a workshop server: the instructor's HOST and PORT)")
    elif status == 401:
        text = (f"{host} refused the key (401): check {KEY} (or the provider's key variable); the key is not shown "
                "here")
    elif status == 402:
        text = f"{host} says the account has no balance left (402): top it up, or use another endpoint"
    elif status == 404:
        text = (f"{host} does not know the model {endpoint.model!r} or the path (404): set {MODEL} to one of the "
                "models its /v1/models lists")
    elif status == 429:
        text = (f"{host} is rate-limiting these requests (429), still after {RETRIES_ON_429} waits: try again later, "
                "or send fewer at a time")
    elif status in (500, 502, 503):
        text = (f"{host} failed on its side ({status}), {RETRIES_ON_SERVER_ERROR + 1} times in a row: {said}. Try "
                "again in a minute; a server you started: read the end of its log")
    else:
        text = f"{host} answered {status or type(error).__name__}: {said}"
    return EndpointError(text)


# ---------------------------------------------------------------- what a run costs, before it is sent


@dataclass
class Budget:
    """What this notebook has sent to the endpoint and what it cost (from the servers' ``usage`` and the price),
    and the check before each batch that it stays within ``endpoint.max_usd``."""
    endpoint: Endpoint
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """US dollars at the endpoint's price (0 for a self-hosted one)."""
        if self.endpoint.price is None:
            return 0.0
        prompt_price, output_price = self.endpoint.price
        return (prompt_tokens * prompt_price + completion_tokens * output_price) / 1e6

    @property
    def spent_usd(self) -> float:
        return self.cost(self.prompt_tokens, self.completion_tokens)

    def approve(self, what: str, requests: int, prompt_tokens: int, max_tokens: int) -> str:
        """Say what is about to be sent and its worst case (every reply running to ``max_tokens``); refuse, before
        anything is sent, a batch that could take the total past ``max_usd``."""
        worst = self.cost(requests * prompt_tokens, requests * max_tokens)
        line = (f"{what}: {requests} requests to {self.endpoint.host}, up to {requests * max_tokens:,} completion "
                f"tokens: at most ${worst:.3f} (spent so far ${self.spent_usd:.3f} of ${self.endpoint.max_usd:.2f})")
        if self.spent_usd + worst > self.endpoint.max_usd:
            raise EndpointError(f"{line}. That could pass {MAX_USD}={self.endpoint.max_usd}: nothing was sent. Raise "
                                f"{MAX_USD} if you accept the cost, or run fewer problems (the quick mode)")
        return line

    def add_records(self, records: list[dict]) -> None:
        """A load test's requests (``speed.load_test``'s records, each with its usage)."""
        for record in records:
            self.requests += 1
            self.prompt_tokens += record.get("prompt_tokens", 0)
            self.completion_tokens += record.get("completion_tokens", 0)

    def record(self, usage) -> None:
        self.requests += 1
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens or 0
            self.completion_tokens += usage.completion_tokens or 0


def complete_chat(endpoint: Endpoint, budget: Budget, questions: list[str], *, system: str | None = None,
                  n: int = 1, max_tokens: int = 1024, logprobs: bool = False, concurrency: int = 8,
                  what: str = "requests", prompt_tokens: int = 100, **sampling) -> list[list]:
    """``n`` replies to each question from the endpoint, one request per reply (not every API takes ``n``), at most
    ``concurrency`` in flight; approved by ``budget`` first. Each ``inference.Reply`` has the thinking and the
    answer apart, and, with ``logprobs``, ``token_probs`` [(token, probability)] of what was written."""
    from concurrent.futures import ThreadPoolExecutor

    from course_utils.inference import request_options, sampling_options

    options = request_options(sampling_options(None, max_tokens=max_tokens, **sampling))
    print(budget.approve(what, len(questions) * n, prompt_tokens, max_tokens))
    jobs = [(i, question, sample) for i, question in enumerate(questions) for sample in range(n)]
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(lambda job: _one_reply(endpoint, budget, job[1], system,
                                                       _sample_options(options, job[2]), logprobs), jobs))
    grouped = [[] for _ in questions]
    for (i, _, _), reply in zip(jobs, replies, strict=True):
        grouped[i].append(reply)
    return grouped


def _sample_options(options: dict, sample: int) -> dict:
    """The ``sample``-th reply's options: a server that honours ``seed`` would return the same text for every
    request with one seed, so each sample gets its own (seed, seed + 1, ...): distinct and still reproducible."""
    if "seed" not in options:
        return options
    return {**options, "seed": options["seed"] + sample}


def _one_reply(endpoint: Endpoint, budget: Budget, question: str, system, options: dict, logprobs: bool):
    from course_utils.inference import Reply, message_parts, messages_for, reasoning_tokens

    extra = {"logprobs": True, "top_logprobs": 1} if logprobs else {}
    started = time.time()
    response = call(endpoint, lambda client: client.chat.completions.create(
        model=endpoint.model, messages=messages_for(question, system), **options, **extra))
    budget.record(response.usage)
    choice = response.choices[0]
    reasoning, content, _ = message_parts(choice.message)
    usage = response.usage
    reply = Reply(reasoning, content, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
                  choice.finish_reason or "", time.time() - started, reasoning_tokens=reasoning_tokens(usage))
    if logprobs and choice.logprobs and choice.logprobs.content:
        import math

        reply.token_probs = [(item.token, math.exp(item.logprob)) for item in choice.logprobs.content]
    return reply


# ---------------------------------------------------------------- what the endpoint can do, asked


@dataclass
class Capabilities:
    """What an endpoint showed it does, each found by a tiny request (``probe``)."""
    reasoning_field: str = "none"        # reasoning_content, reasoning, <think> in content, or none
    logprobs: bool = False
    temperature: str = "unclear"         # honoured, ignored, or unclear
    seed: bool = False
    max_tokens_counts_thinking: bool | None = None
    metrics: bool = False
    first_token_s: float = float("nan")
    tokens_per_s: float = float("nan")
    notes: list[str] = field(default_factory=list)

    def rows(self) -> dict[str, str]:
        """The capability table's column for this endpoint."""
        semantics = {True: "the thinking and the answer", False: "the answer only",
                     None: "not seen"}[self.max_tokens_counts_thinking]
        return {"reasoning text": self.reasoning_field,
                "per-token log-probabilities": "yes" if self.logprobs else "refused or absent",
                "temperature": self.temperature, "seed": "honoured" if self.seed else "not honoured",
                "max_tokens limits": semantics, "/metrics": "yes" if self.metrics else "no",
                "time to first token (s)": f"{self.first_token_s:.2f}",
                "tokens/s, one stream": f"{self.tokens_per_s:.1f}"}


PROBE_QUESTION = "What is 2 + 3? Please reason step by step, and put your final answer within \\boxed{}."


def probe(endpoint: Endpoint, budget: Budget, question: str = PROBE_QUESTION, max_tokens: int = 256,
          metrics_url: str | None = None) -> Capabilities:
    """Ask the endpoint, with tiny requests, what it does: which field holds the thinking, whether it gives
    log-probabilities, honours the temperature and a seed, what ``max_tokens`` limits, whether it has ``/metrics``;
    and, from one streamed reply, the time to its first token and its tokens per second. About 12 short requests,
    approved by ``budget`` first."""
    from course_utils.inference import message_parts, messages_for

    print(budget.approve("capability probes", 12, 60, max_tokens))
    found, messages = Capabilities(), messages_for(question)

    def ask(**options):
        response = call(endpoint, lambda client: client.chat.completions.create(
            model=endpoint.model, messages=messages, **options))
        budget.record(response.usage)
        return response

    found.first_token_s, found.tokens_per_s, found.reasoning_field = _timed_stream(endpoint, budget, messages,
                                                                                   max_tokens)
    try:
        reply = ask(max_tokens=1, logprobs=True, top_logprobs=1)
        found.logprobs = bool(reply.choices[0].logprobs and reply.choices[0].logprobs.content)
    except EndpointError as error:
        found.notes.append(f"log-probabilities: {error}")
    texts = {t: [message_text(ask(max_tokens=24, temperature=t).choices[0].message) for _ in range(3)]
             for t in (0.0, 2.0)}
    if len(set(texts[0.0])) > 1:
        found.temperature = "ignored (temperature 0 still varies)"
    elif len(set(texts[2.0])) > 1:
        found.temperature = "honoured"
    seeded = [message_text(ask(max_tokens=24, temperature=1.0, seed=7).choices[0].message) for _ in range(2)]
    found.seed = len(set(seeded)) == 1 and found.temperature == "honoured"
    short = ask(max_tokens=8).choices[0]
    reasoning, content, _ = message_parts(short.message)
    found.max_tokens_counts_thinking = (short.finish_reason == "length" and not content) if reasoning else None
    found.metrics = _has_metrics(metrics_url or endpoint.root + "/metrics", endpoint.key)
    return found


def message_text(message) -> str:
    """A chat message's whole text, the thinking included, whichever field holds it."""
    from course_utils.inference import message_parts

    reasoning, content, _ = message_parts(message)
    return reasoning + "\n" + content


def _timed_stream(endpoint: Endpoint, budget: Budget, messages, max_tokens: int) -> tuple[float, float, str]:
    """(seconds to the first token, tokens per second after it, where the thinking came) of one streamed reply."""
    def stream(client):
        return client.chat.completions.create(model=endpoint.model, messages=messages, max_tokens=max_tokens,
                                              stream=True, stream_options={"include_usage": True})

    started, first, usage, field_seen = time.perf_counter(), None, None, "none"
    for chunk in call(endpoint, stream):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta, text = choice.delta, choice.delta.content or ""
            named = [name for name in ("reasoning_content", "reasoning") if getattr(delta, name, None)]
            if named:
                field_seen = named[0]
            elif field_seen == "none" and ("</think>" in text or text.lstrip().startswith("<think>")):
                field_seen = "<think> in content"
            if first is None and (text or named):
                first = time.perf_counter()
    ended = time.perf_counter()
    budget.record(usage)
    tokens = usage.completion_tokens if usage else 0
    first = first or ended
    return first - started, (tokens - 1) / (ended - first) if tokens > 1 and ended > first else float("nan"), \
        field_seen


def _has_metrics(url: str, key: Secret) -> bool:
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key.reveal()}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == 200 and b"vllm:" in response.read(200_000)
    except OSError:
        return False


class SafeClient:
    """The openai client's ``chat.completions.create`` and ``models.list``, each sent through ``call``: the same code
    as against any OpenAI client, with plain errors and the key kept out of them."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.chat = _Namespace(completions=_Namespace(create=self._create))
        self.models = _Namespace(list=self._list)

    def _create(self, **options):
        return call(self.endpoint, lambda client: client.chat.completions.create(**options))

    def _list(self):
        return call(self.endpoint, lambda client: client.models.list())


class _Namespace:
    def __init__(self, **members):
        self.__dict__.update(members)
