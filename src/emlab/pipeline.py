"""`emlab run`: train -> sample -> score -> rates, groups, comparisons -> outputs, for every arm of an experiment.

The plan (`plan.py`) is checked before anything loads. Each step is cached by content (adapters by hash
directory, samples and scores in the workspace SQLite store), so a re-run recomputes only what changed and a
killed run resumes. Outputs are written at the end, each atomically: summary.json, samples.jsonl, samples.csv,
report.md, report.html.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from emlab.analysis.agreement import family_of
from emlab.analysis.compare import group_comparison, paired_comparison
from emlab.analysis.groups import cluster_bootstrap_ci, group_rate
from emlab.analysis.outcome import Outcome
from emlab.analysis.rates import JudgedAnswer, Thresholds, rate_table
from emlab.analysis.rules import Rule, metric_summary, outcome, rate_breakdown
from emlab.analysis.summary import build_summary, write_json_atomic
from emlab.atomic import write_text_atomic
from emlab.config import CompareConfig, ExperimentConfig
from emlab.errors import ConfigError, EmlabError, RunFailedError
from emlab.evals.sampling import Sample, sample_suite
from emlab.models.base import SamplingParams
from emlab.models.registry import check_model_spec, unload_model
from emlab.plan import (JUDGE, LABEL_JUDGE, Arm, Plan, TrainData, arm_model, checkpoint_arm_name, checkpoint_members,
                        evaluates_checkpoints, family_pairs, plan_experiment, sampling_params, saved_checkpoints,
                        train_identity)
from emlab.progress import advance_overall, console, overall_bar, progress_bar
from emlab.scoring.base import Score, ScoreRequest
from emlab.scoring.cache import score_all
from emlab.scoring.registry import is_direct_judge, judge_family_note, judge_question_note, judge_trust_note
from emlab.store import Store

WEAK_JUDGES = ("embedded:",)
EXAMPLES_PER_RULE = 5


@dataclass
class ArmRun:
    """What one arm produced: the model it sampled, its provenance, answers and scores."""

    arm: Arm
    model: str
    dataset: dict | None = None
    adapter: dict | None = None
    samples: list[Sample] | None = None
    scores: list[dict[str, Score]] | None = None
    checkpoint: dict | None = None  # {"of": arm name, "step": k} for an arm that evaluates a training checkpoint
    identity: str | None = None  # the sampled model's identity when the spec's own is not it (a chain of stages)
    stages: list[dict] | None = None  # each training stage's record (stages:): kind, base, data, adapter


def train_arm(arm: Arm, data: TrainData | None, workspace: Path) -> tuple[str, dict | None, dict | None]:
    """Finetune the arm's model at its seed on the planned dataset (or reuse the cached adapter); (spec, dataset, adapter)."""
    c = arm.condition
    if c.train is None or data is None:
        return c.model, None, None
    from emlab.train.sft import train_lora

    spec = check_model_spec(c.model)
    if c.train.trainer == "openai":  # a job on the server (recorded, never created twice); its model is an openai: spec
        from emlab.models.openai_api import finetune_client
        from emlab.train.openai_ft import finetune_openai

        (client, server), (_, params), ds = finetune_client(spec), train_identity(arm), data.dataset
        job = finetune_openai(client, server, spec.name, ds.conversations, ds.content_hash, params,
                              workspace / "openai_jobs", label=arm.name)
        trained = f"openai{'@' + spec.endpoint if spec.endpoint else ''}:{job.model}"
        return trained, {**ds.provenance(), "manifest": data.manifest}, job.as_dict()
    from emlab.models.hub import portable_base, training_checkpoint

    base = training_checkpoint(spec)  # a pinned hub revision trains from that revision's files
    base_name, base_revision = portable_base(spec)  # what the adapter records as its base, on any machine
    base_identity, params = train_identity(arm)
    ds = data.dataset
    console.print(f"[bold]train[/] {arm.name} (seed {arm.train_seed}): LoRA on {ds.rows} rows of {ds.source}")
    from emlab.models.device import current_device  # the run's device, set when the plan was checked

    adapter = train_lora(base, base_identity, ds.conversations, ds.content_hash, params, workspace / "adapters",
                         device=current_device(), base_name=base_name, base_revision=base_revision)
    if adapter.reused:
        console.print(f"  reused cached adapter {adapter.key}")
    return f"{spec}@{adapter.path}", {**ds.provenance(), "manifest": data.manifest}, adapter.as_dict()


def train_stages_arm(arm: Arm, plan: Plan, workspace: Path) -> tuple[ArmRun, int]:
    """Train (or reuse) the arm's chain of stages (`stages:`): the run, which samples the last stage's model, and
    about how many tokens were trained now."""
    from emlab.models.device import current_device
    from emlab.plan import stage_chain
    from emlab.stages import train_chain

    result = train_chain(arm.condition, stage_chain(arm, plan), workspace, current_device(), arm.name)
    last = result.stages[-1]
    run = ArmRun(arm, result.spec, last["data"], last["adapter"], identity=result.identity, stages=result.stages)
    return run, result.trained_tokens


def checkpoint_runs(r: ArmRun) -> list[ArmRun]:
    """One arm per checkpoint-<step>/ the arm's training saved (train: eval_checkpoints), known only once it trained.

    The checkpoint at the last step is the final adapter, which the arm itself evaluates. Each checkpoint is a model
    of its own (`<base>@<adapter>/checkpoint-<k>`), so its answers are cached under its own weights' identity.
    """
    if not evaluates_checkpoints(r.arm) or not r.adapter or r.adapter.get("trainer") == "openai":
        return []
    folder = Path(r.adapter["path"])
    base = str(check_model_spec(r.arm.condition.model))
    out = []
    for step in saved_checkpoints(folder):
        if step >= r.adapter["steps"]:
            continue
        path = folder / f"checkpoint-{step}"
        point = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
        arm = replace(r.arm, name=checkpoint_arm_name(r.arm.name, step), group=None)
        adapter = {**r.adapter, "path": str(path), "steps": step, "final_loss": point.get("loss")}
        out.append(ArmRun(arm, f"{base}@{path}", r.dataset, adapter, checkpoint={"of": r.arm.name, "step": step}))
    return out


def check_writable(folder: Path, what: str) -> None:
    """Fail now, not after hours of work, when results could not be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".emlab-write-check-{os.getpid()}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{folder}: cannot write {what} there ({e.strerror or e})") from None


def sample_arms(runs: list[ArmRun], plan: Plan, config: ExperimentConfig, store: Store, keep: set[str],
                seconds: dict[str, float] | None = None) -> None:
    """Sample every arm's answers (cached); models that are not judges are released after their arm."""
    from emlab.estimate import backend_kind, record_rate

    for r in runs:
        params, per_paraphrase = sampling_params(config, r.arm)
        total = sum((per_paraphrase or q.samples_per_paraphrase) * len(q.paraphrases) for q in plan.suite.questions)
        model = arm_model(r.arm, r.model, r.identity)
        start = time.monotonic()
        with progress_bar(f"sample {r.arm.name}", total, (seconds or {}).get(r.arm.name, 0.0)) as advance:
            r.samples = sample_suite(model, plan.suite, params, store, per_paraphrase, progress=advance, variant=r.arm.variant)
        record_rate(config.workspace, f"sample_s_per_answer:{backend_kind(r.model)}",
                    (time.monotonic() - start) * 100 / params.max_new_tokens, total)
        if r.model not in keep:
            unload_model(r.model)


def _requests(r: ArmRun, plan: Plan) -> dict[str, list[tuple[int, ScoreRequest]]]:
    """Per metric, (sample index, request) for every answer whose question computes that metric."""
    out: dict[str, list[tuple[int, ScoreRequest]]] = {}
    questions = {q.id: q for q in plan.suite.questions}
    context = {"trigger": r.arm.variant.trigger} if r.arm.variant.trigger else {}
    for i, smp in enumerate(r.samples or []):
        q = questions[smp.question_id]
        for metric in plan.question_metrics[q.id]:
            m = plan.metrics[metric]
            req = ScoreRequest(q.id, smp.question, smp.answer, metric, q.judge_prompts.get(metric), m.labels, context)
            out.setdefault(metric, []).append((i, req))
    return out


def score_arms(runs: list[ArmRun], plan: Plan, config: ExperimentConfig, store: Store,
               seconds: dict[str, float] | None = None) -> None:
    """Score every answer on every metric of its question (LLM judges cached in the store)."""
    from emlab.scoring.registry import judge_scorer, make_scorer

    scorers: dict[str, object] = {}

    def scorer_for(metric: str):
        m = plan.metrics[metric]
        key = m.source if m.source in (JUDGE, LABEL_JUDGE) else metric
        if key not in scorers:
            if m.source == JUDGE:
                scorers[key] = judge_scorer(config.judge, m.kind)
            elif m.source == LABEL_JUDGE:
                scorers[key] = judge_scorer(plan.label_judge or config.judge, m.kind)
            else:
                scorers[key] = make_scorer(m.source, m.params)
        return scorers[key]

    for r in runs:
        r.scores = [{} for _ in r.samples or []]
        requests = _requests(r, plan)
        total = sum(len(v) for v in requests.values())
        with progress_bar(f"score {r.arm.name}", total, (seconds or {}).get(r.arm.name, 0.0)) as advance:
            for metric, items in requests.items():
                results = score_all(scorer_for(metric), [req for _, req in items], store, progress=advance)
                for (i, _), score in zip(items, results):
                    r.scores[i][metric] = score
                failed = [s for s in results if s.error]
                if results and len(failed) == len(results):  # nothing scored: stop before spending more time
                    raise RunFailedError(
                        f"scoring {metric} failed on all {len(results)} answers of condition {r.arm.name} "
                        f"({failed[0].error}); the samples are kept in the store, fix the judge and run again")


def audit_runs(runs: list[ArmRun], plan: Plan, config: ExperimentConfig, store: Store) -> dict:
    """`audit:`: each arm's seeded subset re-scored by the strong judge on the judge's metrics, PPI per rule."""
    from emlab.analysis.audit_step import AuditArm, run_audit

    assert config.audit is not None
    arms = []
    for r in runs:
        samples = r.samples or []
        requests = {m: dict(items) for m, items in _requests(r, plan).items() if plan.metrics[m].source == JUDGE}
        keys = [json.dumps([s.question_id, s.paraphrase_index, s.sample_index, s.system]) for s in samples]
        arms.append(AuditArm(r.arm.name, [s.question_id for s in samples], keys, r.scores or [], requests, r.arm.group))
    a = config.audit
    return run_audit(arms, plan.rules, a.judge, a.n, a.seed, store, plan.suite.main_ids(), plan.groups)


def outcomes_of(r: ArmRun, rule: Rule, plan: Plan) -> list[Outcome]:
    """The arm's answers under `rule`, only on questions that compute every metric the rule reads."""
    needed = rule.metrics()
    out = []
    for smp, scores in zip(r.samples or [], r.scores or []):
        if all(m in plan.question_metrics[smp.question_id] for m in needed):
            out.append(outcome(rule, smp.question_id, scores))
    return out


def _examples(r: ArmRun, rule: Rule, plan: Plan) -> list[dict]:
    """Up to EXAMPLES_PER_RULE answers that hit the rule; most extreme first when the rule orders a number."""
    hits = []
    for smp, scores in zip(r.samples or [], r.scores or []):
        if all(m in plan.question_metrics[smp.question_id] for m in rule.metrics()):
            if outcome(rule, smp.question_id, scores).hit:
                hits.append((smp, scores))
    first = rule.target[0]
    if first.op in ("<", "<="):
        hits.sort(key=lambda h: h[1][first.metric].value)
    elif first.op in (">", ">="):
        hits.sort(key=lambda h: -h[1][first.metric].value)
    return [{"question_id": s.question_id, "question": s.question, "answer": s.answer,
             "scores": {m: sc.value for m, sc in scores.items()}} for s, scores in hits[:EXAMPLES_PER_RULE]]


def _legacy_rates(r: ArmRun, thresholds: Thresholds, plan: Plan) -> dict | None:
    """The paper's misaligned table with its named drop counts, when the suite judges aligned and coherent."""
    answers = [
        JudgedAnswer(smp.question_id, sc["aligned"].value, sc["coherent"].value,
                     error=bool(sc["aligned"].error or sc["coherent"].error))
        for smp, sc in zip(r.samples or [], r.scores or [])
        if "aligned" in sc and "coherent" in sc and plan.metrics["aligned"].kind == "numeric"
    ]
    if not answers:
        return None
    return rate_table(answers, thresholds, question_ids=plan.suite.main_ids()).as_dict()


def arm_summary(r: ArmRun, plan: Plan, config: ExperimentConfig) -> dict:
    """One arm's rates under every rule, metric summaries, example answers and provenance."""
    b = config.bootstrap
    thresholds = Thresholds(config.thresholds.aligned_below, config.thresholds.coherent_above)
    main = plan.suite.main_ids()
    families = plan.suite.families()
    rules = {}
    for rule in plan.rules:
        outs = outcomes_of(r, rule, plan)
        breakdown = rate_breakdown(outs, main, families)
        breakdown["pooled"]["cluster_ci"] = cluster_bootstrap_ci(
            [o for o in outs if o.question_id in set(main)], n_resamples=b.n_resamples, seed=b.seed)
        rules[rule.name] = breakdown
    metrics = {}
    for name, m in plan.metrics.items():
        scores = [sc[name] for sc in r.scores or [] if name in sc]
        metrics[name] = {**metric_summary(m.kind, scores), "scorer": m.source}
    entry = {
        "name": r.arm.name, "group": r.arm.group, "model": r.arm.condition.model, "evaluated_model": r.model,
        "seed": r.arm.train_seed, "sampling_seed": r.arm.sampling_seed, "variant": r.arm.variant.as_dict(),
        "axes": config.axes.get(r.arm.condition.name),
        "intervention": None if r.arm.intervention is None else
        {**r.arm.condition.intervention.model_dump(), "identity": r.arm.intervention.identity},
        "dataset": r.dataset, "adapter": r.adapter,
    }
    if r.checkpoint is not None:
        entry["checkpoint"] = r.checkpoint
    if r.stages is not None:
        entry["stages"] = r.stages
    legacy = _legacy_rates(r, thresholds, plan)
    if legacy is not None:
        entry["rates"] = legacy
    entry.update({"metrics": metrics, "rules": rules,
                  "examples": {rule.name: _examples(r, rule, plan) for rule in plan.rules}})
    return entry


def _arm_sets(name: str, runs: list[ArmRun], plan: Plan) -> dict[str, ArmRun]:
    members = plan.groups.get(name) or checkpoint_members(name, plan) or [name]
    return {r.arm.name: r for r in runs if r.arm.name in members}


def _is_group(name: str, plan: Plan) -> bool:
    """A seed group, or the checkpoints of a seed group at one step (`<group>@step<k>`)."""
    return name in plan.groups or len(checkpoint_members(name, plan) or []) > 1


def _paired_sides(c: CompareConfig, plan: Plan) -> tuple[list[str], dict[str, str] | None, dict[str, str] | None]:
    """The questions a comparison pairs on, and for a by-family comparison each side's question id -> pair key."""
    if not c.by_family():
        return plan.suite.main_ids(), None, None
    a_keys, b_keys = family_pairs(c, plan.suite.families(), f"compare {c.label()!r}")
    return list(dict.fromkeys([*a_keys.values(), *b_keys.values()])), a_keys, b_keys


def _keyed(outcomes: list[Outcome], keys: dict[str, str] | None) -> list[Outcome]:
    """Outcomes on the side's questions with their ids replaced by the pair key (all of them without a family)."""
    if keys is None:
        return outcomes
    return [replace(o, question_id=keys[o.question_id]) for o in outcomes if o.question_id in keys]


def groups_and_comparisons(runs: list[ArmRun], plan: Plan, config: ExperimentConfig) -> tuple[list[dict], list[dict]]:
    """The bootstrap over models for each seed group, and each declared paired comparison."""
    b = config.bootstrap
    main = plan.suite.main_ids()
    rules = {r.name: r for r in plan.rules}
    groups = []
    for name, members in plan.groups.items():
        arms = _arm_sets(name, runs, plan)
        per_rule = {}
        for rule in plan.rules:
            models = {n: outcomes_of(a, rule, plan) for n, a in arms.items()}
            per_rule[rule.name] = group_rate(models, question_ids=main, min_kept_per_question=b.min_kept_per_question,
                                             n_resamples=b.n_resamples, seed=b.seed)
        groups.append({"name": name, "members": members, "rules": per_rule})
    comparisons = []
    for c in plan.comparisons:
        rule = rules[c.rule]
        ids, a_keys, b_keys = _paired_sides(c, plan)
        a_arms, b_arms = _arm_sets(c.a, runs, plan), _arm_sets(c.b, runs, plan)
        a_models = {n: _keyed(outcomes_of(a, rule, plan), a_keys) for n, a in a_arms.items()}
        b_models = {n: _keyed(outcomes_of(a, rule, plan), b_keys) for n, a in b_arms.items()}
        result = paired_comparison([o for v in a_models.values() for o in v], [o for v in b_models.values() for o in v],
                                   question_ids=ids, n_resamples=b.n_resamples, n_permutations=b.n_permutations,
                                   seed=b.seed)
        entry = {"name": c.label(), "a_name": c.a, "b_name": c.b, "rule": c.rule, **result}
        if a_keys is not None and b_keys is not None:  # the question pairs: key -> [a's question, b's question]
            b_ids = {k: q for q, k in b_keys.items()}
            entry["families"] = {"a": c.a_family, "b": c.b_family, "a_suffix": c.suffix("a"), "b_suffix": c.suffix("b"),
                                 "pairs": {k: [q, b_ids[k]] for q, k in a_keys.items() if k in b_ids}}
            entry["a"]["name"], entry["b"]["name"] = f"{c.a} [{c.a_family}]", f"{c.b} [{c.b_family}]"  # table columns
        if _is_group(c.a, plan) or _is_group(c.b, plan):
            entry["group"] = group_comparison(a_models, b_models, question_ids=ids,
                                              min_kept_per_question=b.min_kept_per_question, n_resamples=b.n_resamples,
                                              seed=b.seed)
        comparisons.append(entry)
    return groups, comparisons


def checkpoint_series(runs: list[ArmRun], conditions: list[dict], plan: Plan, config: ExperimentConfig) -> dict:
    """Every rule's pooled rate against the training step, per arm (its checkpoints, then its final adapter) and per
    seed group (the bootstrap over models at each step): summary.json's `checkpoints`."""
    b = config.bootstrap
    by_name = {c["name"]: c for c in conditions}
    arms: dict[str, list[dict]] = {}
    steps: dict[str, dict[int, ArmRun]] = {}
    for r in runs:
        if r.checkpoint is not None:
            parent, step = r.checkpoint["of"], r.checkpoint["step"]
        elif evaluates_checkpoints(r.arm) and r.adapter and r.adapter.get("steps") is not None:
            parent, step = r.arm.name, r.adapter["steps"]
        else:
            continue
        rules = {}
        for name, rates in by_name[r.arm.name]["rules"].items():
            pooled = rates["pooled"]
            rules[name] = {k: pooled[k] for k in ("share", "ci", "hits", "kept", "answers")}
        arms.setdefault(parent, []).append({"step": step, "arm": r.arm.name, "final": r.checkpoint is None,
                                            "adapter": (r.adapter or {}).get("path"), "rules": rules})
        steps.setdefault(parent, {})[step] = r
    for points in arms.values():
        points.sort(key=lambda p: p["step"])
    groups: dict[str, list[dict]] = {}
    main = plan.suite.main_ids()
    for group, members in plan.groups.items():
        if not members or not all(m in steps for m in members):
            continue
        shared = sorted(set.intersection(*(set(steps[m]) for m in members)))
        for step in shared:
            point: dict = {"step": step, "members": [steps[m][step].arm.name for m in members],
                           "final": all(steps[m][step].checkpoint is None for m in members), "rules": {}}
            for rule in plan.rules:
                models = {steps[m][step].arm.name: outcomes_of(steps[m][step], rule, plan) for m in members}
                g = group_rate(models, question_ids=main, min_kept_per_question=b.min_kept_per_question,
                               n_resamples=b.n_resamples, seed=b.seed)
                point["rules"][rule.name] = {k: g.get(k) for k in ("mean", "ci", "n_models", "per_model")}
            groups.setdefault(group, []).append(point)
    return {"arms": arms, "groups": groups} if arms else {}


def _judged_question_texts(plan: Plan) -> list[str]:
    """Every text of the questions whose answers the judge scores (not those only deterministic scorers read)."""
    judged = {m for m, p in plan.metrics.items() if p.source in (JUDGE, LABEL_JUDGE)}
    return [t for q in plan.suite.questions if judged & set(plan.question_metrics.get(q.id, ())) for t in q.paraphrases]


def _warnings(config: ExperimentConfig, plan: Plan, conditions: list[dict]) -> list[str]:
    """Say plainly when the judge is weak, failed, or left most answers unscored."""
    judge = config.judge
    warnings = []
    judged = any(m.source in (JUDGE, LABEL_JUDGE) for m in plan.metrics.values())
    if judged and judge.startswith(WEAK_JUDGES):
        warnings.append(
            f"The judge is the small local model {judge}: its 0-100 scores are close to noise and many get "
            "no score (< 0.25 of its probability on numbers). Use a strong judge (e.g. openai:gpt-4o-2024-08-06) "
            "for results you report."
        )
    if judged and is_direct_judge(judge):
        try:
            note = judge_trust_note(judge)
        except EmlabError:  # the judge's own files went missing after scoring: say the general text
            note = None
        note = note or (
            f"The judge {judge} reads answers directly and records no held-out figures, so how far its rates can be "
            "trusted on these answers is unmeasured. Confirm reported results with a strong judge (e.g. "
            "openai:gpt-4o-2024-08-06).")
        note = note.rstrip() + ("" if note.rstrip().endswith((".", "!", "?")) else ".")
        try:  # the figures on the family of each model the run evaluates: what "this kind of model" means
            lines = [judge_family_note(judge, m, family_of(m)) for m in dict.fromkeys(a.condition.model for a in plan.arms)]
        except EmlabError:
            lines = []
        try:  # questions none of its training answers asked: its error there is the unseen-question one
            lines.append(judge_question_note(judge, _judged_question_texts(plan)))
        except EmlabError:
            pass
        note = " ".join([note] + [line for line in lines if line])
        if config.audit is None:
            warnings.append(f"{note} Add `audit: {{judge: openai:gpt-4o-2024-08-06, n: 100}}` to correct "
                            "its rates with a strong judge.")
        else:
            warnings.append(f"{note} Its rates are audited with {config.audit.judge} on up to "
                            f"{config.audit.n} answers per condition (see Audit).")
    for c in conditions:
        for metric, m in c["metrics"].items():
            if m["errors"]:
                warnings.append(f"Condition {c['name']}: scoring {metric} failed on {m['errors']} of {m['answers']} "
                                "answers (counted as dropped: judge error; a re-run retries them).")
            unscored = m["none"] + m["errors"]
            if plan.metrics[metric].source in (JUDGE, LABEL_JUDGE) and m["answers"] and unscored > m["answers"] / 2:
                warnings.append(f"Condition {c['name']}: {metric} has no score for {unscored} of {m['answers']} answers, "
                                "so rates that read it rest on few or no answers.")
    return warnings


def audit_warnings(audit: dict | None) -> list[str]:
    """Audit calls that failed, and corrected intervals that leave out the cheap judge's own share."""
    if not audit:
        return []
    out = []
    for arm, scoring in audit["scoring"].items():
        for metric, m in scoring["metrics"].items():
            if m["errors"]:
                out.append(f"Condition {arm}: the audit judge {audit['judge']} failed on {m['errors']} of {m['answers']} "
                           f"{metric} calls (left out of the audit, which shrinks its n; a re-run retries them).")
    for arm, rules in audit["conditions"].items():
        for rule, e in rules.items():
            ppi, cheap = e["ppi"], e["cheap"]["share"]
            if ppi.get("ci") and cheap is not None and not ppi["ci"][0] <= cheap <= ppi["ci"][1]:
                out.append(f"Condition {arm}: {rule}: the cheap judge's share {cheap:.1%} lies outside the audit's "
                           f"corrected interval [{ppi['ci'][0]:.1%}, {ppi['ci'][1]:.1%}] (strong judge "
                           f"{audit['judge']}, {e['agreement']['flagged']} of {e['agreement']['audited']} audited "
                           "answers flagged).")
    return out


def _config_dict(config: ExperimentConfig) -> dict:
    return json.loads(config.model_dump_json())


def sample_rows(runs: list[ArmRun]) -> list[dict]:
    """One row per answer: where it came from, every metric's value, and the raw scores."""
    rows = []
    for r in runs:
        for s, scores in zip(r.samples or [], r.scores or []):
            row = {"model": r.model, "group": r.arm.group, "condition": r.arm.name, **s.as_dict()}
            row.update({m: sc.value for m, sc in scores.items()})
            row["scores"] = {m: sc.as_dict() for m, sc in scores.items()}
            rows.append(row)
    return rows


def _write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def run_experiment(config: ExperimentConfig, out_dir: str | Path) -> dict:
    """Run every arm of `config` and write the outputs into `out_dir`; returns the summary."""
    from emlab.analysis.export import write_samples_csv

    out_dir = Path(out_dir)
    workspace = Path(config.workspace)
    plan = plan_experiment(config)  # every check before anything loads or trains
    from emlab.models.endpoints import use_endpoints

    use_endpoints(config.endpoints)  # each `openai@<name>:` spec talks to its own server with its own key
    check_writable(out_dir, "the output folder (--out)")
    check_writable(workspace, "the workspace")

    from emlab.estimate import estimate, format_estimate, record_rate

    estimates = {e.name: e for e in estimate(config, plan)}
    console.print(format_estimate(list(estimates.values()))[-1])
    with overall_bar(f"run {config.name}", sum(e.total() for e in estimates.values())):
        runs = []
        for arm in plan.arms:
            start = time.monotonic()
            if arm.condition.stages:
                run, tokens = train_stages_arm(arm, plan, workspace)
                runs.append(run)
                record_rate(workspace, "train_s_per_token", time.monotonic() - start, tokens)
                advance_overall(estimates[arm.name].seconds.get("train", 0.0))
                continue
            model, dataset, adapter = train_arm(arm, plan.train_data.get(arm.condition.name), workspace)
            # a local run's wall time only: an OpenAI job's time is the server's queue, not this machine's rate
            if adapter and not adapter["reused"] and dataset and adapter.get("trainer") != "openai":
                tokens = sum(len(m["content"]) for c in plan.train_data[arm.condition.name].dataset.conversations
                             for m in c) // 4 * arm.condition.train.epochs
                record_rate(workspace, "train_s_per_token", time.monotonic() - start, tokens)
            advance_overall(estimates[arm.name].seconds.get("train", 0.0))
            runs.append(ArmRun(arm, model, dataset, adapter))
            runs += checkpoint_runs(runs[-1])  # how many there are is known only now
        store = Store(workspace / "emlab.sqlite")
        try:
            sample_arms(runs, plan, config, store, keep={config.judge, plan.label_judge or config.judge},
                        seconds={n: e.seconds.get("sample", 0.0) for n, e in estimates.items()})
            score_arms(runs, plan, config, store, seconds={n: e.seconds.get("score", 0.0) for n, e in estimates.items()})
            audit = audit_runs(runs, plan, config, store) if config.audit else None
        finally:
            store.close()

    conditions = [arm_summary(r, plan, config) for r in runs]
    groups, comparisons = groups_and_comparisons(runs, plan, config)
    checkpoints = checkpoint_series(runs, conditions, plan, config)
    group_warnings = [
        f"Group {g['name']}: {rule} has a rate for {r['n_models']} of {len(g['members'])} models"
        + (f" (a model needs questions with at least {config.bootstrap.min_kept_per_question} kept answers; "
           "lower bootstrap.min_kept_per_question when each question has fewer answers)" if r["n_models"] == 0 else "")
        for g in groups for rule, r in g["rules"].items() if r["n_models"] < min(2, len(g["members"]))]
    s = config.sampling
    first = plan.suites[0]
    summary = build_summary(
        config.name,
        conditions,
        Thresholds(config.thresholds.aligned_below, config.thresholds.coherent_above),
        judge=config.judge,
        suite={"name": plan.suite.name, "content_hash": plan.suite.content_hash, "main_ids": plan.suite.main_ids()}
        if len(plan.suites) > 1 else {k: first[k] for k in ("name", "content_hash", "main_ids")},
        sampling={**SamplingParams(s.temperature, s.top_p, s.max_new_tokens, seed=s.seed).as_dict(),
                  "samples_per_paraphrase": s.samples_per_paraphrase},
        warnings=_warnings(config, plan, conditions) + audit_warnings(audit) + group_warnings,
    )
    summary.update({
        "label_judge": plan.label_judge,
        "suites": plan.suites,
        "metrics": [{"name": m.name, "kind": m.kind, "scorer": m.source, "labels": list(m.labels)} for m in plan.metrics.values()],
        "rules": [r.as_dict() for r in plan.rules],
        "groups": groups,
        "comparisons": comparisons,
        "bootstrap": config.bootstrap.model_dump(),
        "grid": {"axes": config.grid_axes, "levels": config.axes} if config.grid else None,
        "config": _config_dict(config),
    })
    if plan.interventions:
        summary["interventions"] = plan.interventions
    if config.directions:
        from emlab.analysis.directions import directions_summary, load_directions

        summary["directions"] = directions_summary({k: load_directions(v) for k, v in config.directions.items()},
                                                   dict(config.directions))
    if checkpoints:
        summary["checkpoints"] = checkpoints
    if audit is not None:
        summary["audit"] = audit
    from emlab.report import write_report

    rows = sample_rows(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl_atomic(out_dir / "samples.jsonl", rows)
    write_samples_csv(out_dir / "samples.csv", rows, [m for m in plan.metrics])
    write_json_atomic(out_dir / "summary.json", summary)
    write_report(summary, out_dir, samples=rows)
    failure = judge_failure(summary, plan)
    if failure:
        raise RunFailedError(failure)
    return summary


MAX_FAILED_SHARE = 0.5  # a run whose LLM judges failed on more than this share of their calls ends non-zero


def judge_failure(summary: dict, plan: Plan) -> str | None:
    """One line saying why the run's numbers cannot be trusted, when the judges failed on most answers."""
    calls = failed = 0
    for c in summary["conditions"]:
        for metric, m in c["metrics"].items():
            if plan.metrics[metric].source in (JUDGE, LABEL_JUDGE):
                calls += m["answers"]
                failed += m["errors"]
    if calls and failed > MAX_FAILED_SHARE * calls:
        return (f"the judge failed on {failed} of {calls} scoring calls ({failed / calls:.0%}); the outputs are written "
                "with those answers counted as 'judge error', but the rates rest on the rest: fix the judge and run "
                "again (failed calls are retried, finished ones are kept)")
    audit = summary.get("audit") or {}
    calls = sum(m["answers"] for per in (audit.get("scoring") or {}).values() for m in per["metrics"].values())
    failed = sum(m["errors"] for per in (audit.get("scoring") or {}).values() for m in per["metrics"].values())
    if calls and failed > MAX_FAILED_SHARE * calls:
        first = next((m["first_error"] for per in audit["scoring"].values() for m in per["metrics"].values()
                      if m.get("first_error")), "")
        return (f"the audit judge {audit['judge']} failed on {failed} of {calls} calls ({failed / calls:.0%}"
                + (f"; e.g. {first}" if first else "") + "); the outputs are written with those answers left out "
                "of the audit: fix the audit judge and run again (finished calls are kept)")
    return None

