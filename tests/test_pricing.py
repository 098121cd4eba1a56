from datetime import UTC, datetime

import pytest

from course_utils import pricing


def test_prices_carry_date_and_source():
    for p in pricing.API_PRICES.values():
        assert p.as_of == "2025-03-06" and p.source.startswith("https://")
    assert pricing.API_PRICES["deepseek-chat"].output == 1.10
    assert pricing.API_PRICES["deepseek-reasoner"].output == 2.19


def test_off_peak_window_wraps_midnight():
    day = datetime(2025, 3, 6, tzinfo=UTC)
    assert pricing.is_off_peak(day.replace(hour=16, minute=30))
    assert pricing.is_off_peak(day.replace(hour=0, minute=29))
    assert not pricing.is_off_peak(day.replace(hour=0, minute=30))
    assert not pricing.is_off_peak(day.replace(hour=16, minute=29))


def test_api_cost():
    assert pricing.api_cost("deepseek-reasoner", 0, 1_000_000) == pytest.approx(2.19)
    # listed off-peak prices (not 75% off: that would be $5.475 for 10M output tokens)
    assert pricing.api_cost("deepseek-reasoner", 0, 10_000_000, off_peak=True) == pytest.approx(5.50)
    assert pricing.api_cost("deepseek-chat", 0, 10_000_000, off_peak=True) == pytest.approx(5.50)
    half_cached = pricing.api_cost("deepseek-reasoner", 1_000_000, 0, cache_hit_rate=0.5, off_peak=True)
    assert half_cached == pytest.approx((0.035 + 0.135) / 2)
    assert pricing.api_cost("deepseek-chat", 1_000_000, 0, cache_hit_rate=1.0) == pytest.approx(0.07)
    with pytest.raises(ValueError, match="known"):
        pricing.api_cost("deepseek-v9", 1, 1)


def test_break_even_is_where_costs_meet():
    rate = pricing.break_even_tokens_per_second(2.0, 8, 2.19)
    assert pricing.self_hosted_cost_per_million(2.0, 8, rate) == pytest.approx(2.19)


def test_v3_training_cost_arithmetic():
    from course_utils.pricing import H800_PEAK_FLOPS, V3_GPU_HOURS, V3_USD_PER_GPU_HOUR, training_flops, utilisation

    assert sum(V3_GPU_HOURS.values()) == 2_788_000                       # V3 paper, Table 1
    assert sum(V3_GPU_HOURS.values()) * V3_USD_PER_GPU_HOUR == 5_576_000
    flops = training_flops(37e9, 14.8e12)
    assert flops == pytest.approx(3.2856e24, rel=1e-4)
    mfu = utilisation(flops, V3_GPU_HOURS["pre-training"], H800_PEAK_FLOPS["bf16"])
    assert 0.30 < mfu < 0.40                                              # 3.29e24 / (2.664M h x 3600 s x 989e12)
    with pytest.raises(ValueError, match="positive"):
        training_flops(0, 1)
    with pytest.raises(ValueError, match="positive"):
        utilisation(1.0, 0, 1.0)


def test_other_models_are_the_r1_papers_reference_rows():
    from course_utils import catalog

    others = catalog.OTHER_MODELS
    assert others["OpenAI-o1-1217"]["aime_2024"] == 79.2 and "aime_2024_cons64" not in others["OpenAI-o1-1217"]
    distill_15 = catalog.resolve("R1-Distill-Qwen-1.5B").scores
    # The article's claim, checked: the 1.5B distill beats GPT-4o and Claude-3.5-Sonnet on AIME and MATH-500.
    for other in ("GPT-4o-0513", "Claude-3.5-Sonnet-1022"):
        assert distill_15["aime_2024"] > others[other]["aime_2024"]
        assert distill_15["math_500"] > others[other]["math_500"]
