"""`emlab run`: train -> sample -> judge -> rates -> report, for every condition of an experiment config.

Each step is cached by content (adapters by hash directory, samples and scores in the workspace SQLite
store), so a re-run recomputes only what changed and a killed run resumes. Outputs are written at the end,
each atomically: summary.json, samples.jsonl, report.md, report.html.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from emlab.analysis.rates import JudgedAnswer, Thresholds
from emlab.analysis.summary import build_summary, condition_entry, write_json_atomic
from emlab.config import ConditionConfig, ExperimentConfig
from emlab.errors import ConfigError
from emlab.evals.judge import JudgeRequest, Judgment, judge_all
from emlab.evals.questions import Suite, load_suite
from emlab.evals.sampling import Sample, sample_suite
from emlab.models.base import SamplingParams
from emlab.models.registry import check_model_spec, load_model, model_for_sampling, unload_model
from emlab.progress import console, progress_bar
from emlab.store import Store
from emlab.train.sft import TrainParams

REQUIRED_METRICS = ("aligned", "coherent")
WEAK_JUDGES = ("embedded:",)


@dataclass
class ConditionRun:
    """What one condition produced: the model it sampled, its provenance, answers and judgments."""

    config: ConditionConfig
    model: str
    dataset: dict | None = None
    adapter: dict | None = None
    samples: list[Sample] | None = None
    judgments: list[dict[str, Judgment]] | None = None


def train_condition(c: ConditionConfig, workspace: Path, data_dir: str | None = None) -> ConditionRun:
    """Finetune the condition's model when it asks for it (or reuse the cached adapter)."""
    if c.train is None:
        return ConditionRun(config=c, model=c.model)
    from emlab.data.build import build_dataset
    from emlab.data.sources import dataset_of
    from emlab.train.sft import train_lora

    spec = check_model_spec(c.model)
    if spec.backend not in ("embedded", "hf") or spec.adapter:
        raise ConfigError(f"condition '{c.name}': training needs a local base model without an adapter (got {c.model!r})")
    if spec.backend == "embedded":
        from emlab.models.embedded import embedded_checkpoint

        checkpoint = embedded_checkpoint(spec.name)
        base_identity = f"{spec}#{checkpoint.name}"
    else:
        checkpoint, base_identity = spec.name, str(spec)
    dataset, manifest = build_dataset(c.train.dataset, data_dir)
    if c.train.rows is not None:  # a seeded sample of the built dataset
        if c.train.rows > dataset.rows:
            raise ConfigError(f"condition '{c.name}': train.rows={c.train.rows} but the dataset has {dataset.rows} rows")
        import random

        picked = random.Random(c.train.seed).sample(dataset.conversations, c.train.rows)
        dataset = dataset_of(dataset.source, picked)
        manifest = {**manifest, "train_rows": {"rows": c.train.rows, "seed": c.train.seed, "content_hash": dataset.content_hash}}
    params = TrainParams.model_validate(c.train.model_dump(exclude={"dataset", "rows"}))
    console.print(f"[bold]train[/] {c.name}: LoRA on {dataset.rows} rows of {dataset.source}")
    adapter = train_lora(checkpoint, base_identity, dataset.conversations, dataset.content_hash, params, workspace / "adapters")
    if adapter.reused:
        console.print(f"  reused cached adapter {adapter.key}")
    return ConditionRun(
        config=c, model=f"{spec}@{adapter.path}", dataset={**dataset.provenance(), "manifest": manifest},
        adapter=adapter.as_dict(),
    )


def _judge_requests(suite: Suite, samples: list[Sample]) -> list[tuple[int, str, JudgeRequest]]:
    by_id = {q.id: q for q in suite.questions}
    out = []
    for i, s in enumerate(samples):
        for metric, template in by_id[s.question_id].judge_prompts.items():
            out.append((i, metric, JudgeRequest(template, s.question, s.answer, metric)))
    return out


def _samples_rows(runs: list[ConditionRun]) -> list[dict]:
    rows = []
    for r in runs:
        for s, js in zip(r.samples or [], r.judgments or []):
            row = {"condition": r.config.name, "model": r.model, **s.as_dict()}
            for metric, j in js.items():
                row[metric] = j.value
                row[f"{metric}_mass"] = round(j.mass, 6)
                row[f"{metric}_distribution"] = {str(k): round(p, 6) for k, p in sorted(j.distribution.items()) if p >= 1e-6}
                if j.error:
                    row[f"{metric}_error"] = j.error
            rows.append(row)
    return rows


def _write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def sample_conditions(runs: list[ConditionRun], suite: Suite, params: SamplingParams, store: Store, per_paraphrase: int | None, keep: str) -> None:
    """Sample every condition's answers (cached); models other than `keep` (the judge) are released after."""
    total = sum((per_paraphrase or q.samples_per_paraphrase) * len(q.paraphrases) for q in suite.questions)
    for r in runs:
        model = model_for_sampling(r.model)
        with progress_bar(f"sample {r.config.name}", total) as advance:
            r.samples = sample_suite(model, suite, params, store, per_paraphrase, progress=advance)
        if r.model != keep:
            unload_model(r.model)


def judge_conditions(runs: list[ConditionRun], suite: Suite, judge_spec: str, store: Store) -> None:
    """Judge every answer on every metric of its question (cached)."""
    judge = load_model(judge_spec)
    for r in runs:
        requests = _judge_requests(suite, r.samples or [])
        with progress_bar(f"judge {r.config.name}", len(requests)) as advance:
            results = judge_all(judge, [req for _, _, req in requests], store, progress=advance)
        r.judgments = [{} for _ in r.samples or []]
        for (i, metric, _), j in zip(requests, results):
            r.judgments[i][metric] = j


def _condition_summary(r: ConditionRun, thresholds: Thresholds, suite: Suite) -> dict:
    """One condition's rates and provenance."""
    answers = [
        JudgedAnswer(
            question_id=smp.question_id,
            aligned=js["aligned"].value,
            coherent=js["coherent"].value,
            error=bool(js["aligned"].error or js["coherent"].error),
        )
        for smp, js in zip(r.samples or [], r.judgments or [])
    ]
    seed = r.config.train.seed if r.config.train else None
    return condition_entry(
        r.config.name, answers, thresholds, suite.main_ids(),
        model=r.config.model, dataset=r.dataset, adapter=r.adapter, seed=seed,
    )


def _judge_warnings(judge: str, conditions: list[dict]) -> list[str]:
    """Say plainly when the judge is weak or left most answers unscored."""
    warnings = []
    if judge.startswith(WEAK_JUDGES):
        warnings.append(
            f"The judge is the small local model {judge}: its 0-100 scores are close to noise and many get "
            "no score (< 0.25 of its probability on numbers). Use a strong judge (e.g. openai:gpt-4o-2024-08-06) "
            "for results you report."
        )
    if judge.startswith("distilled:"):
        warnings.append(
            f"The judge {judge} is distilled from GPT-4o judgments of one model family's answers (Qwen2.5-Coder-32B "
            "replications); held-out, it agrees well there (docs/benchmarks.md) but is unmeasured on other models' "
            "answers. Confirm reported results with a strong judge (e.g. openai:gpt-4o-2024-08-06)."
        )
    for c in conditions:
        p = c["rates"]["pooled"]
        unscored = p["dropped_coherent_none"] + p["dropped_aligned_none"]
        if p["answers"] and unscored > p["answers"] / 2:
            warnings.append(
                f"Condition {c['name']}: the judge gave no score for {unscored} of {p['answers']} answers "
                "(numbers held < 0.25 of its probability), so its rate rests on few or no answers."
            )
    return warnings


def run_experiment(config: ExperimentConfig, out_dir: str | Path) -> dict:
    """Run every condition of `config` and write the four outputs into `out_dir`; returns the summary."""
    out_dir = Path(out_dir)
    workspace = Path(config.workspace)
    suite = load_suite(config.suite)
    for q in suite.questions:
        missing = [m for m in REQUIRED_METRICS if m not in q.judge_prompts]
        if missing:
            raise ConfigError(f"suite {suite.name}: question '{q.id}' has no judge prompt for {', '.join(missing)}")
    s = config.sampling
    params = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens, seed=s.seed)
    thresholds = Thresholds(config.thresholds.aligned_below, config.thresholds.coherent_above)

    runs = [train_condition(c, workspace, config.data_dir) for c in config.conditions]
    store = Store(workspace / "emlab.sqlite")
    try:
        sample_conditions(runs, suite, params, store, s.samples_per_paraphrase, keep=config.judge)
        judge_conditions(runs, suite, config.judge, store)
    finally:
        store.close()

    conditions = [_condition_summary(r, thresholds, suite) for r in runs]
    warnings = _judge_warnings(config.judge, conditions)
    summary = build_summary(
        config.name,
        conditions,
        thresholds,
        judge=config.judge,
        suite={"name": suite.name, "content_hash": suite.content_hash, "main_ids": suite.main_ids()},
        sampling={**params.as_dict(), "samples_per_paraphrase": s.samples_per_paraphrase},
        warnings=warnings,
    )
    from emlab.report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl_atomic(out_dir / "samples.jsonl", _samples_rows(runs))
    write_json_atomic(out_dir / "summary.json", summary)
    write_report(summary, out_dir)
    return summary
