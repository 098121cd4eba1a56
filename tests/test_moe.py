import math

import pytest
import torch

from course_utils import moe


def small(**kw):
    base = dict(hidden_size=16, expert_size=8, n_experts=8, top_k=2)
    base.update(kw)
    torch.manual_seed(0)
    return moe.MoE(moe.MoEConfig(**base))


@pytest.mark.parametrize("kw, message", [
    (dict(top_k=9), "top_k=9 is larger than n_experts=8"),
    (dict(n_group=3), "n_experts=8 cannot be split into n_group=3"),
    (dict(n_group=2, topk_group=3), "topk_group=3 is larger than n_group=2"),
    (dict(n_group=4, topk_group=1, top_k=3), "hold fewer than top_k=3"),
    (dict(router="softmax", n_group=2), "only defined for router='deepseek_v3'"),
    (dict(router="expert-choice"), "router must be one of"),
    (dict(hidden_size=0), "hidden_size must be a positive integer, got 0"),
    (dict(capacity_factor=0.0), "capacity_factor must be positive"),
])
def test_bad_configs_name_the_offending_value(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        small(**kw)


def test_wrong_hidden_size_and_nan_inputs():
    layer = small()
    with pytest.raises(ValueError, match="last dimension is 12, but this MoE has hidden_size=16"):
        layer(torch.randn(4, 12))
    x = torch.randn(4, 16)
    x[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        layer(x)


@pytest.mark.parametrize("router", moe.ROUTERS)
def test_each_router_keeps_shape_and_picks_distinct_experts(router):
    layer = small(router=router, n_shared=1)
    x = torch.randn(2, 10, 16)
    assert layer(x).shape == x.shape
    idx = layer.last_routing.indices
    assert idx.shape == (20, 2) and (idx[:, 0] != idx[:, 1]).all()


def test_deepseek_weights_sum_to_the_scaling_factor_and_ignore_the_bias():
    layer = small(routed_scaling_factor=2.5)
    x = torch.randn(30, 16)
    layer(x)
    before = layer.last_routing
    torch.testing.assert_close(before.weights.sum(-1), torch.full((30,), 2.5))
    # A huge bias on expert 0 makes every token choose it, but its weight is its unbiased affinity.
    layer.balance_bias[0] = 10.0
    layer(x)
    after = layer.last_routing
    assert (after.indices == 0).any(dim=1).all()
    slot = (after.indices == 0).float().argmax(dim=1)
    chosen_score = after.scores[torch.arange(30), 0]
    unnormalised = after.scores.gather(1, after.indices).sum(-1)
    torch.testing.assert_close(after.weights[torch.arange(30), slot], 2.5 * chosen_score / unnormalised)


def test_group_limited_routing_uses_at_most_topk_group_groups():
    layer = small(n_experts=16, top_k=4, n_group=4, topk_group=2)
    layer(torch.randn(200, 16))
    groups = layer.last_routing.indices // 4
    assert max(len(set(row.tolist())) for row in groups) <= 2


def test_switch_loss_is_alpha_when_balanced_and_larger_when_not():
    n = 4
    balanced = moe.Routing(torch.zeros(8, n), torch.full((8, n), 0.25), torch.arange(8).remainder(n)[:, None],
                         torch.ones(8, 1))
    assert moe.switch_aux_loss(balanced, n, alpha=0.01).item() == pytest.approx(0.01)
    skewed_scores = torch.tensor([[0.7, 0.1, 0.1, 0.1]]).repeat(8, 1)
    skewed = moe.Routing(torch.zeros(8, n), skewed_scores, torch.zeros(8, 1, dtype=torch.long), torch.ones(8, 1))
    assert moe.switch_aux_loss(skewed, n, alpha=0.01).item() == pytest.approx(0.01 * 4 * 0.7)


def test_max_violation_and_entropy():
    assert moe.max_violation(torch.tensor([0.25, 0.25, 0.25, 0.25])) == 0
    assert moe.max_violation(torch.tensor([1.0, 0, 0, 0])) == pytest.approx(3.0)
    assert moe.load_entropy(torch.ones(8)) == pytest.approx(1.0)
    assert moe.load_entropy(torch.tensor([1.0, 0, 0, 0])) == pytest.approx(0.0)
    assert moe.routing_entropy(torch.ones(5, 4)) == pytest.approx(math.log(4))


def test_bias_update_moves_toward_balance_outside_autograd():
    layer = small(n_experts=4, top_k=1)
    layer.last_routing = moe.Routing(None, None, torch.tensor([[0], [0], [0], [1]]), None)
    moe.update_balance_bias(layer, gamma=0.1)
    torch.testing.assert_close(layer.balance_bias, torch.tensor([-0.1, 0.0, 0.1, 0.1]))
    assert not layer.balance_bias.requires_grad


def test_bias_update_balances_a_skewed_router():
    layer = small(n_experts=8, top_k=2)
    with torch.no_grad():
        layer.router[0] += 2.0                      # expert 0 starts heavily favoured
    x = torch.randn(512, 16, generator=torch.Generator().manual_seed(1)) + 1.0
    layer(x)
    start = moe.max_violation(moe.expert_load(layer.last_routing.indices, 8))
    for _ in range(300):
        layer(x)
        moe.update_balance_bias(layer, gamma=0.01)
    layer(x)
    end = moe.max_violation(moe.expert_load(layer.last_routing.indices, 8))
    assert start > 1.0 and end < 0.3


def test_capacity_drops_overflow_in_token_order():
    layer = small(n_experts=4, top_k=1, capacity_factor=1.0)
    routing = moe.Routing(None, None, torch.zeros(8, 1, dtype=torch.long), torch.ones(8, 1))
    moe.apply_capacity(routing, 1.0, 4)                # capacity = ceil(8 * 1 / 4) = 2
    assert routing.weights.squeeze(1).tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert routing.dropped == pytest.approx(0.75)
    layer(torch.randn(32, 16))
    assert 0.0 <= layer.last_routing.dropped < 1.0


def test_sequence_balance_loss_is_alpha_when_each_sequence_is_balanced():
    n, k, t = 4, 1, 8
    idx = torch.arange(16).remainder(n)[:, None]
    routing = moe.Routing(None, torch.full((16, n), 0.5), idx, torch.ones(16, k))
    assert moe.sequence_balance_loss(routing, n, t, k, alpha=1.0).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="whole number of sequences"):
        moe.sequence_balance_loss(routing, n, 5, k)


def test_noisy_router_is_deterministic_in_eval():
    layer = small(router="noisy")
    with torch.no_grad():
        layer.noise.fill_(1.0)
    x = torch.randn(20, 16)
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    layer.train()
    torch.manual_seed(0)
    a = layer(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, layer(x))


def test_z_loss_and_parameter_counts():
    assert moe.router_z_loss(torch.zeros(3, 4), beta=1.0).item() == pytest.approx(math.log(4) ** 2)
    layer = small(n_shared=1)
    total, active = layer.parameter_counts
    assert total - active == 6 * 3 * 16 * 8      # 6 of 8 experts unused per token
