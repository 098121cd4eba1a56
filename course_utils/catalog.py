"""The DeepSeek family as data, and the arithmetic that follows from each model's own config.

Every number typed in here is copied from a public source named beside it (a model's ``config.json`` on the
Hugging Face Hub, a model card, a paper). Totals are never typed in: parameter counts, weight memory and KV-cache
sizes are computed from the config numbers, and ``tests/test_catalog.py`` checks the counts against the real
``transformers`` model classes built on the meta device.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

GIB = 2**30          # bytes in a GiB: the unit of every memory figure in the course (nvidia-smi's MiB / 1024)
HUB = "https://huggingface.co"
V3_PAPER = "DeepSeek-AI, DeepSeek-V3 Technical Report, arXiv:2412.19437 (2024)"
R1_PAPER = "DeepSeek-AI, DeepSeek-R1: Incentivizing Reasoning Capability in LLMs via RL, arXiv:2501.12948 (2025)"
R1_CARD = f"{HUB}/deepseek-ai/DeepSeek-R1 (model card, 'Evaluation Results' tables)"
V3_0324_CARD = f"{HUB}/deepseek-ai/DeepSeek-V3-0324 (model card, benchmark table)"

BYTES_PER_PARAM = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
                 "float8": "fp8", "fp8_e4m3": "fp8"}

# DeepSeek-V3's config.json (shared by V3-Base, V3, V3-0324, R1-Zero and R1: one architecture, different training).
_V3_CONFIG = dict(
    model_type="deepseek_v3", vocab_size=129280, hidden_size=7168, intermediate_size=18432,
    moe_intermediate_size=2048, num_hidden_layers=61, num_attention_heads=128, num_key_value_heads=128,
    n_shared_experts=1, n_routed_experts=256, routed_scaling_factor=2.5, kv_lora_rank=512, q_lora_rank=1536,
    qk_rope_head_dim=64, v_head_dim=128, qk_nope_head_dim=128, n_group=8, topk_group=4, num_experts_per_tok=8,
    first_k_dense_replace=3, norm_topk_prob=True, max_position_embeddings=163840, tie_word_embeddings=False,
    num_nextn_predict_layers=1, torch_dtype="bfloat16", rope_theta=10000,
    # YaRN from 4K to 160K positions (factor 40); mscale_all_dim also scales the attention softmax (notebook 07)
    rope_scaling=dict(type="yarn", factor=40, original_max_position_embeddings=4096, beta_fast=32, beta_slow=1,
                      mscale=1.0, mscale_all_dim=1.0),
)


def _qwen2(vocab, hidden, inter, layers, heads, kv_heads, rope_theta):
    return dict(model_type="qwen2", vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                max_position_embeddings=131072, rope_theta=rope_theta, tie_word_embeddings=False,
                torch_dtype="bfloat16")


def _llama(hidden, inter, layers, heads, kv_heads):
    return dict(model_type="llama", vocab_size=128256, hidden_size=hidden, intermediate_size=inter,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                max_position_embeddings=131072, rope_theta=500000.0, tie_word_embeddings=False,
                attention_bias=False, mlp_bias=False, torch_dtype="bfloat16")


@dataclass(frozen=True)
class ModelFacts:
    """What the public record says about one model. ``parent`` is the model it was trained from."""

    name: str                      # id on the Hugging Face Hub
    short: str                     # the name people say
    kind: str                      # "base", "chat", "reasoner" or "distill"
    parent: str | None
    base_model: str                # the pretrained model whose weights it started from
    architecture: str              # transformers class in config.json
    config: dict
    context_length: int            # tokens, as the model card states it
    license: str
    release_date: str              # ISO date of the Hub release
    scores: dict = field(default_factory=dict)   # benchmark -> published score (percent, or Elo rating)
    sources: dict = field(default_factory=dict)  # what -> where it was read

    @property
    def hub_url(self) -> str:
        return f"{HUB}/{self.name}"


def _config_source(name: str) -> str:
    return f"{HUB}/{name}/blob/main/config.json"


def _v3_family(name, short, kind, parent, base, license, date, scores, score_source):
    return ModelFacts(name, short, kind, parent, base, "DeepseekV3ForCausalLM", _V3_CONFIG, 131072, license, date,
                      scores, {"config": _config_source("deepseek-ai/DeepSeek-V3"), "scores": score_source,
                               "architecture": V3_PAPER, "model card": f"{HUB}/{name}"})


# Scores: R1 model card tables (pass@1 in percent; Codeforces as an Elo-like rating).
# Keys: aime_2024, aime_2024_cons64, math_500, gpqa_diamond, livecodebench, codeforces_rating, mmlu.
_FAMILY = [
    _v3_family("deepseek-ai/DeepSeek-V3-Base", "V3-Base", "base", None, "DeepSeek-V3-Base (pretrained on 14.8T tokens)",
               "DeepSeek Model License (code: MIT)", "2024-12-26", {}, V3_PAPER),
    _v3_family("deepseek-ai/DeepSeek-V3", "V3", "chat", "deepseek-ai/DeepSeek-V3-Base", "DeepSeek-V3-Base",
               "DeepSeek Model License (code: MIT)", "2024-12-26",
               dict(mmlu=88.5, math_500=90.2, aime_2024=39.2, gpqa_diamond=59.1, livecodebench=36.2,
                    codeforces_rating=1134),
               f"{R1_CARD}; LiveCodeBench from {R1_PAPER}, Table 4 (the card shows '-' for V3 there)"),
    _v3_family("deepseek-ai/DeepSeek-V3-0324", "V3-0324", "chat", "deepseek-ai/DeepSeek-V3", "DeepSeek-V3-Base",
               "MIT", "2025-03-24",
               dict(aime_2024=59.4, gpqa_diamond=68.4, livecodebench=49.2, mmlu_pro=81.2), V3_0324_CARD),
    _v3_family("deepseek-ai/DeepSeek-R1-Zero", "R1-Zero", "reasoner", "deepseek-ai/DeepSeek-V3-Base",
               "DeepSeek-V3-Base", "MIT", "2025-01-20",
               dict(aime_2024=71.0, aime_2024_cons64=86.7, math_500=95.9, gpqa_diamond=73.3, livecodebench=50.0,
                    codeforces_rating=1444), f"{R1_PAPER}, Table 2"),
    _v3_family("deepseek-ai/DeepSeek-R1", "R1", "reasoner", "deepseek-ai/DeepSeek-V3-Base", "DeepSeek-V3-Base",
               "MIT", "2025-01-20",
               dict(mmlu=90.8, math_500=97.3, aime_2024=79.8, gpqa_diamond=71.5, livecodebench=65.9,
                    codeforces_rating=2029), R1_CARD),
]

_DISTILLS = [
    # (short, base model on the Hub, architecture, config, license of the base, R1-card scores)
    ("Qwen-1.5B", "Qwen/Qwen2.5-Math-1.5B", "Qwen2ForCausalLM", _qwen2(151936, 1536, 8960, 28, 12, 2, 10000.0),
     "MIT (base: Apache 2.0)", (28.9, 52.7, 83.9, 33.8, 16.9, 954)),
    ("Qwen-7B", "Qwen/Qwen2.5-Math-7B", "Qwen2ForCausalLM", _qwen2(152064, 3584, 18944, 28, 28, 4, 10000.0),
     "MIT (base: Apache 2.0)", (55.5, 83.3, 92.8, 49.1, 37.6, 1189)),
    ("Llama-8B", "meta-llama/Llama-3.1-8B", "LlamaForCausalLM", _llama(4096, 14336, 32, 32, 8),
     "MIT (base: Llama 3.1 license)", (50.4, 80.0, 89.1, 49.0, 39.6, 1205)),
    ("Qwen-14B", "Qwen/Qwen2.5-14B", "Qwen2ForCausalLM", _qwen2(152064, 5120, 13824, 48, 40, 8, 1000000.0),
     "MIT (base: Apache 2.0)", (69.7, 80.0, 93.9, 59.1, 53.1, 1481)),
    ("Qwen-32B", "Qwen/Qwen2.5-32B", "Qwen2ForCausalLM", _qwen2(152064, 5120, 27648, 64, 40, 8, 1000000.0),
     "MIT (base: Apache 2.0)", (72.6, 83.3, 94.3, 62.1, 57.2, 1691)),
    ("Llama-70B", "meta-llama/Llama-3.3-70B-Instruct", "LlamaForCausalLM", _llama(8192, 28672, 80, 64, 8),
     "MIT (base: Llama 3.3 license)", (70.0, 86.7, 94.5, 65.2, 57.5, 1633)),
]
_SCORE_KEYS = ("aime_2024", "aime_2024_cons64", "math_500", "gpqa_diamond", "livecodebench", "codeforces_rating")

for _short, _base, _arch, _cfg, _license, _scores in _DISTILLS:
    _name = f"deepseek-ai/DeepSeek-R1-Distill-{_short}"
    _FAMILY.append(ModelFacts(
        _name, f"R1-Distill-{_short}", "distill", "deepseek-ai/DeepSeek-R1", _base, _arch, _cfg, 131072,
        _license, "2025-01-20", dict(zip(_SCORE_KEYS, _scores, strict=True)),
        {"config": _config_source(_name), "scores": R1_CARD, "method": f"{R1_PAPER}, section 2.4",
         "model card": f"{HUB}/{_name}"}))

# Models outside the family, as the R1 paper (arXiv v1) reports them beside R1 (Table 4) and the distills (Table 5);
# same keys and units as the family's scores. o1-1217 appears in Table 4 only, without cons@64.
OTHER_MODELS = {
    "GPT-4o-0513": dict(aime_2024=9.3, aime_2024_cons64=13.4, math_500=74.6, gpqa_diamond=49.9, livecodebench=32.9,
                        codeforces_rating=759),
    "Claude-3.5-Sonnet-1022": dict(aime_2024=16.0, aime_2024_cons64=26.7, math_500=78.3, gpqa_diamond=65.0,
                                   livecodebench=38.9, codeforces_rating=717),
    "OpenAI-o1-mini": dict(aime_2024=63.6, aime_2024_cons64=80.0, math_500=90.0, gpqa_diamond=60.0, livecodebench=53.8,
                           codeforces_rating=1820),
    "QwQ-32B-Preview": dict(aime_2024=50.0, aime_2024_cons64=60.0, math_500=90.6, gpqa_diamond=54.5,
                            livecodebench=41.9, codeforces_rating=1316),
    "OpenAI-o1-1217": dict(aime_2024=79.2, math_500=96.4, gpqa_diamond=75.7, livecodebench=63.4,
                           codeforces_rating=2061),
}
OTHER_MODELS_SOURCE = f"{R1_PAPER}, v1: Table 4 (o1-1217) and Table 5 (the others)"

# V3-0324's model card compares it with V3 in its own table: (V3, V3-0324). Its V3 column is the card's own run and
# differs from the R1 card's V3 row (AIME 2024: 39.6 here, 39.2 there), so compare within one card.
V3_0324_GAINS = {"mmlu_pro": (75.9, 81.2), "gpqa_diamond": (59.1, 68.4), "aime_2024": (39.6, 59.4),
                 "livecodebench": (39.2, 49.2)}

MODELS: dict[str, ModelFacts] = {m.name: m for m in _FAMILY}
DISTILLS = [m.name for m in _FAMILY if m.kind == "distill"]

# Published headline sizes, to set beside the computed ones (V3 paper abstract; the distills' names).
PUBLISHED_SIZE = {m.name: (671e9, 37e9) for m in _FAMILY if m.architecture == "DeepseekV3ForCausalLM"}
PUBLISHED_SIZE.update({name: (float(name.rsplit("-", 1)[1][:-1]) * 1e9,) * 2 for name in DISTILLS})


def resolve(name: str) -> ModelFacts:
    """Find a model by Hub id or short name (any case); an unknown name raises with the closest matches."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    wanted = name.strip().lower()
    for m in _FAMILY:
        if wanted in (m.name.lower(), m.short.lower(), m.name.split("/")[1].lower()):
            return m
    everything = [m.name for m in _FAMILY] + [m.short for m in _FAMILY]
    close = difflib.get_close_matches(name, everything, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(MODELS)}.")


def transformers_config(name: str):
    """The model's config as the real ``transformers`` config class (no download: built from the numbers above)."""
    from transformers import AutoConfig

    cfg = dict(resolve(name).config)
    return AutoConfig.for_model(cfg.pop("model_type"), **cfg)


# ---------------------------------------------------------------- parameter arithmetic


def _dense_layer(c: dict) -> dict:
    h, heads, kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    head_dim = c.get("head_dim") or h // heads
    qkv_bias = c["model_type"] == "qwen2" or c.get("attention_bias", False)
    attention = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h
    if qkv_bias:
        attention += heads * head_dim + 2 * kv * head_dim
    return {"attention": attention, "mlp": 3 * h * c["intermediate_size"], "norms": 2 * h}


def _mla_attention(c: dict) -> int:
    """Multi-head latent attention: queries and keys/values pass through low-rank 'latent' projections."""
    h, heads = c["hidden_size"], c["num_attention_heads"]
    qk_head = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    if c.get("q_lora_rank"):
        q = h * c["q_lora_rank"] + c["q_lora_rank"] + c["q_lora_rank"] * heads * qk_head
    else:
        q = h * heads * qk_head
    kv = (h * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) + c["kv_lora_rank"]
          + c["kv_lora_rank"] * heads * (c["qk_nope_head_dim"] + c["v_head_dim"]))
    return q + kv + heads * c["v_head_dim"] * h


def parameter_breakdown(name: str) -> dict[str, int]:
    """Parameters by component, summed over the whole model (the main model; V3's MTP module is apart)."""
    c = resolve(name).config
    h, vocab, layers = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
    parts = {"embedding": vocab * h, "lm_head": 0 if c["tie_word_embeddings"] else vocab * h, "final_norm": h}
    if c["model_type"] != "deepseek_v3":
        layer = _dense_layer(c)
        parts.update(attention=layers * layer["attention"], dense_mlp=layers * layer["mlp"],
                     layer_norms=layers * layer["norms"])
        return parts
    moe_layers = layers - c["first_k_dense_replace"]
    expert = 3 * h * c["moe_intermediate_size"]
    parts.update(
        attention=layers * _mla_attention(c),
        layer_norms=layers * 2 * h,
        dense_mlp=c["first_k_dense_replace"] * 3 * h * c["intermediate_size"],
        routed_experts=moe_layers * c["n_routed_experts"] * expert,
        shared_experts=moe_layers * c["n_shared_experts"] * expert,
        router=moe_layers * c["n_routed_experts"] * h,
    )
    return parts


def count_parameters(name: str) -> tuple[int, int]:
    """(total, active per token). Active counts every weight a token passes through: all but the
    routed experts it was not sent to (k of N per MoE layer). For a dense model the two are equal."""
    parts = parameter_breakdown(name)
    total = sum(parts.values())
    c = resolve(name).config
    if "routed_experts" not in parts:
        return total, total
    unused = parts["routed_experts"] * (c["n_routed_experts"] - c["num_experts_per_tok"]) // c["n_routed_experts"]
    return total, total - unused


def mtp_module_parameters(name: str = "deepseek-ai/DeepSeek-V3") -> int:
    """V3's multi-token-prediction module as stored on the Hub: one more MoE layer, the projection that merges
    the two inputs, three norms, and its own copy of the embedding and output head (V3 paper, section 2.2)."""
    c = resolve(name).config
    h = c["hidden_size"]
    expert = 3 * h * c["moe_intermediate_size"]
    layer = (_mla_attention(c) + 2 * h + (c["n_routed_experts"] + c["n_shared_experts"]) * expert
             + c["n_routed_experts"] * h)
    merge = 2 * h * h + 3 * h   # eh_proj, plus enorm, hnorm and the shared head's norm
    return c["num_nextn_predict_layers"] * (layer + merge + 2 * c["vocab_size"] * h)


# ---------------------------------------------------------------- memory arithmetic


def normalise_dtype(dtype: str) -> str:
    key = DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
    if key not in BYTES_PER_PARAM:
        raise ValueError(f"unknown dtype {dtype!r}; accepted: {', '.join(BYTES_PER_PARAM)} "
                         f"(aliases: {', '.join(DTYPE_ALIASES)})")
    return key


def weight_bytes(name: str, dtype: str = "bfloat16") -> float:
    """Bytes to hold every weight in one dtype (ignores the few tensors real checkpoints keep in higher precision
    and the per-block scales of fp8/int4 formats, about 1-3% more)."""
    return count_parameters(name)[0] * BYTES_PER_PARAM[normalise_dtype(dtype)]


def kv_cache_bytes_per_token(name: str, dtype: str = "bfloat16", attention: str = "native") -> float:
    """KV-cache bytes one token occupies, summed over layers.

    attention="native": what the model caches. Grouped-query attention stores a key and a value of ``head_dim``
    for each of the ``num_key_value_heads``; V3's multi-head latent attention stores one compressed latent of
    ``kv_lora_rank`` plus one shared rotary key of ``qk_rope_head_dim`` per layer.
    attention="mha": what plain multi-head attention with the same heads would store (for comparison).
    """
    return config_kv_bytes_per_token(resolve(name).config, dtype, attention)


def config_kv_bytes_per_token(c: dict, dtype: str = "bfloat16", attention: str = "native") -> float:
    """``kv_cache_bytes_per_token`` for any config.json (a dict), e.g. a local checkpoint's."""
    size = BYTES_PER_PARAM[normalise_dtype(dtype)]
    layers, heads = c["num_hidden_layers"], c["num_attention_heads"]
    if attention not in ("native", "mha"):
        raise ValueError(f"attention must be 'native' or 'mha', got {attention!r}")
    if c["model_type"] == "deepseek_v3":
        if attention == "native":
            return layers * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * size
        return layers * heads * (c["qk_nope_head_dim"] + c["qk_rope_head_dim"] + c["v_head_dim"]) * size
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    kv_heads = c["num_key_value_heads"] if attention == "native" else heads
    return 2 * layers * kv_heads * head_dim * size


def family_table() -> list[dict]:
    """One row per model: the facts and the computed sizes, ready for ``pandas.DataFrame``."""
    rows = []
    for m in _FAMILY:
        total, active = count_parameters(m.name)
        rows.append(dict(model=m.short, hub_id=m.name, kind=m.kind, base_model=m.base_model,
                         architecture=m.architecture, total_params_B=round(total / 1e9, 2),
                         active_params_B=round(active / 1e9, 2), context=m.context_length,
                         license=m.license, released=m.release_date))
    return rows
