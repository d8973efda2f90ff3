"""The audit section: the cheap judge's share beside the strong judge's on the audited subset and the PPI share.

Why a section of its own: an audited run has two answers to "what is the rate", and the reader must see both,
how often the judges disagreed, and how many audit calls failed, not only the corrected number. Cells are
plain text (escaped by the renderer); every share sits next to its hits/kept, and a share that could not be
estimated prints "—" with the reason.
"""

from __future__ import annotations

from emlab.report.rule_tables import counts_text
from emlab.report.tables import DASH, Table, ci_text, pct, rate_cell

HEADERS = ["condition", "rule", "cheap share (all answers)", "strong share (audited)", "agreement", "flagged",
           "both kept: hit/hit, hit/miss, miss/hit, miss/miss", "kept by cheap only / strong only",
           "audited (calls failed)", "strong judge: no score", "PPI share [95% CI]"]


def ppi_cell(ppi: dict | None) -> str:
    """`14.2% [9.8–18.6]`, or a dash with the reason there is none."""
    ppi = ppi or {}
    if ppi.get("share") is None:
        return f"{DASH} ({ppi.get('reason') or 'no estimate'})"
    return f"{pct(ppi['share'])} {ci_text(ppi.get('ci'))}"


def _none_by_metric(none: dict | None) -> dict[str, int]:
    """`{"aligned: <reason>": n}` summed per metric (the reasons are in summary.json)."""
    out: dict[str, int] = {}
    for key, v in (none or {}).items():
        metric = key.split(":", 1)[0]
        out[metric] = out.get(metric, 0) + int(v)
    return out


def _row(name: str, rule: str, e: dict) -> list[str]:
    a = e.get("agreement") or {}
    audited = int(a.get("audited") or 0)
    return [
        name, rule, rate_cell(e.get("cheap")), rate_cell(e.get("strong_subset")),
        f"{int(a.get('agree') or 0)}/{audited}", str(int(a.get("flagged") or 0)),
        ", ".join(str(int(a.get(k) or 0)) for k in ("hit_hit", "hit_miss", "miss_hit", "miss_miss")),
        f"{int(a.get('kept_cheap_only') or 0)} / {int(a.get('kept_strong_only') or 0)}",
        f"{audited} ({int(e.get('errors') or 0)})", counts_text(_none_by_metric(e.get("strong_none"))), ppi_cell(e.get("ppi")),
    ]


def audit_table(summary: dict) -> Table | None:
    """One row per condition and rule, then one per seed group and rule (bold); None without an audit."""
    audit = summary.get("audit")
    if not audit:
        return None
    rows = [_row(c, r, e) for c, rules in (audit.get("conditions") or {}).items() for r, e in rules.items()]
    first_group = len(rows)
    rows += [_row(f"group {g}", r, e) for g, rules in (audit.get("groups") or {}).items() for r, e in rules.items()]
    return Table(HEADERS, rows, frozenset(range(first_group, len(rows))))


def audit_text(summary: dict) -> list[str]:
    """The paragraphs that say what the table's numbers are."""
    audit = summary.get("audit") or {}
    metrics = ", ".join(audit.get("metrics") or []) or DASH
    return [
        (f"Strong judge {audit.get('judge', DASH)} re-scored a seeded random subset of up to {audit.get('n', DASH)} "
         f"answers per condition (seed {audit.get('seed', DASH)}) on {metrics}, with the same judge prompts; its "
         "scores are cached in the workspace like every score."),
        ("Cheap share: the run's judge over all answers, with its Wilson interval, which treats the cheap labels as "
         "truth. Strong share: the strong judge on the audited answers only. Flagged: audited answers where the two "
         "judges disagree on kept or hit (listed with both judges' scores in summary.json, under audit.conditions). "
         "PPI share: prediction-powered inference (Angelopoulos et al. 2023), the cheap judge's labels on every "
         "answer corrected by its error measured on the audited ones; it estimates the strong judge's share, and "
         "its 95% interval (delta method for hits/kept, normal, clipped to [0, 1]) includes the cheap judge's error. "
         "With few audited answers (well under 100) the normal interval can cover less than 95%. A group's row "
         "stacks its conditions, each weighted by its number of answers."),
        ("Audit calls that failed leave their answer out of the audit (the audited count shrinks; a re-run retries "
         "them); a strong score of None drops the answer from the strong judge's rate, as the rule does for the "
         "cheap judge."),
    ]
