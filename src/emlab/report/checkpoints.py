"""The report's training-dynamics view (`train: eval_checkpoints`): each rule's share against the optimizer step.

Turner, Soligo et al. 2025 follow emergent misalignment through training by evaluating saved checkpoints. A run
with `eval_checkpoints` evaluates every checkpoint as an arm `<arm>@step<k>`, and summary.json's `checkpoints`
holds the series: `arms` (arm -> points {step, arm, final, rules: rule -> share, ci, hits, kept, answers}) and
`groups` (seed group -> points {step, members, final, rules: rule -> mean, ci, n_models, per_model}).

- `without_checkpoints`: the summary the rest of the report reads (checkpoint arms only appear here).
- `checkpoint_table`: one row per (arm or group, step), one cell per rule with its interval and n.
- `checkpoint_chart_svg`: share vs step with intervals, one line per arm, or per seed group (the mean over its
  seeds with the bootstrap interval; its arms are not drawn again).
"""

from __future__ import annotations

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from emlab.report.charts import _RC, _plain, _svg_text, _y_top, condition_colors
from emlab.report.tables import DASH, Table, ci_text, count, pct, rate_cell


def without_checkpoints(summary: dict) -> dict:
    """The summary less its checkpoint arms, for every section but this one (they would crowd each table)."""
    conds = summary.get("conditions") or []
    if not any(c.get("checkpoint") for c in conds):
        return summary
    return {**summary, "conditions": [c for c in conds if not c.get("checkpoint")]}


def _series(summary: dict) -> tuple[dict, dict]:
    data = summary.get("checkpoints") or {}
    return dict(data.get("arms") or {}), dict(data.get("groups") or {})


def checkpoint_rules(summary: dict) -> list[str]:
    """The rules the series hold, in the order the run declared them."""
    arms, _ = _series(summary)
    seen = [r for points in arms.values() for p in points for r in p.get("rules") or {}]
    declared = [r.get("name") for r in summary.get("rules") or [] if r.get("name") in seen]
    return list(dict.fromkeys(declared + seen))


def _grouped(summary: dict) -> set[str]:
    """Arms whose seed group has a series: the figure draws the group's line instead of theirs."""
    _, groups = _series(summary)
    return {c["name"] for c in summary.get("conditions") or [] if c.get("group") in groups}


def _group_cell(g: dict | None) -> str:
    if not g or g.get("mean") is None:
        return f"{DASH} (0 models)"
    return f"{pct(g['mean'])} {ci_text(g.get('ci'))} ({count(g.get('n_models'))} models)"


def checkpoint_table(summary: dict) -> Table | None:
    """Arm or seed group x step: each rule's share [95% CI] (hits/kept), or a group's mean over seeds; None without
    checkpoints."""
    arms, groups = _series(summary)
    if not arms:
        return None
    rules = checkpoint_rules(summary)
    rows = []
    for arm, points in arms.items():
        for p in points:
            label = f"{p['step']} (final)" if p.get("final") else str(p["step"])
            rows.append([_plain(arm), label, str(p.get("arm") or DASH)]
                        + [rate_cell((p.get("rules") or {}).get(r)) for r in rules])
    for group, points in groups.items():
        for p in points:
            rows.append([f"{group} (seed group)", str(p["step"]), ", ".join(p.get("members") or []) or DASH]
                        + [_group_cell((p.get("rules") or {}).get(r)) for r in rules])
    return Table(["arm", "step", "evaluated as"] + rules, rows)


def checkpoint_chart_svg(summary: dict, rule: str, id_prefix: str = "ck-") -> str | None:
    """`rule`'s share against the training step: a line with 95% intervals per arm (Wilson) or seed group
    (bootstrap over its models); the final adapter's point is a square. None when no series has the rule."""
    arms, groups = _series(summary)
    grouped = _grouped(summary)
    lines: list[tuple[str, list[tuple[int, float | None, list | None, bool]]]] = []
    for group, points in groups.items():
        lines.append((f"{group} (mean over seeds)", [(p["step"], (p["rules"].get(rule) or {}).get("mean"),
                                                      (p["rules"].get(rule) or {}).get("ci"), bool(p.get("final"))) for p in points]))
    for arm, points in arms.items():
        if arm not in grouped:
            lines.append((arm, [(p["step"], (p["rules"].get(rule) or {}).get("share"),
                                 (p["rules"].get(rule) or {}).get("ci"), bool(p.get("final"))) for p in points]))
    if not any(y is not None for _, pts in lines for _, y, _, _ in pts):
        return None
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.4, 3.8), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        uppers: list[float] = []
        for (label, pts), color in zip(lines, condition_colors(len(lines))):
            shown = [(x, y, ci or (y, y), final) for x, y, ci, final in pts if y is not None]
            if not shown:
                continue
            xs, ys = [x for x, *_ in shown], [y for _, y, *_ in shown]
            err = [[max(0.0, y - ci[0]) for _, y, ci, _ in shown], [max(0.0, ci[1] - y) for _, y, ci, _ in shown]]
            ax.errorbar(xs, ys, yerr=err, fmt="o-", color=color, capsize=3, markersize=4, label=_plain(label))
            finals = [(x, y) for x, y, _, final in shown if final]
            if finals:
                ax.plot(*zip(*finals), "s", color=color, markersize=7)
            uppers += [ci[1] for *_, ci, _ in shown]
        ax.set_ylim(0.0, _y_top(uppers))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
        ax.set_xlabel("training step (optimizer steps)")
        ax.set_ylabel(_plain(f"{rule} share"))
        ax.set_title(_plain(f"{rule} share through training, with 95% intervals"), fontsize=10)
        ax.grid(color="0.9")
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        return _svg_text(fig, id_prefix)
