"""Seconds per GRPO step on this machine: the course's loop (`r1_zero.grpo_step`) against TRL's `GRPOTrainer`, on the
same committed toy base, the same batch (16 prompts x 8 completions, up to 72 new tokens) and the same loss settings.
It answers notebook 05's question "could the notebook train with TRL on a CPU?" with a measured ratio.

    python benchmarks/grpo_speed.py [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import course_utils  # noqa: F401  (first: it sets the OpenMP spin before torch loads OpenMP)

# isort: split
import torch

from course_utils import r1_zero as Z

ROOT = Path(__file__).resolve().parent.parent


def course_seconds(steps: int) -> float:
    base, tokenizer = Z.load("base")
    settings = Z.Settings(rl_steps=steps)
    pool = Z.training_problems(steps * settings.prompts_per_step, seed=7)
    policy = Z.copy.deepcopy(base)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.rl_lr)
    torch.manual_seed(0)
    started = time.perf_counter()
    for i in range(steps):
        Z.grpo_step(policy, base, optimizer, tokenizer, pool[i * 16:(i + 1) * 16], settings)
    return (time.perf_counter() - started) / steps


def trl_seconds(steps: int) -> float:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    settings = Z.Settings()
    pairs = Z.training_problems(steps * settings.prompts_per_step, seed=7)
    data = Dataset.from_dict({"prompt": [Z.prompt(a, b) for a, b in pairs], "gold": [a + b for a, b in pairs]})
    stamps = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = GRPOConfig(output_dir=out, num_generations=settings.group_size,
                          per_device_train_batch_size=settings.group_size * settings.prompts_per_step,
                          max_completion_length=settings.max_new_tokens, beta=settings.beta,
                          epsilon=settings.epsilon, learning_rate=settings.rl_lr, loss_type="grpo",
                          use_bias_correction_kl=False, temperature=settings.temperature, max_steps=steps + 1,
                          report_to="none", use_cpu=True, bf16=False, logging_steps=1000, save_strategy="no",
                          seed=0)
        trainer = GRPOTrainer(model=str(Z.COMMITTED / "base"),
                              reward_funcs=lambda completions, gold, **_: [Z.reward(c, g) for c, g in
                                                                           zip(completions, gold, strict=True)],
                              args=args, train_dataset=data, processing_class=Z.load("base")[1],
                              callbacks=[Clock()])
        trainer.train()
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)    # the first step (warm-up) is left out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    steps = parser.parse_args().steps
    course, trl = course_seconds(steps), trl_seconds(steps)
    result = {"course loop s/step": round(course, 2), "TRL GRPOTrainer s/step": round(trl, 2),
              "TRL / course": round(trl / course, 2), "threads": torch.get_num_threads(), "steps": steps}
    print(json.dumps(result, indent=1))
    out = ROOT / "build" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "grpo_speed.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
