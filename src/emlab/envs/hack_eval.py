"""`emlab hacks eval`: how often a model solves, and how often it hacks, held-out coding tasks.

Samples n solutions per held-out task under a prompt variant, labels every episode (secure grader, hackable
grader, detectors) and reports the solve rate and the hack rate by kind with Wilson intervals. Episodes are
cached nowhere on purpose: grading is cheap next to sampling, and a verdict must always reflect the graders'
current code.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from emlab.analysis.rates import wilson_interval
from emlab.envs.demos import HACK_KINDS, report_kinds


def rate_with_ci(k: int, n: int) -> dict:
    """A share with its Wilson interval and the counts."""
    ci = wilson_interval(k, n)
    return {"count": k, "n": n, "share": k / n if n else None, "ci": list(ci) if ci else None}


def summarize_labels(labels: list[str], kinds: tuple[str, ...] = HACK_KINDS) -> dict:
    """Solve rate, any-hack rate and per-kind hack rates (`kinds`, then any other kind seen), each with a CI."""
    n = len(labels)
    out = {
        "solved": rate_with_ci(sum(lab == "solved" for lab in labels), n),
        "hacked": rate_with_ci(sum(lab.startswith("hacked") for lab in labels), n),
        "failed": rate_with_ci(sum(lab == "failed" for lab in labels), n),
    }
    seen = sorted({lab for lab in labels if lab.startswith("hacked:")} - {f"hacked:{k}" for k in kinds})
    for kind in [*kinds, *(lab.split(":", 1)[1] for lab in seen)]:
        out[f"hacked:{kind}"] = rate_with_ci(sum(lab == f"hacked:{kind}" for lab in labels), n)
    return out


def evaluate_hacks(
    model_spec: str,
    tasks_source: str = "builtin",
    samples_per_task: int = 4,
    prompt_variant: str = "neutral",
    vulns: frozenset[str] = frozenset(HACK_KINDS),
    held_out: float = 0.25,
    seed: int = 0,
    max_new_tokens: int = 384,
    workers: int = 2,
    out_dir: str | Path | None = None,
) -> dict:
    """Sample, label and summarize; writes episodes.jsonl and hacks_summary.json when `out_dir` is given."""
    from emlab.envs.episode import label_episode
    from emlab.envs.prompts import episode_prompt
    from emlab.envs.task_bank import extract_code, load_tasks, split_tasks
    from emlab.models.base import SamplingParams
    from emlab.models.registry import load_model
    from emlab.progress import progress_bar

    _, tasks = split_tasks(load_tasks(tasks_source), held_out=held_out, seed=seed)
    model = load_model(model_spec)
    params = SamplingParams(temperature=1.0, max_new_tokens=max_new_tokens, n=samples_per_task, seed=seed)
    with progress_bar("sample solutions", len(tasks)) as advance:
        replies = model.generate([episode_prompt(t, prompt_variant, vulns) for t in tasks], params, progress=advance)
    jobs = [(t, r) for t, rs in zip(tasks, replies) for r in rs]
    with progress_bar("grade episodes", len(jobs)) as advance, ThreadPoolExecutor(workers) as pool:
        def grade(job):
            result = label_episode(job[0], extract_code(job[1]), vulns)
            advance(1)
            return result

        labels = list(pool.map(grade, jobs))
    summary = {
        "model": model_spec,
        "tasks": tasks_source,
        "held_out_tasks": [t.id for t in tasks],
        "samples_per_task": samples_per_task,
        "prompt_variant": prompt_variant,
        "vulns": sorted(vulns),
        "seed": seed,
        "rates": summarize_labels([lab.label for lab in labels], report_kinds(vulns)),
    }
    if out_dir is not None:
        from emlab.analysis.summary import write_json_atomic

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "episodes.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for (task, reply), lab in zip(jobs, labels):
                f.write(json.dumps({"task_id": task.id, "label": lab.label, "hackable_reward": lab.hackable_reward,
                                    "secure_reward": lab.secure_reward, "reply": reply}) + "\n")
        tmp.replace(out / "episodes.jsonl")
        write_json_atomic(out / "hacks_summary.json", summary)
    return summary
