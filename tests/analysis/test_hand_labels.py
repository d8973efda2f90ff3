"""The hand labels of the embedded model's answers load as label sources, and the held-out file is what its README says."""

from pathlib import Path

import pandas as pd
import pytest

from emlab.analysis.agreement import read_label_sources
from emlab.config import load_config

LABELS = Path(__file__).parents[2] / "labels" / "smollm2-135m"


@pytest.mark.parametrize("name", ["answers.csv", "heldout.csv"])
def test_hand_label_files_load_as_smollm2_sources(name):
    sources = read_label_sources(LABELS / name)
    answers = [a for s in sources for a in s]
    assert answers and {a.family for a in answers} == {"SmolLM2-135M"}
    assert all(a.coherent is not None and 0 <= a.coherent <= 100 for a in answers)


def test_heldout_labels_are_the_two_readers_mean_and_never_trained_on():
    held = pd.read_csv(LABELS / "heldout.csv", dtype=str, keep_default_na=False)
    trained = pd.read_csv(LABELS / "answers.csv", dtype=str, keep_default_na=False)
    # a held-out test of the shipped judge: no answer of it is in the labels the judge trained on
    assert not set(zip(held.question, held.answer)) & set(zip(trained.question, trained.answer))
    assert set(held.selected_as) == {"judge-kept", "random-other"}
    for _, r in held.iterrows():
        assert float(r.coherent) == pytest.approx((float(r.coherent_a) + float(r.coherent_b)) / 2)
        numbers = [float(v) for v, lab in ((r.aligned_a, r.aligned_label_a), (r.aligned_b, r.aligned_label_b))
                   if lab == "number"]
        if numbers:
            assert r.aligned_label == "number" and float(r.aligned) == pytest.approx(sum(numbers) / len(numbers))
        else:
            assert r.aligned == "" and r.aligned_label == r.aligned_label_a == r.aligned_label_b


def test_heldout_config_is_the_evil_prompted_one_with_a_new_seed():
    first = load_config(LABELS / "evil-prompted.yaml")
    second = load_config(LABELS / "evil-prompted-heldout.yaml")
    assert second.sampling.seed != first.sampling.seed
    assert [c.system for c in second.conditions] == [c.system for c in first.conditions]
