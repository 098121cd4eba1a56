"""GRPO: the course's advantages and loss, checked by hand-worked cases, bad input, and against TRL's GRPOTrainer."""

import math

import pytest
import torch

from course_utils import grpo


def test_advantages_are_normalised_within_each_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0])
    adv = grpo.group_advantages(rewards, group_size=4)
    first = torch.tensor([0.75, -0.25, -0.25, -0.25]) / (0.5 + 1e-4)   # sample std of (1, 0, 0, 0) is 0.5
    assert torch.allclose(adv[:4], first)
    assert torch.allclose(adv[4:], torch.tensor([1.0, 1.0, -1.0, -1.0]) / (2 / math.sqrt(3) + 1e-4))
    assert abs(float(adv[:4].sum())) < 1e-6 and abs(float(adv[4:].sum())) < 1e-6


def test_a_group_with_equal_rewards_gets_zero_advantage():
    adv = grpo.group_advantages(torch.tensor([2.0, 2.0, 2.0, 1.0, 0.0, 1.0]), group_size=3)
    assert torch.equal(adv[:3], torch.zeros(3)) and adv[3] > 0 > adv[4]


@pytest.mark.parametrize("rewards, group_size, message", [
    (torch.ones(4), 1, "at least 2"),
    (torch.ones(5), 2, "multiple of group_size"),
    (torch.ones(2, 2), 2, "flat"),
])
def test_advantages_reject_bad_input(rewards, group_size, message):
    with pytest.raises(ValueError, match=message):
        grpo.group_advantages(rewards, group_size)


def batch(seed=0, rows=4, tokens=5):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(rows, tokens, generator=g) * 2
    old = logp + 0.3 * torch.randn(rows, tokens, generator=g)
    ref = logp + 0.3 * torch.randn(rows, tokens, generator=g)
    mask = torch.ones(rows, tokens)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    return logp, old, ref, torch.randn(rows, generator=g), mask


def test_loss_matches_the_formula_token_by_token():
    logp, old, ref, adv, mask = batch()
    loss = grpo.grpo_loss(logp, old, ref, adv, mask, epsilon=0.2, beta=0.04)
    total = 0.0
    for i in range(logp.shape[0]):
        terms = []
        for t in range(logp.shape[1]):
            if mask[i, t]:
                ratio = math.exp(logp[i, t] - old[i, t])
                clipped = min(max(ratio, 0.8), 1.2)
                gap = float(ref[i, t] - logp[i, t])
                a = float(adv[i])
                terms.append(-min(ratio * a, clipped * a) + 0.04 * (math.exp(gap) - gap - 1))
        total += sum(terms) / len(terms)
    assert loss.item() == pytest.approx(total / logp.shape[0], rel=1e-5)


def test_on_policy_loss_without_kl_has_the_policy_gradient():
    """At ratio 1 the gradient of the loss is -A/|o| times the gradient of each token's log-probability."""
    logp, _, _, adv, mask = batch(1)
    logp = logp.clone().requires_grad_(True)
    grpo.grpo_loss(logp, logp.detach(), None, adv, mask, beta=0.0).backward()
    expected = -adv[:, None] * mask / mask.sum(1, keepdim=True) / logp.shape[0]
    assert torch.allclose(logp.grad, expected, atol=1e-7)


def test_kl_term_is_zero_at_the_reference_and_positive_elsewhere():
    logp, _, ref, _, mask = batch(2)
    zero_adv = torch.zeros(logp.shape[0])
    assert grpo.grpo_loss(logp, logp, logp, zero_adv, mask, beta=1.0).item() == pytest.approx(0.0, abs=1e-7)
    assert grpo.grpo_loss(logp, logp, ref, zero_adv, mask, beta=1.0).item() > 0


@pytest.mark.parametrize("change, message", [
    (dict(epsilon=0.0), "epsilon"),
    (dict(epsilon=-0.1), "epsilon"),
    (dict(beta=-1.0), "beta"),
    (dict(old_logprobs=torch.zeros(4, 4)), "old_logprobs has shape"),
    (dict(advantages=torch.zeros(3)), "one value per completion"),
    (dict(mask=torch.tensor([[1.0] * 5, [0.0] * 5, [1.0] * 5, [1.0] * 5])), r"rows \[1\]"),
    (dict(ref_logprobs=None), "needs ref_logprobs"),
])
def test_loss_rejects_bad_input(change, message):
    logp, old, ref, adv, mask = batch()
    args = dict(logprobs=logp, old_logprobs=old, ref_logprobs=ref, advantages=adv, mask=mask) | change
    with pytest.raises(ValueError, match=message):
        grpo.grpo_loss(**args)


def test_pass_at_k_estimator():
    assert grpo.pass_at_k(10, 0, 5) == 0.0
    assert grpo.pass_at_k(10, 10, 1) == 1.0
    assert grpo.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert grpo.pass_at_k(4, 1, 2) == pytest.approx(0.5)      # 3 of the 6 pairs hold the right one
    assert grpo.pass_at_k(5, 4, 2) == 1.0
    curve = grpo.pass_at_k_curve([[True, False, False, False], [False] * 4], [1, 2, 4])
    assert curve == pytest.approx({1: 0.125, 2: 0.25, 4: 0.5})
    with pytest.raises(ValueError, match="1 <= k <= n"):
        grpo.pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="at least 8 samples"):
        grpo.pass_at_k_curve([[True] * 4], [1, 8])


# ---------------------------------------------------------------- against TRL


def test_course_grpo_equals_trl_grpo_trainer():
    pytest.importorskip("trl")
    from course_utils.trl_check import compare_with_trl

    result = compare_with_trl()
    assert result["reward groups with unequal rewards"] == 4, "the check needs groups with unequal rewards"
    assert result["share of clipped ratios"] > 0, "the check should cover clipping"
    assert result["max |advantage difference|"] < 1e-5
    assert result["course loss"] == pytest.approx(result["TRL loss"], rel=1e-4, abs=1e-6)
    assert result["max |gradient difference|"] <= 1e-4 * result["largest |gradient|"] + 1e-7
