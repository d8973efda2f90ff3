"""The report's view of persona directions: interventions against their baselines, separation and similarity.

- `intervention_table`: each intervened condition (steered or ablated) next to the condition it was added to,
  under every rule, with n, the paired difference and its interval (and the group difference over seeds when
  both are seed groups); the `coherent_share` rule's row is the intervention's coherence cost.
- `separation_svg`: a direction's AUROC per layer (in-sample, cross-fitted, same-norm random directions').
- `cosine_svg`: cosine similarity per layer between named directions (across organisms; base vs finetuned).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emlab.analysis.directions import Directions, layer_cosines
from emlab.report.charts import _RC, _plain, _svg_text
from emlab.report.rule_tables import diff_text, p_text
from emlab.report.tables import DASH, Table


def _share(side: dict | None) -> str:
    if not side or side.get("share") is None:
        return f"{DASH} (n=0)" if side is not None else DASH
    return f"{side['share']:.1%} ({side['hits']}/{side['kept']})"


def _setting_text(s: dict) -> str:
    what = f"{s['kind']} {s['direction']} (layer {s['layer']})"
    if s["kind"] == "steer":
        what += f", alpha {s['alpha']:g} x {s.get('vector', 'raw')} vector"
    elif s.get("at") not in (None, "all"):
        what += f" at layers {', '.join(map(str, s['at']))}"
    if s.get("random") is not None:
        what += f", random direction (seed {s['random']})"
    return what


def intervention_table(summary: dict) -> Table | None:
    """Intervention x rule: share with it, without it, the paired difference [95% CI], p, and the seed-group diff."""
    pairs = summary.get("interventions") or []
    if not pairs:
        return None
    by_name = {c["name"]: c for c in summary.get("comparisons") or []}
    rows = []
    for pair in pairs:
        for rule, name in pair["comparisons"].items():
            c = by_name.get(name)
            if c is None:
                continue
            g = c.get("group") or {}
            group = diff_text(g.get("diff"), g.get("ci")) if g else DASH
            rows.append([_plain(pair["a"]), _setting_text(pair["setting"]), rule, _share(c.get("a")),
                         _share(c.get("b")), diff_text(c.get("diff"), c.get("ci")), p_text(c.get("p_value")), group])
    header = ["condition", "intervention", "rule", "with", "without (baseline)", "difference [95% CI]", "p",
              "over seeds [95% CI]"]
    return Table(header, rows)


def separation_svg(directions: Directions, id_prefix: str = "sep-") -> str:
    """AUROC of the projection per layer: in-sample, cross-fitted and same-norm random directions' (folded)."""
    sep = directions.provenance.extra.get("separation") or {}
    layers = [int(k) for k in sep]
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.0, 3.4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for key, label, style in (("auroc", "in-sample", "o-"), ("auroc_cross_fitted", "cross-fitted", "s-"),
                                  ("auroc_random_median", "random directions (median)", "x--"),
                                  ("auroc_random_max", "random directions (max)", "x:")):
            points = [(layer, sep[str(layer)][key]) for layer in layers if sep[str(layer)].get(key) is not None]
            if points:
                ax.plot(*zip(*points), style, label=label, markersize=5)
        ax.axhline(0.5, color="0.6", linewidth=0.8)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("layer")
        ax.set_ylabel("AUROC of the projection")
        p = directions.provenance
        ax.set_title(_plain(f"{p.kind}: {directions.n_positive} vs {directions.n_negative} answers"), fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(color="0.9")
        return _svg_text(fig, id_prefix)


def cosine_table(named: Sequence[tuple[str, Directions]]) -> Table:
    """Layer x pair of directions: their cosine similarity (layers both directions have)."""
    pairs = list(itertools.combinations(named, 2))
    layers = sorted(set.intersection(*(set(d.layers) for _, d in named))) if named else []
    rows = []
    for layer in layers:
        rows.append([str(layer)] + [f"{layer_cosines(a, b)[layer]:+.3f}" for (_, a), (_, b) in pairs])
    return Table(["layer"] + [f"{a} · {b}" for (a, _), (b, _) in pairs], rows)


def cosine_svg(named: Sequence[tuple[str, Directions]], id_prefix: str = "cos-") -> str:
    """Cosine similarity per layer for every pair of the named directions."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.0, 3.4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for (na, a), (nb, b) in itertools.combinations(named, 2):
            cos = layer_cosines(a, b)
            if cos:
                ax.plot(list(cos), list(cos.values()), "o-", markersize=4, label=_plain(f"{na} · {nb}"))
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.set_ylim(-1.02, 1.02)
        ax.set_xlabel("layer")
        ax.set_ylabel("cosine similarity")
        ax.set_title("directions compared layer by layer", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(color="0.9")
        return _svg_text(fig, id_prefix)


def _f(x) -> str:
    return DASH if x is None else f"{x:.3f}"


def directions_table(summary: dict) -> Table | None:
    """Direction x layer: where it came from, its classes, norm and separation (AUROC in-sample, cross-fitted, random)."""
    arts = (summary.get("directions") or {}).get("artifacts") or {}
    rows = []
    for name, a in arts.items():
        sep = a.get("separation") or {}
        for layer, norm in zip(a["layers"], a["norms"]):
            s = sep.get(str(layer)) or {}
            rows.append([name, a["kind"], f"{a['n_positive']} vs {a['n_negative']}", str(layer), f"{norm:.2f}",
                         _f(s.get("auroc")), _f(s.get("auroc_cross_fitted")), _f(s.get("auroc_random_median"))])
    if not rows:
        return None
    return Table(["direction", "kind", "answers (positive vs negative)", "layer", "norm", "AUROC", "cross-fitted",
                  "random directions (median)"], rows)


def direction_cosines_table(summary: dict) -> Table | None:
    """Pair of directions x layer: cosine similarity (does one organism's direction match another's, or the base's?)."""
    pairs = (summary.get("directions") or {}).get("cosines") or []
    layers = sorted({int(k) for p in pairs for k in p["by_layer"]})
    if not pairs or not layers:
        return None
    rows = [[f"{p['a']} · {p['b']}"] + [DASH if str(k) not in p["by_layer"] else f"{p['by_layer'][str(k)]:+.3f}"
                                         for k in layers] for p in pairs]
    return Table(["directions"] + [f"layer {k}" for k in layers], rows)


def summary_cosine_svg(summary: dict, id_prefix: str = "dcos-") -> str:
    """The cosine table as a figure: one line per pair of directions across layers."""
    pairs = (summary.get("directions") or {}).get("cosines") or []
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.0, 3.4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for p in pairs:
            layers = sorted(int(k) for k in p["by_layer"])
            ax.plot(layers, [p["by_layer"][str(k)] for k in layers], "o-", markersize=4,
                    label=_plain(f"{p['a']} · {p['b']}"))
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.set_ylim(-1.02, 1.02)
        ax.set_xlabel("layer")
        ax.set_ylabel("cosine similarity")
        ax.set_title("the run's directions compared layer by layer", fontsize=10)
        if pairs:
            ax.legend(fontsize=8)
        ax.grid(color="0.9")
        return _svg_text(fig, id_prefix)
