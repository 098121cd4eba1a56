"""The course MoE equals transformers' production MoE blocks, weight for weight, across many configurations."""

import itertools

import pytest
import torch
from transformers import DeepseekV3Config, MixtralConfig, Qwen2MoeConfig
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

from course_utils.moe import MoE, from_transformers

ATOL = 1e-5


def randomise(module, seed):
    """transformers initialises some of these weights to zero; random values make the comparison meaningful."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for name, b in module.named_buffers():
            if "bias" in name:
                b.copy_(torch.randn(b.shape, generator=g) * 0.05)   # a non-zero balancing bias
    return module


DEEPSEEK_CASES = [
    # (n_experts, n_group, topk_group, top_k, norm_topk_prob, scaling, n_shared)
    *[(16, 4, 2, 4, norm, scale, shared)
      for norm, scale, shared in itertools.product([True, False], [1.0, 2.5], [0, 1, 2])],
    (32, 8, 4, 8, True, 2.5, 1),     # V3's routing shape, scaled down (256/8/4/8)
    (8, 1, 1, 2, True, 1.0, 1),      # no groups
    (12, 3, 1, 2, False, 1.5, 2),    # a single group allowed
]


@pytest.mark.parametrize("case", DEEPSEEK_CASES, ids=lambda c: "E{}-g{}-tg{}-k{}-norm{}-s{}-sh{}".format(*c))
@pytest.mark.parametrize("dispatch", ["vectorised", "loop"])
def test_deepseek_v3_moe_equals_transformers(case, dispatch):
    n_experts, n_group, topk_group, top_k, norm, scale, shared = case
    config = DeepseekV3Config(hidden_size=32, moe_intermediate_size=16, n_routed_experts=n_experts, n_group=n_group,
                              topk_group=topk_group, num_experts_per_tok=top_k, norm_topk_prob=norm,
                              routed_scaling_factor=scale, n_shared_experts=shared)
    reference = randomise(DeepseekV3MoE(config), seed=n_experts + top_k + shared).eval()
    ours = from_transformers(reference)
    ours.config.dispatch = dispatch
    x = torch.randn(3, 20, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=ATOL, rtol=ATOL)
    assert ours.config.n_shared == shared and ours.balance_bias.abs().sum() > 0


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_softmax_router_equals_mixtral(top_k):
    config = MixtralConfig(hidden_size=32, intermediate_size=24, num_local_experts=8, num_experts_per_tok=top_k)
    reference = randomise(MixtralSparseMoeBlock(config), seed=top_k).eval()
    ours = from_transformers(reference)
    x = torch.randn(2, 15, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=ATOL, rtol=ATOL)


@pytest.mark.parametrize("norm", [True, False])
def test_softmax_router_equals_qwen2_moe_routed_part(norm):
    config = Qwen2MoeConfig(hidden_size=32, moe_intermediate_size=16, shared_expert_intermediate_size=16,
                            num_experts=8, num_experts_per_tok=2, norm_topk_prob=norm)
    reference = randomise(Qwen2MoeSparseMoeBlock(config), seed=7).eval()
    ours = from_transformers(reference)
    x = torch.randn(2, 15, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        flat = x.view(-1, 32)
        shared = torch.sigmoid(reference.shared_expert_gate(flat)) * reference.shared_expert(flat)
        torch.testing.assert_close(ours(x), reference(x) - shared.view_as(x), atol=ATOL, rtol=ATOL)


def test_from_transformers_rejects_other_modules():
    with pytest.raises(TypeError, match="DeepseekV3MoE"):
        from_transformers(torch.nn.Linear(2, 2))


def test_loop_and_vectorised_agree_in_outputs_and_gradients():
    config = DeepseekV3Config(hidden_size=32, moe_intermediate_size=16, n_routed_experts=16, n_group=4, topk_group=2,
                              num_experts_per_tok=4, n_shared_experts=1, routed_scaling_factor=2.5)
    base = from_transformers(randomise(DeepseekV3MoE(config), seed=3))
    results = {}
    for dispatch in ("loop", "vectorised"):
        moe = from_transformers(randomise(DeepseekV3MoE(config), seed=3))
        moe.config.dispatch = dispatch
        x = torch.randn(64, 32, generator=torch.Generator().manual_seed(5), requires_grad=True)
        moe(x).pow(2).sum().backward()
        results[dispatch] = (moe(x).detach(), x.grad, {n: p.grad for n, p in moe.named_parameters()})
    out_l, gx_l, gp_l = results["loop"]
    out_v, gx_v, gp_v = results["vectorised"]
    torch.testing.assert_close(out_v, out_l, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gx_v, gx_l, atol=1e-6, rtol=1e-5)
    for name in gp_l:
        torch.testing.assert_close(gp_v[name], gp_l[name], atol=1e-6, rtol=1e-5, msg=name)
    assert isinstance(base, MoE)


def test_the_comparison_can_fail():
    """Guard against a vacuous test: dropping the balancing bias or the group limit changes the output."""
    config = DeepseekV3Config(hidden_size=32, moe_intermediate_size=16, n_routed_experts=16, n_group=4, topk_group=1,
                              num_experts_per_tok=4, n_shared_experts=1)
    reference = randomise(DeepseekV3MoE(config), seed=11).eval()
    x = torch.randn(40, 32, generator=torch.Generator().manual_seed(3))
    no_bias = from_transformers(reference)
    no_bias.balance_bias.zero_()
    no_groups = from_transformers(reference)
    no_groups.config.n_group = no_groups.config.topk_group = 1
    with torch.no_grad():
        expected = reference(x)
        assert (no_bias(x) - expected).abs().max() > 1e-3
        assert (no_groups(x) - expected).abs().max() > 1e-3
