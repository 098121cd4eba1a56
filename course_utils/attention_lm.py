"""A tiny language model whose attention is one of three kinds, for notebook 07's trained comparison on the toy
corpus of notebook 01 (arithmetic, Python, English; byte-level, built offline):

- "mha": multi-head attention, a key and a value cached per head;
- "gqa": grouped-query attention, a key and a value per *group* of heads (the R1 distills' kind);
- "mla": multi-head latent attention (``course_utils.mla``), one latent and one small rotary key cached per token.

All three use RoPE and the same blocks around the attention (pre-norm, SwiGLU); the feed-forward width of each is
set so that the three models hold the same number of parameters (within 1%): the comparison is per parameter, and
per byte of KV cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import mla
from course_utils.moe import SwiGLU
from course_utils.toy_data import VOCAB_SIZE, MixedCorpus

KINDS = ("mha", "gqa", "mla")


@dataclass(frozen=True)
class Shape:
    """The sizes every variant shares, and each one's attention sizes."""
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    ffn: int = 192                 # the MHA model's feed-forward width; the others get the same parameter count
    gqa_kv_heads: int = 1          # one KV head shared by four query heads
    kv_lora_rank: int = 16         # MLA: the latent
    qk_nope_head_dim: int = 16
    qk_rope_head_dim: int = 8
    v_head_dim: int = 16

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    def mla_config(self) -> mla.MLAConfig:
        return mla.MLAConfig(self.d_model, self.heads, self.kv_lora_rank, self.qk_nope_head_dim, self.qk_rope_head_dim,
                             self.v_head_dim, q_lora_rank=None)

    def kv_values_per_token(self, kind: str) -> int:
        """Numbers cached per token, summed over the layers."""
        if kind == "mla":
            return self.layers * (self.kv_lora_rank + self.qk_rope_head_dim)
        kv_heads = self.heads if kind == "mha" else self.gqa_kv_heads
        return self.layers * 2 * kv_heads * self.head_dim


class DenseAttention(nn.Module):
    """Causal multi-head or grouped-query attention with RoPE on the whole head."""

    def __init__(self, d_model: int, heads: int, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d_model // heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(d_model, 2 * kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(d_model, d_model, bias=False)
        self.rope = mla.MLAConfig(d_model, heads, 1, 1, self.head_dim, 1, rope_interleave=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        positions = torch.arange(tokens, device=x.device)
        q = self.q(x).view(batch, tokens, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(batch, tokens, 2, self.kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = mla.rotate(q, positions, self.rope), mla.rotate(k, positions, self.rope)
        groups = self.heads // self.kv_heads                         # each KV head serves this many query heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(out.transpose(1, 2).reshape(batch, tokens, -1))


class Block(nn.Module):
    def __init__(self, attention: nn.Module, d_model: int, ffn: int):
        super().__init__()
        self.attention, self.ffn = attention, SwiGLU(d_model, ffn)
        self.norm1, self.norm2 = nn.RMSNorm(d_model), nn.RMSNorm(d_model)

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TinyLM(nn.Module):
    def __init__(self, kind: str, shape: Shape, ffn: int):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.shape = kind, shape
        self.embed = nn.Embedding(VOCAB_SIZE, shape.d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(_attention(kind, shape), shape.d_model, ffn) for _ in range(shape.layers))
        self.norm = nn.RMSNorm(shape.d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return F.linear(self.norm(x), self.embed.weight)            # the output head tied to the embedding


def _attention(kind: str, shape: Shape) -> nn.Module:
    if kind == "mla":
        return mla.MLA(shape.mla_config())
    return DenseAttention(shape.d_model, shape.heads, shape.heads if kind == "mha" else shape.gqa_kv_heads)


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_model(kind: str, shape: Shape = Shape(), seed: int = 0) -> TinyLM:
    """A model of ``kind`` with the MHA model's parameter count: its feed-forward width chosen to match."""
    target = parameters(TinyLM("mha", shape, shape.ffn))
    # the count grows by 3 x d_model per unit of feed-forward width in each layer (SwiGLU: gate, up, down)
    per_unit = 3 * shape.d_model * shape.layers
    ffn = shape.ffn + round((target - parameters(TinyLM(kind, shape, shape.ffn))) / per_unit)
    torch.manual_seed(seed)
    return TinyLM(kind, shape, ffn)


@dataclass
class Run:
    kind: str
    seed: int
    parameters: int
    loss: list[float] = field(default_factory=list)
    val_loss: float = float("nan")
    seconds: float = 0.0


def train(kind: str, corpus: MixedCorpus, steps: int, seed: int = 0, shape: Shape = Shape(), batch_size: int = 24,
          seq_len: int = 64, lr: float = 3e-3, progress: bool = True) -> Run:
    """AdamW with a one-cycle learning rate on the toy corpus; the validation loss on held-out text at the end."""
    from course_utils.progress import bar

    model = make_model(kind, shape, seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    run, started = Run(kind, seed, parameters(model)), time.time()
    for _ in bar(range(steps), desc=f"{kind}, seed {seed}", disable=not progress, mininterval=2.0):
        inputs, targets, _ = corpus.batch(batch_size, seq_len, generator)
        loss = F.cross_entropy(model(inputs).reshape(-1, VOCAB_SIZE), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        run.loss.append(loss.item())
    run.seconds = time.time() - started
    run.val_loss = validation_loss(model, corpus)
    return run


@torch.no_grad()
def validation_loss(model: TinyLM, corpus: MixedCorpus, batches: int = 8, batch_size: int = 24, seq_len: int = 64,
                    seed: int = 1234) -> float:
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(batches):
        inputs, targets, _ = corpus.batch(batch_size, seq_len, generator, split="val")
        losses.append(F.cross_entropy(model(inputs).reshape(-1, VOCAB_SIZE), targets.reshape(-1)).item())
    model.train()
    return sum(losses) / len(losses)
