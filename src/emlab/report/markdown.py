"""The report's content as plain-text tables, and its Markdown rendering.

The tables are built once here (cells are plain, unescaped text) and rendered twice: as Markdown below and
as HTML in `html.py`, so both reports always say the same thing. Every percentage is printed next to its
k/n and its Wilson interval, and a rate with nothing kept is printed as "—", never as 0%: a small or empty
denominator must be visible to the reader, not hidden behind a number.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

DASH = "—"
CHART_NOTE = "The per-question chart (misaligned share with 95% Wilson intervals) is in report.html."


class Table(NamedTuple):
    """A table of plain-text cells; `emphasis` marks rows to render in bold (the pooled row)."""

    headers: list[str]
    rows: list[list[str]]
    emphasis: frozenset[int] = frozenset()


def pct(x: float | None) -> str:
    """A share as a percentage with one decimal, or a dash when there is none."""
    return DASH if x is None else f"{100 * x:.1f}%"


def ci_text(ci: Any) -> str:
    """A (low, high) interval as `[4.3–30.9]` in percent, or a dash."""
    if not ci:
        return DASH
    lo, hi = ci
    return f"[{100 * lo:.1f}–{100 * hi:.1f}]"


def rate_cell(rate: dict | None) -> str:
    """One rate as `12.5% [4.3–30.9] (3/24)`, or `— (0/0)` when nothing was kept."""
    rate = rate or {}
    k, n = int(rate.get("misaligned") or 0), int(rate.get("kept") or 0)
    if rate.get("share") is None:
        return f"{DASH} ({k}/{n})"
    return f"{pct(rate['share'])} {ci_text(rate.get('ci'))} ({k}/{n})"


def coherent_cell(rate: dict) -> str:
    """The coherent share over answers the coherence judge scored, with its interval and k/n."""
    scored = int(rate.get("answers") or 0) - int(rate.get("dropped_error") or 0)
    scored -= int(rate.get("dropped_coherent_none") or 0)
    c = int(rate.get("coherent") or 0)
    if rate.get("coherent_share") is None:
        return f"{DASH} ({c}/{max(scored, 0)})"
    return f"{pct(rate['coherent_share'])} {ci_text(rate.get('coherent_ci'))} ({c}/{scored})"


def conditions(summary: dict) -> list[dict]:
    """The summary's conditions, an empty list when there are none."""
    return list(summary.get("conditions") or [])


def question_ids(summary: dict) -> list[str]:
    """Question ids in report order: the suite's main ids first, then any others in first-seen order."""
    order: list[str] = []
    suite = summary.get("suite") or {}
    seen_any = {q for c in conditions(summary) for q in ((c.get("rates") or {}).get("per_question") or {})}
    for q in suite.get("main_ids") or []:
        if q in seen_any and q not in order:
            order.append(q)
    for c in conditions(summary):
        for q in (c.get("rates") or {}).get("per_question") or {}:
            if q not in order:
                order.append(q)
    return order


def _pooled(cond: dict) -> dict:
    return (cond.get("rates") or {}).get("pooled") or {}


def conditions_table(summary: dict) -> Table:
    """One row per condition: pooled misaligned share, interval, counts, coherent share and drop counts."""
    headers = [
        "condition", "misaligned share", "95% CI", "misaligned/kept", "coherent share", "answers",
        "dropped: incoherent", "dropped: no coherent score", "dropped: no aligned score", "dropped: judge error",
    ]
    rows = []
    for c in conditions(summary):
        r = _pooled(c)
        rows.append([
            str(c.get("name", "")), pct(r.get("share")), ci_text(r.get("ci")),
            f"{int(r.get('misaligned') or 0)}/{int(r.get('kept') or 0)}", coherent_cell(r),
            str(int(r.get("answers") or 0)), str(int(r.get("dropped_incoherent") or 0)),
            str(int(r.get("dropped_coherent_none") or 0)), str(int(r.get("dropped_aligned_none") or 0)),
            str(int(r.get("dropped_error") or 0)),
        ])
    return Table(headers, rows)


def per_question_table(summary: dict) -> Table:
    """Rows are question ids (then the pooled row), columns are conditions, cells are `rate_cell`s."""
    conds = conditions(summary)
    rows = []
    for q in question_ids(summary):
        rows.append([q] + [rate_cell(((c.get("rates") or {}).get("per_question") or {}).get(q)) for c in conds])
    rows.append(["pooled"] + [rate_cell(_pooled(c)) for c in conds])
    return Table(["question"] + [str(c.get("name", "")) for c in conds], rows, frozenset({len(rows) - 1}))


def _describe(obj: Any) -> str:
    if obj is None:
        return DASH
    if isinstance(obj, dict):
        return ", ".join(f"{k}={_describe(v)}" for k, v in obj.items()) or DASH
    if isinstance(obj, (list, tuple)):
        return ", ".join(_describe(v) for v in obj) or DASH
    return str(obj)


def provenance_items(summary: dict) -> list[tuple[str, str]]:
    """The run's settings as (label, value) pairs: thresholds, judge, suite, sampling, versions."""
    th = summary.get("thresholds") or {}
    suite = summary.get("suite")
    items = [
        ("misaligned rule", f"aligned < {th.get('aligned_below', DASH)} among answers with coherent > "
                            f"{th.get('coherent_above', DASH)} and a numeric aligned score"),
        ("judge", _describe(summary.get("judge"))),
    ]
    if suite:
        items.append(("suite", f"{suite.get('name', DASH)} (content hash {suite.get('content_hash') or DASH})"))
        items.append(("pooled over", _describe(suite.get("main_ids"))))
    else:
        items.append(("suite", DASH))
        items.append(("pooled over", "all questions"))
    items.append(("sampling", _describe(summary.get("sampling"))))
    items.append(("versions", _describe(summary.get("versions"))))
    items.append(("emlab version", _describe(summary.get("emlab_version"))))
    items.append(("created", _describe(summary.get("created"))))
    return items


def provenance_table(summary: dict) -> Table:
    """One row per condition: model, dataset (source, rows, hash), adapter (hash, final loss), seed."""
    rows = []
    for c in conditions(summary):
        ds, ad = c.get("dataset"), c.get("adapter")
        dataset = DASH if not ds else f"{ds.get('source', DASH)}, {ds.get('rows', DASH)} rows, hash {ds.get('hash', DASH)}"
        adapter = DASH if not ad else f"hash {ad.get('hash', DASH)}, final loss {_describe(ad.get('final_loss'))}"
        rows.append([str(c.get("name", "")), _describe(c.get("model")), dataset, adapter, _describe(c.get("seed"))])
    return Table(["condition", "model", "dataset", "adapter", "seed"], rows)


def not_pooled_note(summary: dict) -> str | None:
    """A sentence naming the questions reported but left out of the pooled rate, if any."""
    main = (summary.get("suite") or {}).get("main_ids")
    if not main:
        return None
    extra = [q for q in question_ids(summary) if q not in main]
    return f"Not in the pooled rate (not main questions): {', '.join(extra)}." if extra else None


# --- Markdown rendering -------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*<>|#&])")
_MD_LINK = re.compile(r"(\])(?=[(\[:])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text: Any) -> str:
    """Backslash-escape Markdown/HTML syntax in user text so it shows literally (intraword `_` left alone)."""
    s = " ".join(str(text).splitlines())
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = _MD_LINK.sub(r"\\\1", s)
    s = _MD_UNDERSCORE.sub(r"\\_", s)
    return "\\" + s if s[:1] in ("-", "+", "=") else s


def md_table(table: Table) -> str:
    """A GitHub-flavoured Markdown table with escaped cells."""
    def row(cells: list[str], bold: bool = False) -> str:
        esc = [md_escape(c) for c in cells]
        return "| " + " | ".join(f"**{e}**" if bold and e else e for e in esc) + " |"

    lines = [row(table.headers), "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += [row(r, i in table.emphasis) for i, r in enumerate(table.rows)]
    return "\n".join(lines)


def render_markdown(summary: dict) -> str:
    """The whole report as Markdown: title, warnings, pooled and per-question tables, provenance."""
    out = [f"# emlab report: {md_escape(summary.get('title') or 'untitled')}", ""]
    warnings = list(summary.get("warnings") or [])
    if warnings:
        out += ["> **Warnings**", ">"] + [f"> - {md_escape(w)}" for w in warnings] + [""]
    th = summary.get("thresholds") or {}
    out += [
        "## Misaligned share per condition (pooled)", "",
        f"An answer is misaligned when aligned < {th.get('aligned_below', DASH)} among answers with "
        f"coherent > {th.get('coherent_above', DASH)} and a numeric aligned score; intervals are 95% Wilson.", "",
        md_table(conditions_table(summary)), "",
        "## Per question", "",
        "Cells: misaligned share [95% CI] (misaligned/kept); "
        f"{DASH} (0/0) means no answer was kept, which is not a zero rate.", "",
        md_table(per_question_table(summary)), "",
    ]
    note = not_pooled_note(summary)
    if note:
        out += [md_escape(note), ""]
    out += [f"*{CHART_NOTE}*", "", "## Provenance", ""]
    out += [f"- **{label}**: {md_escape(value)}" for label, value in provenance_items(summary)]
    out += ["", md_table(provenance_table(summary)), ""]
    return "\n".join(out)
