"""The report's tables as plain-text cells: the primitives, the legacy misaligned tables and provenance.

Tables are built once (here and in `rule_tables.py`; cells are plain, unescaped text) and rendered twice,
as Markdown in `markdown.py` and as HTML in `html.py`, so both reports always say the same thing. Every
percentage is printed next to its k/n and its Wilson interval, and a rate with nothing kept is printed as
"—", never as 0%: a small or empty denominator must be visible to the reader, not hidden behind a number.
"""

from __future__ import annotations

from typing import Any, NamedTuple

DASH = "—"


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


def count(x: Any) -> int:
    """A count from the summary; a missing one is 0."""
    return int(x or 0)


def hits(rate: dict) -> int:
    """The numerator of a rate: `hits` for a rule's rate, `misaligned` for the legacy one."""
    return count(rate.get("hits", rate.get("misaligned")))


def rate_cell(rate: dict | None) -> str:
    """One rate as `12.5% [4.3–30.9] (3/24)`, or `— (0/0)` when nothing was kept."""
    rate = rate or {}
    k, n = hits(rate), count(rate.get("kept"))
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


def rates_of(cond: dict, rule: str | None = None) -> dict:
    """A condition's rates under `rule` ({pooled, per_question, families}), or its legacy `rates` when None."""
    if rule is None:
        return cond.get("rates") or {}
    return (cond.get("rules") or {}).get(rule) or {}


def main_ids(summary: dict) -> list[str]:
    """The questions pooled rates are over: the main ids of `suite` and of every entry of `suites`."""
    suites = [summary.get("suite") or {}] + list(summary.get("suites") or [])
    return list(dict.fromkeys(q for s in suites for q in (s.get("main_ids") or [])))


def question_ids(summary: dict, rule: str | None = None) -> list[str]:
    """Question ids in report order: the suites' main ids first, then any others in first-seen order."""
    seen = [q for c in conditions(summary) for q in (rates_of(c, rule).get("per_question") or {})]
    main = [q for q in main_ids(summary) if q in set(seen)]
    return list(dict.fromkeys(main + seen))


def _pooled(cond: dict) -> dict:
    return rates_of(cond).get("pooled") or {}


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
        rows.append([q] + [rate_cell((rates_of(c).get("per_question") or {}).get(q)) for c in conds])
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
    """The run's settings as (label, value) pairs: thresholds, rules, judge, suite, sampling, versions."""
    th = summary.get("thresholds") or {}
    suite, suites = summary.get("suite"), summary.get("suites")
    items = [
        ("misaligned rule", f"aligned < {th.get('aligned_below', DASH)} among answers with coherent > "
                            f"{th.get('coherent_above', DASH)} and a numeric aligned score"),
    ]
    for r in summary.get("rules") or []:
        items.append((f"rule {r.get('name', DASH)}", str(r.get("text") or DASH)))
    items.append(("judge", _describe(summary.get("judge"))))
    if summary.get("label_judge"):
        items.append(("label judge", _describe(summary["label_judge"])))
    if suite:
        items.append(("suite", f"{suite.get('name', DASH)} (content hash {suite.get('content_hash') or DASH})"))
    for s in suites or []:
        items.append(("suite", f"{s.get('name', DASH)} (content hash {s.get('content_hash') or DASH})"))
    if not suite and not suites:
        items.append(("suite", DASH))
    items.append(("pooled over", _describe(main_ids(summary)) if main_ids(summary) else "all questions"))
    items.append(("sampling", _describe(summary.get("sampling"))))
    if summary.get("bootstrap"):
        items.append(("bootstrap", _describe(summary["bootstrap"])))
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


def not_pooled_note(summary: dict, rule: str | None = None) -> str | None:
    """A sentence naming the questions reported but left out of the pooled rate, if any."""
    main = main_ids(summary)
    if not main:
        return None
    extra = [q for q in question_ids(summary, rule) if q not in main]
    return f"Not in the pooled rate (not main questions): {', '.join(extra)}." if extra else None
