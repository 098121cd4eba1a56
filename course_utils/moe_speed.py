"""Forward + backward speed of MoE implementations, side by side in one run (ratios, not absolute claims): the course
MoE with vectorised dispatch, the same with the readable per-expert loop, transformers' DeepseekV3MoE (same weights),
and a dense SwiGLU FFN whose width equals the MoE's *active* width (k routed experts + the shared expert), i.e. the
same compute per token in theory. Notebook 01 runs ``QUICK``; ``benchmarks/moe_throughput.py`` runs ``SIZES``."""

from __future__ import annotations

import statistics
import time

import torch
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

from course_utils.moe import SwiGLU, from_transformers

SIZES = [  # (tokens, hidden, experts, top_k, expert width, groups, groups per token)
    (4096, 256, 16, 2, 128, 4, 2),
    (4096, 256, 32, 4, 128, 8, 4),
    (4096, 256, 64, 8, 64, 8, 4),
]
QUICK = [(2048, 128, 16, 4, 64, 4, 2)]


def time_fwd_bwd(module, x, repeats):
    times = []
    for _ in range(repeats):
        x.grad = None
        module.zero_grad(set_to_none=True)
        start = time.perf_counter()
        module(x).square().mean().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def implementations(tokens, hidden, experts, top_k, width, groups, topk_group, seed=0):
    torch.manual_seed(seed)
    config = DeepseekV3Config(hidden_size=hidden, moe_intermediate_size=width, n_routed_experts=experts,
                              num_experts_per_tok=top_k, n_group=groups, topk_group=topk_group, n_shared_experts=1,
                              routed_scaling_factor=2.5)
    reference = DeepseekV3MoE(config)
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0, hidden**-0.5)
    vectorised = from_transformers(reference)
    loop = from_transformers(reference)
    loop.config.dispatch = "loop"
    dense = SwiGLU(hidden, (top_k + 1) * width)
    return {"course vectorised": vectorised, "course loop": loop, "transformers DeepseekV3MoE": reference,
            "dense SwiGLU (same active width)": dense}


def run(sizes, repeats=5, rounds=3):
    results = []
    for size in sizes:
        tokens, hidden = size[0], size[1]
        impls = implementations(*size)
        x = torch.randn(tokens, hidden, requires_grad=True)
        for module in impls.values():           # warm-up
            time_fwd_bwd(module, x, 1)
        best = {name: float("inf") for name in impls}
        for _ in range(rounds):                 # interleave so that machine noise hits every implementation alike
            for name, module in impls.items():
                best[name] = min(best[name], time_fwd_bwd(module, x, repeats))
        row = {"size": dict(zip(["tokens", "hidden", "experts", "top_k", "expert_width", "n_group", "topk_group"],
                                size, strict=True)),
               "tokens_per_s": {name: round(tokens / t) for name, t in best.items()}}
        dense = best["dense SwiGLU (same active width)"]
        row["cost_vs_dense"] = {name: round(t / dense, 2) for name, t in best.items()}
        speedup = best["transformers DeepseekV3MoE"] / best["course vectorised"]
        row["vectorised_speedup_vs_transformers"] = round(speedup, 2)
        row["vectorised_speedup_vs_loop"] = round(best["course loop"] / best["course vectorised"], 2)
        results.append(row)
    return results


def table(results) -> str:
    lines = []
    for r in results:
        s = r["size"]
        lines.append(f"\n{s['tokens']} tokens, hidden {s['hidden']}, {s['experts']} experts "
                     f"(width {s['expert_width']}), top-{s['top_k']}, groups {s['n_group']}/{s['topk_group']}, "
                     "1 shared expert")
        for name, tps in r["tokens_per_s"].items():
            lines.append(f"  {name:34s} {tps:>9,} tokens/s   cost {r['cost_vs_dense'][name]:.2f}x dense")
        lines.append(f"  vectorised is {r['vectorised_speedup_vs_transformers']:.2f}x transformers' speed and "
                     f"{r['vectorised_speedup_vs_loop']:.2f}x the loop's")
    return "\n".join(lines)
