"""The course's modules checked against the production implementations in ``transformers``, on small random
configurations: the comparison tables notebook 01 shows (and notebook 07 for attention). The test suite runs wider
sweeps of the same comparisons."""

from __future__ import annotations

import warnings

import torch


def randomised(module: torch.nn.Module, seed: int, scale: float = 0.1) -> torch.nn.Module:
    """``module`` with every parameter (and a DeepSeek router's balancing bias) drawn at random from ``seed``: a
    freshly built transformers module has zeros or ones in places, which would hide differences."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
        gate_bias = getattr(getattr(module, "gate", None), "e_score_correction_bias", None)
        if gate_bias is not None:
            gate_bias.copy_(torch.randn(gate_bias.shape, generator=generator) * scale / 2)
    return module.eval()


def moe_error(reference: torch.nn.Module, hidden: int = 64, tokens: int = 50, seed: int = 0) -> float:
    """Largest absolute difference between ``reference`` and the course MoE holding its weights, on random input."""
    from course_utils.moe import from_transformers

    x = torch.randn(4, tokens, hidden, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return (from_transformers(reference)(x) - reference(x)).abs().max().item()


# (n_group, topk_group, norm_topk_prob, routed_scaling_factor, shared experts)
MOE_SETTINGS = [(8, 4, True, 2.5, 1), (4, 2, False, 1.0, 0), (4, 1, True, 1.5, 2), (1, 1, True, 1.0, 1)]


def moe_equivalence_rows() -> list[dict]:
    """Notebook 01's table: the course MoE against transformers' DeepseekV3MoE on four routing settings (V3's own,
    no renormalisation, one group, no groups) and against MixtralSparseMoeBlock's softmax router."""
    import transformers
    from transformers import DeepseekV3Config, MixtralConfig
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    transformers.logging.set_verbosity_error()   # a standalone module's notice
    rows = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")   # no shared expert
        for seed, (n_group, topk_group, norm, scale, shared) in enumerate(MOE_SETTINGS):
            config = DeepseekV3Config(hidden_size=64, moe_intermediate_size=32, n_routed_experts=32,
                                      num_experts_per_tok=4, n_group=n_group, topk_group=topk_group,
                                      norm_topk_prob=norm, routed_scaling_factor=scale, n_shared_experts=shared)
            error = moe_error(randomised(DeepseekV3MoE(config), seed=seed), seed=seed)
            rows.append({"reference": "DeepseekV3MoE", "groups": f"{topk_group} of {n_group}",
                         "norm_topk_prob": norm, "scaling": scale, "shared": shared, "max_abs_error": error})
    mixtral = MixtralConfig(hidden_size=64, intermediate_size=32, num_local_experts=8, num_experts_per_tok=2)
    error = moe_error(randomised(MixtralSparseMoeBlock(mixtral), seed=9), seed=9)
    rows.append({"reference": "MixtralSparseMoeBlock", "groups": "-", "norm_topk_prob": True, "scaling": 1.0,
                 "shared": 0, "max_abs_error": error})
    return rows
