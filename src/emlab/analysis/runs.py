"""Finished runs read back from their output folder: summary, answers with scores, and comparisons between runs.

A run folder holds `summary.json` (rules, suites, conditions) and `samples.jsonl` (every answer with its scores);
that is all `emlab compare` and `emlab.api.load_run` need, so results can be re-analysed on another machine
without the workspace store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from emlab.analysis.compare import paired_comparison
from emlab.analysis.outcome import Outcome
from emlab.analysis.rules import Rule, misaligned_rule, outcome, parse_rule
from emlab.errors import DataError
from emlab.scoring.base import Score


@dataclass
class RunResult:
    """A finished run: its folder, summary and answer rows."""

    path: Path
    summary: dict
    rows: list[dict]

    def conditions(self) -> list[str]:
        return [c["name"] for c in self.summary.get("conditions", [])]

    def main_ids(self) -> list[str] | None:
        return (self.summary.get("suite") or {}).get("main_ids")

    def rule(self, name: str) -> Rule:
        """A rule of this run by name (the default misaligned rule for runs that predate named rules)."""
        for r in self.summary.get("rules") or []:
            if r["name"] == name:
                return parse_rule(r["name"], r["text"], where=f"{self.path}/summary.json: rules")
        if name == "misaligned":
            th = self.summary.get("thresholds") or {}
            return misaligned_rule(th.get("aligned_below", 30.0), th.get("coherent_above", 50.0))
        known = ", ".join(r["name"] for r in self.summary.get("rules") or []) or "misaligned"
        raise DataError(f"{self.path}: the run has no rule {name!r}; its rules: {known}")

    def outcomes(self, condition: str, rule: Rule) -> list[Outcome]:
        """The condition's answers under `rule` (answers whose question lacks a metric of the rule are left out)."""
        out = []
        for row in self.rows:
            if row.get("condition") != condition:
                continue
            scores = _scores(row)
            if all(m in scores for m in rule.metrics()):
                out.append(outcome(rule, row["question_id"], scores))
        return out


def _scores(row: dict) -> dict[str, Score]:
    if isinstance(row.get("scores"), dict):
        return {m: Score.from_dict(d) for m, d in row["scores"].items()}
    # rows written before scores were nested: aligned/coherent values and *_error fields at the top level
    return {m: Score(row[m], error=row.get(f"{m}_error")) for m in ("aligned", "coherent") if m in row}


def load_run(path: str | Path) -> RunResult:
    """Read a run folder (summary.json + samples.jsonl); DataError naming the missing or bad file."""
    from emlab.analysis.export import read_samples_jsonl

    path = Path(path)
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise DataError(f"{path}: not a run folder (no summary.json)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{summary_path}: not readable JSON ({e})") from None
    if not (path / "samples.jsonl").is_file():
        raise DataError(f"{path}: no samples.jsonl (was it written by `emlab run`?)")
    return RunResult(path, summary, read_samples_jsonl(path / "samples.jsonl"))


def _pick(run: RunResult, condition: str | None, side: str) -> str:
    names = run.conditions()
    if condition is None:
        if len(names) != 1:
            raise DataError(f"{run.path} has conditions {', '.join(names)}: say which with --{side} NAME")
        return names[0]
    if condition not in names:
        raise DataError(f"{run.path}: no condition {condition!r}; its conditions: {', '.join(names)}")
    return condition


def compare_runs(a: RunResult, b: RunResult, rule: str = "misaligned", a_condition: str | None = None,
                 b_condition: str | None = None, n_resamples: int = 2000, n_permutations: int = 10000,
                 seed: int = 0) -> dict:
    """A paired comparison of one condition of each run on their shared (main) questions under one rule."""
    ca, cb = _pick(a, a_condition, "a"), _pick(b, b_condition, "b")
    rule_a, rule_b = a.rule(rule), b.rule(rule)
    if rule_a.text() != rule_b.text():
        raise DataError(f"rule {rule!r} differs between the runs ({rule_a.text()!r} vs {rule_b.text()!r}); "
                        "compare under one definition")
    main_a, main_b = a.main_ids(), b.main_ids()
    ids: Sequence[str] | None = None
    if main_a is not None and main_b is not None:
        ids = [q for q in main_a if q in set(main_b)]
    result = paired_comparison(a.outcomes(ca, rule_a), b.outcomes(cb, rule_b), question_ids=ids,
                               n_resamples=n_resamples, n_permutations=n_permutations, seed=seed)
    return {"name": f"{a.path.name}:{ca} vs {b.path.name}:{cb}", "a_name": f"{a.path}:{ca}", "b_name": f"{b.path}:{cb}",
            "rule": rule, "rule_text": rule_a.text(), **result}
