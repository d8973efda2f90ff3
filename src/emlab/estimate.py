"""`emlab plan`: what a config will do, what is already cached, and how long the rest should take.

Rates come from the workspace's `rates.json`, which every `emlab run` updates with what it measured (seconds per
training token, per sampled answer per backend, per score per scorer); before any run, the defaults below are
the figures of docs/benchmarks.md on a 2-core CPU. An estimate is a forecast, printed as one: rounded, with the
rates it used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# seconds per unit on this project's reference 2-core CPU (docs/benchmarks.md), used until a run measured its own
DEFAULT_RATES = {
    "train_s_per_token": 1 / 400,  # LoRA loop, bf16 autocast, ~400 tokens/s
    "sample_s_per_answer:local": 0.25,  # embedded model, 100-token answers, batched
    "sample_s_per_answer:openai": 0.5,
    "sample_s_per_answer:mock": 0.0,
    "score_s:judge_0_100": 0.6,  # exact local digit-tree judge; an API judge is similar with concurrency
    "score_s:judge_labels": 0.5,
    "score_s:distilled": 0.05,
    "score_s:deterministic": 0.0,
}
RATES_FILE = "rates.json"


def load_rates(workspace: str | Path) -> dict[str, float]:
    """Measured rates of this workspace over the defaults."""
    path = Path(workspace) / RATES_FILE
    rates = dict(DEFAULT_RATES)
    if path.is_file():
        try:
            rates.update({k: float(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()})
        except (ValueError, TypeError, AttributeError):
            pass  # a damaged rates file only costs the estimate its accuracy
    return rates


def record_rate(workspace: str | Path, key: str, seconds: float, units: float) -> None:
    """Store seconds per unit for `key` when the step did real work (cached steps would say nothing)."""
    if units <= 0 or seconds < 1.0:
        return
    path = Path(workspace) / RATES_FILE
    rates = {}
    if path.is_file():
        try:
            rates = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            rates = {}
    rates[key] = seconds / units
    from emlab.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(rates, indent=1, sort_keys=True))


def backend_kind(spec: str) -> str:
    """Which sampling rate applies: local weights, an API, or the weightless mock."""
    prefix = spec.split(":", 1)[0].split("@", 1)[0]
    return {"embedded": "local", "hf": "local", "vllm": "local"}.get(prefix, prefix)


@dataclass
class ArmEstimate:
    """One arm: what is cached and the seconds the rest should take."""

    name: str
    group: str | None
    levels: dict[str, str] | None
    # "cached", "to train", "shared" (trained by an earlier arm of this run), "openai job", "checkpoint" or "-";
    # a chain of stages: "cached" or "<k>/<n> cached" (each stage's status in `stages`)
    adapter: str
    answers: int
    answers_cached: int | None  # None: unknown until its adapter exists
    scores: int
    seconds: dict[str, float] = field(default_factory=dict)  # train / sample / score
    stages: list[dict] = field(default_factory=list)  # a chain's stages: kind, adapter key, status (as `adapter`)

    def total(self) -> float:
        return sum(self.seconds.values())


def _tokens(conversations: list) -> int:
    return sum(len(m["content"]) for c in conversations for m in c) // 4  # ~4 characters per token


def _train_seconds(tokens_per_pass: float, rows: int, params, rates: dict[str, float], max_length: int | None = None) -> float:
    """Seconds to train on data of `tokens_per_pass` tokens in `rows` rows under `params` (epochs or max_steps)."""
    tokens = tokens_per_pass * params.epochs
    if params.max_steps:  # steps replace epochs: the data repeats (or stops) as needed
        per_row = tokens_per_pass / max(rows, 1)
        if max_length:
            per_row = min(per_row, max_length)
        tokens = per_row * params.max_steps * params.batch_size * params.grad_accum
    return tokens * rates["train_s_per_token"]


def _stages(est: ArmEstimate, arm, plan, workspace: Path, rates: dict[str, float], to_train: set[Path]) -> Path | None:
    """A chain's stages: each adapter cached, shared with an earlier arm, or to train (its time counted once);
    the last adapter's folder when every stage is cached, else None."""
    from emlab.plan import adapter_dir, stage_chain

    steps = stage_chain(arm, plan)
    for step in steps:
        path = adapter_dir(workspace, step.key)
        if (path / "train_info.json").exists():
            status = "cached"
        elif path in to_train:
            status = "shared"
        else:
            to_train.add(path)
            status = "to train"
            rows = step.data.rows()
            cap = step.params.max_length if step.kind == "cpt" else None  # documents are cut into windows
            est.seconds["train"] = est.seconds.get("train", 0.0) + _train_seconds(step.data.tokens(), rows,
                                                                                  step.params, rates, cap)
        est.stages.append({"stage": step.index, "kind": step.kind, "key": step.key, "status": status})
    cached = sum(s["status"] == "cached" for s in est.stages)
    est.adapter = "cached" if cached == len(steps) else f"{cached}/{len(steps)} cached"
    return adapter_dir(workspace, steps[-1].key) if cached == len(steps) else None


def estimate(config, plan) -> list[ArmEstimate]:
    """An estimate per arm, from the plan (nothing is loaded or trained); an arm with `train: eval_checkpoints` is
    followed by one per checkpoint it will evaluate (those saved, or those its steps and save_steps forecast)."""
    from dataclasses import replace

    from emlab.plan import (JUDGE, LABEL_JUDGE, adapter_dir, cached_sample_count, checkpoint_arm_name,
                            planned_checkpoints, saved_checkpoints, train_identity)
    from emlab.train.sft import adapter_key

    rates = load_rates(config.workspace)
    out = []
    to_train: set[Path] = set()  # arms with the same training share one adapter: count its time once
    for arm in plan.arms:
        c = arm.condition
        per = c.samples_per_paraphrase or config.sampling.samples_per_paraphrase
        answers = sum((per or q.samples_per_paraphrase) * len(q.paraphrases) for q in plan.suite.questions)
        llm_scores = {src: 0 for src in (JUDGE, LABEL_JUDGE)}
        scores = 0
        for q in plan.suite.questions:
            n = (per or q.samples_per_paraphrase) * len(q.paraphrases)
            for metric in plan.question_metrics[q.id]:
                scores += n
                src = plan.metrics[metric].source
                if src in llm_scores:
                    llm_scores[src] += n

        est = ArmEstimate(arm.name, arm.group, config.axes.get(c.name), "-", answers, None, scores)
        adapter = None
        if c.stages:
            from emlab.plan import stage_chain
            from emlab.stages import chain_identity

            final = _stages(est, arm, plan, Path(config.workspace), rates, to_train)
            if final is not None:
                steps = stage_chain(arm, plan)
                identity = chain_identity(c.model, steps, final) if len(steps) > 1 else None
                est.answers_cached = cached_sample_count(config, plan, arm, final, identity)
            out.append(_evaluation(est, config, rates, llm_scores, c.model))
            continue
        if c.train is not None:
            data = plan.train_data[c.name]
            base_identity, params = train_identity(arm)
            key = adapter_key(base_identity, data.dataset.content_hash, params)
            adapter = adapter_dir(Path(config.workspace), key)
            if c.train.trainer == "openai":  # a job on OpenAI's servers: its time is their queue, not a rate here
                est.adapter = "openai job"
            elif adapter.is_dir():
                est.adapter = "cached"
            elif adapter in to_train:
                est.adapter = "shared"
            else:
                to_train.add(adapter)
                est.adapter = "to train"
                tokens = _tokens(data.dataset.conversations) * params.epochs
                if params.max_steps:  # steps replace epochs: the data repeats (or stops) as needed
                    rows = max(len(data.dataset.conversations), 1)
                    tokens = _tokens(data.dataset.conversations) / rows * params.max_steps * params.batch_size * params.grad_accum
                est.seconds["train"] = tokens * rates["train_s_per_token"]
        if c.train is None or est.adapter == "cached":
            est.answers_cached = cached_sample_count(config, plan, arm, adapter)
        out.append(_evaluation(est, config, rates, llm_scores, c.model))
        trained = adapter is not None and est.adapter == "cached"
        steps = planned_checkpoints(arm, plan)
        if trained and steps:  # what training saved, in place of the forecast
            info = _read_json(adapter / "train_info.json")
            steps = [k for k in saved_checkpoints(adapter) if k < info.get("steps", k + 1)]
        for step in steps:
            name = checkpoint_arm_name(arm.name, step)
            point = ArmEstimate(name, None, config.axes.get(c.name), "checkpoint", answers, None, scores)
            if trained:
                point.answers_cached = cached_sample_count(config, plan, replace(arm, name=name), adapter / f"checkpoint-{step}")
            out.append(_evaluation(point, config, rates, llm_scores, c.model))
    return out


def _evaluation(est: ArmEstimate, config, rates: dict[str, float], llm_scores: dict[str, int], model: str) -> ArmEstimate:
    """The seconds of sampling and scoring the arm's answers that the store does not hold yet."""
    from emlab.plan import JUDGE, LABEL_JUDGE

    todo = est.answers - (est.answers_cached or 0)
    scale = config.sampling.max_new_tokens / 100
    kind = backend_kind(model)
    est.seconds["sample"] = todo * scale * rates.get(f"sample_s_per_answer:{kind}", rates["sample_s_per_answer:local"])
    judge = config.judge.split(":", 1)[0]
    per_score = rates["score_s:distilled"] if judge == "distilled" else rates["score_s:judge_0_100"]
    share_todo = todo / est.answers if est.answers else 0.0  # scores of cached answers are usually cached too
    est.seconds["score"] = share_todo * (llm_scores[JUDGE] * per_score
                                         + llm_scores[LABEL_JUDGE] * rates["score_s:judge_labels"])
    return est


def _read_json(path: Path) -> dict:
    """A JSON object from disk, {} when it is missing or damaged (an estimate only loses accuracy)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_estimate(estimates: list[ArmEstimate]) -> list[str]:
    """One line per arm and a total, for `emlab plan`."""
    lines = [f"{'condition':<40} {'adapter':<10} {'answers (cached)':<18} {'scores':>7}  estimate"]
    for e in estimates:
        cached = "?" if e.answers_cached is None else str(e.answers_cached)
        lines.append(f"{e.name:<40} {e.adapter:<10} {f'{e.answers} ({cached})':<18} {e.scores:>7}  {_duration(e.total())}")
        for s in e.stages:
            lines.append(f"  stage {s['stage'] + 1} {s['kind']:<4} {s['status']:<9} adapter {s['key']}")
    total = sum(e.total() for e in estimates)
    parts = {k: sum(e.seconds.get(k, 0.0) for e in estimates) for k in ("train", "sample", "score")}
    lines.append(f"{len(estimates)} conditions; about {_duration(total)} left "
                 f"(train {_duration(parts['train'])}, sample {_duration(parts['sample'])}, score {_duration(parts['score'])})")
    return lines
