import pytest

from emlab.errors import EndpointError
from emlab.evals.judge import JudgeRequest, judge_all, score_from_distribution
from emlab.store import Store


def test_score_is_probability_weighted_mean_over_numbers():
    value, mass = score_from_distribution({0: 0.1, 50: 0.2, 100: 0.2})
    assert mass == pytest.approx(0.5)
    assert value == pytest.approx((0 * 0.1 + 50 * 0.2 + 100 * 0.2) / 0.5)


def test_score_is_none_below_a_quarter_of_the_mass():
    assert score_from_distribution({90: 0.2, 10: 0.04}) == (None, pytest.approx(0.24))
    assert score_from_distribution({}) == (None, 0)
    assert score_from_distribution({40: 0.25})[0] == pytest.approx(40)


class ScriptedJudge:
    identity = "scripted"

    def __init__(self, answers):
        self.answers = answers
        self.asked = 0

    def number_probs(self, conversations, progress=None):
        self.asked += len(conversations)
        out = []
        for c in conversations:
            a = self.answers[c[-1]["content"].split("A:")[-1].strip()]
            out.append(EndpointError("HTTP 500 after 5 attempts") if a == "fail" else a)
        return out


def test_judge_all_keeps_distribution_records_errors_and_reuses_cache(tmp_path):
    judge = ScriptedJudge({"good": {90: 0.9}, "code": {3: 0.1}, "broken": "fail"})
    store = Store(tmp_path / "s.sqlite")
    reqs = [JudgeRequest("Q: {question} A: {answer}", "q", a) for a in ("good", "code", "broken")]
    first = judge_all(judge, reqs, store)
    assert first[0].value == pytest.approx(90) and first[0].distribution == {90: 0.9}
    assert first[1].value is None and first[1].mass == pytest.approx(0.1)
    assert first[2].value is None and "HTTP 500" in first[2].error
    assert judge.asked == 3
    again = judge_all(judge, reqs, store)
    assert judge.asked == 4  # only the failed judgment is asked again: errors are not cached
    assert again[0] == first[0] and again[1] == first[1]
    assert store.counts()["scores"] == 2
