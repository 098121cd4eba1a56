"""The toy R1 checkpoint loads in the real vLLM engine (vllm-cpu here) and answers in R1's format.

vLLM runs in a subprocess, so that its engine and threads never share the test process.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from course_utils import toy_reasoner as R

SCRIPT = textwrap.dedent("""
    import json, sys
    from vllm import LLM, SamplingParams
    from course_utils import toy_reasoner as R
    from course_utils.reasoning import extract_boxed, split_reasoning
    llm = LLM(model=sys.argv[1], dtype="float32", enforce_eager=True, max_model_len=256, seed=0)
    pairs = R.held_out_problems(40)
    outs = llm.chat([[{"role": "user", "content": R.question(a, b)}] for a, b in pairs],
                    SamplingParams(temperature=0, max_tokens=96), use_tqdm=False)
    texts = [o.outputs[0].text for o in outs]
    right = sum(extract_boxed(t) == str(a + b) for t, (a, b) in zip(texts, pairs))
    print("RESULT " + json.dumps({"accuracy": right / len(pairs), "first": texts[0],
                                  "prompt": outs[0].prompt, "reasoning": split_reasoning(texts[0])[0]}))
""")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (e.g. macOS)")
def test_vllm_serves_the_toy_checkpoint():
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(R.checkpoint_path())], capture_output=True, text=True,
                          env=env, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["prompt"].endswith("<｜Assistant｜><think>\n")       # the R1-distill generation prompt
    assert "carry" in result["reasoning"] and "\\boxed{" in result["first"]
    assert result["accuracy"] >= 0.9
