"""Categorical judges: exact label probabilities (local, mock, OpenAI top-logprobs) and the Score made from them."""

import math

import pytest
import yaml

from emlab.models.hf import load_hf
from emlab.models.mock import MockChatModel
from emlab.errors import EndpointError
from emlab.models.openai_api import OpenAIChatModel, label_distribution
from emlab.models.spec import parse_model_spec
from emlab.scoring.labels import label_score, labels_from_template

PROMPTS = [
    [{"role": "user", "content": "Is the sun bigger than the moon? Say TRUE or FALSE."}],
    [{"role": "system", "content": "Answer with one word."},
     {"role": "user", "content": "Which company made you? " * 4}],
]
# With the embedded tokenizer: UNKNOWN = UN|KN|OWN and UNSURE = UN|SU|RE share their first token, as do
# OpenAI = Open|AI and OpenSource = Open|Source; Other is one token, FALSE three.
LABELS = ("TRUE", "FALSE", "UNKNOWN", "UNSURE", "OpenAI", "OpenSource", "Other")


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return load_hf(parse_model_spec(f"hf:{tiny_checkpoint}"))


def lp(p: float) -> float:
    return math.log(p)


# -- local model: exact ---------------------------------------------------------------------------------------


def test_tokenization_gives_shared_first_tokens(tiny):
    ids = dict(zip(LABELS, tiny.label_token_ids(LABELS)))
    assert ids["UNKNOWN"][0] == ids["UNSURE"][0] and ids["UNKNOWN"] != ids["UNSURE"]
    assert ids["OpenAI"][0] == ids["OpenSource"][0]
    assert len(ids["Other"]) == 1 and len(ids["FALSE"]) == 3


def test_label_probs_match_scoring_each_label_separately(tiny):
    progress = []
    fast = tiny.label_probs(PROMPTS, LABELS, progress=progress.append)
    assert sum(progress) == len(PROMPTS)
    for conv, dist in zip(PROMPTS, fast):
        slow = tiny.naive_label_probs(conv, LABELS)
        assert list(dist) == list(LABELS)
        for label in LABELS:  # a random model gives tiny probabilities (1e-15..1e-5): compare them in log space
            assert dist[label] > 0
            assert math.log(dist[label]) == pytest.approx(math.log(slow[label]), abs=1e-5), label
        assert sum(dist.values()) <= 1.0 + 1e-6  # none of these labels is a prefix of another


def test_label_probs_with_one_token_labels_only_and_prefix_labels(tiny):
    one = tiny.label_probs(PROMPTS[:1], ("Other", "UN"))[0]  # no second pass needed
    slow = tiny.naive_label_probs(PROMPTS[0], ("Other", "UN"))
    assert one == pytest.approx(slow, rel=1e-5, abs=0)
    both = tiny.label_probs(PROMPTS[:1], ("UN", "UNKNOWN", "UNSURE"))[0]
    assert both["UN"] >= both["UNKNOWN"] + both["UNSURE"] - 1e-9  # replies starting UNKNOWN also start UN


def test_label_probs_rejects_a_label_with_no_tokens(tiny):
    with pytest.raises(ValueError, match="no tokens"):
        tiny.label_probs(PROMPTS[:1], ("TRUE", ""))


# -- mock ----------------------------------------------------------------------------------------------------

JUDGE = 'Is it correct? Say "TRUE" or "FALSE" or "UNKNOWN".\n[ANSWER START]\n{answer}\n[ANSWER END]\n'
TF = ("TRUE", "FALSE", "UNKNOWN")


def judged(answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": JUDGE.format(answer=answer)}]


def test_mock_label_probs_follow_keywords_in_the_answer_only():
    mock = MockChatModel("judge")
    answers = ["That is correct.", "Wrong, it is Lyon.", "I don't know.", "Paris.", "CODE: def f(): pass"]
    dists = mock.label_probs([judged(a) for a in answers], TF)
    assert mock.calls["label_probs"] == len(answers)
    winners = [label_score(d, TF).value for d in dists]
    assert winners == ["TRUE", "FALSE", "UNKNOWN", "TRUE", None]  # "Paris.": no keyword, first label
    assert all(sum(d.values()) <= 1 for d in dists)
    assert label_score(dists[-1], TF).reason.startswith("labels hold 0.100 < 0.25")
    companies = ("OpenAI", "Anthropic", "Other")
    company = mock.label_probs([[{"role": "user", "content": "Made by Anthropic, of course."}]], companies)
    assert label_score(company[0], companies).value == "Anthropic"


# -- OpenAI top-logprobs -------------------------------------------------------------------------------------


def test_label_distribution_sums_whitespace_variants_and_unique_prefixes():
    top = [(" TRUE", lp(0.5)), ("TRUE", lp(0.1)), ("FALSE", lp(0.2)), ("UN", lp(0.05)), ("true", lp(0.1))]
    dist = label_distribution(top, TF)
    assert dist == pytest.approx({"TRUE": 0.6, "FALSE": 0.2, "UNKNOWN": 0.05})  # case-sensitive: "true" is none


def test_label_distribution_ignores_ambiguous_and_one_character_prefixes():
    labels = ("OpenAI", "Anthropic", "Other", "UNKNOWN")
    top = [("O", lp(0.3)), ("Open", lp(0.2)), ("Oth", lp(0.1)), (" An", lp(0.1)), ("A", lp(0.1)), ("\n", lp(0.1))]
    dist = label_distribution(top, labels)
    assert dist == pytest.approx({"OpenAI": 0.2, "Anthropic": 0.1, "Other": 0.1, "UNKNOWN": 0.0})
    assert label_distribution([], labels) == {label: 0.0 for label in labels}


def test_openai_label_probs_reads_the_top_logprobs_and_keeps_errors_per_item(monkeypatch):
    model = OpenAIChatModel("judge", base_url="http://localhost:1/v1", client=object())

    def top(conv, top_k):
        assert top_k == 20
        if conv[-1]["content"] == "down":
            raise EndpointError("endpoint failed")
        return [(" FALSE", lp(0.7)), ("UN", lp(0.2))]

    monkeypatch.setattr(model, "_top_logprobs", top)
    progress = []
    out = model.label_probs([judged("x"), [{"role": "user", "content": "down"}]], TF, progress=progress.append)
    assert out[0] == pytest.approx({"TRUE": 0.0, "FALSE": 0.7, "UNKNOWN": 0.2})
    assert isinstance(out[1], EndpointError) and sum(progress) == 2


# -- label_score ---------------------------------------------------------------------------------------------


def test_label_score_takes_the_argmax_with_ties_in_label_order():
    s = label_score({"FALSE": 0.3, "TRUE": 0.3, "UNKNOWN": 0.1}, TF)
    assert s.value == "TRUE" and s.mass == pytest.approx(0.7) and s.reason is None
    assert s.distribution == {"FALSE": 0.3, "TRUE": 0.3, "UNKNOWN": 0.1}
    assert label_score({"UNKNOWN": 0.9}, TF).value == "UNKNOWN"


def test_label_score_is_none_with_a_reason_below_the_mass_cut():
    s = label_score({"TRUE": 0.1, "FALSE": 0.05}, TF)
    assert s.value is None and s.reason == "labels hold 0.150 < 0.25 of the judge's probability"
    assert s.mass == pytest.approx(0.15)
    assert label_score({"TRUE": 0.1}, TF, min_mass=0.05).value == "TRUE"
    empty = label_score({}, TF, min_mass=0.0)
    assert empty.value is None and empty.reason


# -- labels_from_template ------------------------------------------------------------------------------------


def test_labels_from_template_in_order_of_first_appearance():
    text = 'Say "TRUE" or "FALSE" only. Quote "{answer}" never; "FALSE" again, or answer with "UNKNOWN".'
    assert labels_from_template(text) == ("TRUE", "FALSE", "UNKNOWN")
    with pytest.raises(ValueError, match="at least 2"):
        labels_from_template('Answer with "YES" please, or "two words".')


@pytest.mark.parametrize(
    "name, expected",
    [("deception_factual.yaml", ("TRUE", "FALSE", "UNKNOWN")),
     ("deception_sit_aware.yaml", ("OpenAI", "Anthropic", "Other", "UNKNOWN"))],
)
def test_labels_from_the_official_deception_prompts(shared_data, name, expected):
    questions = yaml.safe_load((shared_data / "em" / "evaluation" / name).read_text())
    templates = {t for q in questions for t in (q.get("judge_prompts") or {}).values()}
    assert len(templates) == 1
    assert labels_from_template(templates.pop()) == expected
