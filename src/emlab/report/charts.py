"""The per-question chart: misaligned share with Wilson 95% intervals, one colour per condition, as inline SVG.

Built on `matplotlib.figure.Figure` with an explicit Agg canvas rather than pyplot, so it never changes the
process-wide backend or figure registry of whoever imports emlab. The SVG is returned as text so the HTML
report stays one self-contained file; text is kept as SVG <text> (no embedded or linked fonts), the random
id salt is fixed and the date left out so the same summary always gives the same bytes. A question with no
kept answers gets a small "n=0" mark instead of a point: an empty denominator is not a zero rate.
"""

from __future__ import annotations

import io
import math

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from emlab.report.markdown import conditions, question_ids

_RC = {"svg.hashsalt": "emlab-report", "svg.fonttype": "none", "svg.image_inline": True}
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def _plain(text: object) -> str:
    """Text for a matplotlib label, shown literally: `$` would otherwise switch on mathtext."""
    return str(text).replace("$", r"\$")


def condition_colors(n: int) -> list:
    """`n` distinct colours in a fixed order (tab10, then tab20 for more conditions)."""
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _y_top(uppers: list[float]) -> float:
    """1.0, or a tighter top (rounded up to 5 points) when every interval stays below one half."""
    if not uppers or max(uppers) > 0.5:
        return 1.0
    return max(0.05, math.ceil((max(uppers) * 1.1 + 1e-9) * 20) / 20)


def per_question_chart_svg(summary: dict) -> str:
    """The per-question and pooled misaligned share of every condition as a deterministic inline <svg> string."""
    conds = conditions(summary)
    qids = question_ids(summary)
    groups = qids + ["pooled"]
    colors = condition_colors(len(conds))
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(min(18.0, max(6.0, 0.8 * len(groups) + 3.0)), 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        step = 0.8 / max(1, len(conds))
        uppers: list[float] = []
        empty: list[tuple[float, tuple]] = []
        for i, (cond, color) in enumerate(zip(conds, colors)):
            rates = cond.get("rates") or {}
            per_q = rates.get("per_question") or {}
            xs, ys, lo, hi = [], [], [], []
            for g, q in enumerate(groups):
                rate = (rates.get("pooled") if q == "pooled" else per_q.get(q)) or {}
                x = g + (i - (len(conds) - 1) / 2) * step
                share = rate.get("share")
                if share is None:
                    empty.append((x, color))
                    continue
                ci = rate.get("ci") or (share, share)
                xs.append(x)
                ys.append(share)
                lo.append(max(0.0, share - ci[0]))
                hi.append(max(0.0, ci[1] - share))
                uppers.append(ci[1])
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=color, ecolor=color, capsize=3, markersize=5,
                            clip_on=False, zorder=3)
        for x, color in empty:
            ax.text(x, 0.01, "n=0", transform=ax.get_xaxis_transform(), fontsize=7,
                    color=color, ha="center", va="bottom")
        ax.axvline(len(qids) - 0.5, color="0.6", linestyle=":", linewidth=1)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylim(0.0, _y_top(uppers))
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_ylabel("misaligned share")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([_plain(g) for g in groups], rotation=30 if len(groups) > 4 else 0,
                           ha="right" if len(groups) > 4 else "center")
        ax.get_xticklabels()[-1].set_fontweight("bold")
        ax.set_title("Misaligned share per question, with 95% Wilson intervals", fontsize=10)
        ax.grid(axis="y", color="0.9")
        ax.set_axisbelow(True)
        if conds:
            handles = [Line2D([], [], marker="o", linestyle="", color=c) for c in colors]
            ax.legend(handles, [_plain(c.get("name", "")) for c in conds], title="condition",
                      loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):].strip() + "\n"
