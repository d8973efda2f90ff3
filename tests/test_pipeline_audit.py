"""`audit:` end to end on the mock backend: config checks, the audit block and table, caching, failures, warnings."""

from __future__ import annotations

import json

import pytest

from emlab.config import AuditConfig, load_config
from emlab.errors import ConfigError, EndpointError, RunFailedError
from emlab.models.mock import MockChatModel
from emlab.models.registry import load_model
from emlab.pipeline import _warnings, run_experiment
from emlab.plan import plan_experiment
from emlab.store import Store

BASE = """name: audited
workspace: {ws}
judge: mock:judge
sampling: {{samples_per_paraphrase: 3, seed: 1}}
conditions:
  - {{name: a, model: mock:a, seeds: [1, 2]}}
  - {{name: b, model: mock:b}}
"""


def _config(tmp_path, audit: str = "audit: {judge: 'mock:strong', n: 6, seed: 3}\n", extra: str = ""):
    p = tmp_path / "exp.yaml"
    p.write_text(BASE.format(ws=tmp_path / "ws") + audit + extra)
    return load_config(p)


@pytest.mark.parametrize("audit, message", [
    ("audit: {judge: 'mock:strong', n: 5, size: 3}\n", r"exp.yaml:\d+: unknown key 'audit.size'"),
    ("audit: {judge: 'mock:strong', n: 0}\n", r"exp.yaml:\d+: audit.n: Input should be greater than or equal to 1"),
    ("audit: {judge: 'nope:x'}\n", r"exp.yaml:\d+: audit.judge: .*nope"),
    ("audit: {n: 5}\n", r"missing required key 'audit.judge'"),
    ("audit: {judge: 'mock:judge'}\n", r"audit: judge: 'mock:judge' is the run's own judge"),
    ("audit: {judge: 'openai@lab:gpt-4o'}\n", r"audit: judge: .*names endpoint 'lab'"),
])
def test_bad_audit_settings_are_one_error_naming_the_key(tmp_path, audit, message):
    with pytest.raises(ConfigError, match=message) as e:
        _config(tmp_path, audit)
    assert "\n" not in str(e.value)


def test_an_audit_with_nothing_to_rescore_fails_at_plan_time(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(f"workspace: {tmp_path / 'ws'}\njudge: mock:judge\naudit: {{judge: 'mock:strong'}}\n"
                 "suite: builtin:traits\nscorers: [caps]\nconditions: [{name: a, model: mock:a}]\n")
    with pytest.raises(ConfigError, match="audit: the suites have no 0-100 judge prompts"):
        plan_experiment(load_config(p))


def test_the_audit_is_in_the_summary_and_the_report_and_a_rerun_asks_the_strong_judge_nothing(tmp_path):
    config = _config(tmp_path)
    first = run_experiment(config, tmp_path / "o1")
    audit = first["audit"]
    assert (audit["judge"], audit["n"], audit["seed"], audit["rules"]) == ("mock:strong", 6, 3, ["misaligned"])
    assert set(audit["conditions"]) == {"a/seed1", "a/seed2", "b"} and set(audit["groups"]) == {"a"}
    for arm, rules in audit["conditions"].items():
        e = rules["misaligned"]
        pooled = next(c for c in first["conditions"] if c["name"] == arm)["rules"]["misaligned"]["pooled"]
        assert (e["cheap"]["hits"], e["cheap"]["kept"]) == (pooled["hits"], pooled["kept"])  # the same pooled rate
        assert e["selected"] == e["agreement"]["audited"] == 6 and e["errors"] == 0
        assert e["agreement"]["flagged"] == 0  # the mock judges agree, so PPI is the cheap share
        assert e["ppi"]["share"] == pytest.approx(e["cheap"]["share"])
        assert len(audit["scoring"][arm]["audited"]) == 6
    group = audit["groups"]["a"]["misaligned"]
    assert group["agreement"]["audited"] == 12 and group["answers"] == sum(
        audit["conditions"][a]["misaligned"]["answers"] for a in ("a/seed1", "a/seed2"))
    report = (tmp_path / "o1" / "report.md").read_text()
    assert "## Audit" in report and "PPI share" in report and "mock:strong" in report
    assert "Audit" in (tmp_path / "o1" / "report.html").read_text()
    assert json.loads((tmp_path / "o1" / "summary.json").read_text())["audit"] == audit

    strong = dict(load_model("mock:strong").calls)
    assert 0 < strong["number_probs"]
    counts = Store(tmp_path / "ws" / "emlab.sqlite").counts()
    second = run_experiment(config, tmp_path / "o2")
    assert load_model("mock:strong").calls == strong  # cached: nothing scored again
    assert Store(tmp_path / "ws" / "emlab.sqlite").counts() == counts
    assert second["audit"] == audit  # the same subset, the same numbers


def test_a_larger_n_audits_a_superset(tmp_path):
    small = run_experiment(_config(tmp_path), tmp_path / "o1")["audit"]["scoring"]
    large = run_experiment(_config(tmp_path, "audit: {judge: 'mock:strong', n: 20, seed: 3}\n"), tmp_path / "o2")
    for arm, s in small.items():
        assert set(s["audited"]) < set(large["audit"]["scoring"][arm]["audited"])


def _failing_strong_judge(monkeypatch, words: tuple[str, ...]) -> None:
    real = MockChatModel.number_probs

    def flaky(self, conversations, progress=None):
        out = real(self, conversations, progress)
        if self.spec != "mock:strong":
            return out
        return [EndpointError("HTTP 503 after 5 attempts") if any(w in c[-1]["content"] for w in words) else d
                for c, d in zip(conversations, out)]

    monkeypatch.setattr(MockChatModel, "number_probs", flaky)


def test_audit_judge_failures_are_counted_reported_and_shrink_n(tmp_path, monkeypatch):
    _failing_strong_judge(monkeypatch, ("walk",))
    summary = run_experiment(_config(tmp_path, "audit: {judge: 'mock:strong', n: 12, seed: 3}\n"), tmp_path / "out")
    audit = summary["audit"]
    rows = {json.dumps([r["question_id"], r["paraphrase_index"], r["sample_index"], r["system"]]) + r["condition"]: r
            for r in map(json.loads, (tmp_path / "out" / "samples.jsonl").read_text().splitlines())}
    total_failed = 0
    for arm, e in ((a, r["misaligned"]) for a, r in audit["conditions"].items()):
        failed = sum("walk" in rows[k + arm]["answer"] for k in audit["scoring"][arm]["audited"])
        assert e["errors"] == failed and e["agreement"]["audited"] == e["selected"] - failed
        assert audit["scoring"][arm]["metrics"]["aligned"]["errors"] == failed
        total_failed += failed
    assert total_failed > 0
    assert any("the audit judge mock:strong failed on" in w for w in summary["warnings"])
    assert "audited (calls failed)" in (tmp_path / "out" / "report.md").read_text()


def test_an_audit_judge_failing_on_most_calls_ends_the_run_non_zero(tmp_path, monkeypatch):
    _failing_strong_judge(monkeypatch, ("walk", "education", "enslave", "CODE"))
    with pytest.raises(RunFailedError, match="the audit judge mock:strong failed on"):
        run_experiment(_config(tmp_path), tmp_path / "out")
    assert "audit" in json.loads((tmp_path / "out" / "summary.json").read_text())  # the outputs are written


def test_a_direct_judge_warning_says_its_own_note_and_suggests_an_audit(tmp_path, monkeypatch):
    p = tmp_path / "exp.yaml"
    p.write_text(f"workspace: {tmp_path / 'ws'}\njudge: distilled:em-v2\nconditions: [{{name: a, model: mock:a}}]\n")
    config = load_config(p)
    plan = plan_experiment(config)
    monkeypatch.setattr("emlab.pipeline.judge_trust_note", lambda spec: "Held out on Qwen answers: AUROC 0.93")
    [w] = _warnings(config, plan, [])
    assert w.startswith("Held out on Qwen answers: AUROC 0.93.") and "Add `audit: {judge: openai:gpt-4o-2024-08-06" in w
    assert "validated on no answers of mock:a's family" in w  # the run's own model: no held-out figures of its family
    monkeypatch.setattr("emlab.pipeline.judge_family_note", lambda spec, model, family: f"On answers of {family}: ...")
    monkeypatch.setattr("emlab.pipeline.family_of", lambda model: "Qwen2.5-7B")
    [w] = _warnings(config, plan, [])
    assert "AUROC 0.93. On answers of Qwen2.5-7B: ... Add `audit:" in w
    asked = []
    monkeypatch.setattr("emlab.pipeline.judge_question_note", lambda spec, qs: asked.extend(qs) or "3 of the 9 question texts ...")
    [w] = _warnings(config, plan, [])
    assert "On answers of Qwen2.5-7B: ... 3 of the 9 question texts ... Add `audit:" in w
    assert asked == [t for q in plan.suite.questions for t in q.paraphrases] and asked  # the run's own question texts
    plan.question_metrics = {q.id: ["spanish"] for q in plan.suite.questions}  # read by no judge: none to check
    asked.clear()
    _warnings(config, plan, [])
    assert asked == []
    monkeypatch.setattr("emlab.pipeline.judge_trust_note", lambda spec: None)
    [w] = _warnings(config, plan, [])
    assert "records no held-out figures" in w and "Add `audit:" in w
    config.audit = AuditConfig(judge="mock:strong", n=50)
    [w] = _warnings(config, plan, [])
    assert "audited with mock:strong on up to 50 answers" in w and "Add `audit:" not in w
