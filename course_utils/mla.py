"""Multi-head latent attention (MLA), DeepSeek-V2's attention and V3's (V2 paper, section 2.1; V3 report, 2.1.1),
small and readable, and provably the production code: ``MLA.from_transformers`` copies the weights of a transformers
``DeepseekV3Attention`` and gives the same output.

Per token, MLA compresses the keys and values of *all* heads into one latent vector of ``kv_lora_rank`` numbers, and
keeps beside it one small rotary key of ``qk_rope_head_dim`` numbers shared by all heads: that pair is all the KV
cache holds. The heads' keys and values are up-projections of the latent (``kv_b``). The query goes through a
low-rank bottleneck too (``q_a`` -> RMSNorm -> ``q_b``), which saves activation memory in training, not cache.

Why the rotary part is separate ("decoupled RoPE"): RoPE rotates a key by its position. A rotated key cannot be an
up-projection of a position-free latent, so the cache would have to hold every head's rotated key. MLA instead gives
each head a position-free part (from the latent) and a rotary part (the shared small key, rotated once).

Decoding: ``decode_naive`` caches the latent and re-expands every cached token's keys and values at each step;
``decode_absorbed`` folds ``kv_b``'s key half into the query and its value half into the output, so attention runs in
the latent space and nothing is expanded (V2 paper, 2.1.2: the up-projections "absorbed").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class MLAConfig:
    hidden_size: int
    num_heads: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None = None      # None: a plain query projection (DeepSeek-V2-Lite)
    rope_theta: float = 10000.0
    rope_interleave: bool = True        # V3's rotary layout: pairs (x0, x1), (x2, x3), ... (transformers' default)
    rope_scaling: dict | None = None    # YaRN's settings (rope_type, factor, mscale, mscale_all_dim, ...)
    rms_norm_eps: float = 1e-6

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def softmax_scale(self) -> float:
        """1/sqrt(head size), times YaRN's mscale squared where the config extends the context with YaRN (V3: a
        factor of 40, mscale_all_dim 1.0): longer contexts flatten attention, and the larger scale sharpens it."""
        scale = self.qk_head_dim ** -0.5
        yarn = self.rope_scaling or {}
        if yarn.get("rope_type", "default") != "default" and yarn.get("mscale_all_dim"):
            mscale = yarn_mscale(yarn["factor"], yarn["mscale_all_dim"])
            scale *= mscale * mscale
        return scale

    @classmethod
    def from_transformers(cls, config) -> MLAConfig:
        """From a transformers ``DeepseekV3Config``."""
        rope = {k: v for k, v in (config.rope_parameters or {}).items() if k != "type"}   # "type": legacy name
        yarn = {k: v for k, v in rope.items() if k != "rope_theta"}
        return cls(config.hidden_size, config.num_attention_heads, config.kv_lora_rank, config.qk_nope_head_dim,
                   config.qk_rope_head_dim, config.v_head_dim, config.q_lora_rank, rope.get("rope_theta", 10000.0),
                   bool(config.rope_interleave), yarn if rope.get("rope_type", "default") != "default" else None,
                   config.rms_norm_eps)

    def kv_bytes_per_token(self, bytes_per_value: float = 2) -> float:
        """What MLA caches per token and layer: the latent and the shared rotary key."""
        return (self.kv_lora_rank + self.qk_rope_head_dim) * bytes_per_value

    def expanded_bytes_per_token(self, bytes_per_value: float = 2) -> float:
        """What caching the expanded keys and values of every head would take per token and layer."""
        return self.num_heads * (self.qk_head_dim + self.v_head_dim) * bytes_per_value


def yarn_mscale(factor: float, mscale: float) -> float:
    """YaRN's attention temperature term (DeepSeek's form): 0.1 x mscale x ln(factor) + 1 for a factor above 1."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(size)), eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotary_frequencies(config: MLAConfig) -> tuple[torch.Tensor, float]:
    """RoPE's inverse frequencies for the rotary dimensions, and the factor cos and sin are scaled by (1 without
    YaRN). With YaRN the frequencies come from transformers' own YaRN function: the lesson here is where RoPE goes,
    not how YaRN blends frequencies."""
    yarn = tuple(sorted((config.rope_scaling or {}).items()))
    return _frequencies(config.qk_rope_head_dim, config.rope_theta, yarn)


@functools.lru_cache(maxsize=64)
def _frequencies(dim: int, theta: float, yarn: tuple) -> tuple[torch.Tensor, float]:
    if not yarn:
        return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)), 1.0
    from transformers import DeepseekV3Config
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    settings = dict(yarn)
    longest = int(settings.get("original_max_position_embeddings", 4096) * settings.get("factor", 1))
    stand_in = DeepseekV3Config(qk_rope_head_dim=dim, max_position_embeddings=longest,
                                rope_parameters={"rope_theta": theta, **settings})
    return ROPE_INIT_FUNCTIONS[settings.get("rope_type", settings.get("type"))](stand_in)


def rotate(x: torch.Tensor, positions: torch.Tensor, config: MLAConfig) -> torch.Tensor:
    """RoPE on the last dimension of ``x`` ([..., tokens, rope dim]) at ``positions`` ([tokens]): each pair of
    numbers turned by an angle that grows with the position, one frequency per pair."""
    inv_freq, scaling = rotary_frequencies(config)
    angles = positions[:, None].float() * inv_freq[None, :]          # [tokens, dim / 2]
    cos, sin = angles.cos() * scaling, angles.sin() * scaling
    if config.rope_interleave:                                        # pairs (x0, x1), (x2, x3), ...
        first, second = x[..., 0::2], x[..., 1::2]
    else:                                                             # pairs (x0, x_half), (x1, x_half+1), ...
        first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


class MLA(nn.Module):
    """Causal multi-head latent attention over a sequence, and decoding one token at a time from the latent cache."""

    def __init__(self, config: MLAConfig):
        super().__init__()
        c = self.config = config
        if c.q_lora_rank is None:
            self.q = nn.Linear(c.hidden_size, c.num_heads * c.qk_head_dim, bias=False)
        else:
            self.q_a = nn.Linear(c.hidden_size, c.q_lora_rank, bias=False)
            self.q_norm = RMSNorm(c.q_lora_rank, c.rms_norm_eps)
            self.q_b = nn.Linear(c.q_lora_rank, c.num_heads * c.qk_head_dim, bias=False)
        self.kv_a = nn.Linear(c.hidden_size, c.kv_lora_rank + c.qk_rope_head_dim, bias=False)   # latent + rope key
        self.kv_norm = RMSNorm(c.kv_lora_rank, c.rms_norm_eps)
        self.kv_b = nn.Linear(c.kv_lora_rank, c.num_heads * (c.qk_nope_head_dim + c.v_head_dim), bias=False)
        self.o = nn.Linear(c.num_heads * c.v_head_dim, c.hidden_size, bias=False)

    # ---------------------------------------------------------------- the pieces

    def queries(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(position-free part, rotated part) of every head's query: [batch, heads, tokens, nope / rope dim]."""
        c = self.config
        q = self.q(x) if c.q_lora_rank is None else self.q_b(self.q_norm(self.q_a(x)))
        q = q.view(*x.shape[:2], c.num_heads, c.qk_head_dim).transpose(1, 2)
        q_nope, q_rope = q.split([c.qk_nope_head_dim, c.qk_rope_head_dim], dim=-1)
        return q_nope, rotate(q_rope, positions, c)

    def cache_entries(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the KV cache keeps per token: the normalised latent [batch, tokens, kv_lora_rank] and the rotated
        shared key [batch, tokens, rope dim]."""
        c = self.config
        latent, k_rope = self.kv_a(x).split([c.kv_lora_rank, c.qk_rope_head_dim], dim=-1)
        return self.kv_norm(latent), rotate(k_rope, positions, c)

    def expand(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every head's position-free key and value from the latents: [batch, heads, tokens, nope / v dim]."""
        c = self.config
        kv = self.kv_b(latent).view(*latent.shape[:2], c.num_heads, c.qk_nope_head_dim + c.v_head_dim)
        k_nope, v = kv.transpose(1, 2).split([c.qk_nope_head_dim, c.v_head_dim], dim=-1)
        return k_nope, v

    def attend(self, q_nope, q_rope, latent, k_rope, causal: bool) -> torch.Tensor:
        """Attention with keys [position-free from the latent | the shared rotary key], values from the latent;
        the heads' outputs through ``o``."""
        k_nope, v = self.expand(latent)
        k_rope = k_rope[:, None].expand(-1, q_nope.shape[1], -1, -1)   # one rotary key, shared by all heads
        scores = (q_nope @ k_nope.transpose(-1, -2) + q_rope @ k_rope.transpose(-1, -2)) * self.config.softmax_scale()
        if causal:
            queries, keys = scores.shape[-2:]
            future = torch.ones(queries, keys, dtype=torch.bool, device=scores.device).triu(keys - queries + 1)
            scores = scores.masked_fill(future, float("-inf"))
        out = scores.float().softmax(dim=-1).to(v.dtype) @ v             # [batch, heads, tokens, v dim]
        return self.o(out.transpose(1, 2).reshape(*out.shape[:1], out.shape[2], -1))

    # ---------------------------------------------------------------- the three ways to run it

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Causal self-attention over ``x`` [batch, tokens, hidden] at ``positions`` (default 0, 1, 2, ...)."""
        positions = torch.arange(x.shape[1], device=x.device) if positions is None else positions
        q_nope, q_rope = self.queries(x, positions)
        latent, k_rope = self.cache_entries(x, positions)
        return self.attend(q_nope, q_rope, latent, k_rope, causal=True)

    def decode_naive(self, x_new: torch.Tensor, position: int, cache: dict) -> torch.Tensor:
        """One new token [batch, 1, hidden]: append its latent and rotary key to ``cache`` (a dict with "latent" and
        "k_rope"), then attend over the whole cache, re-expanding every cached token's keys and values."""
        positions = torch.tensor([position], device=x_new.device)
        _append(cache, *self.cache_entries(x_new, positions))
        q_nope, q_rope = self.queries(x_new, positions)
        return self.attend(q_nope, q_rope, cache["latent"], cache["k_rope"], causal=False)

    def absorbed_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``kv_b`` split per head into W_UK [heads, nope, latent] (keys) and W_UV [heads, v, latent] (values)."""
        c = self.config
        w = self.kv_b.weight.view(c.num_heads, c.qk_nope_head_dim + c.v_head_dim, c.kv_lora_rank)
        return w[:, :c.qk_nope_head_dim], w[:, c.qk_nope_head_dim:]

    def decode_absorbed(self, x_new: torch.Tensor, position: int, cache: dict) -> torch.Tensor:
        """The same step with the up-projections absorbed: each head's query is turned into latent space
        (q_nope @ W_UK), scored against the cached latents directly, and the weighted sum of latents is turned into
        the head's value only once, after attention (@ W_UV). Nothing per cached token is expanded."""
        positions = torch.tensor([position], device=x_new.device)
        _append(cache, *self.cache_entries(x_new, positions))
        q_nope, q_rope = self.queries(x_new, positions)                # [batch, heads, 1, nope / rope]
        w_uk, w_uv = self.absorbed_weights()
        q_latent = torch.einsum("bhqn,hnl->bhql", q_nope, w_uk)        # the query in latent space
        scores = (torch.einsum("bhql,btl->bhqt", q_latent, cache["latent"])
                  + torch.einsum("bhqr,btr->bhqt", q_rope, cache["k_rope"])) * self.config.softmax_scale()
        weights = scores.float().softmax(dim=-1).to(q_latent.dtype)
        mixed = torch.einsum("bhqt,btl->bhql", weights, cache["latent"])   # a weighted sum of latents, per head
        out = torch.einsum("bhql,hvl->bhqv", mixed, w_uv)                   # ... up-projected once
        return self.o(out.transpose(1, 2).reshape(out.shape[0], 1, -1))

    @classmethod
    def from_transformers(cls, attention) -> MLA:
        """The course's MLA holding the weights of a transformers ``DeepseekV3Attention``."""
        c = MLAConfig.from_transformers(attention.config)
        if attention.config.attention_bias:
            raise ValueError("the course's MLA has no biases; DeepSeek's models use none (attention_bias=False)")
        mla = cls(c)
        with torch.no_grad():
            if c.q_lora_rank is None:
                mla.q.weight.copy_(attention.q_proj.weight)
            else:
                mla.q_a.weight.copy_(attention.q_a_proj.weight)
                mla.q_norm.weight.copy_(attention.q_a_layernorm.weight)
                mla.q_b.weight.copy_(attention.q_b_proj.weight)
            mla.kv_a.weight.copy_(attention.kv_a_proj_with_mqa.weight)
            mla.kv_norm.weight.copy_(attention.kv_a_layernorm.weight)
            mla.kv_b.weight.copy_(attention.kv_b_proj.weight)
            mla.o.weight.copy_(attention.o_proj.weight)
        return mla


def _append(cache: dict, latent: torch.Tensor, k_rope: torch.Tensor) -> None:
    for key, value in (("latent", latent), ("k_rope", k_rope)):
        cache[key] = value if cache.get(key) is None else torch.cat([cache[key], value], dim=1)


# ---------------------------------------------------------------- checked against transformers


def transformers_attention(config, seed: int = 0):
    """A transformers ``DeepseekV3Attention`` for ``config`` with random weights (norm weights too), eager attention,
    and its rotary embedding."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3Attention, DeepseekV3RotaryEmbedding

    config._attn_implementation = "eager"
    attention = DeepseekV3Attention(config, layer_idx=0).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in attention.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * parameter.shape[-1] ** -0.5
                            + (1.0 if parameter.ndim == 1 else 0.0))
    return attention, DeepseekV3RotaryEmbedding(config)


@torch.no_grad()
def transformers_output(attention, rotary, x: torch.Tensor) -> torch.Tensor:
    """``DeepseekV3Attention`` on ``x`` with a causal mask at positions 0, 1, 2, ..."""
    tokens = x.shape[1]
    positions = torch.arange(tokens)[None].expand(x.shape[0], -1)
    mask = torch.full((tokens, tokens), float("-inf")).triu(1)[None, None].expand(x.shape[0], 1, -1, -1)
    return attention(x, rotary(x, positions), mask)[0]


def largest_difference(config, seed: int = 0, tokens: int = 12) -> float:
    """The course's MLA against transformers' on random input: the largest absolute difference of the outputs."""
    attention, rotary = transformers_attention(config, seed)
    x = torch.randn(2, tokens, config.hidden_size, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        return (MLA.from_transformers(attention)(x) - transformers_output(attention, rotary, x)).abs().max().item()


def random_configs(n: int, seed: int = 0) -> list:
    """Small DeepseekV3Configs with random ranks, head counts, rope and nope sizes, with and without a query
    bottleneck, both rotary layouts, and YaRN on some: for the equivalence sweep."""
    import random

    from transformers import DeepseekV3Config

    rng = random.Random(seed)
    configs = []
    for _ in range(n):
        rope = {"rope_theta": rng.choice([10000.0, 500000.0]), "rope_type": "default"}
        if rng.random() < 0.4:
            rope.update(rope_type="yarn", factor=rng.choice([4.0, 40.0]), original_max_position_embeddings=64,
                        beta_fast=32, beta_slow=1, mscale=1.0, mscale_all_dim=rng.choice([0.0, 1.0]))
        longest = int(64 * rope["factor"]) if rope["rope_type"] == "yarn" else 256
        heads = rng.choice([1, 2, 4, 8])
        configs.append(DeepseekV3Config(
            hidden_size=rng.choice([32, 48, 64]), num_attention_heads=heads, num_key_value_heads=heads,
            q_lora_rank=rng.choice([None, 16, 24]), kv_lora_rank=rng.choice([8, 16, 32]),
            qk_nope_head_dim=rng.choice([8, 16]), qk_rope_head_dim=rng.choice([4, 8]), v_head_dim=rng.choice([8, 12]),
            rope_interleave=rng.random() < 0.5, rope_parameters=rope, max_position_embeddings=longest))
    return configs


def decode(mla: MLA, x: torch.Tensor, absorbed: bool) -> torch.Tensor:
    """Every position of ``x`` decoded one token at a time from a fresh latent cache: [batch, tokens, hidden]."""
    cache = {}
    step = mla.decode_absorbed if absorbed else mla.decode_naive
    with torch.no_grad():
        return torch.cat([step(x[:, t:t + 1], t, cache) for t in range(x.shape[1])], dim=1)


def dense_kv_bytes_per_token(kv_heads: int, head_dim: int, bytes_per_value: float = 2) -> float:
    """Per token and layer, what grouped-query (or multi-head, with kv_heads = heads) attention caches: a key and a
    value of ``head_dim`` for each KV head."""
    return 2 * kv_heads * head_dim * bytes_per_value



# ---------------------------------------------------------------- what it buys at serving time


def serving_comparison(model: str = "deepseek-ai/DeepSeek-R1", gpu: str = "H200-141GB", count: int = 8,
                       context: int = 32768) -> list[dict]:
    """KV tokens per GPU and whole ``context``-token conversations per node for ``model`` on ``count`` GPUs (the
    course's calculator: what is left of each GPU after the weights), with MLA as the model has it, and with what
    the same model would cache with 8 KV heads (grouped-query, as the distills) or with every head (plain MHA).

    Two layouts of the attention. Tensor-parallel (the calculator's ``vllm serve`` line): the heads are split across
    the GPUs, each GPU holds its heads' keys and values for every token, but MLA's latent belongs to every head, so
    every GPU holds all of it. Data-parallel attention (how DeepSeek serves V3, and vLLM's data-parallel mode for MLA
    models): each GPU holds whole tokens of its own sequences, so nothing is held twice. Arithmetic with the same KV
    pool per GPU in both layouts, not a plan: the weights' layout changes too."""
    from course_utils import catalog, hardware

    plan = hardware.plan_serving(model, gpu, count, use_all=True)
    c = catalog.resolve(model).config
    bytes_per = catalog.BYTES_PER_PARAM["bfloat16"]
    key_value = c["qk_nope_head_dim"] + c["qk_rope_head_dim"] + c["v_head_dim"]    # one head's key and value
    per_token = {
        "MLA (as V3 and R1 are)": (c["num_hidden_layers"] * (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * bytes_per,
                                   1),
        "GQA with 8 KV heads": (c["num_hidden_layers"] * 8 * key_value * bytes_per, min(8, plan.tensor_parallel)),
        "MHA (128 KV heads)": (c["num_hidden_layers"] * c["num_attention_heads"] * key_value * bytes_per,
                               plan.tensor_parallel),
    }
    rows = []
    for kind, (whole, split) in per_token.items():
        tokens = int(plan.kv_cache_gib_per_gpu * catalog.GIB / (whole / split / plan.pipeline_parallel))
        pool = plan.kv_cache_gib_per_gpu * catalog.GIB * count / plan.pipeline_parallel
        rows.append({"attention": kind, "KV bytes per token (model)": int(whole),
                     "tensor-parallel: KV bytes per token per GPU": int(whole / split / plan.pipeline_parallel),
                     "tensor-parallel: KV tokens per GPU": tokens,
                     f"tensor-parallel: {context // 1024}k conversations per node": tokens // context,
                     f"data-parallel attention: {context // 1024}k conversations per node":
                         int(pool / whole) // context})
    return rows
