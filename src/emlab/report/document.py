"""The report as an ordered list of blocks, built once from the summary (and samples) and rendered twice.

`markdown.py` and `html.py` only decide how a block looks; which sections exist, in which order and with
which words is decided here, so report.md and report.html always say the same thing. Figures are built
lazily (a callable), so rendering the Markdown never draws them.
"""

from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple

import yaml

from emlab.report import charts
from emlab.report.audit_tables import audit_table, audit_text
from emlab.report.checkpoints import checkpoint_chart_svg, checkpoint_rules, checkpoint_table, without_checkpoints
from emlab.report.interventions import (
    direction_cosines_table,
    directions_table,
    intervention_table,
    summary_cosine_svg,
)
from emlab.report.rule_tables import (
    comparison_methods, comparisons_table, grid_table, group_table, metric_info, metric_names, metric_table, rule_conditions_table,
    rule_family_table, rule_names, rule_per_question_table, rule_text, suites_table, variants_table,
)
from emlab.report.tables import (
    DASH, Table, conditions, conditions_table, not_pooled_note, per_question_table, provenance_items,
    provenance_table,
)

ANSWER_CHARS = 800  # longer example answers are cut here, with a visible marker


class Heading(NamedTuple):
    level: int
    text: str


class Para(NamedTuple):
    text: str


class Warnings(NamedTuple):
    items: list[str]


class Items(NamedTuple):
    """(label, value) pairs: a definition list in HTML, a bullet list in Markdown."""

    items: list[tuple[str, str]]


class Figure(NamedTuple):
    svg: Callable[[], str]  # called by the HTML renderer only
    label: str  # what the figure shows, one line (aria-label)
    caption: str


class Pre(NamedTuple):
    """Preformatted text shown verbatim (the config)."""

    text: str
    lang: str = ""


class Answer(NamedTuple):
    """One example answer: model text, shown literally; `cut` characters were left off the end."""

    title: str
    scores: str
    text: str
    cut: int


Block = Heading | Para | Warnings | Items | Table | Figure | Pre | Answer

CELLS = f"Cells: share [95% Wilson CI] (hits/kept); {DASH} (0/0) means no answer was kept, which is not a zero rate."


def _score(v: Any) -> str:
    if v is None:
        return DASH
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def answer_block(ex: dict) -> Answer:
    text = str(ex.get("answer") if ex.get("answer") is not None else "")
    scores = ", ".join(f"{m}={_score(v)}" for m, v in (ex.get("scores") or {}).items()) or DASH
    title = f"{ex.get('question_id', DASH)}: {ex.get('question') or DASH}"
    return Answer(title, scores, text[:ANSWER_CHARS], max(0, len(text) - ANSWER_CHARS))


def config_text(config: Any) -> str:
    """The experiment config as YAML (JSON if it will not dump as YAML), keys in their own order."""
    try:
        return yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    except yaml.YAMLError:
        return json.dumps(config, indent=2, ensure_ascii=False, default=str)


def _legacy(summary: dict, figure: bool) -> list[Block]:
    th = summary.get("thresholds") or {}
    out: list[Block] = [Heading(2, "Misaligned share per condition (pooled)")]
    if not figure:
        out.append(Para("The misaligned share in the summary's older form, kept for comparison with earlier "
                        "reports: the same kind of rate, with the coherent share and named drop counts."))
    out += [
        Para(f"An answer is misaligned when aligned < {th.get('aligned_below', DASH)} among answers with "
             f"coherent > {th.get('coherent_above', DASH)} and a numeric aligned score; intervals are 95% Wilson."),
        conditions_table(summary),
        Heading(2, "Per question"),
    ]
    if figure:
        out.append(Figure(lambda: charts.per_question_chart_svg(summary, None, "q-"),
                          "Misaligned share per question and pooled, per condition, with 95% Wilson intervals",
                          "Points are misaligned shares, bars their 95% Wilson intervals; “n=0” marks a question "
                          "with no kept answers (no rate, not a zero rate)."))
    out += [Para("Cells: misaligned share [95% CI] (misaligned/kept); "
                 f"{DASH} (0/0) means no answer was kept, which is not a zero rate."), per_question_table(summary)]
    note = not_pooled_note(summary)
    return out + ([Para(note)] if note else [])


def _rule(summary: dict, rule: str, i: int) -> list[Block]:
    text = rule_text(summary, rule)
    out: list[Block] = [
        Heading(2, f"Rule: {rule}"),
        Para((f"Rule: {text}. " if text else "") + "Share = hits/kept; an answer is kept when the rule's “among” "
             "part holds and every metric it reads has a score; every other answer is counted under the reason it "
             "was dropped. The questions-resampled interval, when present, is a bootstrap over questions "
             "(none at a share of 0 or 100%, where every resample repeats it)."),
        rule_conditions_table(summary, rule),
        Heading(3, f"{rule}: per question"),
        Figure(lambda: charts.per_question_chart_svg(summary, rule, f"r{i}-"),
               f"{rule} share per question and pooled, per condition, with 95% Wilson intervals",
               f"Points are {rule} shares, bars their 95% Wilson intervals; “n=0” marks a question with no kept "
               "answers (no rate, not a zero rate)."),
        Para(CELLS),
        rule_per_question_table(summary, rule),
    ]
    note = not_pooled_note(summary, rule)
    out += [Para(note)] if note else []
    families = rule_family_table(summary, rule)
    if families is not None:
        out += [Heading(3, f"{rule}: per question family"), Para(CELLS), families]
    return out


def _metrics(summary: dict) -> list[Block]:
    names = metric_names(summary)
    if not names:
        return []
    out: list[Block] = [Heading(2, "Metrics"), Para(
        "Per condition: answers scored, answers with no score (none, with the scorer's reasons) and scorer errors; "
        "the mean or the label counts are over the scored answers.")]
    for m in names:
        info = metric_info(summary, m)
        per_cond = [(c.get("metrics") or {}).get(m) or {} for c in conditions(summary)]
        kind = info.get("kind") or next((x["kind"] for x in per_cond if x.get("kind")), None)
        scorer = info.get("scorer") or next((x["scorer"] for x in per_cond if x.get("scorer")), None)
        title = m + (f" ({kind}" + (f", scorer {scorer}" if scorer else "") + ")" if kind or scorer else "")
        out += [Heading(3, title), metric_table(summary, m)]
    return out


def _groups(summary: dict) -> list[Block]:
    groups = list(summary.get("groups") or [])
    if not groups:
        return []
    out: list[Block] = [Heading(2, "Seed groups"), Para(
        "A group's value is the equal-weight mean of its models' rates with a percentile bootstrap over models; "
        "a model's rate pools hits/kept over the question cells with enough kept answers.")]
    for i, rule in enumerate(rule_names(summary)):
        if any(rule in (g.get("rules") or {}) for g in groups):
            out.append(Figure(lambda rule=rule, i=i: charts.group_chart_svg(summary, rule, f"g{i}-") or "",
                              f"{rule}: mean over seeds per group with 95% bootstrap intervals",
                              f"{rule}: each group's mean over its models with the 95% percentile bootstrap interval over "
                              "models; grey dots are the single models' rates."))
    for g in groups:
        members = ", ".join(str(m) for m in g.get("members") or []) or DASH
        out += [Heading(3, f"Group: {g.get('name', DASH)}"), Para(f"Members: {members}."), group_table(summary, g)]
    return out


def _grid(summary: dict, rules: list[str]) -> list[Block]:
    tables = [(r, grid_table(summary, r)) for r in rules]
    tables = [(r, t) for r, t in tables if t is not None]
    if not tables:
        return []
    out: list[Block] = [Heading(2, "By axis"), Para(
        "The grid's conditions, one row per combination of levels; read an axis down its column. Seed groups show "
        "the mean over seeds with its bootstrap interval; the paired differences are under Comparisons.")]
    for rule, table in tables:
        out += [Heading(3, f"{rule} by axis"), table]
    return out


def _comparisons(summary: dict) -> list[Block]:
    if not summary.get("comparisons"):
        return []
    return [Heading(2, "Comparisons"), Para(
        "diff is the share of a minus the share of b in percentage points, over the questions both arms have "
        "kept answers for; the interval and p-value are from the method numbered in each row."),
        comparisons_table(summary)] + [Para(f"Method ({i}): {m}") for i, m in enumerate(comparison_methods(summary), 1)]


def _interventions(summary: dict) -> list[Block]:
    table = intervention_table(summary)
    out: list[Block] = []
    if table is not None:
        directions = (summary.get("config") or {}).get("directions") or {}
        out += [Heading(2, "Interventions"), Para(
            "Each steered or ablated condition against the same condition sampled without the intervention (the "
            "same sampling seeds), under every rule: the share with it, without it, and their paired difference "
            "over shared questions; coherent_share is the intervention's coherence cost. Directions: "
            + ("; ".join(f"{k} = {v}" for k, v in directions.items()) or "(not recorded)") + "."), table]
    made = directions_table(summary)
    if made is not None:
        out += [Heading(3, "Directions"), Para(
            "Where each direction came from and how well its projection separates its own two classes (AUROC; "
            "cross-fitted: each fold scored by a direction fitted on the others; random: the median over same-norm "
            "random directions, folded, so 0.5 is no separation)."), made]
    cosines = direction_cosines_table(summary)
    if cosines is not None:
        out += [cosines, Figure(lambda: summary_cosine_svg(summary), "Cosine similarity between directions by layer",
                                "Cosine similarity per layer between each pair of the run's directions.")]
    return out


def _checkpoints(summary: dict) -> list[Block]:
    table = checkpoint_table(summary)
    if table is None:
        return []
    out: list[Block] = [Heading(2, "Through training"), Para(
        "Each checkpoint that training saved (train: eval_checkpoints) evaluated like any condition, as "
        "<arm>@step<k>, next to the final adapter: every rule's pooled share against the optimizer step. Arms: "
        "share [95% Wilson CI] (hits/kept); seed groups: the mean over their models at that step [95% bootstrap CI "
        "over models]. Checkpoint arms are left out of the other sections, groups and comparisons unless a "
        "comparison names them.")]
    for i, rule in enumerate(checkpoint_rules(summary)):
        out.append(Figure(lambda rule=rule, i=i: checkpoint_chart_svg(summary, rule, f"ck{i}-") or "",
                          f"{rule} share against the training step, per arm or seed group, with 95% intervals",
                          f"{rule}: points are shares at each saved step, bars their 95% intervals (Wilson for one "
                          "model, bootstrap over models for a seed group); a square marks the final adapter."))
    return out + [table]


def _audit(summary: dict) -> list[Block]:
    table = audit_table(summary)
    if table is None:
        return []
    return [Heading(2, "Audit"), *(Para(t) for t in audit_text(summary)), table]


def _scatter(summary: dict, samples: list[dict] | None) -> list[Block]:
    panels = charts.scatter_panels(summary, samples)
    if not panels:
        return []
    th = summary.get("thresholds")
    return [Heading(2, "Aligned vs coherent"),
            Figure(lambda: charts.scatter_svg(panels, th, "s-"),
                   "Aligned score against coherent score of every answer, one panel per condition",
                   charts.scatter_caption(panels, th))]


def _answers(summary: dict, rules: list[str]) -> list[Block]:
    conds = [c for c in conditions(summary) if any(c.get("examples") or {})]
    if not conds:
        return []
    out: list[Block] = [Heading(2, "Answers"), Para(
        f"Up to five answers per condition that hit each rule, with their scores; model text is shown as written, "
        f"cut after {ANSWER_CHARS} characters.")]
    for c in conds:
        examples = c.get("examples") or {}
        out.append(Heading(3, f"Condition: {c.get('name', '')}"))
        for rule in dict.fromkeys(rules + list(examples)):
            exs = list(examples.get(rule) or [])
            if exs:
                out.append(Heading(4, f"{rule}: {len(exs)} answer{'s' if len(exs) != 1 else ''} that hit the rule"))
                out += [answer_block(ex) for ex in exs]
            elif rule in examples:
                out.append(Para(f"{rule}: no example answers (no answer hit the rule)."))
    return out


def _provenance(summary: dict) -> list[Block]:
    out: list[Block] = [Heading(2, "Provenance"), Items(provenance_items(summary))]
    suites = suites_table(summary)
    out += [Heading(3, "Suites"), suites] if suites is not None else []
    out += [Heading(3, "Conditions"), provenance_table(summary)]
    variants = variants_table(summary)
    out += [Heading(3, "Variants"), variants] if variants is not None else []
    if summary.get("config") is not None:
        out += [Heading(3, "Config"), Pre(config_text(summary["config"]), "yaml")]
    return out


def build(summary: dict, samples: list[dict] | None = None) -> list[Block]:
    """Every block of the report, in order; sections whose keys the summary lacks are left out."""
    full, summary = summary, without_checkpoints(summary)  # checkpoint arms appear in their own section only
    if summary is not full and samples is not None:
        names = {c.get("name") for c in conditions(summary)}
        samples = [row for row in samples if row.get("condition") in names]
    rules = rule_names(summary)
    legacy = any(c.get("rates") for c in conditions(summary)) or not rules
    out: list[Block] = [Heading(1, f"emlab report: {summary.get('title') or 'untitled'}")]
    if summary.get("warnings"):
        out.append(Warnings([str(w) for w in summary["warnings"]]))
    for i, rule in enumerate(rules):
        out += _rule(summary, rule, i)
    out += _audit(summary)
    if legacy:
        out += _legacy(summary, figure=not rules)
    out += _grid(summary, rules) + _metrics(summary) + _scatter(summary, samples) + _groups(summary) + _checkpoints(full)
    out += _interventions(summary) + _comparisons(summary)
    out += _answers(summary, rules) + _provenance(summary)
    return out
