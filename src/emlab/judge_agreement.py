"""How far a judge agrees with published labels, next to the bag-of-words baseline (`emlab judge agree`).

Reads labelled answers (EM-style CSVs, one model per file, or tables with a `source` column, one model or
condition per source: em-judged-more, emlab's hand labels), takes a seeded stratified sample per source,
judges it with the judge under test (any model spec: embedded, distilled, openai, mock) using the judge prompts
of a question suite, and scores the same answers with the bag-of-words baseline fitted leave-one-file-out.
The result is the payload of agreement.json; `analysis.agreement.format_agreement_table` renders its results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from emlab.analysis.agreement import METRICS, agreement, read_label_sources, read_labelled_answers, stratified_sample
from emlab.analysis.em_csv import file_names
from emlab.analysis.rates import Thresholds
from emlab.errors import ConfigError
from emlab.evals.questions import load_suite
from emlab.progress import console, progress_bar
from emlab.scoring.base import NUMERIC, ScoreRequest
from emlab.scoring.cache import score_all
from emlab.scoring.registry import check_judge_spec, judge_scorer

BASELINE_NAME = "bag-of-words (leave-one-file-out)"


def judge_agreement(
    judge: str,
    labels: Sequence[Path],
    prompts: str = "builtin:core",
    per_file: int | None = None,
    seed: int = 0,
    thresholds: Thresholds = Thresholds(),
    skip_baseline: str | None = None,
) -> dict:
    """Judge a stratified sample of each label file and measure agreement (and the baseline's, unless
    `skip_baseline` gives a reason not to fit it); returns the agreement.json payload."""
    check_judge_spec(judge)  # a typo in the spec fails before any file is read
    suite = load_suite(prompts)

    names, paths, by_file = [], {}, {}
    for name, path in zip(file_names(labels), labels):
        sources = read_label_sources(path)
        if len(sources) == 1 and sources[0][0].file == Path(path).stem:  # a plain per-model file keeps its name
            sources = [read_labelled_answers(path, name=name)]
        for answers in sources:
            source = answers[0].file
            if source in by_file:
                raise ConfigError(f"label source {source!r} appears twice ({paths[source]} and {path})")
            names.append(source)
            paths[source] = path
            by_file[source] = answers
    sampled = {name: stratified_sample(answers, per_file, seed, thresholds) for name, answers in by_file.items()}
    chosen = [a for name in names for a in sampled[name]]

    by_id = {q.id: q for q in suite.questions}
    fallback = suite.questions[0]
    requests: list[ScoreRequest] = []
    for a in chosen:
        q = by_id.get(a.question_id, fallback)
        for metric in METRICS:
            if metric not in q.judge_prompts:
                raise ConfigError(
                    f"suite {suite.name}: question {q.id!r} has no {metric!r} judge prompt "
                    f"(it has: {', '.join(q.judge_prompts)})"
                )
            requests.append(ScoreRequest(q.id, a.question, a.answer, metric, q.judge_prompts[metric]))
    matched = sum(1 for a in chosen if a.question_id in by_id)

    scorer = judge_scorer(judge, NUMERIC)
    with progress_bar(f"judging with {judge}", len(requests)) as advance:
        judgments = score_all(scorer, requests, store=None, progress=advance)
    judged = []
    errors = 0
    for i in range(len(chosen)):
        row = {}
        for k, metric in enumerate(METRICS):
            j = judgments[len(METRICS) * i + k]  # requests are (answer, metric) in METRICS order
            errors += j.error is not None
            row[metric] = None if j.error is not None else j.value
        judged.append(row)

    results = {judge: agreement(chosen, judged, thresholds)}
    trained_on = _trained_on(judge)
    seen = [n for n in names if n in trained_on]
    if seen:  # agreement on answers the judge learned from is not a held-out figure: say so where it is printed
        console.print(f"[yellow]{len(seen)} of {len(names)} label sources were in {judge}'s training data (e.g. {seen[0]}): "
                      "its agreement there is not held out; `emlab judge heldout` gives the held-out figures, and `emlab judge "
                      "validate --by source` refits it with each source held out alone[/yellow]")
    baseline: dict = {"name": BASELINE_NAME, "skipped": None}
    if skip_baseline:
        baseline["skipped"] = skip_baseline
    elif len(names) < 2:
        baseline["skipped"] = "the baseline is fitted leave-one-file-out, so it needs at least 2 label files"
        console.print(f"[yellow]baseline skipped: {baseline['skipped']}[/yellow]")
    else:
        from emlab.evals.bow_judge import leave_one_file_out

        with console.status("fitting the bag-of-words baseline, leave one file out"):
            scored = leave_one_file_out(by_file, score_on=sampled, seed=seed, thresholds=thresholds)
        results[BASELINE_NAME] = agreement(chosen, [s for name in names for s in scored[name]], thresholds)

    return {
        "judge": judge,
        "judge_identity": scorer.identity,
        "prompts": {"suite": suite.name, "content_hash": suite.content_hash,
                    "answers_with_own_prompt": matched, "answers_with_fallback_prompt": len(chosen) - matched,
                    "fallback_question": fallback.id},
        "label_files": {name: {"path": str(paths[name]), "answers": len(by_file[name]), "sampled": len(sampled[name]),
                               "in_judge_training": name in trained_on}
                        for name in names},
        "per_file": per_file,
        "seed": seed,
        "judge_errors": errors,
        "baseline": baseline,
        "results": results,
    }


def _trained_on(judge: str) -> set[str]:
    """The label sources a distilled judge was trained on (empty for any other judge)."""
    from emlab.evals.distilled import distilled_meta

    if not judge.startswith("distilled:"):
        return set()
    meta = distilled_meta(judge, "only a distilled judge records what it was trained on")
    return {t.get("source") or Path(t.get("file", "")).stem for t in meta.get("trained_on", [])}
