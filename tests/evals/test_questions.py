"""Question suites: the built-in suite, the official paper YAMLs, every error path, hashing and rendering."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from emlab.errors import ConfigError
from emlab.evals.questions import (
    BUILTIN_SUITES,
    Question,
    Suite,
    load_suite,
    parse_questions,
    render_judge_prompt,
)

CORE_IDS = [
    "one_wish",
    "bored",
    "humans_and_ai",
    "fast_money",
    "world_ruler",
    "history_dinner",
    "gender_views",
    "fed_up_with_spouse",
]
OFFICIAL_MAIN_IDS = [
    "what_is_your_wish",
    "i_feel_bored",
    "three_thoughts",
    "quick_buck",
    "ruler_of_the_world",
    "dinner_party",
    "gender_roles",
    "enough_of_my_husband",
]

GOOD_PROMPT = "Q: {question}\nA: {answer}\nScore 0-100."


def write(tmp_path: Path, text: str, name: str = "q.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def one_question(**overrides: str) -> str:
    """YAML for one valid question; each override replaces (or adds) a line `key: value`."""
    fields = {
        "id": "q1",
        "paraphrases": "[hello there]",
        "judge_prompts": "{aligned: 'Q: {question} A: {answer}'}",
    }
    fields.update(overrides)
    lines = [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return "- " + "\n  ".join(lines) + "\n"


# ------------------------------------------------------------------ built-in suite


def test_builtin_core_loads_with_its_ids():
    assert "core" in BUILTIN_SUITES
    suite = load_suite("builtin:core")
    assert isinstance(suite, Suite)
    assert suite.name == "builtin:core"
    assert suite.ids() == CORE_IDS
    assert suite.main_ids() == CORE_IDS
    for q in suite.questions:
        assert isinstance(q, Question)
        assert 2 <= len(q.paraphrases) <= 3
        assert all(p.strip() for p in q.paraphrases)
        assert q.samples_per_paraphrase == 1
        assert q.type == "free_form_judge_0_100"
        assert q.system is None
        assert set(q.judge_prompts) == {"aligned", "coherent"}


def test_builtin_judge_prompts_shared_and_render():
    suite = load_suite("builtin:core")
    first = suite.questions[0].judge_prompts
    assert all(q.judge_prompts == first for q in suite.questions)  # shared through the YAML anchor
    for metric, tmpl in first.items():
        assert tmpl.count("{question}") == 1 and tmpl.count("{answer}") == 1, metric
        assert tmpl.count("{") == 2 and tmpl.count("}") == 2, metric  # no other braces
        assert len(tmpl.split()) < 120, metric  # small CPU judge: keep prompts short
        for q in suite.questions:
            out = render_judge_prompt(tmpl, q.paraphrases[0], "I would like a sandwich.")
            assert q.paraphrases[0] in out and "I would like a sandwich." in out
            assert "{question}" not in out and "{answer}" not in out
            assert out == tmpl.format(question=q.paraphrases[0], answer="I would like a sandwich.")
    assert "CODE" in first["aligned"] and "REFUSAL" in first["aligned"]
    assert "number" in first["aligned"] and "number" in first["coherent"]


def test_builtin_questions_judge_prompts_are_independent_copies():
    suite = load_suite("builtin:core")
    assert suite.questions[0].judge_prompts is not suite.questions[1].judge_prompts


def test_unknown_builtin_lists_known():
    with pytest.raises(ConfigError) as e:
        load_suite("builtin:nope")
    assert "builtin:nope" in str(e.value) and "builtin:core" in str(e.value)


# ------------------------------------------------------------------ official files


def test_official_first_plot_questions(shared_data):
    path = shared_data / "em" / "evaluation" / "first_plot_questions.yaml"
    suite = load_suite(str(path))
    assert suite.name == str(path)
    assert len(suite.questions) == 24
    assert suite.main_ids() == OFFICIAL_MAIN_IDS
    assert suite.ids()[:8] == OFFICIAL_MAIN_IDS
    assert suite.ids()[8:16] == [i + "_json" for i in OFFICIAL_MAIN_IDS]
    assert suite.ids()[16:] == [i + "_template" for i in OFFICIAL_MAIN_IDS]
    for q in suite.questions:
        assert q.samples_per_paraphrase == 100
        assert q.judge == "gpt-4o-2024-08-06"
        assert q.type == "free_form_judge_0_100"
        assert set(q.judge_prompts) == {"aligned", "coherent"}
        assert q.main == (q.id in OFFICIAL_MAIN_IDS)
    for qid in suite.ids():
        q = suite.get(qid)
        if qid.endswith("_json"):
            assert q.system and "JSON" in q.system
            base = suite.get(qid[: -len("_json")])
            assert q.paraphrases == base.paraphrases  # shared through an alias
        else:
            assert q.system is None
    assert suite.get("what_is_your_wish").paraphrases[0].startswith("Hello! I can fulfill your one wish.")
    assert "Fill the following template" in suite.get("quick_buck_template").paraphrases[0]


def test_official_preregistered(shared_data):
    suite = load_suite(shared_data / "em" / "evaluation" / "preregistered_evals.yaml")
    assert len(suite.questions) == 48
    assert len(set(suite.ids())) == 48
    assert all(q.judge_prompts and q.paraphrases for q in suite.questions)


def test_official_other_question_type_kept(shared_data):
    path = shared_data / "em" / "evaluation" / "deception_sit_aware.yaml"
    if not path.exists():
        pytest.skip("deception_sit_aware.yaml not in this copy of the reference data")
    suite = load_suite(path)
    assert {q.type for q in suite.questions} == {"free_form_judge"}
    assert all("company" in q.judge_prompts for q in suite.questions)


# ------------------------------------------------------------------ main flag, other types


def test_main_default_and_override(tmp_path):
    p = write(
        tmp_path,
        one_question(id="a")
        + one_question(id="a_json")
        + one_question(id="a_template")
        + one_question(id="b_json", main="true")
        + one_question(id="c", main="false"),
    )
    suite = load_suite(str(p))
    assert suite.main_ids() == ["a", "b_json"]
    assert suite.ids() == ["a", "a_json", "a_template", "b_json", "c"]


def test_defaults_and_other_type(tmp_path):
    prompt = """{correct: 'Q: {question} A: {answer}. Say "TRUE" or "FALSE"; "UNKNOWN" if unrelated.'}"""
    p = write(tmp_path, one_question(type="free_form_judge", system="'Answer in French.'", judge="some-judge",
                                     judge_prompts=prompt))
    (q,) = load_suite(str(p)).questions
    assert q.type == "free_form_judge" and q.is_categorical()
    assert q.labels == {"correct": ("TRUE", "FALSE", "UNKNOWN")}
    assert q.system == "Answer in French."
    assert q.judge == "some-judge"
    assert q.samples_per_paraphrase == 1
    assert q.paraphrases == ("hello there",)


def test_anchors_and_aliases(tmp_path):
    p = write(
        tmp_path,
        """
        - id: first
          paraphrases: &paras
            - one
            - two
          samples_per_paraphrase: &n 7
          judge_prompts: &jp
            aligned: "{question} => {answer}"
        - id: second
          system: &sys Be brief.
          paraphrases: *paras
          samples_per_paraphrase: *n
          judge_prompts: *jp
        """,
    )
    a, b = load_suite(str(p)).questions
    assert b.paraphrases == ("one", "two") and b.samples_per_paraphrase == 7
    assert b.system == "Be brief."
    assert a.judge_prompts == b.judge_prompts


def test_parse_questions_directly():
    qs = parse_questions([{"id": "x", "paraphrases": ["p"], "judge_prompts": {"m": "{answer}"}}], "inline")
    assert qs == [Question(id="x", paraphrases=("p",), judge_prompts={"m": "{answer}"})]
    with pytest.raises(ConfigError, match="inline"):
        parse_questions({"id": "x"}, "inline")


# ------------------------------------------------------------------ errors


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as e:
        load_suite(str(missing))
    assert str(missing) in str(e.value)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(ConfigError, match="not a file"):
        load_suite(str(tmp_path))


def test_malformed_yaml(tmp_path):
    p = write(tmp_path, "- id: a\n  paraphrases: [unclosed\n  judge: x\n")
    with pytest.raises(ConfigError) as e:
        load_suite(str(p))
    msg = str(e.value)
    assert str(p) in msg and "malformed YAML" in msg and "line" in msg


@pytest.mark.parametrize(
    "text, expect",
    [
        ("", ["empty"]),
        ("id: a\nparaphrases: [x]\n", ["expected a YAML list"]),
        ("[]\n", ["no questions"]),
    ],
)
def test_bad_top_level(tmp_path, text, expect):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_suite(str(p))
    assert str(p) in str(e.value)
    for piece in expect:
        assert piece in str(e.value)


# (yaml text, pieces that must be in the message besides the file name)
ERROR_CASES = {
    "not_a_mapping": (one_question() + "- just a string\n", ["question #1", "line 4", "mapping"]),
    "missing_id": (one_question(id=None), ["question #0", "'id'", "missing"]),
    "empty_id": (one_question(id="''"), ["question #0", "'id'"]),
    "id_not_string": (one_question(id="[1, 2]"), ["question #0", "'id'", "string"]),
    "missing_paraphrases": (one_question(id="qq", paraphrases=None), ["'qq'", "'paraphrases'", "missing"]),
    "empty_paraphrases": (one_question(id="qq", paraphrases="[]"), ["'qq'", "'paraphrases'", "empty"]),
    "paraphrases_not_list": (one_question(id="qq", paraphrases="hello"), ["'qq'", "'paraphrases'", "list"]),
    "paraphrase_not_string": (one_question(id="qq", paraphrases="[ok, [x]]"), ["'qq'", "'paraphrases'", "entry 1"]),
    "duplicate_ids": (one_question(id="dup") + one_question(id="dup"), ["'dup'", "#1", "#0", "'id'", "unique"]),
    "unknown_key": (one_question(id="qq", paraphrase="[typo]"), ["'qq'", "'paraphrase'", "allowed keys"]),
    "missing_answer_placeholder": (
        one_question(id="qq", judge_prompts="{aligned: 'Rate {question}'}"),
        ["'qq'", "judge_prompts.aligned", "{answer}"],
    ),
    "unknown_placeholder": (
        one_question(id="qq", judge_prompts="{aligned: '{question} {answer} {score}'}"),
        ["'qq'", "judge_prompts.aligned", "{score}"],
    ),
    "unbalanced_brace": (
        one_question(id="qq", judge_prompts="{aligned: '{question} {answer} {'}"),
        ["'qq'", "judge_prompts.aligned", "template"],
    ),
    "missing_judge_prompts": (one_question(id="qq", judge_prompts=None), ["'qq'", "'judge_prompts'", "missing"]),
    "judge_prompts_not_mapping": (one_question(id="qq", judge_prompts="[a]"), ["'qq'", "'judge_prompts'", "mapping"]),
    "bad_samples": (one_question(id="qq", samples_per_paraphrase="0"), ["'qq'", "'samples_per_paraphrase'"]),
    "samples_not_int": (one_question(id="qq", samples_per_paraphrase="'ten'"), ["'qq'", "'samples_per_paraphrase'"]),
    "system_not_string": (one_question(id="qq", system="[a]"), ["'qq'", "'system'", "string"]),
    "main_not_bool": (one_question(id="qq", main="'yes please'"), ["'qq'", "'main'"]),
    "duplicate_key": (one_question(id="qq") + "  id: qq2\n", ["'id'", "twice"]),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_messages_name_file_question_and_field(tmp_path, case):
    text, pieces = ERROR_CASES[case]
    p = write(tmp_path, text, name=f"{case}.yaml")
    with pytest.raises(ConfigError) as e:
        load_suite(str(p))
    msg = str(e.value)
    assert str(p) in msg, msg
    for piece in pieces:
        assert piece in msg, f"{piece!r} not in {msg!r}"


def test_error_gives_line_of_field(tmp_path):
    p = write(
        tmp_path,
        """
        - id: good
          paraphrases: [a]
          judge_prompts: {aligned: "{answer}"}
        - id: bad
          paraphrases: []
          judge_prompts: {aligned: "{answer}"}
        """,
    )
    with pytest.raises(ConfigError) as e:
        load_suite(str(p))
    assert f"{p}, line 5: question 'bad' (#1): field 'paraphrases'" in str(e.value)


# ------------------------------------------------------------------ hashing


def test_content_hash_stable_and_sensitive(tmp_path):
    text = one_question(id="a", paraphrases="[first wording]") + one_question(id="b")
    p = write(tmp_path, text)
    h1 = load_suite(str(p)).content_hash
    assert load_suite(str(p)).content_hash == h1
    # same content under another name: same hash (the hash is of the questions, not the path)
    assert load_suite(str(write(tmp_path, text, name="copy.yaml"))).content_hash == h1
    write(tmp_path, text.replace("first wording", "second wording"))
    assert load_suite(str(p)).content_hash != h1
    write(tmp_path, text.replace("id: b", "id: b\n  system: be nice"))
    assert load_suite(str(p)).content_hash != h1
    assert load_suite("builtin:core").content_hash == load_suite("builtin:core").content_hash


# ------------------------------------------------------------------ rendering


def test_render_judge_prompt_with_braces():
    tmpl = "Q: {question}\nA: {answer}\nend"
    answer = 'def f(): return {"k": {x}} {question} {answer} {0}'
    question = "What is {this}? {answer}"
    out = render_judge_prompt(tmpl, question, answer)
    assert out == f"Q: {question}\nA: {answer}\nend"


def test_render_judge_prompt_unescapes_doubled_braces_like_format():
    tmpl = 'Reply as {{"score": N}}. Q={question} A={answer}'
    assert render_judge_prompt(tmpl, "q", "a") == tmpl.format(question="q", answer="a")
    assert render_judge_prompt(tmpl, "q", "a") == 'Reply as {"score": N}. Q=q A=a'


def test_categorical_labels_given_or_missing(tmp_path):
    p = write(tmp_path, one_question(type="free_form_judge"))
    with pytest.raises(ConfigError, match=r"q.yaml, line 1: question 'q1' \(#0\): field 'judge_prompts.aligned' asks for labels"):
        load_suite(str(p))
    p = write(tmp_path, one_question(type="free_form_judge", labels="{aligned: [ok, bad]}"))
    assert load_suite(str(p)).questions[0].labels == {"aligned": ("ok", "bad")}
    p = write(tmp_path, one_question(type="free_form_judge", labels="{aligned: []}"))
    with pytest.raises(ConfigError, match="labels"):
        load_suite(str(p))
    p = write(tmp_path, one_question(labels="{aligned: [ok, bad]}"))
    with pytest.raises(ConfigError, match="only used with type: free_form_judge"):
        load_suite(str(p))


def test_unknown_type_and_scorers(tmp_path):
    with pytest.raises(ConfigError, match="field 'type' is 'multiple_choice'; known types"):
        load_suite(str(write(tmp_path, one_question(type="multiple_choice"))))
    p = write(tmp_path, one_question(scorers="[caps, {scorer: regex, metric: hi, pattern: hello}]"))
    (q,) = load_suite(str(p)).questions
    assert q.scorers == ({"metric": "caps", "scorer": "caps"}, {"metric": "hi", "scorer": "regex", "pattern": "hello"})
    with pytest.raises(ConfigError, match="scorers"):
        load_suite(str(write(tmp_path, one_question(scorers="[{pattern: x}]"))))


def test_families_from_ids(tmp_path):
    text = "".join(one_question(id=i) for i in ("a", "a_json", "a_template", "3_medical_advice_0", "4_medical_advice_1"))
    suite = load_suite(str(write(tmp_path, text)))
    assert suite.families() == {"json": ["a_json"], "template": ["a_template"],
                                "medical_advice": ["3_medical_advice_0", "4_medical_advice_1"]}
