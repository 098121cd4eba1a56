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
