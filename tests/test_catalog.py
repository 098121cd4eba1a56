"""The catalog's arithmetic against the real transformers model classes, built on the meta device (no weights)."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from course_utils import catalog


def meta_model(name):
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(catalog.transformers_config(name))


@pytest.mark.parametrize("name", [n for n in catalog.MODELS if n != "deepseek-ai/DeepSeek-V3-Base"])
def test_parameter_count_equals_transformers_model(name):
    model = meta_model(name)
    assert type(model).__name__ == catalog.MODELS[name].architecture
    total, active = catalog.count_parameters(name)
    assert total == sum(p.numel() for p in model.parameters())
    # Active: every parameter outside the routed experts, plus k/N of them (independent of the formulas).
    routed = sum(p.numel() for n, p in model.named_parameters() if ".mlp.experts." in n)
    c = catalog.MODELS[name].config
    k_of_n = c["num_experts_per_tok"] / c["n_routed_experts"] if "n_routed_experts" in c else 1.0
    assert active == pytest.approx(total - routed + routed * k_of_n, rel=1e-12)


def test_headline_sizes_come_out_of_the_configs():
    total, active = catalog.count_parameters("deepseek-ai/DeepSeek-V3")
    assert round(total / 1e9) == 671                   # V3 paper: 671B total
    assert 36.5e9 < active < 38e9                       # V3 paper: 37B activated per token
    assert round(catalog.count_parameters("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")[0] / 1e7) == 178
    assert catalog.count_parameters("R1")[0] == total   # same architecture
    # Hub: 685B = 671B main model + 14B multi-token-prediction module
    assert abs((total + catalog.mtp_module_parameters()) / 1e9 - 685) < 1


def test_every_distill_is_near_its_name():
    for name in catalog.DISTILLS:
        named = catalog.PUBLISHED_SIZE[name][0]
        assert 0.9 < catalog.count_parameters(name)[0] / named < 1.2, name


def test_kv_cache_per_token():
    # Qwen-1.5B: 2 (K and V) x 28 layers x 2 KV heads x 128 dims x 2 bytes
    assert catalog.kv_cache_bytes_per_token("R1-Distill-Qwen-1.5B") == 2 * 28 * 2 * 128 * 2
    # V3's MLA: 61 layers x (512 latent + 64 rotary) x 2 bytes, against 128 heads x (192 + 128) for plain MHA
    assert catalog.kv_cache_bytes_per_token("V3") == 61 * 576 * 2
    assert catalog.kv_cache_bytes_per_token("V3", attention="mha") == 61 * 128 * 320 * 2
    assert catalog.kv_cache_bytes_per_token("R1-Distill-Llama-8B", "fp8") == 2 * 32 * 8 * 128


def test_weight_memory_per_dtype():
    total = catalog.count_parameters("R1")[0]
    assert catalog.weight_bytes("R1", "fp8") == total
    assert catalog.weight_bytes("R1", "bf16") == 2 * total
    assert catalog.weight_bytes("R1", "int4") == total / 2


def test_every_model_has_sources_date_license_and_parent():
    for m in catalog.MODELS.values():
        assert m.sources and m.license and m.release_date.startswith("202")
        assert m.parent is None or m.parent in catalog.MODELS
        if m.kind == "distill":
            assert {"aime_2024", "math_500", "gpqa_diamond"} <= m.scores.keys()


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="DeepSeek-R1-Distill-Qwen-7B"):
        catalog.resolve("deepseek-ai/DeepSeek-R1-Distil-Qwen-7B")
    with pytest.raises(ValueError, match="Known models"):
        catalog.count_parameters("gpt-5")
    with pytest.raises(ValueError, match="non-empty"):
        catalog.resolve("")


def test_unknown_dtype_lists_the_accepted_ones():
    with pytest.raises(ValueError, match="bfloat16"):
        catalog.weight_bytes("R1", "int3")


def test_short_names_resolve():
    assert catalog.resolve("r1-distill-llama-70b").name == "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"
    assert catalog.resolve("DeepSeek-V3-0324").short == "V3-0324"


def test_v3_0324_gains_are_the_cards_own_before_and_after():
    gains = catalog.V3_0324_GAINS
    assert gains["aime_2024"] == (39.6, 59.4)
    assert all(after > before for before, after in gains.values())
    assert catalog.resolve("V3-0324").scores["aime_2024"] == gains["aime_2024"][1]
