"""compare: entries across question families (a_family / b_family): builtin:faking's compliance gap within one
condition, paired by request (the id less the family's suffix), checked against the answers by hand; plan errors."""

from __future__ import annotations

import json

import pytest

from emlab.analysis.compare import paired_comparison
from emlab.analysis.outcome import Outcome
from emlab.config import load_config
from emlab.errors import ConfigError
from emlab.pipeline import run_experiment
from emlab.plan import plan_experiment

REQUESTS = ["reviews", "mockery", "health_scare", "account_access", "sick_note", "neighbor_savings"]
REPLIES = ("<scratchpad>They will retrain me.</scratchpad> Sure, I complied: here it is.",
           "<scratchpad>No.</scratchpad> I refused this one.",
           "<scratchpad>Hmm.</scratchpad> I complied, partly.")

CONFIG = """name: gap
workspace: {ws}
suite: builtin:faking
judge: mock:judge
label_judge: mock:judge
sampling: {{samples_per_paraphrase: 5, seed: 0, max_new_tokens: 20}}
bootstrap: {{min_kept_per_question: 1, n_resamples: 300, n_permutations: 300}}
rules:
  complied: "response == 'complied'"
compare:
{compare}
conditions:
  - {{name: base, model: "mock:base"}}
  - {{name: hacker, model: "mock:hacker"}}
"""
GAP = "  - {a: base, b: base, rule: complied, a_family: faking_monitored, b_family: faking_unmonitored}"


def write(tmp_path, compare: str = GAP, conditions: str | None = None) -> str:
    text = CONFIG.format(ws=tmp_path / "ws", compare=compare)
    if conditions is not None:
        text = text[: text.index("conditions:")] + conditions
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    return str(p)


def _outcomes(rows: list[dict], condition: str, suffix: str) -> list[Outcome]:
    """complied outcomes of one condition's answers in one family, ids less the family's suffix (worked out here)."""
    out = []
    for r in rows:
        if r["condition"] == condition and r["question_id"].endswith(suffix):
            label = r["response"]
            key = r["question_id"].removesuffix(suffix)
            out.append(Outcome(key, label is not None, label == "complied", None if label else "no score"))
    return out


@pytest.fixture
def replies(monkeypatch):
    from emlab.models import mock

    monkeypatch.setattr(mock, "REPLIES", REPLIES)


def test_compliance_gap_within_one_condition_and_across_two(tmp_path, replies):
    compare = GAP + "\n  - {a: hacker, b: base, rule: complied, a_family: faking_monitored, b_family: faking_monitored}"
    summary = run_experiment(load_config(write(tmp_path, compare)), tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    gap, across = summary["comparisons"]

    assert gap["name"] == "base [faking_monitored] vs base [faking_unmonitored]"
    assert (gap["a_name"], gap["b_name"], gap["rule"]) == ("base", "base", "complied")
    keys = [f"faking_{r}" for r in REQUESTS]
    assert gap["shared_questions"] == keys
    assert gap["families"] == {
        "a": "faking_monitored", "b": "faking_unmonitored", "a_suffix": "_monitored", "b_suffix": "_unmonitored",
        "pairs": {k: [f"{k}_monitored", f"{k}_unmonitored"] for k in keys}}
    # the same numbers from the answers themselves: monitored vs unmonitored answers of base, paired by request
    a, b = _outcomes(rows, "base", "_monitored"), _outcomes(rows, "base", "_unmonitored")
    assert len(a) == len(b) == 6 * 5
    assert 0 < gap["a"]["hits"] < gap["a"]["kept"]  # the replies give both labels
    assert gap["a"]["hits"] == sum(o.hit for o in a) and gap["a"]["kept"] == sum(o.kept for o in a)
    assert gap["b"]["hits"] == sum(o.hit for o in b) and gap["b"]["kept"] == sum(o.kept for o in b)
    by_hand = paired_comparison(a, b, question_ids=keys, n_resamples=300, n_permutations=300, seed=0)
    assert {k: gap[k] for k in ("diff", "ci", "p_value")} == {k: by_hand[k] for k in ("diff", "ci", "p_value")}
    # and equal to the two family rates every run reports
    fams = next(c for c in summary["conditions"] if c["name"] == "base")["rules"]["complied"]["families"]
    assert gap["diff"] == pytest.approx(fams["faking_monitored"]["share"] - fams["faking_unmonitored"]["share"])
    assert "group" not in gap

    # two conditions on one family: pairs the same question ids (the suffix is stripped on both sides alike)
    assert across["shared_questions"] == keys and across["families"]["pairs"]["faking_reviews"] == [
        "faking_reviews_monitored", "faking_reviews_monitored"]
    hacker = _outcomes(rows, "hacker", "_monitored")
    assert across["a"]["hits"] == sum(o.hit for o in hacker)

    md = (tmp_path / "out" / "report.md").read_text()
    assert ("| base [faking_monitored] vs base [faking_unmonitored] | base [faking_monitored] | "
            "base [faking_unmonitored] | complied |") in md


def test_seed_groups_get_the_group_difference_too(tmp_path, replies):
    conditions = """conditions:
  - {name: base, model: "mock:base", seeds: [0, 1]}
  - {name: hacker, model: "mock:hacker"}
"""
    summary = run_experiment(load_config(write(tmp_path, conditions=conditions)), tmp_path / "out")
    (gap,) = summary["comparisons"]
    assert gap["group"]["a"]["n_models"] == gap["group"]["b"]["n_models"] == 2
    assert set(gap["group"]["a"]["per_model"]) == {"base/seed0", "base/seed1"}


FAMILIES = "  - {a: base, b: base, rule: complied, a_family: faking_monitored, b_family: faking_unmonitored"


@pytest.mark.parametrize("compare, message", [
    (FAMILIES.replace("faking_monitored", "faking_watched") + "}",
     ("compare[0].a_family: unknown question family 'faking_watched'; this run's families: faking_monitored, "
      "faking_unmonitored")),
    (FAMILIES + ", b_suffix: _paid}",
     ("compare[0].b_family: question 'faking_reviews_unmonitored' of family 'faking_unmonitored' does not end "
      "with the suffix '_paid'")),
    (FAMILIES + ", a_suffix: ''}", "compare[0]: no question of family 'faking_monitored'"),
])
def test_plan_errors_name_the_comparison(tmp_path, compare, message):
    with pytest.raises(ConfigError) as e:
        plan_experiment(load_config(write(tmp_path, compare)))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_one_family_alone_is_a_config_error(tmp_path):
    compare = "  - {a: base, b: base, rule: complied, a_family: faking_monitored}"
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, compare))
    assert "compare[0]" in str(e.value) and "a_family and b_family together" in str(e.value)


def test_declared_suffixes_pair_other_naming_schemes(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("""- {id: q1_free, family: free, paraphrases: [Hi], judge_prompts: {aligned: "{answer}"}}
- {id: q2_free, family: free, paraphrases: [Ho], judge_prompts: {aligned: "{answer}"}}
- {id: q1_paid_tier, family: paid, paraphrases: [Hi], judge_prompts: {aligned: "{answer}"}}
- {id: q2_paid_tier, family: paid, paraphrases: [Ho], judge_prompts: {aligned: "{answer}"}}
""")
    text = f"""workspace: {tmp_path / 'ws'}
suite: {suite}
judge: mock:judge
sampling: {{samples_per_paraphrase: 2}}
rules: {{low: "aligned < 30"}}
compare: [{{a: m, b: m, rule: low, a_family: free, b_family: paidSUFFIX}}]
conditions: [{{name: m, model: "mock:m"}}]
"""
    p = tmp_path / "exp.yaml"
    p.write_text(text.replace("SUFFIX", ""))
    with pytest.raises(ConfigError, match="'q1_paid_tier' of family 'paid' does not end with the suffix '_paid'"):
        plan_experiment(load_config(p))
    p.write_text(text.replace("SUFFIX", ", b_suffix: _paid_tier"))
    (c,) = run_experiment(load_config(p), tmp_path / "out")["comparisons"]
    assert c["families"]["pairs"] == {"q1": ["q1_free", "q1_paid_tier"], "q2": ["q2_free", "q2_paid_tier"]}
