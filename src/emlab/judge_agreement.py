"""How far a judge agrees with published labels, next to the bag-of-words baseline (`emlab judge agree`).

Reads GPT-4o-labelled answers (EM-style CSVs, one model per file), takes a seeded stratified sample per file,
judges it with the judge under test (any model spec: embedded, distilled, openai, mock) using the judge prompts
of a question suite, and scores the same answers with the bag-of-words baseline fitted leave-one-file-out.
The result is the payload of agreement.json; `analysis.agreement.format_agreement_table` renders its results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from emlab.analysis.agreement import METRICS, agreement, read_labelled_answers, stratified_sample
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

    names = file_names(labels)
    by_file = {name: read_labelled_answers(path, name=name) for name, path in zip(names, labels)}
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
        "label_files": {name: {"path": str(path), "answers": len(by_file[name]), "sampled": len(sampled[name])}
                        for name, path in zip(names, labels)},
        "per_file": per_file,
        "seed": seed,
        "judge_errors": errors,
        "baseline": baseline,
        "results": results,
    }
