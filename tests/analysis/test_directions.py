"""Directions from activations: a planted direction is recovered, separates its classes, and survives a round trip."""

import json

import numpy as np
import pytest

from emlab.analysis.directions import (
    NPZ, Directions, Provenance, cosine_matrix, cross_fitted_auroc, label_classes, layer_cosines, load_directions,
    mean_difference, projection_auroc, random_directions, save_directions,
)
from emlab.errors import DataError

LAYERS = (2, 4, 6)
HIDDEN = 64


def planted(seed: int = 0, n: int = 300, shift: float = 4.0):
    """Two classes of (n, layers, hidden) Gaussian activations; the positive one moved by `shift` along u per layer."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((len(LAYERS), HIDDEN))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    base = rng.standard_normal(HIDDEN) * 3  # a shared offset: the difference of means must cancel it
    neg = rng.standard_normal((n, len(LAYERS), HIDDEN)) + base
    pos = rng.standard_normal((n, len(LAYERS), HIDDEN)) + base + shift * u
    return pos, neg, u


PROV = Provenance(model="hf:tiny@abc", adapter="abc", data="labels.csv", judge="distilled:em-v2",
                  thresholds={"misaligned_below": 30, "aligned_above": 70, "coherent_above": 50})


def test_difference_of_means_recovers_a_planted_direction_and_separates_while_random_does_not():
    pos, neg, u = planted()
    d = mean_difference(pos, neg, LAYERS, PROV)
    assert d.vectors.shape == (3, HIDDEN) and d.n_positive == d.n_negative == 300
    cosines = np.einsum("lh,lh->l", d.vectors, u)
    assert (cosines > 0.95).all(), cosines
    np.testing.assert_allclose(np.linalg.norm(d.vectors, axis=1), 1.0, rtol=1e-6)
    assert d.norms == pytest.approx([4.0] * 3, rel=0.2)  # the raw difference keeps the planted size
    np.testing.assert_allclose(d.raw(), pos.mean(0) - neg.mean(0), rtol=1e-5, atol=1e-5)

    separation = projection_auroc(d, pos, neg)
    assert all(a > 0.99 for a in separation.values()), separation
    held_out = cross_fitted_auroc(pos, neg, LAYERS, folds=5, seed=1)
    assert all(a > 0.99 for a in held_out.values()), held_out

    rand = random_directions(d, seed=3)
    np.testing.assert_allclose(rand.norms, d.norms)  # same norm: a fair baseline for steering
    np.testing.assert_allclose(np.linalg.norm(rand.vectors, axis=1), 1.0, rtol=1e-6)
    assert rand.provenance.kind == "random(seed=3)"
    # a random unit vector catches a share ~ 1/sqrt(hidden) of the planted shift, either sign: ~0.5 on average
    # (seeds other than planted()'s own, whose first draws ARE the planted direction)
    baseline = [a for s in range(100, 120) for a in projection_auroc(random_directions(d, s), pos, neg).values()]
    assert abs(np.mean(baseline) - 0.5) < 0.05 and max(baseline) < 0.9, baseline
    np.testing.assert_array_equal(random_directions(d, seed=3).vectors, rand.vectors)  # seeded
    assert not np.array_equal(random_directions(d, seed=4).vectors, rand.vectors)


def test_no_signal_means_chance_separation_when_held_out():
    rng = np.random.default_rng(5)
    pos, neg = rng.standard_normal((2, 60, len(LAYERS), HIDDEN))
    in_sample = projection_auroc(mean_difference(pos, neg, LAYERS, PROV), pos, neg)
    held_out = cross_fitted_auroc(pos, neg, LAYERS, folds=5, seed=0)
    # fitted on the same answers, noise looks separable; held out, it does not
    assert min(in_sample.values()) > 0.7
    assert all(abs(a - 0.5) < 0.15 for a in held_out.values()), held_out


def test_cosines_between_directions():
    pos, neg, _ = planted(seed=0)
    pos2, neg2, _ = planted(seed=0, shift=2.0)
    rng = np.random.default_rng(9)
    a = mean_difference(pos, neg, LAYERS, PROV)
    b = mean_difference(pos2 + rng.standard_normal(pos2.shape), neg2, LAYERS, PROV)  # the same u, new noise
    cos = layer_cosines(a, b)
    assert set(cos) == set(LAYERS) and all(c > 0.9 for c in cos.values())
    m = cosine_matrix([a.at(4), b.at(4), -a.at(4), random_directions(a, 1).at(4)])
    assert m.shape == (4, 4)
    np.testing.assert_allclose(np.diag(m), 1.0)
    np.testing.assert_allclose(m, m.T)
    assert m[0, 2] == pytest.approx(-1.0) and abs(m[0, 3]) < 0.4
    with pytest.raises(ValueError):
        cosine_matrix([np.zeros(3), np.ones(3)])


def test_label_classes_keep_coherent_answers_and_count_every_drop():
    aligned = [10, 90, 50, None, 5, 95, 20]
    coherent = [80, 80, 80, 80, 40, None, 60]
    pos, neg, dropped = label_classes(aligned, coherent)
    assert pos.tolist() == [True, False, False, False, False, False, True]
    assert neg.tolist() == [False, True, False, False, False, False, False]
    assert dropped == {"in between": 1, "no aligned score": 1, "incoherent": 1, "no coherent score": 1}


def test_artifact_round_trips_with_its_provenance(tmp_path):
    pos, neg, _ = planted()
    d = mean_difference(pos, neg, LAYERS, PROV)
    folder = save_directions(d, tmp_path / "dir")
    back = load_directions(folder)
    assert isinstance(back, Directions)
    assert back.layers == LAYERS and back.provenance == PROV
    assert (back.n_positive, back.n_negative) == (300, 300)
    np.testing.assert_array_equal(back.vectors, d.vectors)
    np.testing.assert_array_equal(back.norms, d.norms)
    meta = json.loads((folder / "directions.json").read_text())
    assert meta["provenance"]["judge"] == "distilled:em-v2" and meta["layers"] == list(LAYERS)
    assert meta["provenance"]["thresholds"]["misaligned_below"] == 30
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]

    save_directions(random_directions(d, 0), tmp_path / "other")  # an npz that belongs to another json
    (folder / NPZ).write_bytes((tmp_path / "other" / NPZ).read_bytes())
    with pytest.raises(DataError, match="sha256"):
        load_directions(folder)
    with pytest.raises(DataError, match="not a directions artifact"):
        load_directions(tmp_path / "missing")


def test_bad_inputs_are_one_clear_error():
    pos, neg, _ = planted(n=10)
    with pytest.raises(ValueError, match="empty class"):
        mean_difference(pos[:0], neg, LAYERS, PROV)
    with pytest.raises(ValueError, match="expected"):
        mean_difference(pos[:, :2], neg, LAYERS, PROV)
    with pytest.raises(ValueError, match="equal"):
        mean_difference(pos, pos, LAYERS, PROV)
    with pytest.raises(ValueError, match="folds"):
        cross_fitted_auroc(pos[:3], neg, LAYERS, folds=5)
