"""Group Relative Policy Optimization (GRPO), the RL algorithm of DeepSeekMath (section 4.1) and DeepSeek-R1.

For each prompt the policy samples a *group* of G completions; each gets a rule-based reward; a completion's
advantage is its reward measured against its own group, ``(r - mean) / (std + eps)``, so no value network is needed.
The loss is PPO's clipped policy-ratio objective with that advantage on every token of the completion, plus a KL
penalty to a frozen reference model (the k3 estimator ``exp(ref - logp) - (ref - logp) - 1``, which is never
negative). Per completion the token losses are averaged, then the completions are averaged (the original GRPO
aggregation; TRL calls it ``loss_type="grpo"``).

Conventions follow TRL's ``GRPOTrainer`` (tests/test_grpo.py checks loss and gradients against trl 1.16): the group
std is the sample std (Bessel-corrected) and ``eps = 1e-4``. One difference by default: TRL 1.16 multiplies the KL
term by the policy ratio (``use_bias_correction_kl=True``, from DeepSeek-V3.2); the original GRPO, written here,
does not (``use_bias_correction_kl=False`` in TRL).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """``(r - group mean) / (group std + eps)`` over each run of ``group_size`` consecutive completions.
    A group whose rewards are all equal teaches nothing: its advantages are exactly zero."""
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 (a group of one has no mean to compare with), "
                         f"got {group_size}")
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be a flat tensor whose length is a multiple of group_size={group_size}, "
                         f"got shape {tuple(rewards.shape)}")
    groups = rewards.view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    return (centred / (groups.std(dim=1, keepdim=True) + eps)).reshape(-1)


def _check_loss_inputs(logprobs, old_logprobs, ref_logprobs, advantages, mask, epsilon, beta) -> None:
    if epsilon <= 0:
        raise ValueError(f"epsilon is the clip range of the policy ratio and must be > 0, got {epsilon}")
    if beta < 0:
        raise ValueError(f"beta weighs the KL penalty and must be >= 0, got {beta}")
    shape = tuple(logprobs.shape)
    if len(shape) != 2:
        raise ValueError(f"logprobs must be [completions, tokens], got shape {shape}")
    for name, t in (("old_logprobs", old_logprobs), ("ref_logprobs", ref_logprobs), ("mask", mask)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, logprobs {shape}: they must match")
    if tuple(advantages.shape) not in ((shape[0],), (shape[0], 1)):
        raise ValueError(f"advantages must hold one value per completion ({shape[0]}), "
                         f"got shape {tuple(advantages.shape)}")
    if bool((mask.sum(dim=1) == 0).any()):
        rows = (mask.sum(dim=1) == 0).nonzero().flatten().tolist()
        raise ValueError(f"completion rows {rows} have no unmasked token: every completion needs at least one "
                         "(drop empty completions, or keep their end-of-sequence token in the mask)")


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, epsilon: float = 0.2, beta: float = 0.04) -> torch.Tensor:
    """The GRPO loss (to minimise) of one batch of completions.

    ``logprobs``: [completions, tokens] log-probabilities of the sampled tokens under the policy being trained (with
    gradients); ``old_logprobs``: the same under the policy that sampled them (no gradients); ``ref_logprobs``: under
    the frozen reference (``None`` when ``beta == 0``); ``advantages``: one per completion; ``mask``: 1 on the
    completion's real tokens, 0 on padding. Per token
    ``-min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) + beta * (exp(ref - logp) - (ref - logp) - 1)``.
    """
    mask = mask.to(logprobs.dtype)
    _check_loss_inputs(logprobs, old_logprobs, ref_logprobs, advantages, mask, epsilon, beta)
    advantages = advantages.reshape(-1, 1)
    ratio = torch.exp(logprobs - old_logprobs)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)
    per_token = -torch.min(ratio * advantages, clipped * advantages)
    if beta:
        if ref_logprobs is None:
            raise ValueError("beta > 0 needs ref_logprobs (the frozen reference model's log-probabilities)")
        per_token = per_token + beta * k3_kl(logprobs, ref_logprobs)
    per_completion = (per_token * mask).sum(dim=1) / mask.sum(dim=1)
    return per_completion.mean()


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference) from sampled tokens: ``exp(ref - logp) - (ref - logp) - 1``.
    Never negative (e^x >= 1 + x), exactly 0 where the two log-probabilities agree."""
    gap = ref_logprobs - logprobs
    return torch.exp(gap) - gap - 1


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_length: int,
                   temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities of the last ``completion_length`` tokens of each row (the completion), each given the
    tokens before it: [rows, completion_length]. Logits are divided by the sampling temperature, as TRL does."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    logits = logits[:, -completion_length - 1:-1] / temperature
    targets = input_ids[:, -completion_length:]
    return torch.gather(F.log_softmax(logits.float(), dim=-1), 2, targets.unsqueeze(-1)).squeeze(-1)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from n samples of which c are right (Chen et al. 2021, "Evaluating Large
    Language Models Trained on Code", eq. 1): ``1 - C(n - c, k) / C(n, k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_curve(correct: list[list[bool]], ks: list[int]) -> dict[int, float]:
    """pass@k averaged over problems, for each k (every problem needs at least max(ks) samples)."""
    if not correct or min(map(len, correct)) < max(ks):
        raise ValueError(f"pass@{max(ks)} needs at least {max(ks)} samples for every problem")
    return {k: sum(pass_at_k(len(c), sum(map(bool, c)), k) for c in correct) / len(correct) for k in ks}
