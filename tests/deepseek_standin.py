"""A STAND-IN for DeepSeek's API, for the tests of endpoint mode: not DeepSeek's server, and never called by the course
against DeepSeek itself. It is written from DeepSeek's published documentation and does what the documentation
states, over the course's toy R1 served by vLLM (the "upstream"):

- api-docs.deepseek.com, "Reasoning Model (deepseek-reasoner)": the thinking is returned as ``reasoning_content``
  beside ``content``, streamed as ``delta.reasoning_content``; ``temperature``, ``top_p``, ``presence_penalty`` and
  ``frequency_penalty`` are accepted and have no effect; ``logprobs`` and ``top_logprobs`` are an error; a
  ``reasoning_content`` sent back in the messages is a 400; ``max_tokens`` counts the thinking too (the current
  Chinese page: "含思维链输出").
- "Error Codes": 401 for a wrong key, 400 for an invalid request.
- the usage object carries ``completion_tokens_details.reasoning_tokens``.

What the documentation does not state is chosen here and said so: the fixed sampling (the toy's own T = 0.6,
top-p 0.95, from its generation_config.json), the error bodies' wording, the model name, deepseek-reasoner, and a
limit of 160 new tokens (what the toy's context leaves; DeepSeek's is 64K).

    python tests/deepseek_standin.py --upstream http://127.0.0.1:8001/v1 --port 8002
    # its key in STANDIN_KEY; the upstream's (if it wants one) in STANDIN_UPSTREAM_KEY
"""

from __future__ import annotations

import hmac
import json
import os
import sys
from pathlib import Path

MODEL = "deepseek-reasoner"
IGNORED = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed")
REFUSED = ("logprobs", "top_logprobs")
MAX_TOKENS = 160


def standin_app(upstream: str, upstream_model: str, key: str, count_tokens, upstream_key: str = ""):
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    headers = {"Authorization": f"Bearer {upstream_key}"} if upstream_key else {}
    client = httpx.AsyncClient(base_url=upstream, timeout=None, headers=headers)

    def error(status: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}},
                            status_code=status)

    def authorised(request) -> bool:
        return hmac.compare_digest(request.headers.get("authorization", "").encode(), f"Bearer {key}".encode())

    async def models(request):
        if not authorised(request):
            return error(401, "Authentication Fails (stand-in): the API key is invalid", "authentication_error")
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "stand-in"}]})

    async def chat(request):
        if not authorised(request):
            return error(401, "Authentication Fails (stand-in): the API key is invalid", "authentication_error")
        body = await request.json()
        if body.get("model") != MODEL:
            return error(400, f"Model Not Exist: {body.get('model')!r} (stand-in serves {MODEL})",
                         "invalid_request_error")
        if any(body.get(name) for name in REFUSED):
            return error(400, f"{MODEL} does not support logprobs or top_logprobs (stand-in, as documented)",
                         "invalid_request_error")
        if any("reasoning_content" in message for message in body.get("messages", [])):
            return error(400, "reasoning_content must not be sent back in messages (stand-in, as documented)",
                         "invalid_request_error")
        forwarded = {k: v for k, v in body.items() if k not in IGNORED and k != "n"}
        forwarded.update(model=upstream_model, temperature=0.6, top_p=0.95)
        # the stand-in's own limit, not DeepSeek's (64K): the toy's context holds about 256 tokens with the prompt
        forwarded["max_tokens"] = min(int(body.get("max_tokens") or MAX_TOKENS), MAX_TOKENS)
        if body.get("stream"):
            return StreamingResponse(relay_stream(client, forwarded, count_tokens), media_type="text/event-stream")
        reply = await client.post("/chat/completions", json=forwarded)
        if reply.status_code != 200:
            return JSONResponse(reply.json(), status_code=reply.status_code)
        return JSONResponse(reshaped(reply.json(), count_tokens))

    routes = [Route(path, models, methods=["GET"]) for path in ("/models", "/v1/models")]
    routes += [Route(path, chat, methods=["POST"]) for path in ("/chat/completions", "/v1/chat/completions")]
    return Starlette(routes=routes)


def reshaped(reply: dict, count_tokens) -> dict:
    """vLLM's reply in DeepSeek's shape: ``reasoning`` -> ``reasoning_content``; the thinking's token count."""
    reply["model"] = MODEL
    thinking = 0
    for choice in reply["choices"]:
        message = choice["message"]
        message["reasoning_content"] = message.pop("reasoning", None) or ""
        thinking += count_tokens(message["reasoning_content"])
    reply["usage"]["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return reply


async def relay_stream(client, forwarded: dict, count_tokens):
    thinking = []
    async with client.stream("POST", "/chat/completions", json=forwarded) as reply:
        async for line in reply.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                if line:
                    yield line + "\n\n"
                continue
            chunk = json.loads(line[len("data: "):])
            chunk["model"] = MODEL
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                if "reasoning" in delta:
                    delta["reasoning_content"] = delta.pop("reasoning")
                    thinking.append(delta["reasoning_content"] or "")
            if chunk.get("usage"):
                chunk["usage"]["completion_tokens_details"] = {"reasoning_tokens": count_tokens("".join(thinking))}
            yield f"data: {json.dumps(chunk)}\n\n"


def main() -> None:
    import argparse

    import uvicorn
    from transformers import AutoTokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from course_utils import toy_reasoner

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--upstream-model", default="toy_r1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(toy_reasoner.checkpoint_path())

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    app = standin_app(args.upstream, args.upstream_model, os.environ["STANDIN_KEY"], count_tokens,
                      os.environ.get("STANDIN_UPSTREAM_KEY", ""))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
