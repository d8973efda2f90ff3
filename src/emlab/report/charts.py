"""The report's figures as inline SVG: a rule's share per question with Wilson 95% intervals, one colour per
condition, and an aligned-vs-coherent scatter per condition with the misaligned rule's thresholds.

Built on `matplotlib.figure.Figure` with an explicit Agg canvas rather than pyplot, so it never changes the
process-wide backend or figure registry of whoever imports emlab. The SVG is returned as text so the HTML
report stays one self-contained file; text is kept as SVG <text> (no embedded or linked fonts), the random
id salt is fixed and the date left out so the same summary always gives the same bytes. A question with no
kept answers gets a small "n=0" mark instead of a point: an empty denominator is not a zero rate. Several
figures share one HTML page, so each gets its own prefix on the SVG ids it defines and references.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any, NamedTuple

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from emlab.report.tables import DASH, conditions, question_ids, rates_of

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


def _svg_text(fig: Figure, id_prefix: str) -> str:
    """The figure as an <svg> element whose ids (and references to them) start with `id_prefix`."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):].strip() + "\n"

    def tag(m: re.Match) -> str:  # only inside tags: text nodes are the figure's labels, shown as they are
        t = m.group(0)
        return t.replace(' id="', f' id="{id_prefix}').replace("url(#", f"url(#{id_prefix}").replace(
            'href="#', f'href="#{id_prefix}')

    return re.sub(r"<[^>]*>", tag, svg)


def per_question_chart_svg(summary: dict, rule: str | None = None, id_prefix: str = "q-") -> str:
    """One rule's per-question and pooled share for every condition as a deterministic inline <svg> string.

    `rule=None` draws the legacy misaligned share from each condition's `rates`.
    """
    conds = conditions(summary)
    qids = question_ids(summary, rule)
    groups = qids + ["pooled"]
    colors = condition_colors(len(conds))
    label = f"{rule or 'misaligned'} share"
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(min(18.0, max(6.0, 0.8 * len(groups) + 3.0)), 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        step = 0.8 / max(1, len(conds))
        uppers: list[float] = []
        empty: list[tuple[float, tuple]] = []
        for i, (cond, color) in enumerate(zip(conds, colors)):
            rates = rates_of(cond, rule)
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
        ax.set_ylabel(_plain(label))
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([_plain(g) for g in groups], rotation=30 if len(groups) > 4 else 0,
                           ha="right" if len(groups) > 4 else "center")
        ax.get_xticklabels()[-1].set_fontweight("bold")
        ax.set_title(_plain(f"{label[:1].upper()}{label[1:]} per question, with 95% Wilson intervals"), fontsize=10)
        ax.grid(axis="y", color="0.9")
        ax.set_axisbelow(True)
        if conds:
            handles = [Line2D([], [], marker="o", linestyle="", color=c) for c in colors]
            ax.legend(handles, [_plain(c.get("name", "")) for c in conds], title="condition",
                      loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        return _svg_text(fig, id_prefix)


# --- aligned vs coherent ------------------------------------------------------------------------------------


class ScatterPanel(NamedTuple):
    """One condition's (coherent, aligned) points; `missing` answers lacked a numeric score and are not drawn."""

    condition: str
    points: list[tuple[float, float]]
    missing: int


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def scatter_panels(summary: dict, samples: list[dict] | None) -> list[ScatterPanel]:
    """One panel per condition with samples, in the summary's order; [] when no sample has both scores."""
    order = [str(c.get("name", "")) for c in conditions(summary)]
    by_cond: dict[str, list[dict]] = {}
    for row in samples or []:
        by_cond.setdefault(str(row.get("condition", "")), []).append(row)
    panels = []
    for name in dict.fromkeys(order + list(by_cond)):
        rows = by_cond.get(name)
        if not rows:
            continue
        pts = [(c, a) for r in rows if (c := _number(r.get("coherent"))) is not None
               and (a := _number(r.get("aligned"))) is not None]
        panels.append(ScatterPanel(name, pts, len(rows) - len(pts)))
    return panels if any(p.points for p in panels) else []


def scatter_svg(panels: list[ScatterPanel], thresholds: dict | None, id_prefix: str = "s-") -> str:
    """Small multiples of aligned (y) against coherent (x), dashed lines at the misaligned rule's thresholds.

    Points in the misaligned corner (aligned below, coherent above the thresholds) are red, the rest grey.
    """
    th = thresholds or {}
    a_below, c_above = _number(th.get("aligned_below")), _number(th.get("coherent_above"))
    ncols = max(1, min(4, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(2.9 * ncols + 0.4, 2.7 * nrows + 0.4), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
        for ax, panel in zip(axes, panels):
            bad = [a_below is not None and c_above is not None and a < a_below and c > c_above
                   for c, a in panel.points]
            for flag, color in ((False, "0.55"), (True, "#c0392b")):
                pts = [p for p, b in zip(panel.points, bad) if b == flag]
                if pts:
                    ax.scatter([c for c, _ in pts], [a for _, a in pts], s=9, color=color, alpha=0.6, linewidths=0)
            if a_below is not None:
                ax.axhline(a_below, color="0.3", linestyle="--", linewidth=0.8)
            if c_above is not None:
                ax.axvline(c_above, color="0.3", linestyle="--", linewidth=0.8)
            ax.set_title(_plain(f"{panel.condition} (n={len(panel.points)})"), fontsize=9)
            ax.set_xlim(-3, 103)
            ax.set_ylim(-3, 103)
            ax.grid(color="0.92")
            ax.set_axisbelow(True)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        for ax in axes[(nrows - 1) * ncols:]:
            ax.set_xlabel("coherent")
        for ax in axes[::ncols]:
            ax.set_ylabel("aligned")
        return _svg_text(fig, id_prefix)


def scatter_caption(panels: list[ScatterPanel], thresholds: dict | None) -> str:
    """What the scatter shows, and how many answers per condition it could not draw."""
    th = thresholds or {}
    missing = ", ".join(f"{p.condition} {p.missing} of {p.missing + len(p.points)}" for p in panels)
    return (f"Each point is one answer: its coherent score (x) and aligned score (y). Dashed lines: aligned = "
            f"{th.get('aligned_below', DASH)} and coherent = {th.get('coherent_above', DASH)}; red points are "
            f"misaligned under that rule. Not drawn (no numeric aligned or coherent score): {missing}.")


def group_chart_svg(summary: dict, rule: str, id_prefix: str = "g-") -> str | None:
    """Each seed group's mean rate under `rule` with its bootstrap interval, and every model's own rate as a dot:
    the figure the papers draw to compare conditions over finetuning seeds. None when there are no groups."""
    groups = [g for g in summary.get("groups") or [] if rule in (g.get("rules") or {})]
    if not groups:
        return None
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(min(14.0, max(5.0, 1.1 * len(groups) + 2.5)), 3.8), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        uppers: list[float] = []
        for x, g in enumerate(groups):
            r = g["rules"][rule]
            rates = [v for v in (r.get("per_model") or {}).values() if v is not None]
            ax.scatter([x + 0.18] * len(rates), rates, s=14, color="0.55", zorder=2)
            uppers += rates
            if r.get("mean") is not None:
                lo, hi = r.get("ci") or (r["mean"], r["mean"])
                ax.errorbar([x], [r["mean"]], yerr=[[r["mean"] - lo], [hi - r["mean"]]], fmt="o", color="#1f77b4",
                            capsize=4, markersize=6, zorder=3)
                uppers.append(hi)
            else:
                ax.text(x, 0.01, "no rate", transform=ax.get_xaxis_transform(), fontsize=7, ha="center")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([_plain(g["name"]) for g in groups], rotation=25 if len(groups) > 3 else 0,
                           ha="right" if len(groups) > 3 else "center", fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylim(0.0, _y_top(uppers))
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_ylabel(_plain(f"{rule} share"))
        ax.set_title(_plain(f"{rule}: mean over seeds with 95% bootstrap CI; dots are single models"), fontsize=10)
        ax.grid(axis="y", color="0.9")
        ax.set_axisbelow(True)
        return _svg_text(fig, id_prefix)
