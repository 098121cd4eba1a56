"""The course's GRPO against TRL's ``GRPOTrainer``, on one batch that TRL itself samples and scores.

TRL samples a group of completions per prompt with the toy R1-Zero model, rewards them, and computes its advantages
and its loss; the course's ``group_advantages`` and ``grpo_loss`` then get the same rewards, log-probabilities and
mask. Offline and on a CPU: the model is a fresh toy saved to a temporary folder (TRL loads its frozen reference
from the policy's path), nothing is downloaded.
"""

from __future__ import annotations

import tempfile
import warnings

import torch

from course_utils import grpo, r1_zero

PAIRS = [(123, 456), (789, 321), (555, 555), (101, 909)]


def _trainer(folder: str, group_size: int, epsilon: float, beta: float):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = r1_zero.build_tokenizer()
    r1_zero.new_model(tokenizer, r1_zero.Settings(hidden=64, layers=2)).save_pretrained(f"{folder}/model")
    tokenizer.save_pretrained(f"{folder}/model")
    data = Dataset.from_dict({"prompt": [r1_zero.prompt(a, b) for a, b in PAIRS], "gold": [a + b for a, b in PAIRS]})
    seen = []

    def reward(completions, gold, **_):
        # An untrained model earns no task reward; adding the completion's length gives every group unequal rewards.
        values = [r1_zero.reward(c, g) + len(c) / 10 for c, g in zip(completions, gold, strict=True)]
        seen.extend(values)
        return values

    # num_iterations=2: TRL keeps the sampling policy's log-probs, so the ratio (and its clipping) can move off 1.
    # use_bias_correction_kl=False: the original GRPO's KL term (TRL 1.16 multiplies it by the ratio by default).
    args = GRPOConfig(output_dir=f"{folder}/out", num_generations=group_size,
                      per_device_train_batch_size=group_size * len(PAIRS), max_completion_length=24,
                      num_iterations=2, beta=beta, epsilon=epsilon, loss_type="grpo", temperature=1.0,
                      use_bias_correction_kl=False, report_to="none", use_cpu=True, bf16=False, seed=0)
    trainer = GRPOTrainer(model=f"{folder}/model", reward_funcs=reward, args=args, train_dataset=data,
                          processing_class=tokenizer)
    return trainer, seen


def compare_with_trl(group_size: int = 4, epsilon: float = 0.2, beta: float = 0.04, seed: int = 0) -> dict:
    """TRL's and the course's advantages, loss and gradients on the same batch. The policy is nudged off the
    sampling policy first (as after a first update), so that ratios differ from 1 and some are clipped."""
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")            # TRL warns that it was tested with older vLLM versions
        trainer, seen = _trainer(folder, group_size, epsilon, beta)
        torch.manual_seed(seed)
        inputs = trainer._generate_and_score_completions([dict(row) for row in trainer.train_dataset] * group_size)
        rewards = torch.tensor(seen[-group_size * len(PAIRS):])
        with torch.no_grad():
            for p in trainer.model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        trainer.current_gradient_accumulation_steps = 1
        trainer.model.train()
        trl_loss = trainer._compute_loss(trainer.model, inputs)

        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logp = grpo.token_logprobs(trainer.model, ids, attention, inputs["completion_ids"].shape[1])
        advantages = grpo.group_advantages(rewards, group_size)
        loss = grpo.grpo_loss(logp, inputs["old_per_token_logps"], inputs["ref_per_token_logps"], advantages,
                              inputs["completion_mask"], epsilon, beta)
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        trl_grads = torch.autograd.grad(trl_loss, params, retain_graph=True)
        grads = torch.autograd.grad(loss, params)
        gradient_gap = max((a - b).abs().max().item() for a, b in zip(trl_grads, grads, strict=True))
        ratio = torch.exp(logp - inputs["old_per_token_logps"])[inputs["completion_mask"].bool()]
        return {"completions": len(rewards), "reward groups with unequal rewards":
                int((rewards.view(-1, group_size).std(1) > 0).sum()),
                "max |advantage difference|": (advantages - inputs["advantages"]).abs().max().item(),
                "TRL loss": trl_loss.item(), "course loss": loss.item(),
                "max |gradient difference|": gradient_gap,
                "largest |gradient|": max(a.abs().max().item() for a in trl_grads),
                "share of clipped ratios": ((ratio < 1 - epsilon) | (ratio > 1 + epsilon)).float().mean().item()}
