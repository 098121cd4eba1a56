"""Endpoint mode without a server: configuration, the key kept out of sight, plain errors, the spending cap, the
reply shapes of every server, and the run plans it gets."""

import httpx
import openai
import pytest

from course_utils import endpoint, hardware, inference, run_plans

KEY = "sk-course-test-KEY-0123456789abcdef"


def environ(**values):
    return {"COURSE_ENDPOINT": "https://api.deepseek.com/v1", **values}


def test_no_switch_no_endpoint_and_a_bad_url_says_what_to_give():
    assert endpoint.from_env({}) is None
    for url in ("api.deepseek.com/v1", "https://api.deepseek.com", "ftp://host/v1"):
        with pytest.raises(endpoint.EndpointError, match="COURSE_ENDPOINT"):
            endpoint.from_env(environ(COURSE_ENDPOINT=url, COURSE_ENDPOINT_MODEL="m"))


def test_the_key_comes_from_the_course_variable_the_provider_s_or_a_prompt_and_never_shows():
    found = endpoint.from_env(environ(DEEPSEEK_API_KEY=KEY, COURSE_ENDPOINT_MODEL="deepseek-reasoner"))
    assert found.key.reveal() == KEY and KEY not in repr(found) and KEY not in str(found.key)
    assert KEY not in found.describe() and "a key" in found.describe()
    asked = endpoint.from_env(environ(COURSE_ENDPOINT_MODEL="m"), ask=lambda prompt: KEY)
    assert asked.key.reveal() == KEY

    def no_terminal(prompt):
        raise EOFError("no stdin in a headless kernel")

    assert not endpoint.from_env(environ(COURSE_ENDPOINT_MODEL="m"), ask=no_terminal).key


def test_the_model_is_the_first_listed_unless_named():
    found = endpoint.from_env(environ(COURSE_API_KEY=KEY), list_models=lambda url, key: ["deepseek-reasoner", "x"])
    assert found.model == "deepseek-reasoner"
    with pytest.raises(endpoint.EndpointError, match="COURSE_ENDPOINT_MODEL"):
        endpoint.from_env(environ(COURSE_API_KEY=KEY), list_models=lambda url, key: [])


def test_prices_self_hosted_listed_given_or_estimated():
    local = endpoint.from_env({"COURSE_ENDPOINT": "http://127.0.0.1:8000/v1", "COURSE_ENDPOINT_MODEL": "toy_r1"})
    assert local.price is None and "self-hosted" in local.describe()
    assert endpoint.from_env({"COURSE_ENDPOINT": "http://192.168.1.20:8000/v1",
                              "COURSE_ENDPOINT_MODEL": "m"}).price is None
    listed = endpoint.from_env(environ(COURSE_ENDPOINT_MODEL="deepseek-reasoner"))
    assert listed.price == (0.55, 2.19) and "list price" in listed.price_source
    given = endpoint.from_env(environ(COURSE_ENDPOINT_MODEL="r1", COURSE_PRICE="3,7"))
    assert given.price == (3.0, 7.0)
    unknown = endpoint.from_env(environ(COURSE_ENDPOINT="https://api.example.com/v1", COURSE_ENDPOINT_MODEL="r1"))
    assert "COURSE_PRICE" in unknown.price_source
    for name, value in (("COURSE_PRICE", "cheap"), ("COURSE_MAX_USD", "a lot")):
        with pytest.raises(endpoint.EndpointError, match=name):
            endpoint.from_env(environ(COURSE_ENDPOINT_MODEL="m", **{name: value}))


def test_the_budget_refuses_before_sending_what_could_pass_the_cap():
    paid = endpoint.Endpoint("https://api.deepseek.com/v1", "deepseek-reasoner", endpoint.Secret(KEY), 0.05,
                             (0.55, 2.19), "test")
    budget = endpoint.Budget(paid)
    assert budget.cost(1e6, 1e6) == pytest.approx(2.74)
    line = budget.approve("a few", 4, 100, 1000)               # 4 x (100 x 0.55 + 1000 x 2.19) / 1e6 = $0.0090
    assert "at most $0.009" in line and "of $0.05" in line
    with pytest.raises(endpoint.EndpointError, match="nothing was sent.*COURSE_MAX_USD"):
        budget.approve("too many", 40, 100, 1000)
    free = endpoint.Budget(endpoint.Endpoint("http://127.0.0.1:8000/v1", "toy_r1", endpoint.Secret("")))
    assert free.approve("anything", 10_000, 100, 10_000).endswith("of $0.25)")


def test_the_key_is_scrubbed_whole_and_as_a_masked_tail():
    key = endpoint.Secret(KEY)
    text = f"Authentication Fails, Your api key: sk-****cdef is invalid; sent {KEY}"
    assert endpoint.scrub(text, key) == "Authentication Fails, Your api key: *** is invalid; sent ***"


def response(status: int, headers=None, body=None):
    request = httpx.Request("POST", "https://api.deepseek.com/v1/chat/completions")
    return httpx.Response(status, headers=headers or {}, json=body or {"error": {"message": f"sk-****cdef {status}"}},
                          request=request)


PAID = endpoint.Endpoint("https://api.deepseek.com/v1", "deepseek-reasoner", endpoint.Secret(KEY), 0.25,
                         (0.55, 2.19), "test")


@pytest.mark.parametrize("error, said", [
    (openai.AuthenticationError("401", response=response(401), body=None), "refused the key (401)"),
    (openai.PermissionDeniedError("402", response=response(402), body=None), "no balance"),
    (openai.NotFoundError("404", response=response(404), body=None), "COURSE_ENDPOINT_MODEL"),
    (openai.APIConnectionError(request=httpx.Request("GET", "https://api.deepseek.com")), "cannot reach"),
    (openai.BadRequestError(f"logprobs refused sk-****cdef {KEY}", response=response(400), body=None), "400"),
])
def test_each_failure_is_one_plain_sentence_without_the_key_or_the_library_s_traceback(error, said):
    error.status_code = error.response.status_code if hasattr(error, "response") else None

    def fails(client):
        raise error

    with pytest.raises(endpoint.EndpointError) as caught:
        endpoint.call(PAID, fails)
    assert said in str(caught.value) and KEY not in str(caught.value) and "cdef" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_rate_limit_is_waited_out_as_the_server_asks_a_bounded_number_of_times():
    waits, calls = [], []

    def limited_then_fine(client):
        calls.append(1)
        if len(calls) < 3:
            raise openai.RateLimitError("429", response=response(429, {"retry-after": "2"}), body=None)
        return "answer"

    assert endpoint.call(PAID, limited_then_fine, sleep=waits.append) == "answer" and waits == [2.0, 2.0]
    waits.clear()

    def always_limited(client):
        raise openai.RateLimitError("429", response=response(429, {"retry-after": "999"}), body=None)

    with pytest.raises(endpoint.EndpointError, match="rate-limiting"):
        endpoint.call(PAID, always_limited, sleep=waits.append)
    assert waits == [endpoint.LONGEST_WAIT_S] * endpoint.RETRIES_ON_429


def test_a_server_error_is_retried_briefly_then_said_plainly_with_its_text_body():
    """DeepSeek's error codes page: retry a 500 or 503 after a brief wait. A 502 is what the workshop proxy
    answers when vLLM behind it does not; a plain-text body (the openai client drops it) is kept, key scrubbed."""
    waits, calls = [], []

    def fails_once(client):
        calls.append(1)
        if len(calls) < 2:
            raise openai.InternalServerError("Error code: 502", response=response(502), body=None)
        return "answer"

    assert endpoint.call(PAID, fails_once, sleep=waits.append) == "answer" and waits == [1.0]
    waits.clear()

    def always_fails(client):
        raise openai.InternalServerError("Error code: 500", response=response(500),
                                         body=f"Internal Server Error near {KEY}")

    with pytest.raises(endpoint.EndpointError) as caught:
        endpoint.call(PAID, always_fails, sleep=waits.append)
    said = str(caught.value)
    assert "failed on its side (500), 3 times" in said and "Internal Server Error near ***" in said
    assert KEY not in said and waits == list(endpoint.SERVER_ERROR_WAITS_S)
    waits.clear()

    def not_implemented(client):                       # a 501 will not get better by waiting
        raise openai.InternalServerError("Error code: 501", response=response(501), body=None)

    with pytest.raises(endpoint.EndpointError, match="answered 501"):
        endpoint.call(PAID, not_implemented, sleep=waits.append)
    assert waits == []


def test_each_sample_of_a_question_gets_its_own_seed(monkeypatch):
    """A server that honours ``seed`` (vLLM) returns one text for one seed: n samples sent with the same seed would
    be n copies, and cons@k would equal pass@1."""
    from types import SimpleNamespace

    sent = []

    def create(**fields):
        sent.append(fields)
        message = SimpleNamespace(content=f"\\boxed{{{fields['seed']}}}", reasoning="think")
        usage = SimpleNamespace(prompt_tokens=10, completion_tokens=5, completion_tokens_details=None)
        return SimpleNamespace(choices=[SimpleNamespace(message=message, finish_reason="stop", logprobs=None)],
                               usage=usage)

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    monkeypatch.setattr(endpoint.Endpoint, "client", lambda self: client)
    replies = endpoint.complete_chat(PAID, endpoint.Budget(PAID), ["q1", "q2"], n=3, max_tokens=8, concurrency=1)
    assert [[reply.content for reply in group] for group in replies] == [["\\boxed{0}", "\\boxed{1}", "\\boxed{2}"]] * 2
    assert sorted(fields["seed"] for fields in sent) == [0, 0, 1, 1, 2, 2] and all("n" not in f for f in sent)


class Message:
    def __init__(self, content=None, **fields):
        self.content = content
        self.__dict__.update(fields)


@pytest.mark.parametrize("message, expected", [
    (Message("42", reasoning_content="think"), ("think", "42", "reasoning_content")),       # DeepSeek's API
    (Message("42", reasoning="think"), ("think", "42", "reasoning")),                       # vLLM 0.32
    (Message("think\n</think>\n\n42"), ("think", "42", "<think> in content")),             # no reasoning parser
    (Message("<think>think</think>42"), ("think", "42", "<think> in content")),
    (Message(None, reasoning="cut off"), ("cut off", "", "reasoning")),                     # cut off while thinking
    (Message("just an answer"), ("", "just an answer", "none")),
])
def test_one_reply_shape_from_every_server(message, expected):
    assert inference.message_parts(message) == expected


@pytest.mark.parametrize("pieces, expected", [
    (["<th", "ink>abc", "</th", "ink>\n\nans", "wer"], [("reasoning", "abc"), ("content", "ans"), ("content", "wer")]),
    (["hello", " world"], [("content", "hello"), ("content", " world")]),
    (["<think>cut off while thinki", "ng"], [("reasoning", "cut off while thinking")]),
])
def test_streamed_think_tags_are_routed_to_the_thinking(pieces, expected):
    splitter, out = inference.ThinkSplitter(), []
    for piece in pieces:
        out += splitter.feed(piece)
    out += splitter.flush()
    joined = []
    for kind, text in out:   # adjacent pieces of one kind, joined: how they were cut does not matter
        if joined and joined[-1][0] == kind:
            joined[-1] = (kind, joined[-1][1] + text)
        else:
            joined.append((kind, text))
    assert joined == [(k, t) for k, t in _joined(expected)]


def _joined(pairs):
    out = []
    for kind, text in pairs:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def test_thinking_tokens_from_the_tokenizer_the_server_or_the_characters():
    reply = inference.Reply("abcdef", "gh", 10, 8, "stop")
    assert inference.reply_tokens(reply)[:2] == (6.0, 2.0)                  # 8 tokens shared by characters
    reply.reasoning_tokens = 7
    assert inference.reply_tokens(reply) == (7, 1, "the server's count")


CPU = hardware.Device("cpu", "CPU", 0, 16.0, 16.0, True, 2, 16.0)


def test_endpoint_plans_fit_the_cap_and_skip_what_a_chat_endpoint_cannot_do():
    plan = run_plans.notebook_04(CPU, quick_mode=False, endpoint=PAID)
    assert plan.endpoint is PAID and not plan.local_engine and plan.real
    assert not set(run_plans.PROMPT_EDITING_TIPS) & set(plan.tips)
    completions = plan.word_problems * (2 + len(plan.tips)) + 2 * plan.n_samples * plan.k_problems
    worst = endpoint.Budget(PAID).cost(completions * 150, completions * plan.max_tokens)
    assert worst <= PAID.max_usd and "the two tips that edit the prompt" in plan.describe()
    poor = endpoint.Endpoint(PAID.base_url, PAID.model, PAID.key, 0.001, PAID.price, "test")
    with pytest.raises(endpoint.EndpointError, match="too little"):
        run_plans.notebook_04(CPU, quick_mode=False, endpoint=poor)
    toy = endpoint.Endpoint("http://127.0.0.1:8000/v1", "toy_r1", endpoint.Secret(""))
    toy_plan = run_plans.notebook_04(CPU, quick_mode=True, endpoint=toy)
    assert toy_plan.toy_problems and not toy_plan.real and toy_plan.hot_temperature == 1.5
    served = run_plans.notebook_03(CPU, quick_mode=False, endpoint=PAID)
    assert not served.local_engine and served.load_requests and KEY not in served.describe()
