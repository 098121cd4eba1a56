"""Figures the notebooks share. Plain matplotlib; each function returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt

from course_utils import catalog

KIND_COLOURS = {"base": "#d9d9d9", "chat": "#9ecae1", "reasoner": "#fdae6b", "distill": "#a1d99b",
                "external": "#ffffff"}


def _box(ax, x, y, text, colour, width=1.45):
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5, wrap=True,
            bbox=dict(boxstyle="round,pad=0.35", fc=colour, ec="#555555", lw=0.8), zorder=3)


def _arrow(ax, start, end, label="", style="-", colour="#444444"):
    """From the edge of one box to the edge of the other (boxes are about 0.6 high and 1.7 wide)."""
    (sx, sy), (ex, ey) = start, end
    if abs(sy - ey) < 0.1:
        step = 0.85 if ex > sx else -0.85
        start, end = (sx + step, sy), (ex - step, ey)
    else:
        dy = 0.32 if ey < sy else -0.32
        start, end = (sx, sy - dy), (ex, ey + (0.32 if ey < sy else -0.22))
    ax.annotate("", xy=end, xytext=start, zorder=4,
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.0, linestyle=style,
                                shrinkA=0, shrinkB=0, mutation_scale=12))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, label, fontsize=7, color=colour,
                ha="center", va="center", bbox=dict(fc="white", ec="none", pad=0.5), zorder=5)


def draw_family_tree():
    """V3-Base at the root; what was trained from what (solid); what only lent data (dotted);
    the six distills with the open base models whose weights they started from (dashed)."""
    fig, ax = plt.subplots(figsize=(13, 6.2))
    pos = {"V3-Base": (5.5, 4.0), "V3": (1.5, 2.6), "R1-Zero": (5.5, 2.6), "R1": (9.5, 2.6),
           "V3-0324": (1.5, 1.2)}
    distills = [m for m in catalog.MODELS.values() if m.kind == "distill"]
    for i, m in enumerate(distills):
        pos[m.short] = (4.3 + 1.75 * i, 1.0)
        pos[m.base_model] = (4.3 + 1.75 * i, -0.4)

    for m in catalog.MODELS.values():
        label = m.short.replace("R1-Distill-", "R1-Distill-\n")
        total, active = catalog.count_parameters(m.name)
        size = f"{total / 1e9:.0f}B total, {active / 1e9:.1f}B active" if total != active else f"{total / 1e9:.1f}B"
        _box(ax, *pos[m.short], f"{label}\n{size}\n{m.release_date}", KIND_COLOURS[m.kind])
    for m in distills:
        _box(ax, *pos[m.base_model], m.base_model.split("/")[1].replace("-Instruct", "-\nInstruct"),
             KIND_COLOURS["external"])
        _arrow(ax, pos[m.base_model], pos[m.short], style="--", colour="#31a354")
        _arrow(ax, pos["R1"], pos[m.short], colour="#e6550d")

    _arrow(ax, pos["V3-Base"], pos["V3"], "SFT + RL")
    _arrow(ax, pos["V3-Base"], pos["R1-Zero"], "RL only (GRPO)")
    _arrow(ax, pos["V3-Base"], pos["R1"], "cold-start SFT, RL,\nrejection-sampling SFT, RL")
    _arrow(ax, pos["V3"], pos["V3-0324"], "more post-training")
    _arrow(ax, pos["R1-Zero"], pos["R1"], "some cold-start data", style=":")
    ax.text(11.6, 2.6, "distills: SFT on 800k\nsamples written by R1\n(no RL)", fontsize=8, color="#e6550d", ha="left",
            va="center")
    ax.text(0.2, -0.4, "dashed: the distill starts from this model's weights\ndotted: data only",
            fontsize=7.5, va="center")
    return _finish(fig, ax, (-0.3, 13.8), (-1.0, 4.6),
                   "The DeepSeek-V3 / R1 family (sources: V3 and R1 papers, model cards)")


def _finish(fig, ax, xlim: tuple, ylim: tuple, title: str):
    """A diagram's frame: its extent, no axes, its title."""
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def _link(ax, start, end, label="", style="-", colour="#444444"):
    """A straight arrow between two points (the caller picks the box edges)."""
    ax.annotate("", xy=end, xytext=start, zorder=4,
                arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.0, linestyle=style, shrinkA=0, shrinkB=0,
                                mutation_scale=11))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, label, fontsize=7, color=colour, ha="center",
                va="center", bbox=dict(fc="white", ec="none", pad=0.5), zorder=5)


def draw_moe_layer(config: dict | None = None):
    """DeepSeek-V3's MoE layer for one token: the router (sigmoid scores, a bias for choosing only, group-limited
    top-k), the routed experts in groups (one group per node), the always-on shared expert, and the weighted sum.
    The numbers come from ``config`` (V3's config.json by default); 16 boxes stand for the routed experts."""
    c = config or catalog.MODELS["deepseek-ai/DeepSeek-V3"].config
    experts, groups, open_groups = c["n_routed_experts"], c["n_group"], c["topk_group"]
    k, shared, scale = c["num_experts_per_tok"], c["n_shared_experts"], c["routed_scaling_factor"]
    fig, ax = plt.subplots(figsize=(13, 4.4))
    _box(ax, 0.7, 2.2, "token's hidden\nstate h", "#ffffff")
    _box(ax, 3.0, 3.7, f"router\nscore s_i = sigmoid(h · e_i)\nchoose with s_i + b_i (bias)\n"
                       f"best {open_groups} of {groups} groups, then top {k}", "#fdae6b")
    boxes_per_group, width = 2, 0.26
    chosen = {(0, 0), (2, 0), (2, 1), (5, 1), (6, 0), (6, 1)}   # where the k chosen lie: inside the open groups
    for g in range(8):
        x0 = 4.3 + g * 0.72
        for j in range(boxes_per_group):
            on = (g, j) in chosen
            ax.add_patch(plt.Rectangle((x0 + j * (width + 0.06), 1.95), width, 0.5, fc="#a1d99b" if on else "#eeeeee",
                                       ec="#555555", lw=0.7, zorder=3))
        ax.text(x0 + width + 0.03, 1.85, f"group {g + 1}", fontsize=6.5, ha="center", va="top")
    ax.text(5.3, 2.8, f"{experts} routed experts in {groups} groups, one group per node (each box: "
                      f"{experts // (groups * boxes_per_group)} experts)\ngreen: where the {k} chosen lie, "
                      f"inside at most {open_groups} groups", fontsize=7.5, ha="left")
    _box(ax, 7.1, 0.55, f"{shared} shared expert (always used, no router)", "#9ecae1", width=3)
    _box(ax, 11.3, 2.2, f"output = h +\nΣ g_i · expert_i(h)\n+ shared(h)\ng_i = s_i / Σ s_chosen × {scale}",
         "#ffffff")
    _link(ax, (1.35, 2.45), (1.9, 3.4))
    _link(ax, (1.35, 2.2), (4.25, 2.2))
    _link(ax, (1.35, 1.95), (5.7, 0.75))
    _link(ax, (4.1, 3.35), (5.0, 2.5), "which 8, and g_i", style="--", colour="#e6550d")
    _link(ax, (10.0, 2.2), (10.45, 2.2))
    _link(ax, (8.5, 0.7), (10.5, 1.7))
    ax.text(3.0, 0.9, "the bias b_i only changes which experts\nare chosen; the weights g_i use s_i alone",
            fontsize=7.5, ha="center", color="#e6550d")
    return _finish(fig, ax, (-0.1, 12.5), (0.0, 4.5),
                   "DeepSeek-V3's MoE layer, for one token (V3 paper, section 2.1.2; numbers from its config.json)")


def draw_mla(config: dict | None = None):
    """Multi-head latent attention for one token of one layer: what is computed, and what the KV cache keeps
    (the compressed latent and the shared RoPE key) against what multi-head attention would keep."""
    c = config or catalog.MODELS["deepseek-ai/DeepSeek-V3"].config
    heads, rank, rope = c["num_attention_heads"], c["kv_lora_rank"], c["qk_rope_head_dim"]
    nope, v_dim, q_rank = c["qk_nope_head_dim"], c["v_head_dim"], c["q_lora_rank"]
    fig, ax = plt.subplots(figsize=(13, 4.6))
    _box(ax, 0.8, 2.3, "token's hidden\nstate h", "#ffffff")
    _box(ax, 3.4, 3.9, f"compressed query\nc_Q ({q_rank} numbers)", "#eeeeee")
    _box(ax, 3.4, 2.3, f"compressed latent\nc_KV ({rank} numbers)", "#a1d99b")
    _box(ax, 3.4, 0.7, f"RoPE key k_R\n({rope} numbers, shared\nby all heads)", "#a1d99b")
    _box(ax, 7.0, 3.9, f"{heads} queries: {nope} + {rope}\n(content + RoPE part)", "#ffffff")
    _box(ax, 7.0, 2.3, f"{heads} keys: {nope} from c_KV\n+ the shared k_R", "#ffffff")
    _box(ax, 7.0, 0.7, f"{heads} values:\n{v_dim} each, from c_KV", "#ffffff")
    _box(ax, 10.6, 2.3, f"attention,\n{heads} heads", "#fdae6b")
    _link(ax, (1.45, 2.55), (2.55, 3.75))
    _link(ax, (1.45, 2.3), (2.45, 2.3))
    _link(ax, (1.45, 2.05), (2.55, 0.9))
    _link(ax, (4.3, 3.9), (5.85, 3.9), "up-project")
    _link(ax, (4.35, 2.4), (5.9, 2.3), "up-project")
    _link(ax, (4.35, 2.15), (5.95, 0.85))
    _link(ax, (4.45, 0.75), (5.85, 2.05), "copied to\nevery head", style="--")
    for y in (3.9, 2.3, 0.7):
        _link(ax, (8.2, y), (9.9, 2.3) if y == 2.3 else (9.9, 2.3 + (0.25 if y > 2.3 else -0.25)))
    mla, mha = rank + rope, heads * (nope + rope + v_dim)
    ax.text(6.0, -0.35, f"green = the KV cache, per token and layer: {rank} + {rope} = {mla} numbers.\n"
                        f"Multi-head attention would cache every head's key and value: {heads} x ({nope + rope} + "
                        f"{v_dim}) = {mha:,} numbers ({mha / mla:.0f}x more).", fontsize=8, ha="center", va="top")
    return _finish(fig, ax, (-0.1, 12.0), (-1.2, 4.6),
                   "Multi-head latent attention (V3 paper, section 2.1.1; sizes from V3's config.json)")
