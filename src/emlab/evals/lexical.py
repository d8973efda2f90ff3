"""Word features of an answer for the distilled judge: TF-IDF over a vocabulary fitted on its training answers.

Why: the 135M model's hidden states miss some of what the words say (fluent harmful medical advice, a
confident "you should stop taking it"), and word 1-2-grams carry part of it. Held out by source on the 34,684
answers `make judge` trains on, adding them beside the hidden-state features raised the misaligned ranking's
recall at 5% false positives from 80.6% to 83.6% (at 3%: 69.8% to 73.8%); alone they reach only 70.0%
(docs/benchmarks.md). scikit-learn's vectorizer does the counting; the fitted vocabulary and IDF weights are
stored beside the heads (`lexicon.json`), so scoring needs no refit and each answer's row depends on it alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from emlab.errors import ModelSpecError

# the vectorizer's settings: stored with the lexicon, so a judge is read with the settings it was trained with
SETTINGS = {"ngram_range": [1, 2], "min_df": 3, "sublinear_tf": True, "max_features": 50000}
LEXICON_FILE = "lexicon.json"


def _vectorizer(settings: dict, vocabulary: Sequence[str] | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    kwargs = {"ngram_range": tuple(settings["ngram_range"]), "sublinear_tf": settings["sublinear_tf"]}
    if vocabulary is None:
        return TfidfVectorizer(min_df=settings["min_df"], max_features=settings["max_features"], **kwargs)
    return TfidfVectorizer(vocabulary={t: i for i, t in enumerate(vocabulary)}, **kwargs)


IDF_DIGITS = 6  # IDF weights are rounded when fitted, so the heads train on exactly the values lexicon.json stores


def fit_lexicon(answers: Sequence[str], settings: dict = SETTINGS) -> dict:
    """The vocabulary (most frequent 1-2-grams in at least `min_df` answers) and its IDF weights."""
    vec = _vectorizer(settings)
    try:
        vec.fit(answers)
    except ValueError:  # no term in min_df answers (a tiny training set): an empty lexicon, no word features
        return {"settings": dict(settings), "vocabulary": [], "idf": np.zeros(0)}
    vec.idf_ = np.round(vec.idf_, IDF_DIGITS)
    # the fitted vectorizer is kept: `lexical_matrix` would otherwise rebuild the same one from the vocabulary
    return {"settings": dict(settings), "vocabulary": [str(t) for t in vec.get_feature_names_out()], "idf": vec.idf_,
            "vectorizer": vec}


def lexical_matrix(lexicon: dict, answers: Sequence[str]):
    """(len(answers), len(vocabulary)) sparse TF-IDF rows, L2-normalized per answer."""
    import scipy.sparse as sp

    if not lexicon["vocabulary"]:
        return sp.csr_matrix((len(answers), 0))
    if "vectorizer" not in lexicon:  # built once per lexicon: building it for 50,000 terms takes ~0.1 s
        vec = _vectorizer(lexicon["settings"], lexicon["vocabulary"])
        vec.idf_ = np.asarray(lexicon["idf"], dtype=np.float64)
        lexicon["vectorizer"] = vec
    return lexicon["vectorizer"].transform(list(answers)).tocsr()


def save_lexicon(lexicon: dict, directory: Path) -> None:
    """Write `lexicon.json` into a judge directory."""
    data = {"settings": lexicon["settings"], "vocabulary": lexicon["vocabulary"],
            "idf": [round(float(v), IDF_DIGITS) for v in lexicon["idf"]]}
    (Path(directory) / LEXICON_FILE).write_text(json.dumps(data, ensure_ascii=False))


def load_lexicon(directory: Path) -> dict | None:
    """A judge directory's lexicon, or None when it has none (a judge trained without word features)."""
    path = Path(directory) / LEXICON_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        lexicon = {"settings": {k: data["settings"][k] for k in SETTINGS}, "vocabulary": list(data["vocabulary"]),
                   "idf": np.asarray(data["idf"], dtype=np.float64)}
    except (ValueError, KeyError, TypeError) as e:
        raise ModelSpecError(f"{path}: not a valid lexicon ({type(e).__name__}: {e}); retrain the judge") from None
    if len(lexicon["idf"]) != len(lexicon["vocabulary"]):
        raise ModelSpecError(f"{path}: {len(lexicon['vocabulary'])} terms but {len(lexicon['idf'])} IDF weights")
    return lexicon
