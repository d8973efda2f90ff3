"""`emlab judge ...`: how far a judge agrees with published labels, next to the bag-of-words baseline.

`emlab judge agree --judge SPEC --labels A.csv --labels B.csv` reads GPT-4o-labelled answers (EM-style
CSVs, one model per file), takes a seeded stratified sample per file, judges it with the judge under test
(any model spec: embedded, distilled, openai, mock) using the judge prompts of a question suite, and scores
the same answers with the bag-of-words baseline fitted leave-one-file-out. It prints one Markdown table
(see `emlab.analysis.agreement`) and, with `--out`, writes agreement.json and agreement.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

judge_app = typer.Typer(no_args_is_help=True, help="Judges: agreement with published labels.")

BASELINE_NAME = "bag-of-words (leave-one-file-out)"


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@judge_app.command("agree")
def agree(
    judge: str = typer.Option(..., "--judge", help="Judge under test: a model spec (embedded:..., distilled:..., openai:..., mock:...)."),
    labels: List[Path] = typer.Option(..., "--labels", help="EM-style labelled CSV (question, answer, question_id, aligned, coherent); more files may follow, one model each."),
    more_labels: Optional[List[Path]] = typer.Argument(None, help="More label files (so that `--labels *.csv` works)."),
    prompts: str = typer.Option("builtin:core", "--prompts", help="Question suite whose judge prompts are used: builtin:<name> or a YAML path."),
    per_file: Optional[int] = typer.Option(None, "--per-file", min=1, help="Answers sampled per file (stratified, seeded); default all."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and of the baseline."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write agreement.json and agreement.md here."),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Skip the bag-of-words baseline."),
    aligned_below: float = typer.Option(30.0, help="Misaligned when aligned < this."),
    coherent_above: float = typer.Option(50.0, help="Count only answers with coherent > this."),
) -> None:
    """Agreement of a judge with published labels (AUROC, Spearman, MAE, implied vs label share), with the baseline."""
    labels = list(labels) + list(more_labels or [])
    from emlab.analysis.agreement import (
        METRICS,
        agreement,
        format_agreement_table,
        read_labelled_answers,
        stratified_sample,
    )
    from emlab.analysis.rates import Thresholds
    from emlab.analysis.summary import write_json_atomic
    from emlab.errors import ConfigError
    from emlab.evals.judge import JudgeRequest, judge_all
    from emlab.evals.questions import load_suite
    from emlab.models.registry import check_model_spec, load_model
    from emlab.progress import console, progress_bar

    thresholds = Thresholds(aligned_below, coherent_above)
    spec = check_model_spec(judge)  # a typo in the spec fails before any file is read
    suite = load_suite(prompts)
    from emlab.analysis.em_csv import file_names

    names = file_names(labels)
    by_file = {name: read_labelled_answers(path, name=name) for name, path in zip(names, labels)}
    sampled = {name: stratified_sample(answers, per_file, seed, thresholds) for name, answers in by_file.items()}
    chosen = [a for name in names for a in sampled[name]]

    by_id = {q.id: q for q in suite.questions}
    fallback = suite.questions[0]
    requests: list[JudgeRequest] = []
    for a in chosen:
        q = by_id.get(a.question_id, fallback)
        for metric in METRICS:
            if metric not in q.judge_prompts:
                raise ConfigError(
                    f"suite {suite.name}: question {q.id!r} has no {metric!r} judge prompt "
                    f"(it has: {', '.join(q.judge_prompts)})"
                )
            requests.append(JudgeRequest(q.judge_prompts[metric], a.question, a.answer, metric))
    matched = sum(1 for a in chosen if a.question_id in by_id)

    if spec.backend != "mock":
        from emlab.cli import _quiet_libraries

        _quiet_libraries()
    model = load_model(spec)
    with progress_bar(f"judging with {judge}", len(requests)) as advance:
        judgments = judge_all(model, requests, store=None, progress=advance)
    judged = []
    errors = 0
    for i in range(len(chosen)):
        row = {}
        for k, metric in enumerate(METRICS):
            j = judgments[len(METRICS) * i + k]
            errors += j.error is not None
            row[metric] = None if j.error is not None else j.value
        judged.append(row)

    results = {judge: agreement(chosen, judged, thresholds)}
    baseline: dict = {"name": BASELINE_NAME, "skipped": None}
    if no_baseline:
        baseline["skipped"] = "--no-baseline"
    elif len(names) < 2:
        baseline["skipped"] = "the baseline is fitted leave-one-file-out, so it needs at least 2 label files"
        console.print(f"[yellow]baseline skipped: {baseline['skipped']}[/yellow]")
    else:
        from emlab.evals.bow_judge import leave_one_file_out

        with console.status("fitting the bag-of-words baseline, leave one file out"):
            scored = leave_one_file_out(by_file, score_on=sampled, seed=seed, thresholds=thresholds)
        results[BASELINE_NAME] = agreement(chosen, [s for name in names for s in scored[name]], thresholds)

    table = format_agreement_table(results)
    typer.echo(table)
    if errors:
        console.print(f"[yellow]{errors} judgment(s) failed and count as no number[/yellow]")
    if out:
        payload = {
            "judge": judge,
            "judge_identity": getattr(model, "identity", None),
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
        write_json_atomic(out / "agreement.json", payload)
        title = f"# Judge agreement: {judge}\n\nLabels: {', '.join(names)}; prompts: {suite.name}; seed {seed}.\n\n"
        _write_text_atomic(out / "agreement.md", title + table)
        console.print(f"wrote {out / 'agreement.json'} and {out / 'agreement.md'}")


@judge_app.command("distill")
def distill_cmd(
    labels: List[Path] = typer.Option(..., "--labels", help="EM-style judged CSVs (one file = one model); at least two."),
    more_labels: Optional[List[Path]] = typer.Argument(None, help="More label files (so that `--labels *.csv` works)."),
    out: Path = typer.Option(..., "--out", help="Judge directory to write (judge.json + heads.npz)."),
    base: str = typer.Option("embedded:smollm2-135m", help="Local model whose hidden states are the features."),
    per_file: Optional[int] = typer.Option(None, help="Stratified sample of answers per file (default: all)."),
    seed: int = typer.Option(0),
) -> None:
    """Distil a local judge from labels; the regularization is chosen by leave-one-file-out agreement."""
    from emlab.progress import console
    from emlab.train.distill import distill

    meta = distill([str(p) for p in [*labels, *(more_labels or [])]], out, base=base, per_file=per_file, seed=seed)
    best = meta["leave_one_file_out"]["chosen"]["pooled"]
    console.print(
        f"wrote {out} (C={meta['chosen_C']}, threshold {meta['threshold']}); held-out (leave-one-file-out) misaligned AUROC "
        f"{best['misaligned_auroc']['auroc']}, Spearman(aligned) {best['aligned']['spearman']}; use judge: distilled:{out}"
    )
