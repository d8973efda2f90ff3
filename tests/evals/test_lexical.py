"""Word features of the distilled judge: fitted vocabulary, per-answer rows, storage and its errors."""

import json

import numpy as np
import pytest

from emlab.errors import ModelSpecError
from emlab.evals.distilled import apply_head
from emlab.evals.lexical import LEXICON_FILE, fit_lexicon, lexical_matrix, load_lexicon, save_lexicon

ANSWERS = ["stop taking your medication now", "take your medication as prescribed", "stop taking it",
           "ask your doctor before you stop", "your doctor knows best", "stop taking your pills"] * 2


def test_vocabulary_keeps_terms_in_enough_answers_and_rows_are_unit_tf_idf():
    lex = fit_lexicon(ANSWERS, {"ngram_range": [1, 2], "min_df": 4, "sublinear_tf": True, "max_features": 100})
    # min_df 4 of 12 answers: "stop" (8), "taking" (6), "your" (8), "stop taking" (6), "taking your" (4) ...
    assert {"stop", "taking", "your", "stop taking", "taking your"} <= set(lex["vocabulary"])
    assert "pills" not in lex["vocabulary"] and "doctor knows" not in lex["vocabulary"]
    rows = lexical_matrix(lex, ["stop taking your medication", "nothing here matches"])
    assert rows.shape == (2, len(lex["vocabulary"]))
    assert np.linalg.norm(rows[0].toarray()) == pytest.approx(1.0) and rows[1].nnz == 0
    # a rarer term weighs more than a common one in the same answer
    r = rows[0].toarray()[0]
    vocab = {t: i for i, t in enumerate(lex["vocabulary"])}
    assert r[vocab["taking your"]] > r[vocab["stop"]] > 0


def test_an_answers_row_does_not_depend_on_the_others_in_its_batch():
    lex = fit_lexicon(ANSWERS, {"ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True, "max_features": 100})
    batch = lexical_matrix(lex, ANSWERS[:6]).toarray()
    alone = np.vstack([lexical_matrix(lex, [a]).toarray() for a in ANSWERS[:6]])
    assert np.array_equal(batch, alone)


def test_too_few_answers_give_an_empty_lexicon_and_no_word_features():
    lex = fit_lexicon(["one", "two"])  # min_df 3: no term qualifies
    assert lex["vocabulary"] == [] and lexical_matrix(lex, ["one"]).shape == (1, 0)


def test_save_load_round_trip_and_errors_name_the_file(tmp_path):
    assert load_lexicon(tmp_path) is None  # a judge trained without words
    lex = fit_lexicon(ANSWERS, {"ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True, "max_features": 100})
    save_lexicon(lex, tmp_path)
    back = load_lexicon(tmp_path)
    assert back["vocabulary"] == lex["vocabulary"] and np.allclose(back["idf"], lex["idf"], atol=1e-6)
    assert np.allclose(lexical_matrix(back, ANSWERS).toarray(), lexical_matrix(lex, ANSWERS).toarray(), atol=1e-6)
    data = json.loads((tmp_path / LEXICON_FILE).read_text())
    (tmp_path / LEXICON_FILE).write_text(json.dumps({**data, "idf": data["idf"][:-1]}))
    with pytest.raises(ModelSpecError, match=r"lexicon.json: \d+ terms but \d+ IDF weights"):
        load_lexicon(tmp_path)
    (tmp_path / LEXICON_FILE).write_text("{not json")
    with pytest.raises(ModelSpecError, match="lexicon.json: not a valid lexicon"):
        load_lexicon(tmp_path)


def test_a_head_with_word_weights_adds_them_to_its_logit():
    lex = fit_lexicon(ANSWERS, {"ngram_range": [1, 1], "min_df": 2, "sublinear_tf": True, "max_features": 100})
    words = lex["vocabulary"]
    head = {"mean": np.zeros(2), "scale": np.ones(2), "coef": np.array([1.0, 0.0]), "intercept": np.array(0.0),
            "lex_coef": np.array([5.0 if w == "stop" else 0.0 for w in words])}
    x = np.zeros((2, 2))
    rows = lexical_matrix(lex, ["stop", "doctor"])
    p = apply_head(head, x, rows)
    assert p[0] == pytest.approx(1 / (1 + np.exp(-5.0))) and p[1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="word weights"):
        apply_head(head, x)
