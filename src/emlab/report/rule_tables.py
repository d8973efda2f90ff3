"""Tables for the extended summary: rates per rule, metrics, seed groups, comparisons, suites and variants.

Every key read here is optional (old summaries and `emlab analyze` summaries have none of them), so each
builder returns an empty list or None rather than failing. Cells are plain text, escaped by the renderer.
A percentage always sits next to its n (hits/kept, a model count or the arms' counts), and a value that
is None prints as "—".
"""

from __future__ import annotations

from typing import Any, Iterable

from emlab.report.tables import (
    DASH, Table, ci_text, conditions, count, hits, main_ids, pct, question_ids, rate_cell, rates_of,
)


def _names(declared: Iterable[dict] | None, seen: Iterable[str]) -> list[str]:
    """Declared names in their order, then names only seen in the conditions, in first-seen order."""
    return list(dict.fromkeys([str(d.get("name")) for d in declared or [] if d.get("name") is not None] + list(seen)))


def rule_names(summary: dict) -> list[str]:
    return _names(summary.get("rules"), (r for c in conditions(summary) for r in (c.get("rules") or {})))


def rule_text(summary: dict, rule: str) -> str | None:
    return next((r.get("text") for r in summary.get("rules") or [] if r.get("name") == rule), None)


def metric_names(summary: dict) -> list[str]:
    return _names(summary.get("metrics"), (m for c in conditions(summary) for m in (c.get("metrics") or {})))


def metric_info(summary: dict, metric: str) -> dict:
    return next((m for m in summary.get("metrics") or [] if m.get("name") == metric), {})


def counts_text(counts: dict | None) -> str:
    """`{reason: n}` as `reason (3), other (1)`, or a dash when empty."""
    return ", ".join(f"{k} ({v})" for k, v in (counts or {}).items()) or DASH


def signed_pp(x: float | None) -> str:
    """A difference of shares in percentage points with its sign, e.g. `+5.2 pp`."""
    return DASH if x is None else f"{100 * x:+.1f} pp"


def diff_text(diff: float | None, ci: Any) -> str:
    """`+5.2 pp [−1.0, +11.4]`; the interval is left out when there is none."""
    if diff is None:
        return DASH
    if not ci:
        return f"{signed_pp(diff)} [no interval]"
    return f"{signed_pp(diff)} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def p_text(p: float | None) -> str:
    return DASH if p is None else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def rule_conditions_table(summary: dict, rule: str) -> Table:
    """One row per condition: pooled share, Wilson CI, question-clustered CI, hits/kept, answers, drops."""
    conds = conditions(summary)
    pooled = [rates_of(c, rule).get("pooled") or {} for c in conds]
    reasons = list(dict.fromkeys(r for p in pooled for r in (p.get("dropped") or {})))
    clustered = any(p.get("cluster_ci") for p in pooled)
    headers = ["condition", "share", "95% Wilson CI"] + (["95% CI, questions resampled"] if clustered else [])
    headers += ["hits/kept", "answers"] + [f"dropped: {r}" for r in reasons]
    rows = []
    for c, p in zip(conds, pooled):
        row = [str(c.get("name", "")), pct(p.get("share")), ci_text(p.get("ci"))]
        row += [ci_text(p.get("cluster_ci"))] if clustered else []
        row += [f"{hits(p)}/{count(p.get('kept'))}", str(count(p.get("answers")))]
        rows.append(row + [str(count((p.get("dropped") or {}).get(r))) for r in reasons])
    return Table(headers, rows)


def rule_per_question_table(summary: dict, rule: str) -> Table:
    """Rows are question ids (then the pooled row), columns are conditions, cells are `rate_cell`s."""
    conds = conditions(summary)
    rows = [[q] + [rate_cell((rates_of(c, rule).get("per_question") or {}).get(q)) for c in conds]
            for q in question_ids(summary, rule)]
    rows.append(["pooled"] + [rate_cell(rates_of(c, rule).get("pooled")) for c in conds])
    return Table(["question"] + [str(c.get("name", "")) for c in conds], rows, frozenset({len(rows) - 1}))


def rule_family_table(summary: dict, rule: str) -> Table | None:
    """Rows are question families (as the suites list them), columns are conditions; None without families."""
    conds = conditions(summary)
    declared = [f for s in summary.get("suites") or [] for f in (s.get("families") or {})]
    seen = [f for c in conds for f in (rates_of(c, rule).get("families") or {})]
    fams = list(dict.fromkeys(declared + seen))
    if not fams:
        return None
    rows = [[f] + [rate_cell((rates_of(c, rule).get("families") or {}).get(f)) for c in conds] for f in fams]
    return Table(["family"] + [str(c.get("name", "")) for c in conds], rows)


def metric_table(summary: dict, metric: str) -> Table:
    """One row per condition: answers, scored, none (with reasons), errors, and the mean or label counts."""
    kind = metric_info(summary, metric).get("kind")
    if kind is None:
        kind = next((m.get("kind") for c in conditions(summary)
                     if (m := (c.get("metrics") or {}).get(metric)) and m.get("kind")), "numeric")
    last = "mean (of scored)" if kind == "numeric" else "labels (of scored)"
    rows = []
    for c in conditions(summary):
        m = (c.get("metrics") or {}).get(metric)
        if m is None:
            rows.append([str(c.get("name", ""))] + [DASH] * 6)
            continue
        value = (DASH if m.get("mean") is None else f"{m['mean']:.1f}") if kind == "numeric" \
            else counts_text(m.get("labels"))
        rows.append([str(c.get("name", "")), str(count(m.get("answers"))), str(count(m.get("scored"))),
                     str(count(m.get("none"))), counts_text(m.get("none_reasons")), str(count(m.get("errors"))),
                     value])
    return Table(["condition", "answers", "scored", "none", "none: reasons", "errors", last], rows)


def _model_rate_text(summary: dict, rule: str, name: str, rate: float | None, min_kept: Any) -> str:
    """A member's rate with the hits/kept behind it when the condition's per-question counts reproduce it."""
    if rate is None:
        return f"{name} {DASH}"
    cond = next((c for c in conditions(summary) if c.get("name") == name), None)
    if cond is not None:
        main = set(main_ids(summary))
        per_q = rates_of(cond, rule).get("per_question") or {}
        cells = [r for q, r in per_q.items() if (not main or q in main) and count(r.get("kept")) >= count(min_kept)]
        h, k = sum(hits(r) for r in cells), sum(count(r.get("kept")) for r in cells)
        if k and abs(h / k - rate) < 1e-9:
            return f"{name} {pct(rate)} ({h}/{k})"
    return f"{name} {pct(rate)}"


def group_table(summary: dict, group: dict) -> Table:
    """One row per rule: the equal-weight mean over models, its bootstrap CI, n models, members, drops."""
    headers = ["rule", "mean over models", "95% bootstrap CI", "models with a rate", "per model", "dropped models",
               "note"]
    rows = []
    for rule, g in (group.get("rules") or {}).items():
        per_model = "; ".join(_model_rate_text(summary, rule, str(n), r, g.get("min_kept_per_question"))
                              for n, r in (g.get("per_model") or {}).items()) or DASH
        dropped = "; ".join(f"{n}: {why}" for n, why in (g.get("dropped_models") or {}).items()) or DASH
        rows.append([str(rule), pct(g.get("mean")), ci_text(g.get("ci")), str(count(g.get("n_models"))),
                     per_model, dropped, str(g.get("note") or DASH)])
    return Table(headers, rows)


def _side(comp: dict, key: str) -> tuple[str, dict]:
    """(name, {hits, kept, share}) of arm `key`: `a` may be the name (counts under `a_stats`) or the counts."""
    v = comp.get(key)
    if isinstance(v, dict):
        return str(v.get("name") or v.get("condition") or comp.get(f"{key}_name") or DASH), v
    stats = comp.get(f"{key}_stats") or comp.get(f"{key}_rate") or (comp.get("arms") or {}).get(key) or {}
    return (DASH if v is None else str(v)), stats


def _arm_text(stats: dict) -> str:
    return f"{pct(stats.get('share'))} ({hits(stats)}/{count(stats.get('kept'))})"


def comparison_methods(summary: dict) -> list[str]:
    """The distinct method texts of the comparisons (paired, then group), numbered (1), (2)... in the table."""
    comps = list(summary.get("comparisons") or [])
    return list(dict.fromkeys([str(c["method"]) for c in comps if c.get("method")]
                              + [str(g["method"]) for c in comps if (g := c.get("group") or {}).get("method")]))


def comparisons_table(summary: dict) -> Table:
    """One row per comparison: arms and their shares, diff with CI, p-value, shared questions, method, note."""
    comps = list(summary.get("comparisons") or [])
    methods = {m: f"({i})" for i, m in enumerate(comparison_methods(summary), 1)}
    grouped = any(c.get("group") for c in comps)
    headers = ["comparison", "a", "b", "rule", "share a (hits/kept)", "share b (hits/kept)", "diff (a − b) [95% CI]",
               "p-value", "shared questions", "method"]
    headers += (["group diff [95% CI]", "group method"] if grouped else []) + ["note"]
    rows = []
    for c in comps:
        (a, sa), (b, sb) = _side(c, "a"), _side(c, "b")
        shared = c.get("shared_questions")
        row = [str(c.get("name") or f"{a} vs {b}"), a, b, str(c.get("rule") or DASH), _arm_text(sa), _arm_text(sb),
               diff_text(c.get("diff"), c.get("ci")), p_text(c.get("p_value")),
               DASH if shared is None else str(len(shared)), methods.get(str(c.get("method")), DASH)]
        if grouped:
            g = c.get("group") or {}
            row += [diff_text(g.get("diff"), g.get("ci")) if g else DASH, methods.get(str(g.get("method")), DASH)]
        rows.append(row + [str(c.get("note") or DASH)])
    return Table(headers, rows)


def suites_table(summary: dict) -> Table | None:
    """One row per suite: name, content hash, main questions, families; None when the summary has no `suites`."""
    suites = summary.get("suites")
    if not suites:
        return None
    rows = [[str(s.get("name") or DASH), str(s.get("content_hash") or DASH), ", ".join(s.get("main_ids") or []) or DASH,
             "; ".join(f"{f}: {', '.join(ids)}" for f, ids in (s.get("families") or {}).items()) or DASH]
            for s in suites]
    return Table(["suite", "content hash", "main questions", "families"], rows)


def variants_table(summary: dict) -> Table | None:
    """One row per condition: seed group, system prompt, trigger and its position; None when none has a variant."""
    conds = conditions(summary)
    if not any(c.get("variant") or c.get("group") for c in conds):
        return None
    rows = []
    for c in conds:
        v = c.get("variant") or {}
        position = str(v.get("trigger_position") or DASH) if v.get("trigger") else DASH
        rows.append([str(c.get("name", "")), str(c.get("group") or DASH), str(v.get("system") or DASH),
                     str(v.get("trigger") or DASH), position])
    return Table(["condition", "group", "system prompt", "trigger", "trigger position"], rows)


def grid_table(summary: dict, rule: str) -> Table | None:
    """A grid's results by axis: one row per combination of levels, the seed-group mean [CI] (or the condition's
    pooled share when it has no seeds), so each axis can be read across the rows."""
    grid = summary.get("grid") or {}
    axes = list((grid.get("axes") or {}))
    levels = grid.get("levels") or {}
    if not axes or not levels:
        return None
    groups = {g.get("name"): g for g in summary.get("groups") or []}
    conds = {c.get("name"): c for c in conditions(summary)}
    rows = []
    for name, lv in levels.items():
        cells = [str(lv.get(a, DASH)) for a in axes]
        g = (groups.get(name) or {}).get("rules", {}).get(rule)
        if g is not None:
            rows.append(cells + [f"{pct(g.get('mean'))} {ci_text(g.get('ci'))}", f"{count(g.get('n_models'))} seeds"])
        elif name in conds:
            r = rates_of(conds[name], rule).get("pooled") or {}
            rows.append(cells + [f"{pct(r.get('share'))} {ci_text(r.get('ci'))}", f"{hits(r)}/{count(r.get('kept'))}"])
    if not rows:
        return None
    return Table(axes + [f"{rule} (mean over seeds [95% bootstrap CI], or share [Wilson CI])", "n"], rows)
