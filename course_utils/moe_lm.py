"""A tiny decoder-only language model whose feed-forward layers are the course MoE, and its training loop with a
choice of load balancing: none, the Switch auxiliary loss, or DeepSeek-V3's bias update."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import moe as M
from course_utils.progress import bar
from course_utils.toy_data import DOMAINS, VOCAB_SIZE, MixedCorpus

BALANCING = ("none", "aux_loss", "bias")


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then the MoE in place of the dense FFN."""

    def __init__(self, d_model: int, n_heads: int, moe_config: M.MoEConfig):
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.RMSNorm(d_model), nn.RMSNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.moe = M.MoE(moe_config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(attn)
        return x + self.moe(self.norm2(x))


class TinyMoELM(nn.Module):
    def __init__(self, moe_config: M.MoEConfig, n_layers: int = 2, n_heads: int = 4, max_len: int = 256):
        super().__init__()
        d = moe_config.hidden_size
        self.embed = nn.Embedding(VOCAB_SIZE, d)
        self.position = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, n_heads, moe_config) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d)
        for emb in (self.embed, self.position):
            nn.init.normal_(emb.weight, std=0.02)   # small, as in GPT-2: the tied output head starts near uniform

    @property
    def moes(self) -> list[M.MoE]:
        return [block.moe for block in self.blocks]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.norm(x), self.embed.weight)   # output head tied to the embedding


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 24
    seq_len: int = 64
    lr: float = 3e-3
    balancing: str = "none"       # "none", "aux_loss" or "bias"
    alpha: float = 0.01           # Switch auxiliary-loss weight
    gamma: float = 0.01           # bias update speed
    seed: int = 0

    def __post_init__(self):
        if self.balancing not in BALANCING:
            raise ValueError(f"balancing must be one of {BALANCING}, got {self.balancing!r}")


@dataclass
class History:
    loss: list[float] = field(default_factory=list)
    max_vio: list[float] = field(default_factory=list)       # MaxVio of each training batch, mean over layers
    load: list[list[float]] = field(default_factory=list)    # expert load of layer 1, each step
    seconds: float = 0.0


def train_lm(model: TinyMoELM, corpus: MixedCorpus, config: TrainConfig, device="cpu", progress=True) -> History:
    """AdamW with a cosine learning rate; the balancing method is applied to every MoE layer."""
    torch.manual_seed(config.seed)
    model.to(device).train()
    generator = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps, pct_start=0.1)
    history, started = History(), time.time()
    n_experts = model.moes[0].config.n_experts
    # mininterval: few updates, because a notebook kernel drops output messages beyond ~1000 per busy cell
    steps = bar(range(config.steps), desc=f"balancing={config.balancing}", disable=not progress, mininterval=2.0)
    for _ in steps:
        inputs, targets, _ = corpus.batch(config.batch_size, config.seq_len, generator)
        logits = model(inputs.to(device))
        loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets.to(device).reshape(-1))
        total = loss
        if config.balancing == "aux_loss":
            total = loss + sum(M.switch_aux_loss(m.last_routing, n_experts, config.alpha) for m in model.moes)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        schedule.step()
        if config.balancing == "bias":
            for m in model.moes:
                M.update_balance_bias(m, config.gamma)
        loads = [M.expert_load(m.last_routing.indices, n_experts) for m in model.moes]
        history.loss.append(loss.item())
        history.max_vio.append(sum(M.max_violation(load) for load in loads) / len(loads))
        history.load.append(loads[0].tolist())
    history.seconds = time.time() - started
    return history


@torch.no_grad()
def evaluate(model: TinyMoELM, corpus: MixedCorpus, batches: int = 8, batch_size: int = 24, seq_len: int = 64,
             device="cpu", seed: int = 1234) -> dict:
    """Validation loss, MaxVio over the whole validation set (the paper's MaxVio_global) and, per layer,
    the fraction of each domain's tokens sent to each expert."""
    model.to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    n_experts = model.moes[0].config.n_experts
    counts = torch.zeros(len(model.moes), len(DOMAINS), n_experts)
    losses = []
    for _ in range(batches):
        inputs, targets, domains = corpus.batch(batch_size, seq_len, generator, split="val")
        logits = model(inputs.to(device))
        losses.append(F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets.to(device).reshape(-1)).item())
        token_domain = domains.repeat_interleave(seq_len)
        for layer, m in enumerate(model.moes):
            idx = m.last_routing.indices.cpu()
            for d in range(len(DOMAINS)):
                counts[layer, d] += torch.bincount(idx[token_domain == d].reshape(-1), minlength=n_experts)
    global_load = counts.sum(dim=1)
    return {
        "val_loss": sum(losses) / len(losses),
        "max_vio_global": sum(M.max_violation(load) for load in global_load) / len(global_load),
        "domain_usage": counts / counts.sum(dim=-1, keepdim=True),
    }


def make_model(router: str = "deepseek_v3", d_model: int = 64, n_experts: int = 8, top_k: int = 2,
               expert_size: int = 64, n_shared: int = 0, n_layers: int = 2, seed: int = 0, **moe_options) -> TinyMoELM:
    torch.manual_seed(seed)
    config = M.MoEConfig(d_model, expert_size, n_experts, top_k, router=router, n_shared=n_shared, **moe_options)
    return TinyMoELM(config, n_layers=n_layers)


@torch.no_grad()
def dropped_share(model: TinyMoELM, inputs: torch.Tensor, capacity_factor: float) -> float:
    """Share of (token, expert) assignments dropped when every expert has this capacity, mean over the layers.
    The model's own capacity setting and train/eval mode are restored afterwards."""
    before, was_training = [m.config.capacity_factor for m in model.moes], model.training
    try:
        for m in model.moes:
            m.config.capacity_factor = capacity_factor
        model.eval()(inputs.to(next(model.parameters()).device))
        return sum(m.last_routing.dropped for m in model.moes) / len(model.moes)
    finally:
        model.train(was_training)
        for m, cf in zip(model.moes, before, strict=True):
            m.config.capacity_factor = cf
