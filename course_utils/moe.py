"""A Mixture-of-Experts layer written to be read: experts, routers, balancing, metrics.

Reading order: ``swiglu`` (one expert) -> the routers (``softmax_topk``, ``noisy_topk``, ``deepseek_v3_topk``)
-> ``MoE`` (route, dispatch, combine) -> balancing (``switch_aux_loss``, ``router_z_loss``,
``sequence_balance_loss``, ``update_balance_bias``) -> metrics (``expert_load``, ``max_violation``).

``from_transformers`` copies the weights of a ``transformers`` DeepseekV3MoE / MixtralSparseMoeBlock /
Qwen2MoeSparseMoeBlock into this MoE; ``tests/test_moe_equivalence.py`` proves the outputs equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ROUTERS = ("softmax", "noisy", "deepseek_v3")


# ---------------------------------------------------------------- one expert


def swiglu(x: torch.Tensor, w_gate_up: torch.Tensor, w_down: torch.Tensor,
           scale: torch.Tensor | None = None) -> torch.Tensor:
    """SwiGLU feed-forward: down( silu(x @ W_gate) * (x @ W_up) ). ``w_gate_up`` stacks W_gate over W_up.
    ``scale`` (one number per row) multiplies the output; applied before the linear ``down`` it costs less."""
    gate, up = F.linear(x, w_gate_up).chunk(2, dim=-1)
    hidden = F.silu(gate) * up
    return F.linear(hidden if scale is None else hidden * scale, w_down)


class SwiGLU(nn.Module):
    """A dense SwiGLU FFN: the shared experts, and the dense baseline a MoE is compared with."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.w_gate_up = nn.Parameter(torch.empty(2 * intermediate_size, hidden_size))
        self.w_down = nn.Parameter(torch.empty(hidden_size, intermediate_size))
        nn.init.normal_(self.w_gate_up, std=hidden_size**-0.5)
        nn.init.normal_(self.w_down, std=max(intermediate_size, 1) ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swiglu(x, self.w_gate_up, self.w_down)


# ---------------------------------------------------------------- routers
# Each takes router logits [tokens, experts] and returns (weights [tokens, k], indices [tokens, k], scores
# [tokens, experts]): the weights multiply the chosen experts' outputs; scores feed the balancing losses.


def softmax_topk(logits: torch.Tensor, k: int, renormalize: bool = True):
    """Mixtral / Qwen-MoE: softmax over all experts, keep the k largest; optionally rescale them to sum to 1."""
    probs = logits.float().softmax(dim=-1)
    weights, indices = probs.topk(k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, indices, probs


def noisy_topk(logits: torch.Tensor, noise_logits: torch.Tensor, k: int, training: bool):
    """Shazeer et al. (2017): add Gaussian noise of learned scale softplus(x W_noise) while training, keep the top k,
    and softmax over only those k (the others get -inf, so zero weight)."""
    if training:
        logits = logits + torch.randn_like(logits) * F.softplus(noise_logits)
    top, indices = logits.float().topk(k, dim=-1)
    return top.softmax(dim=-1), indices, logits.float().softmax(dim=-1)


def deepseek_v3_topk(logits: torch.Tensor, bias: torch.Tensor, k: int, n_group: int, topk_group: int,
                     norm_topk_prob: bool, routed_scaling_factor: float):
    """DeepSeek-V3 (V3 paper, arXiv v1, section 2.1.2 "DeepSeekMoE with Auxiliary-Loss-Free Load Balancing"):

    1. affinity s = sigmoid(logit) per expert (not a softmax: experts do not compete for probability mass);
    2. for *choosing*, add the balancing bias b (``bias``); the bias never enters the weights;
    3. group-limited routing: score each group of experts by the sum of its two best biased scores, keep the
       ``topk_group`` best groups, and choose the top k experts inside them only;
    4. weight = the chosen experts' unbiased affinities, divided by their sum (if ``norm_topk_prob``), times
       ``routed_scaling_factor`` (2.5 for V3: a value from its ``config.json``, not from the paper).
    """
    scores = logits.float().sigmoid()
    biased = scores + bias
    tokens, experts = scores.shape
    group_scores = biased.view(tokens, n_group, experts // n_group).topk(2, dim=-1).values.sum(dim=-1)
    best_groups = group_scores.topk(topk_group, dim=-1).indices
    allowed_group = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, best_groups, True)
    allowed = allowed_group.repeat_interleave(experts // n_group, dim=1)
    indices = biased.masked_fill(~allowed, float("-inf")).topk(k, dim=-1).indices
    weights = scores.gather(1, indices)
    if norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return weights * routed_scaling_factor, indices, scores


# ---------------------------------------------------------------- the layer


@dataclass
class MoEConfig:
    hidden_size: int
    expert_size: int                  # intermediate size of one routed expert
    n_experts: int                    # routed experts
    top_k: int
    router: str = "deepseek_v3"       # "softmax", "noisy" or "deepseek_v3"
    n_shared: int = 0                 # shared experts, applied to every token (one SwiGLU of n_shared x width)
    n_group: int = 1                  # deepseek_v3: experts are split into n_group groups ...
    topk_group: int = 1               # ... and a token may use experts from topk_group of them
    norm_topk_prob: bool = True       # rescale the chosen weights to sum to 1
    routed_scaling_factor: float = 1.0
    capacity_factor: float | None = None   # if set, an expert takes at most ceil(cf * tokens * k / n_experts)
    dispatch: str = "vectorised"      # "vectorised" (sort tokens by expert) or "loop" (the readable reference)

    def __post_init__(self):
        for name in ("hidden_size", "expert_size", "n_experts", "top_k", "n_group", "topk_group"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_shared < 0:
            raise ValueError(f"n_shared must be >= 0, got {self.n_shared}")
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {self.router!r}")
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k={self.top_k} is larger than n_experts={self.n_experts}")
        if self.n_experts % self.n_group:
            raise ValueError(f"n_experts={self.n_experts} cannot be split into n_group={self.n_group} equal groups")
        if self.topk_group > self.n_group:
            raise ValueError(f"topk_group={self.topk_group} is larger than n_group={self.n_group}")
        group_size = self.n_experts // self.n_group
        if self.router == "deepseek_v3" and self.n_group > 1:
            if group_size < 2:
                raise ValueError(f"each group needs at least 2 experts (a group scores by its best two); "
                                 f"n_experts={self.n_experts} / n_group={self.n_group} = {group_size}")
            if self.topk_group * group_size < self.top_k:
                raise ValueError(f"topk_group={self.topk_group} groups of {group_size} experts hold fewer than "
                                 f"top_k={self.top_k} experts")
        if self.router != "deepseek_v3" and (self.n_group, self.topk_group) != (1, 1):
            raise ValueError("group-limited routing (n_group, topk_group) is only defined for router='deepseek_v3'")
        if self.capacity_factor is not None and not self.capacity_factor > 0:
            raise ValueError(f"capacity_factor must be positive or None, got {self.capacity_factor!r}")
        if self.dispatch not in ("vectorised", "loop"):
            raise ValueError(f"dispatch must be 'vectorised' or 'loop', got {self.dispatch!r}")

    @property
    def active_width(self) -> int:
        """Intermediate width a token passes through: k routed experts plus the shared ones."""
        return (self.top_k + self.n_shared) * self.expert_size


@dataclass
class Routing:
    """What the router decided for one forward pass (kept for balancing losses and metrics)."""

    logits: torch.Tensor     # [tokens, experts]
    scores: torch.Tensor     # [tokens, experts]: softmax probabilities or sigmoid affinities
    indices: torch.Tensor    # [tokens, k] chosen experts
    weights: torch.Tensor    # [tokens, k] their weights (0 where a token was dropped for capacity)
    dropped: float = 0.0     # fraction of (token, expert) assignments dropped for capacity


class MoE(nn.Module):
    """Router + routed experts (+ shared experts). Input [..., hidden] -> output of the same shape."""

    def __init__(self, config: MoEConfig):
        super().__init__()
        self.config = c = config
        self.router = nn.Parameter(torch.empty(c.n_experts, c.hidden_size))
        nn.init.normal_(self.router, std=c.hidden_size**-0.5)
        # Balancing bias (DeepSeek-V3): chosen-expert selection only, updated outside autograd.
        self.register_buffer("balance_bias", torch.zeros(c.n_experts))
        if c.router == "noisy":
            self.noise = nn.Parameter(torch.zeros(c.n_experts, c.hidden_size))
        # The routed experts, stacked: w_gate_up[e] is expert e's [W_gate; W_up], w_down[e] its W_down.
        self.w_gate_up = nn.Parameter(torch.empty(c.n_experts, 2 * c.expert_size, c.hidden_size))
        self.w_down = nn.Parameter(torch.empty(c.n_experts, c.hidden_size, c.expert_size))
        nn.init.normal_(self.w_gate_up, std=c.hidden_size**-0.5)
        nn.init.normal_(self.w_down, std=c.expert_size**-0.5)
        self.shared = SwiGLU(c.hidden_size, c.n_shared * c.expert_size) if c.n_shared else None
        self.last_routing: Routing | None = None

    # -- routing

    def route(self, x: torch.Tensor) -> Routing:
        c = self.config
        logits = F.linear(x.float(), self.router.float())
        if c.router == "softmax":
            weights, indices, scores = softmax_topk(logits, c.top_k, c.norm_topk_prob)
        elif c.router == "noisy":
            weights, indices, scores = noisy_topk(logits, F.linear(x.float(), self.noise.float()), c.top_k,
                                                  self.training)
        else:
            weights, indices, scores = deepseek_v3_topk(logits, self.balance_bias, c.top_k, c.n_group, c.topk_group,
                                                        c.norm_topk_prob, c.routed_scaling_factor)
        routing = Routing(logits, scores, indices, weights)
        if c.capacity_factor is not None:
            apply_capacity(routing, c.capacity_factor, c.n_experts)
        return routing

    # -- dispatch: two ways to run each token through its chosen experts

    def _experts_loop(self, x: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The readable reference: for each expert, find its tokens, run them, add the weighted result."""
        out = torch.zeros_like(x)
        for e in range(self.config.n_experts):
            token, slot = torch.where(indices == e)
            if token.numel():
                y = swiglu(x[token], self.w_gate_up[e], self.w_down[e])
                out.index_add_(0, token, y * weights[token, slot, None].to(y.dtype))
        return out

    def _experts_vectorised(self, x: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Sort the (token, expert) pairs by expert once, gather every input in one go, run each expert on its
        contiguous block, and scatter-add the weighted outputs back in one go. Same arithmetic as the loop, but
        no per-expert search through all tokens, and index_select/index_add_ (whose backward passes are cheap)
        instead of boolean masks."""
        k = indices.shape[1]
        order = indices.reshape(-1).argsort(stable=True)     # pairs grouped by expert, token order inside
        token = order // k                                   # the token each sorted pair came from
        counts = torch.bincount(indices.reshape(-1), minlength=self.config.n_experts).tolist()
        xs = x.index_select(0, token)                        # [tokens * k, hidden]
        ws = weights.reshape(-1, 1)[order].to(x.dtype)       # each pair's routing weight
        blocks = [swiglu(block, w_gu, w_d, scale)
                  for block, scale, w_gu, w_d in zip(xs.split(counts), ws.split(counts), self.w_gate_up.unbind(0),
                                                     self.w_down.unbind(0), strict=True) if block.shape[0]]
        return torch.zeros_like(x).index_add_(0, token, torch.cat(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.shape[-1] != c.hidden_size:
            raise ValueError(f"input's last dimension is {x.shape[-1]}, but this MoE has hidden_size={c.hidden_size}")
        if not torch.isfinite(x).all():
            raise ValueError("input contains NaN or infinite values; check the layer before the MoE")
        shape = x.shape
        x = x.reshape(-1, c.hidden_size)
        routing = self.route(x)
        self.last_routing = routing
        run = self._experts_loop if c.dispatch == "loop" else self._experts_vectorised
        out = run(x, routing.indices, routing.weights)
        if self.shared is not None:
            out = out + self.shared(x)
        return out.reshape(shape)

    @property
    def parameter_counts(self) -> tuple[int, int]:
        """(total, active per token) parameters of this layer."""
        c = self.config
        total = sum(p.numel() for p in self.parameters())
        per_expert = 3 * c.hidden_size * c.expert_size
        return total, total - (c.n_experts - c.top_k) * per_expert


def capacity_mask(indices: torch.Tensor, capacity_factor: float, n_experts: int) -> torch.Tensor:
    """Token dropping (Switch Transformer): which of the ``indices`` [tokens, k] assignments an expert keeps when each
    takes at most C = ceil(factor x tokens x k / experts), first come first served, token by token."""
    tokens, k = indices.shape
    capacity = math.ceil(capacity_factor * tokens * k / n_experts)
    one_hot = F.one_hot(indices.reshape(-1), n_experts)                 # [tokens * k, experts], token-major order
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1        # arrival rank of each assignment
    return (position < capacity).reshape(tokens, k)


def apply_capacity(routing: Routing, capacity_factor: float, n_experts: int) -> None:
    """Drop the assignments past each expert's capacity (``capacity_mask``): they get weight 0, so the token skips
    that expert."""
    keep = capacity_mask(routing.indices, capacity_factor, n_experts)
    routing.weights = routing.weights * keep
    routing.dropped = 1.0 - keep.float().mean().item()


# ---------------------------------------------------------------- balancing


def switch_aux_loss(routing: Routing, n_experts: int, alpha: float = 0.01) -> torch.Tensor:
    """Switch Transformer: alpha * N * sum_i f_i * P_i, with f_i the fraction of assignments sent to expert i
    (not differentiable) and P_i the mean router probability of i (differentiable). Equals alpha when balanced."""
    f = expert_load(routing.indices, n_experts)
    probs = routing.scores / routing.scores.sum(dim=-1, keepdim=True)   # sigmoid scores -> a distribution
    return alpha * n_experts * (f * probs.mean(dim=0)).sum()


def router_z_loss(logits: torch.Tensor, beta: float = 1e-3) -> torch.Tensor:
    """ST-MoE (Zoph et al. 2022): penalise large router logits, beta * mean(logsumexp(logits)^2)."""
    return beta * torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


def sequence_balance_loss(routing: Routing, n_experts: int, seq_len: int, top_k: int,
                          alpha: float = 1e-4) -> torch.Tensor:
    """DeepSeek-V3's complementary sequence-wise balance loss (V3 paper, section 2.1.2, eq. 17-20; V3 used a tiny
    alpha = 0.0001 beside the bias, so that no single sequence is extremely unbalanced): per sequence of ``seq_len``
    tokens, f_i = N / (K T) * (tokens choosing i), P_i = mean of normalised affinities; alpha * sum_i f_i P_i,
    averaged over the sequences."""
    tokens = routing.indices.shape[0]
    if tokens % seq_len:
        raise ValueError(f"{tokens} tokens are not a whole number of sequences of length {seq_len}")
    chosen = F.one_hot(routing.indices, n_experts).sum(dim=1).float().view(-1, seq_len, n_experts)
    f = chosen.sum(dim=1) * n_experts / (top_k * seq_len)
    s = routing.scores / routing.scores.sum(dim=-1, keepdim=True)
    p = s.view(-1, seq_len, n_experts).mean(dim=1)
    return alpha * (f * p).sum(dim=-1).mean()


@torch.no_grad()
def update_balance_bias(moe: MoE, gamma: float = 1e-3) -> None:
    """DeepSeek-V3's auxiliary-loss-free balancing: after each step, lower the bias of overloaded experts and
    raise it for underloaded ones by gamma (the sign of mean load minus load; Loss-Free Balancing paper)."""
    if moe.last_routing is None:
        raise RuntimeError("run a forward pass before updating the balance bias")
    moe.balance_bias.copy_(balance_bias_step(moe.balance_bias, moe.last_routing.indices, moe.config.n_experts, gamma))


def balance_bias_step(bias: torch.Tensor, indices: torch.Tensor, n_experts: int, gamma: float) -> torch.Tensor:
    """One bias update, as a pure function: ``bias + gamma * sign(mean load - load)``, the load counted from the
    chosen experts ``indices`` (any shape). An expert exactly at the mean keeps its bias."""
    load = torch.bincount(indices.reshape(-1), minlength=n_experts).float()
    return bias + gamma * torch.sign(load.mean() - load)


# ---------------------------------------------------------------- metrics


def expert_load(indices: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Fraction of (token, expert) assignments each expert received; sums to 1."""
    counts = torch.bincount(indices.reshape(-1), minlength=n_experts).float()
    return counts / counts.sum()


def max_violation(load: torch.Tensor) -> float:
    """MaxVio (Wang et al. 2024, Loss-Free Balancing): (max load - mean load) / mean load. 0 is perfect balance."""
    load = load.float()
    return ((load.max() - load.mean()) / load.mean()).item()


def load_entropy(load: torch.Tensor) -> float:
    """Entropy of the load distribution divided by log(experts): 1 when perfectly even, 0 when one expert takes all."""
    p = load.float() / load.sum()
    return (-(p[p > 0] * p[p > 0].log()).sum() / math.log(len(p))).item()


def routing_entropy(scores: torch.Tensor) -> float:
    """Mean entropy of each token's routing distribution, in nats: how undecided the router is per token."""
    p = scores / scores.sum(dim=-1, keepdim=True)
    return (-(p * p.clamp_min(1e-12).log()).sum(dim=-1)).mean().item()


# ---------------------------------------------------------------- from transformers


def from_transformers(module: nn.Module) -> MoE:
    """The course MoE holding the same weights as a ``transformers`` DeepseekV3MoE, MixtralSparseMoeBlock or the
    routed part of Qwen2MoeSparseMoeBlock (whose sigmoid-gated shared expert has no counterpart here)."""
    kind = type(module).__name__
    if kind not in ("DeepseekV3MoE", "MixtralSparseMoeBlock", "Qwen2MoeSparseMoeBlock"):
        raise TypeError(f"from_transformers expects DeepseekV3MoE, MixtralSparseMoeBlock or Qwen2MoeSparseMoeBlock, "
                        f"got {kind}")
    experts = module.experts
    n_experts, two_i, hidden = experts.gate_up_proj.shape
    if kind == "DeepseekV3MoE":
        gate = module.gate
        shared_width = module.shared_experts.gate_proj.out_features
        config = MoEConfig(hidden, two_i // 2, n_experts, gate.top_k, "deepseek_v3",
                           n_shared=shared_width // (two_i // 2), n_group=gate.num_group, topk_group=gate.topk_group,
                           norm_topk_prob=gate.norm_topk_prob, routed_scaling_factor=gate.routed_scaling_factor)
    else:
        gate = module.gate
        config = MoEConfig(hidden, two_i // 2, n_experts, gate.top_k, "softmax",
                           norm_topk_prob=getattr(gate, "norm_topk_prob", True))
    moe = MoE(config)
    with torch.no_grad():
        moe.router.copy_(gate.weight)
        moe.w_gate_up.copy_(experts.gate_up_proj)
        moe.w_down.copy_(experts.down_proj)
        if kind == "DeepseekV3MoE":
            moe.balance_bias.copy_(gate.e_score_correction_bias)
            if moe.shared is not None:
                s = module.shared_experts
                moe.shared.w_gate_up.copy_(torch.cat([s.gate_proj.weight, s.up_proj.weight]))
                moe.shared.w_down.copy_(s.down_proj.weight)
    return moe.to(experts.gate_up_proj.dtype)
