"""What tokens cost: DeepSeek's API prices (dated and sourced) against renting a GPU by the hour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

PRICING_PAGE = "https://api-docs.deepseek.com/quick_start/pricing"


@dataclass(frozen=True)
class ApiPrice:
    """US dollars per million tokens."""

    api_model: str
    serves: str               # catalog model behind the API name on that date
    input_cache_hit: float
    input_cache_miss: float
    output: float
    off_peak_input_cache_hit: float    # the prices listed for 16:30-00:30 UTC (listed, not computed from a
    off_peak_input_cache_miss: float   # discount: the page rounded them, e.g. R1's 75% off $2.19 was listed as $0.55)
    off_peak_output: float
    as_of: str
    source: str


# The price list in force on 2025-03-06 (off-peak prices began 2025-02-26; the list was replaced 2025-09-05).
# Off-peak, both models were listed at the same prices: $0.035 / $0.135 / $0.550 per million.
API_PRICES = {
    "deepseek-chat": ApiPrice("deepseek-chat", "deepseek-ai/DeepSeek-V3", 0.07, 0.27, 1.10, 0.035, 0.135, 0.550,
                              "2025-03-06", PRICING_PAGE),
    "deepseek-reasoner": ApiPrice("deepseek-reasoner", "deepseek-ai/DeepSeek-R1", 0.14, 0.55, 2.19, 0.035, 0.135,
                                  0.550, "2025-03-06", PRICING_PAGE),
}
OFF_PEAK_START, OFF_PEAK_END = time(16, 30), time(0, 30)   # UTC


def _price(api_model: str) -> ApiPrice:
    if api_model not in API_PRICES:
        raise ValueError(f"unknown API model {api_model!r}; known: {', '.join(API_PRICES)}")
    return API_PRICES[api_model]


def is_off_peak(when: datetime) -> bool:
    """True inside the discount window 16:30-00:30 UTC (it wraps past midnight). Naive datetimes are UTC."""
    t = (when if when.tzinfo is None else when.astimezone(UTC)).time()
    return t >= OFF_PEAK_START or t < OFF_PEAK_END


def api_cost(api_model: str, input_tokens: int, output_tokens: int, *, cache_hit_rate: float = 0.0,
             off_peak: bool = False) -> float:
    """Dollars for one workload. A reasoner's output tokens include its reasoning, billed like the answer."""
    if not 0.0 <= cache_hit_rate <= 1.0:
        raise ValueError(f"cache_hit_rate must be in [0, 1], got {cache_hit_rate!r}")
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts must be non-negative")
    p = _price(api_model)
    hit, miss, out = ((p.off_peak_input_cache_hit, p.off_peak_input_cache_miss, p.off_peak_output) if off_peak
                      else (p.input_cache_hit, p.input_cache_miss, p.output))
    return (input_tokens * (cache_hit_rate * hit + (1 - cache_hit_rate) * miss) + output_tokens * out) / 1e6


def self_hosted_cost_per_million(gpu_hourly_usd: float, n_gpus: int, tokens_per_second: float,
                                 utilisation: float = 1.0) -> float:
    """Dollars per million generated tokens from a rented machine that generates ``tokens_per_second`` while busy
    and is busy ``utilisation`` of the hours paid for (a service idles at night; the rent does not stop)."""
    if gpu_hourly_usd <= 0 or n_gpus <= 0 or tokens_per_second <= 0:
        raise ValueError("hourly price, GPU count and tokens per second must all be positive")
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation is the busy share of the paid hours, in (0, 1]; got {utilisation!r}")
    return gpu_hourly_usd * n_gpus / (tokens_per_second * utilisation * 3600) * 1e6


def break_even_tokens_per_second(gpu_hourly_usd: float, n_gpus: int, api_usd_per_million: float) -> float:
    """The sustained output rate at which renting GPUs costs the same per token as the API."""
    if api_usd_per_million <= 0:
        raise ValueError("the API price must be positive")
    return gpu_hourly_usd * n_gpus / 3600 / api_usd_per_million * 1e6


# ---------------------------------------------------------------- what training cost

V3_PAPER = "DeepSeek-AI, DeepSeek-V3 Technical Report, arXiv:2412.19437 (2024), Table 1"
# H800 GPU-hours of DeepSeek-V3's training run, and the rental price the paper assumed for its $5.576M.
V3_GPU_HOURS = {"pre-training": 2_664_000, "context extension": 119_000, "post-training": 5_000}
V3_USD_PER_GPU_HOUR = 2.0
# Dense tensor-core peak of one H800 SXM in FLOP/s (NVIDIA's H100 SXM figures; the H800 differs from the H100 in
# interconnect bandwidth, not in these).
H800_PEAK_FLOPS = {"bf16": 989e12, "fp8": 1979e12}


def training_flops(active_parameters: float, tokens: float) -> float:
    """The usual estimate of a transformer's training compute: 6 FLOPs per active parameter per token (2 forward,
    4 backward). It leaves out attention's own FLOPs and, for V3, the multi-token-prediction module."""
    if active_parameters <= 0 or tokens <= 0:
        raise ValueError("active_parameters and tokens must be positive")
    return 6.0 * active_parameters * tokens


def utilisation(flops: float, gpu_hours: float, peak_flops: float) -> float:
    """The share of the GPUs' peak that ``flops`` done in ``gpu_hours`` implies (model FLOPs utilisation)."""
    if gpu_hours <= 0 or peak_flops <= 0:
        raise ValueError("gpu_hours and peak_flops must be positive")
    return flops / (gpu_hours * 3600 * peak_flops)
