"""The audit step: a seeded random subset of each arm's answers scored again by a strong judge, then PPI per rule.

Why here and not in the pipeline: `emlab run` (arms of samples) and `emlab analyze` (judged CSVs) both hand
their answers over as `AuditArm`s, the already-built judge requests included, and get the same `audit` block
of summary.json back. The strong judge's scores go through `score_all`, so they are cached in the store like
every score and a re-run asks the judge nothing new; the subset is fixed by (seed, arm, answer key), so a
re-run or a resumed run audits the same answers. A failed call (`Score.error`) takes its answer out of the
audit for the rules that read that metric (counted as `errors`, never silently), and a re-run retries it;
a strong score of None is an outcome, as for the cheap judge (the rule drops the answer for that reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Sequence

from emlab.analysis.audit import AuditedOutcomes, audit_subset, rule_audit
from emlab.analysis.rules import Rule, outcome
from emlab.scoring.base import NUMERIC, Score, ScoreRequest
from emlab.store import Store


@dataclass
class AuditArm:
    """One arm's answers: a stable key each, their cheap scores, and the requests of the metrics to re-score."""

    name: str
    question_ids: list[str]
    keys: list[str]  # stable per answer (never its text), so the subset is a random sample fixed by the seed
    scores: list[dict[str, Score]]  # every metric's cheap score, per answer
    requests: dict[str, dict[int, ScoreRequest]]  # audited metric -> answer position -> the judge request
    group: str | None = None
    pool: list[int] = field(default_factory=list)  # the answers the subset is drawn from; set by `score_subsets`
    strong: dict[int, dict[str, Score]] = field(default_factory=dict)  # the audited answers' strong scores; ditto


def candidates(arm: AuditArm, main_ids: set[str] | None) -> list[int]:
    """The answers the audit draws from: those with an audited metric, on the questions pooled rates count."""
    return [i for i, q in enumerate(arm.question_ids)
            if (main_ids is None or q in main_ids) and any(i in reqs for reqs in arm.requests.values())]


def score_subsets(arms: Sequence[AuditArm], judge: str, n: int, seed: int, store: Store | None,
                  main_ids: set[str] | None = None) -> None:
    """Pick each arm's subset and score it with the strong judge (cached in `store`); fills `arm.strong`."""
    from emlab.progress import progress_bar
    from emlab.scoring.cache import score_all
    from emlab.scoring.registry import judge_scorer

    scorer = judge_scorer(judge, NUMERIC)
    for arm in arms:
        arm.pool = pool = candidates(arm, main_ids)
        picked = [pool[j] for j in audit_subset([arm.keys[i] for i in pool], n, seed, arm.name)]
        arm.strong = {i: {} for i in picked}
        items = [(m, i, reqs[i]) for m, reqs in arm.requests.items() for i in picked if i in reqs]
        with progress_bar(f"audit {arm.name}", len(items)) as advance:
            results = score_all(scorer, [req for _, _, req in items], store, progress=advance)
        for (m, i, _), s in zip(items, results):
            arm.strong[i][m] = s


class _Part(NamedTuple):
    outcomes: AuditedOutcomes
    errors: int  # audited answers whose strong score failed on a metric the rule reads
    none: dict[str, int]  # "metric: reason" -> strong scores of None
    flagged: list[dict]  # the audited answers the two judges disagree on


def _values(scores: Mapping[str, Score], metrics: Sequence[str]) -> dict:
    return {m: scores[m].value for m in metrics if m in scores}


def _stratum(arm: AuditArm, rule: Rule) -> _Part:
    """The arm under `rule`: its outcomes, the audited ones the judge scored, its failed calls, Nones and flags."""
    metrics = rule.metrics()
    pos = [i for i in arm.pool if all(m in arm.scores[i] for m in metrics)]
    cheap = [outcome(rule, arm.question_ids[i], arm.scores[i]) for i in pos]
    audited, strong, errors, none, flagged = [], [], 0, {}, []
    for j, i in enumerate(pos):
        if i not in arm.strong:
            continue
        redone = {m: s for m, s in arm.strong[i].items() if m in metrics}
        if any(s.error for s in redone.values()):
            errors += 1
            continue
        for m, s in redone.items():
            if s.value is None:
                key = f"{m}: {s.reason or 'no value'}"
                none[key] = none.get(key, 0) + 1
        audited.append(j)
        strong.append(outcome(rule, arm.question_ids[i], {**arm.scores[i], **redone}))
        a, b = cheap[j], strong[-1]
        if a.kept != b.kept or (a.kept and a.hit != b.hit):
            flagged.append({"condition": arm.name, "key": arm.keys[i], "question_id": arm.question_ids[i],
                            "cheap": _values(arm.scores[i], metrics), "strong": _values({**arm.scores[i], **redone}, metrics)})
    return _Part(AuditedOutcomes(cheap, audited, strong), errors, dict(sorted(none.items())), flagged)


def _rule_entry(parts: list[_Part]) -> dict:
    none: dict[str, int] = {}
    for p in parts:
        for k, v in p.none.items():
            none[k] = none.get(k, 0) + v
    errors = sum(p.errors for p in parts)
    entry = rule_audit([p.outcomes for p in parts])
    return {**entry, "selected": entry["agreement"]["audited"] + errors, "errors": errors,
            "strong_none": dict(sorted(none.items())), "flagged_answers": [f for p in parts for f in p.flagged]}


def audit_summary(arms: Sequence[AuditArm], rules: Sequence[Rule], judge: str, n: int, seed: int,
                  groups: Mapping[str, Sequence[str]] | None = None) -> dict:
    """summary.json's `audit` block: per arm and per seed group (its arms as strata), every rule that reads an
    audited metric."""
    audited_metrics = {m for a in arms for m in a.requests}
    rules = [r for r in rules if set(r.metrics()) & audited_metrics]
    conditions = {a.name: {r.name: _rule_entry([_stratum(a, r)]) for r in rules} for a in arms}
    by_name = {a.name: a for a in arms}
    out_groups = {}
    for g, members in (groups or {}).items():
        mine = [by_name[m] for m in members if m in by_name]
        if len(mine) > 1:
            entries = {r.name: _rule_entry([_stratum(a, r) for a in mine]) for r in rules}
            out_groups[g] = {r: {k: v for k, v in e.items() if k != "flagged_answers"} for r, e in entries.items()}
    scoring = {}
    for a in arms:
        per = {}
        for m in sorted(audited_metrics):
            scores = [s[m] for s in a.strong.values() if m in s]
            per[m] = {"answers": len(scores), "errors": sum(bool(s.error) for s in scores),
                      "none": sum(s.value is None and not s.error for s in scores)}
            first = next((s.error for s in scores if s.error), None)
            if first:
                per[m]["first_error"] = first  # what a failed call said: the one line a user needs to act on
        scoring[a.name] = {"pool": len(a.pool), "audited": [a.keys[i] for i in sorted(a.strong)], "metrics": per}
    return {"judge": judge, "n": n, "seed": seed, "metrics": sorted(audited_metrics), "rules": [r.name for r in rules],
            "conditions": conditions, "groups": out_groups, "scoring": scoring}


def run_audit(arms: Sequence[AuditArm], rules: Sequence[Rule], judge: str, n: int, seed: int, store: Store | None,
              main_ids: Sequence[str] | None = None, groups: Mapping[str, Sequence[str]] | None = None) -> dict:
    """Score each arm's subset with `judge` and summarise the audit (see `audit_summary`)."""
    main = set(main_ids) if main_ids is not None else None
    score_subsets(arms, judge, n, seed, store, main)
    return audit_summary(arms, rules, judge, n, seed, groups)
