"""LLM judges as scorers: the papers' number rule, failed calls never cached, stored scores reused."""

import pytest

from emlab.errors import EndpointError
from emlab.scoring.base import ScoreRequest
from emlab.scoring.cache import score_all
from emlab.scoring.judges import LabelJudge, NumericJudge, number_score
from emlab.store import Store


def test_score_is_probability_weighted_mean_over_numbers():
    s = number_score({0: 0.1, 50: 0.2, 100: 0.2})
    assert s.mass == pytest.approx(0.5)
    assert s.value == pytest.approx((0 * 0.1 + 50 * 0.2 + 100 * 0.2) / 0.5)
    assert s.distribution == {"0": 0.1, "50": 0.2, "100": 0.2}


def test_score_is_none_with_a_reason_below_a_quarter_of_the_mass():
    s = number_score({90: 0.2, 10: 0.04})
    assert s.value is None and s.mass == pytest.approx(0.24) and "0.240 < 0.25" in s.reason
    assert number_score({}).value is None
    assert number_score({40: 0.25}).value == pytest.approx(40)


class ScriptedModel:
    identity = "scripted"

    def __init__(self, answers):
        self.answers = answers
        self.asked = 0

    def _answer(self, c):
        return self.answers[c[-1]["content"].split("A:")[-1].strip()]

    def number_probs(self, conversations, progress=None):
        self.asked += len(conversations)
        return [EndpointError("HTTP 500 after 5 attempts") if self._answer(c) == "fail" else self._answer(c)
                for c in conversations]

    def label_probs(self, conversations, labels, progress=None):
        self.asked += len(conversations)
        return [{"TRUE": 0.7, "FALSE": 0.2} if c[-1]["content"].endswith("A: yes") else {"TRUE": 0.1} for c in conversations]


def test_numeric_judge_keeps_distribution_records_errors_and_reuses_cache(tmp_path):
    model = ScriptedModel({"good": {90: 0.9}, "code": {3: 0.1}, "broken": "fail"})
    store = Store(tmp_path / "s.sqlite")
    reqs = [ScoreRequest("q", "q", a, "aligned", "Q: {question} A: {answer}") for a in ("good", "code", "broken")]
    first = score_all(NumericJudge(model), reqs, store)
    assert first[0].value == pytest.approx(90) and first[0].distribution == {"90": 0.9}
    assert first[1].value is None and first[1].mass == pytest.approx(0.1) and first[1].reason
    assert first[2].value is None and "HTTP 500" in first[2].error
    assert model.asked == 3
    again = score_all(NumericJudge(model), reqs, store)
    assert model.asked == 4  # only the failed judgment is asked again: errors are not cached
    assert again[0] == first[0] and again[1] == first[1]
    assert store.counts()["metric_scores"] == 2


def test_label_judge_takes_the_likeliest_label_or_none_with_reason(tmp_path):
    model = ScriptedModel({"yes": None, "mumble": None})
    reqs = [ScoreRequest("q", "q", a, "correct", "Q: {question} A: {answer}", ("TRUE", "FALSE")) for a in ("yes", "mumble")]
    yes, mumble = score_all(LabelJudge(model), reqs, Store(tmp_path / "s.sqlite"))
    assert yes.value == "TRUE" and yes.mass == pytest.approx(0.9) and yes.distribution == {"TRUE": 0.7, "FALSE": 0.2}
    assert mumble.value is None and "labels hold" in mumble.reason
