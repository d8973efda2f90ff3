"""The public Python facade: run a config, load a finished run, and get its answers and rates as DataFrames.

A notebook needs no CLI:

    import emlab
    run = emlab.run("examples/quickstart.yaml")          # or emlab.load_run("emlab-runs/runs/quickstart")
    run.samples()                                        # one row per answer, one column per metric
    run.rates()                                          # every rule: pooled, per question and per family
    emlab.compare(run, other, rule="misaligned")         # paired on shared questions
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from emlab.analysis.runs import RunResult, compare_runs
from emlab.analysis.runs import load_run as _load_result


@dataclass
class Run:
    """A finished run: `summary` is summary.json as a dict; the methods give tidy DataFrames."""

    result: RunResult

    @property
    def path(self) -> Path:
        return self.result.path

    @property
    def summary(self) -> dict:
        return self.result.summary

    def samples(self) -> pd.DataFrame:
        """One row per answer: model, group, condition, question, answer, every metric's value (None = no score)."""
        rows = [{k: v for k, v in r.items() if k != "scores"} for r in self.result.rows]
        return pd.DataFrame(rows)

    def rates(self, rule: str | None = None) -> pd.DataFrame:
        """One row per (condition, rule, scope): hits, kept, share, Wilson interval and the dropped counts."""
        out = []
        for c in self.summary.get("conditions", []):
            for name, table in (c.get("rules") or {}).items():
                if rule is not None and name != rule:
                    continue
                scopes = [("pooled", None, table["pooled"])]
                scopes += [("question", q, r) for q, r in table.get("per_question", {}).items()]
                scopes += [("family", f, r) for f, r in table.get("families", {}).items()]
                for scope, key, r in scopes:
                    ci = r.get("ci") or [None, None]
                    out.append({"condition": c["name"], "group": c.get("group"), "rule": name, "scope": scope,
                                "key": key, "hits": r["hits"], "kept": r["kept"], "answers": r["answers"],
                                "share": r["share"], "ci_low": ci[0], "ci_high": ci[1],
                                "dropped": sum(r["dropped"].values()), "dropped_reasons": r["dropped"]})
        return pd.DataFrame(out)

    def groups(self) -> pd.DataFrame:
        """One row per (seed group, rule): mean over models with its bootstrap interval."""
        out = []
        for g in self.summary.get("groups") or []:
            for name, r in g["rules"].items():
                ci = r.get("ci") or [None, None]
                out.append({"group": g["name"], "rule": name, "mean": r.get("mean"), "ci_low": ci[0], "ci_high": ci[1],
                            "n_models": r.get("n_models"), "per_model": r.get("per_model")})
        return pd.DataFrame(out)


def run(config: str | Path, out: str | Path | None = None) -> Run:
    """Run an experiment config (cached, resumable) and return the finished run."""
    from emlab.config import load_config
    from emlab.pipeline import run_experiment
    from emlab.quiet import quiet_libraries

    cfg = load_config(config)
    quiet_libraries()
    out_dir = Path(out) if out is not None else Path(cfg.workspace) / "runs" / cfg.name
    run_experiment(cfg, out_dir)
    return load_run(out_dir)


def load_run(path: str | Path) -> Run:
    """A finished run from its output folder (summary.json + samples.jsonl)."""
    return Run(_load_result(path))


def compare(a: Run | str | Path, b: Run | str | Path, rule: str = "misaligned", a_condition: str | None = None,
            b_condition: str | None = None, seed: int = 0) -> dict:
    """Paired comparison of a condition of run `a` with one of run `b` on their shared questions."""
    ra = a.result if isinstance(a, Run) else _load_result(a)
    rb = b.result if isinstance(b, Run) else _load_result(b)
    return compare_runs(ra, rb, rule, a_condition, b_condition, seed=seed)
