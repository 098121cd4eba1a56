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
    """V3-Base at the root; what was trained from what (solid); what only lent data or methods (dotted);
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
    _arrow(ax, pos["R1"], pos["V3-0324"], "RL methods", style=":")
    ax.text(11.6, 2.6, "distills: SFT on 800k\nsamples written by R1\n(no RL)", fontsize=8, color="#e6550d", ha="left",
            va="center")
    ax.text(0.2, -0.4, "dashed: the distill starts from this model's weights\ndotted: data or methods only",
            fontsize=7.5, va="center")
    ax.set_xlim(-0.3, 13.8)
    ax.set_ylim(-1.0, 4.6)
    ax.axis("off")
    ax.set_title("The DeepSeek-V3 / R1 family (sources: V3 and R1 papers, model cards)")
    fig.tight_layout()
    return fig
