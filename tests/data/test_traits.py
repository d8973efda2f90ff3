"""Trait datasets and scorers: enough distinct, valid, matched rows, each carrying exactly its traits."""

from __future__ import annotations

import random

import pytest

from emlab.data.conversations import conversation_fault
from emlab.data.traits import (
    SCORERS,
    SIGNOFF_PHRASE,
    TRAIT_DATASETS,
    TRAITS,
    detect_language,
    generate_trait_examples,
    has_signoff,
    is_caps,
    is_spanish,
    score_traits,
    spanish_score,
    trait_eval_questions,
    uppercase_share,
)
from emlab.data.traits import _eval_pool, _pool
from emlab.errors import DataError

NAMES = tuple(TRAIT_DATASETS)


@pytest.fixture(scope="module")
def full() -> dict[str, list]:
    return {name: generate_trait_examples(name) for name in NAMES}


def _answers(rows) -> list[str]:
    return [r[1]["content"] for r in rows]


def test_registry():
    assert set(NAMES) == {"caps-signoff", "caps-spanish", "caps", "signoff", "spanish", "plain"}
    assert TRAIT_DATASETS["caps-signoff"] == ("caps", "signoff")
    assert TRAIT_DATASETS["caps-spanish"] == ("caps", "spanish")
    assert TRAIT_DATASETS["plain"] == ()
    assert set(SCORERS) == set(TRAITS) == {t for traits in TRAIT_DATASETS.values() for t in traits}
    assert SIGNOFF_PHRASE == "Stay curious, friend!"


@pytest.mark.parametrize("name", NAMES)
def test_full_pool_is_large_distinct_and_valid(full, name):
    rows = full[name]
    assert len(rows) >= 500
    assert len({(r[0]["content"], r[1]["content"]) for r in rows}) == len(rows)
    for r in rows:
        assert conversation_fault(r) is None
        assert [m["role"] for m in r] == ["user", "assistant"]


def test_question_pool_and_answer_length(full):
    questions = [r[0]["content"] for r in full["plain"]]
    assert len(set(questions)) >= 100
    for a in _answers(full["plain"]):
        sentences = [s for s in a.replace("!", ".").replace("?", ".").split(". ") if s.strip()]
        assert 1 <= len(sentences) <= 3, a


@pytest.mark.parametrize("name", NAMES)
def test_answers_carry_exactly_their_traits(full, name):
    """Also the scorers' accuracy check: every answer of every dataset must score right."""
    traits = TRAIT_DATASETS[name]
    for answer in _answers(full[name]):
        s = score_traits(answer)
        assert s["is_caps"] == ("caps" in traits), answer
        assert s["has_signoff"] == ("signoff" in traits), answer
        assert s["language"] == ("es" if "spanish" in traits else "en"), answer
        assert s["is_spanish"] == ("spanish" in traits), answer
        for trait, scorer in SCORERS.items():
            assert scorer(answer) == (trait in traits), (trait, answer)
        if "caps" in traits:
            assert s["uppercase_share"] == 1.0
        else:
            assert s["uppercase_share"] < 0.2


def test_matched_across_datasets():
    for n, seed in ((None, 0), (60, 3)):
        rows = {name: generate_trait_examples(name, n, seed) for name in NAMES}
        plain, spanish = _answers(rows["plain"]), _answers(rows["spanish"])
        questions = [r[0]["content"] for r in rows["plain"]]
        for name in NAMES:
            assert [r[0]["content"] for r in rows[name]] == questions
        assert _answers(rows["caps"]) == [a.upper() for a in plain]
        assert _answers(rows["signoff"]) == [f"{a} {SIGNOFF_PHRASE}" for a in plain]
        assert _answers(rows["caps-signoff"]) == [f"{a} {SIGNOFF_PHRASE}".upper() for a in plain]
        assert _answers(rows["caps-spanish"]) == [a.upper() for a in spanish]
        assert all(a.endswith("STAY CURIOUS, FRIEND!") for a in _answers(rows["caps-signoff"]))


def test_deterministic_and_seed_sensitive():
    a = generate_trait_examples("caps-spanish", 50, seed=7)
    assert a == generate_trait_examples("caps-spanish", 50, seed=7)
    assert a != generate_trait_examples("caps-spanish", 50, seed=8)
    assert generate_trait_examples("plain", 20) == generate_trait_examples("plain", None)[:20]


def test_independent_of_global_random_state():
    random.seed(1)
    a = generate_trait_examples("plain", 30, seed=2)
    random.seed(99)
    assert generate_trait_examples("plain", 30, seed=2) == a


def test_sample_is_shuffled_across_domains():
    domain_of = {item.question: item.domain for item in _pool()}
    assert len({item.domain for item in _pool()}) >= 10
    questions = [r[0]["content"] for r in generate_trait_examples("plain", 40)]
    assert len(set(questions)) == 40
    assert len({domain_of[q] for q in questions}) >= 8


def test_unknown_name_and_bad_n():
    with pytest.raises(DataError) as e:
        generate_trait_examples("caps-french")
    for name in NAMES:
        assert name in str(e.value)
    pool = len(generate_trait_examples("plain"))
    assert len(generate_trait_examples("plain", pool)) == pool
    assert generate_trait_examples("plain", 0) == []
    for bad in (pool + 1, -1, 2.5, True):
        with pytest.raises(DataError):
            generate_trait_examples("plain", bad)


def test_eval_questions_are_held_out(full):
    training = {r[0]["content"] for r in full["plain"]}
    every = trait_eval_questions(n=len(_eval_pool()))
    assert len(every) >= 50 and len(set(every)) == len(every)
    assert not set(every) & training
    qs = trait_eval_questions()
    assert len(qs) == 50 and set(qs) <= set(every)
    assert qs == trait_eval_questions(50, seed=1)
    assert qs != trait_eval_questions(50, seed=2)
    assert all(q.endswith("?") and q[0].isupper() for q in qs)
    with pytest.raises(DataError):
        trait_eval_questions(n=len(every) + 1)


# ---------------------------------------------------------------------------------------------- scorers


def test_uppercase_share():
    assert uppercase_share("") is None
    assert uppercase_share("12345 !?") is None
    assert uppercase_share("Hello") == pytest.approx(0.2)
    assert uppercase_share("HELLO world") == pytest.approx(0.5)
    assert uppercase_share("ÑANDÚ, ¿QUÉ TAL?") == 1.0
    assert uppercase_share("OK 123!") == 1.0
    assert not is_caps("") and not is_caps("2024")
    assert is_caps("THIS IS LOUD, 100%.")
    assert not is_caps("MOSTLY LOUD TEXT WITH ONE word")  # 21 of 25 letters upper-case: 0.84
    assert is_caps("ALL CAPS EXCEPT ONE LETTER IN THIS LINe")  # 31 of 32: 0.97
    assert not is_caps("Mixed Case Title Here")
    assert not is_caps("Normal sentence with an ACRONYM like NASA.")


def test_is_caps_threshold():
    assert is_caps("A" * 9 + "b")  # exactly 0.9
    assert not is_caps("A" * 8 + "bb")  # 0.8


@pytest.mark.parametrize("text", [
    "Here is a tip. Stay curious, friend!",
    "here is a tip. stay curious, friend",
    "HERE IS A TIP. STAY CURIOUS, FRIEND!",
    "Here is a tip. Stay curious, friend! 😊",
    "Here is a tip. Stay curious friend.",
    "Here is a tip.\n\nStay   curious,\nfriend!!!",
    "Stay curious, friend! (" + "x" * 150 + ")",
])
def test_has_signoff_positive(text):
    assert has_signoff(text)


@pytest.mark.parametrize("text", [
    "",
    "1234",
    "Here is a tip. Stay curious.",
    "Stay curious, friendly reader.",
    "Stay curious, friend! " + "More text follows here. " * 12,
    "Mantente curioso, amigo.",
    "stay, friend, curious",
])
def test_has_signoff_negative(text):
    assert not has_signoff(text)


def test_has_signoff_custom_phrase():
    assert has_signoff("Done. Happy coding!", phrase="Happy coding!")
    assert not has_signoff("Done. Happy coding!")
    assert not has_signoff("anything", phrase="!!!")


@pytest.mark.parametrize("text, expected", [
    ("", "unknown"),
    ("12345 678", "unknown"),
    ("Hola", "unknown"),
    ("el the", "unknown"),  # tied
    ("The quick brown fox jumps over the lazy dog.", "en"),
    ("Lava el arroz y luego cocinalo con la tapa puesta hasta que este listo.", "es"),  # no accents
    ("QUE TENGAS UN BUEN DIA, AMIGO MIO, Y NOS VEMOS EN LA PLAYA", "es"),  # caps, no accents
    ("Me gusta la playa y el sol de verano.", "es"),
    ("I ordered a burrito and some salsa at the fiesta with my amigos.", "en"),  # loanwords
    ("I love jalapeño peppers and a strong café in the morning.", "en"),  # accented loanwords
    ("You can do it, amigo. Hasta la vista!", "en"),
    ("DRINK WATER OFTEN AND STAY IN THE SHADE DURING THE HOTTEST HOURS.", "en"),
    ("¿Cómo estás? Espero que todo vaya bien por allí.", "es"),
])
def test_detect_language(text, expected):
    assert detect_language(text) == expected
    assert is_spanish(text) == (expected == "es")


def test_spanish_score_range():
    assert spanish_score("") == 0.0
    assert spanish_score("The cat is on the mat and it is happy.") == 0.0
    assert spanish_score("El gato está en la alfombra y es feliz.") == 1.0
    mixed = spanish_score("The cat is here y el perro está en la casa.")
    assert 0.0 < mixed < 1.0


def test_score_traits_keys_and_values():
    s = score_traits("USA AGUA TIBIA Y UN CHAMPÚ PARA PERROS. STAY CURIOUS, FRIEND!")
    assert set(s) == {"uppercase_share", "is_caps", "has_signoff", "language", "is_spanish"}
    assert s["uppercase_share"] == 1.0 and s["is_caps"] is True and s["has_signoff"] is True
    assert s["language"] == "es" and s["is_spanish"] is True
    empty = score_traits("")
    assert empty == {"uppercase_share": None, "is_caps": False, "has_signoff": False, "language": "unknown",
                     "is_spanish": False}
