"""The toy R1 checkpoint in vLLM's offline engine (vllm-cpu here), through ``course_utils.inference``: it answers in
R1's format, the prompt ends in ``<think>\\n``, a prefilled empty thinking block works, and greedy vLLM agrees with
the transformers fallback.

vLLM runs in a subprocess, so that its engine and threads never share the test process.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from course_utils import toy_reasoner

SCRIPT = textwrap.dedent("""
    import json, sys
    from course_utils import toy_reasoner
    from course_utils.inference import (SKIP_THINKING, TransformersChat, chat_offline, chat_prompts,
                                        complete_offline, offline_engine)
    llm = offline_engine(sys.argv[1], dtype="float32", max_model_len=256)
    pairs = toy_reasoner.held_out_problems(40)
    questions = [toy_reasoner.question(a, b) for a, b in pairs]
    replies = chat_offline(llm, questions, temperature=0, max_tokens=96)
    prompts = chat_prompts(llm.get_tokenizer(), questions[:8])
    skipped = complete_offline(llm, [p + SKIP_THINKING for p in prompts], temperature=0, max_tokens=96)
    sampled = complete_offline(llm, prompts[:2], n=4, max_tokens=96)
    fallback = TransformersChat(sys.argv[1], device="cpu").chat(questions, temperature=0, max_tokens=96)
    print("RESULT " + json.dumps({
        "accuracy": sum(r.content == "\\\\boxed{%d}" % (a + b) for r, (a, b) in zip(replies, pairs)) / len(pairs),
        "prompt": prompts[0], "reasoning": replies[0].reasoning, "content": replies[0].content,
        "finish": replies[0].finish_reason, "skipped_reasoning": [r[0].reasoning for r in skipped],
        "samples_per_prompt": [len(r) for r in sampled],
        "same_as_transformers": sum(a.text == b.text for a, b in zip(replies, fallback)) / len(replies)}))
""")


@pytest.mark.server
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (e.g. macOS)")
def test_offline_engine_serves_the_toy_checkpoint():
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(toy_reasoner.checkpoint_path())], capture_output=True,
                          text=True, env=env, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["prompt"].endswith("<｜Assistant｜><think>\n")       # the R1-distill generation prompt
    assert "carry" in result["reasoning"] and result["content"].startswith("\\boxed{")
    assert result["finish"] == "stop"
    assert result["accuracy"] >= 0.9
    assert all(r == "" for r in result["skipped_reasoning"])          # thinking skipped: nothing before </think>
    assert result["samples_per_prompt"] == [4, 4]
    assert result["same_as_transformers"] >= 0.9                      # greedy: the same text, up to rounding
