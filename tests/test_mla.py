"""The course's multi-head latent attention against transformers' DeepseekV3Attention, its two decoders against the
full forward, the bytes it caches against the calculator, and notebook 07's trained comparison's models."""

import math

import pytest
import torch

from course_utils import attention_lm, catalog, mla


@pytest.mark.parametrize("seed", range(4))
def test_mla_equals_transformers_deepseek_v3_attention_on_random_configs(seed):
    """Ranks, head counts, rope and nope sizes, with and without the query bottleneck, both rotary layouts, YaRN with
    and without mscale_all_dim: 10 configurations per seed, equal to float32 rounding."""
    for i, config in enumerate(mla.random_configs(10, seed=seed)):
        assert mla.largest_difference(config, seed=i, tokens=9) < 1e-5, config


def test_v3_s_own_attention_config_is_read_and_scaled_as_transformers_does():
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import yarn_apply_mscale

    config = catalog.transformers_config("deepseek-ai/DeepSeek-V3")
    ours = mla.MLAConfig.from_transformers(config)
    assert (ours.num_heads, ours.q_lora_rank, ours.kv_lora_rank, ours.qk_rope_head_dim) == (128, 1536, 512, 64)
    assert ours.softmax_scale() == pytest.approx(yarn_apply_mscale(config.rope_parameters, 192 ** -0.5))
    assert ours.softmax_scale() == pytest.approx(192 ** -0.5 * (0.1 * math.log(40) + 1) ** 2)


@pytest.mark.parametrize("seed", range(3))
def test_both_decoders_equal_the_full_forward(seed):
    for config in mla.random_configs(4, seed=100 + seed):
        attention, _ = mla.transformers_attention(config, seed)
        layer = mla.MLA.from_transformers(attention)
        x = torch.randn(2, 7, config.hidden_size, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            full = layer(x)
        for absorbed in (False, True):
            assert (mla.decode(layer, x, absorbed) - full).abs().max() < 1e-5


def test_the_cache_holds_the_latent_and_the_rope_key_only_as_the_calculator_says():
    v3 = mla.MLAConfig.from_transformers(catalog.transformers_config("deepseek-ai/DeepSeek-V3"))
    layers = catalog.resolve("V3").config["num_hidden_layers"]
    assert v3.kv_bytes_per_token(2) * layers == catalog.kv_cache_bytes_per_token("V3")
    assert v3.expanded_bytes_per_token(2) * layers == catalog.kv_cache_bytes_per_token("V3", attention="mha")
    small = mla.MLAConfig(32, 4, 8, 8, 4, 8)
    cache = {}
    layer = mla.MLA(small)
    with torch.no_grad():
        for t in range(5):
            layer.decode_absorbed(torch.randn(1, 1, 32), t, cache)
    assert {key: tuple(value.shape) for key, value in cache.items()} == {"latent": (1, 5, 8), "k_rope": (1, 5, 4)}


def test_transformers_refuses_nothing_we_copy_and_biases_are_refused_clearly():
    from transformers import DeepseekV3Config

    with pytest.raises(ValueError, match="attention_bias"):
        attention, _ = mla.transformers_attention(DeepseekV3Config(
            hidden_size=32, num_attention_heads=2, num_key_value_heads=2, q_lora_rank=None, kv_lora_rank=8,
            qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8, attention_bias=True))
        mla.MLA.from_transformers(attention)


def test_serving_comparison_agrees_with_the_calculator():
    from course_utils import hardware

    rows = {row["attention"]: row for row in mla.serving_comparison()}
    plan = hardware.plan_serving("R1", "H200", 8, use_all=True)
    assert abs(rows["MLA (as V3 and R1 are)"]["tensor-parallel: KV tokens per GPU"] - plan.kv_cache_tokens) < 64
    data_parallel = [row[k] for row in rows.values() for k in row if k.startswith("data-parallel")]
    assert data_parallel[0] > data_parallel[1] > data_parallel[2]      # MLA > GQA-8 > MHA


def test_the_three_toy_models_have_the_same_parameters_and_their_caches():
    counts = {kind: attention_lm.parameters(attention_lm.make_model(kind)) for kind in attention_lm.KINDS}
    assert max(counts.values()) - min(counts.values()) <= 0.01 * max(counts.values())
    shape = attention_lm.Shape()
    assert [shape.kv_values_per_token(k) for k in ("mha", "gqa", "mla")] == [256, 64, 48]
    with pytest.raises(ValueError, match="kind must be"):
        attention_lm.TinyLM("mqa", shape, 64)
