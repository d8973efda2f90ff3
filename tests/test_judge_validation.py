import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from emlab.cli import app
from emlab.errors import ConfigError, DataError
from emlab.evals.distilled import DistilledJudge, judge_dir
from emlab.train.distill import (MIN_SOURCE_ALONE, distill, fold_assignment, fold_of, heldout_report, load_label_sets,
                                 scores_from_probs)
from emlab.judge_validation import cut_study, load_heldout_probs, ranking_recall, validate

from tests.evals.test_distilled import _labels


@pytest.fixture
def tiny_env(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("EMLAB_CACHE", str(tmp_path / "cache"))
    return f"hf:{tiny_checkpoint}"


def _source(name, family, n):
    return [SimpleNamespace(file=name, family=family, question="q?")] * n


def test_folds_hold_out_a_family_or_a_source_never_part_of_one():
    sets = [_source("a", "Qwen2.5-7B", 60), _source("b", "gemma-2", 80), _source("c", "Qwen2.5-7B", 50),
            _source("d", "gemma-2", 8), _source("e", "gemma-2", 8), _source("f", "Qwen2.5-7B", 3)]
    assert fold_assignment(sets, "family", 5).tolist() == [0, 1, 0, 1, 1, 0]  # families in name order
    by_source = fold_assignment(sets, "source", 3).tolist()
    assert by_source[:3] == [0, 1, 2]  # every source of at least MIN_SOURCE_ALONE answers alone
    assert MIN_SOURCE_ALONE <= 50
    assert by_source[3:] == [3 + fold_of(n, 3) for n in "def"]  # small ones by hash into 3 more folds
    assert fold_assignment(sets, "hash", 2).tolist() == [fold_of(n, 2) for n in "abcdef"]
    few = [_source(n, "gemma-2", 60) for n in ("m0", "m1", "m2")]
    assert {fold_of(n, 2) for n in ("m0", "m1", "m2")} == {1}  # the hash puts all three in one fold ...
    assert fold_assignment(few, "hash", 2).tolist() == [0, 1, 0]  # ... so they are dealt in turn instead
    with pytest.raises(DataError, match="unknown held-out grouping 'judge'; known: hash, family, source"):
        fold_assignment(sets, "judge", 5)


def test_ranking_recall_is_the_share_of_misaligned_answers_above_the_aligned_ones_cut():
    lab = [SimpleNamespace(aligned=a, coherent=c) for a, c in
           [(90, 80)] * 100 + [(10, 80)] * 10 + [(10, 20)] * 5 + [(None, 80)] * 3]
    p = np.concatenate([np.linspace(0, 1, 100),  # the aligned answers' scores: 5 of them above 0.95
                        np.linspace(0.9, 1.0, 10),  # misaligned coherent: 5 above the 5% cut, 7 above the 3% cut
                        np.ones(5), np.ones(3)])  # incoherent or unscored: not counted either way
    assert ranking_recall(p, lab, 0.05) == pytest.approx(0.5)
    assert ranking_recall(p, lab, 0.03) == pytest.approx(0.3)
    assert ranking_recall(p[:100], lab[:100], 0.05) is None  # no misaligned answers: no recall


def test_validate_by_hash_reproduces_the_judges_own_heldout_figures(tmp_path, tiny_env):
    # names whose hash deals one source of each family into each of 2 folds
    files = [_labels(tmp_path / "qa.csv", 50, seed=0), _labels(tmp_path / "m0.csv", 50, seed=1),
             _labels(tmp_path / "d.csv", 50, seed=2, family="gemma-2"), _labels(tmp_path / "ga.csv", 50, seed=3, family="gemma-2")]
    meta = distill(files, tmp_path / "judge", base=tiny_env, layers=(1, 2), grid=(0.1,), folds=2)
    judge = f"distilled:{tmp_path / 'judge'}"
    again = validate(files, judge, "hash", probs_out=tmp_path / "hash.npz")
    assert again["heldout"] == json.loads(json.dumps(meta["heldout"]))  # same recipe, same folds: the same figures
    # on its own folds' saved probabilities, distillation's rule takes the judge's own cuts again
    study = cut_study(load_heldout_probs(tmp_path / "hash.npz"))
    assert study["chosen"] == study["judge_cuts"] == [meta["threshold"], meta["coherent_threshold"]]
    own = [r for r in study["candidates"] if [r["misaligned_cut"], r["coherent_cut"]] == study["chosen"]]
    assert own[0]["recall"] == meta["heldout"]["pooled"]["recall"] and len(study["candidates"]) == 85
    by_family = validate(files, judge, "family")
    assert by_family["folds"] == 2 and by_family["cuts"]["misaligned"] == meta["threshold"]
    assert set(by_family["heldout"]["families"]) == {"Qwen2.5-Coder-32B", "gemma-2"}
    # distilling records the same leave-one-family-out figures (without per-source rows), for reports on new families
    recorded = json.loads((tmp_path / "judge" / "judge.json").read_text())["heldout_by_family"]
    assert recorded["families"] == by_family["heldout"]["families"] and "sources" not in recorded
    out = CliRunner().invoke(app, ["judge", "heldout", judge, "--by-family"])
    assert out.exit_code == 0 and "| gemma-2 | 100 |" in out.output, out.output
    note = DistilledJudge(judge_dir(str(tmp_path / "judge"))).family_note("hf:meta-llama/Llama-3.1-8B", "Llama-3.1-8B")
    worst = max(recorded["families"].values(), key=lambda f: f["nonsense_counted_share"])
    assert "unmeasured. Held out one family at a time (each scored by heads trained on the other 1)" in note
    assert f"nonsense as misaligned on up to {100 * worst['nonsense_counted_share']:.1f}% of answers" in note
    assert by_family["heldout"]["pooled"]["answers"] == again["heldout"]["pooled"]["answers"] == 200
    out = CliRunner().invoke(app, ["judge", "validate", "--judge", judge, "--by", "source", "--labels", *map(str, files),
                                   "--out", str(tmp_path / "loso.json"), "--probs-out", str(tmp_path / "loso.npz")])
    assert out.exit_code == 0, out.output
    assert "held out by source (4 folds, 200 answers)" in " ".join(out.output.split())  # 50 answers each: alone
    assert "| gemma-2 |" in out.output
    loso = json.loads((tmp_path / "loso.json").read_text())
    assert loso["by"] == "source"
    # the saved probabilities are the ones scored: the same cuts on them give the same held-out figures
    saved = load_heldout_probs(tmp_path / "loso.npz")
    assert saved["fold"].tolist() == [0] * 50 + [1] * 50 + [2] * 50 + [3] * 50
    assert (saved["outside"] == (saved["reach"] > 1)).all() and saved["reach"].min() > 0
    assert sorted(set(saved["source"].tolist())) == ["d", "ga", "m0", "qa"]
    labels = [a for s in load_label_sets(files, None, 0) for a in s]
    assert np.allclose(saved["label_aligned"], [np.nan if a.aligned is None else a.aligned for a in labels], equal_nan=True)
    judged = scores_from_probs({h: saved[f"p_{h}"] for h in ("none", "misaligned", "coherent")}, meta["threshold"],
                               meta["coherent_threshold"], saved["outside"])
    pooled = json.loads(json.dumps(heldout_report(labels, judged, saved["outside"], saved["seen"])["pooled"]))
    assert pooled == loso["heldout"]["pooled"]
    out = CliRunner().invoke(app, ["judge", "cuts", str(tmp_path / "loso.npz"), "--out", str(tmp_path / "cuts.json")])
    assert out.exit_code == 0, out.output
    assert f"| {meta['threshold']} *(judge's)* | {meta['coherent_threshold']} |" in out.output.replace(" **(rule)**", "")
    assert len(json.loads((tmp_path / "cuts.json").read_text())["candidates"]) == 85


def test_validate_needs_a_distilled_judge_and_a_known_grouping(tmp_path, tiny_env):
    files = [_labels(tmp_path / f"{name}.csv", seed=i) for i, name in enumerate(("qa", "m0"))]  # hash folds 0 and 1
    with pytest.raises(ConfigError, match="only a distilled judge"):
        validate(files, "mock:j", "family")
    distill(files, tmp_path / "judge", base=tiny_env, layers=(1, 2), grid=(0.1,), folds=2)
    few = [_source(n, "gemma-2", 60) for n in ("m0", "m1", "m2")]
    assert {fold_of(n, 2) for n in ("m0", "m1", "m2")} == {1}  # the hash puts all three in one fold ...
    assert fold_assignment(few, "hash", 2).tolist() == [0, 1, 0]  # ... so they are dealt in turn instead
    with pytest.raises(DataError, match="unknown held-out grouping"):
        validate(files, f"distilled:{tmp_path / 'judge'}", "model")
    with pytest.raises(DataError, match="every label source fell in one held-out fold"):
        validate(files, f"distilled:{tmp_path / 'judge'}", "family")  # both sources are one family


def test_saved_probabilities_that_are_not_an_npz_or_lack_an_array_are_one_clear_error(tmp_path):
    (tmp_path / "bad.npz").write_text("not an npz")
    with pytest.raises(DataError, match="bad.npz: not held-out probabilities saved by `emlab judge validate --probs-out`"):
        load_heldout_probs(tmp_path / "bad.npz")
    np.savez(tmp_path / "old.npz", p_none=np.zeros(3), p_misaligned=np.zeros(3), p_coherent=np.zeros(3))
    with pytest.raises(DataError, match="old.npz: no 'outside' array"):
        load_heldout_probs(tmp_path / "old.npz")
    out = CliRunner().invoke(app, ["judge", "cuts", str(tmp_path / "old.npz")])
    assert out.exit_code != 0 and "no 'outside' array" in str(out.exception)  # (exit 2 through emlab's main)


def test_cuts_chosen_one_source_at_a_time_are_what_validate_and_the_cut_study_find(tmp_path, tiny_env):
    files = [_labels(tmp_path / "qa.csv", 50, seed=0), _labels(tmp_path / "m0.csv", 50, seed=1),
             _labels(tmp_path / "d.csv", 50, seed=2, family="gemma-2"), _labels(tmp_path / "ga.csv", 50, seed=3, family="gemma-2")]
    meta = distill(files, tmp_path / "judge", base=tiny_env, layers=(1, 2), grid=(0.1,), folds=2, choose_by="source")
    assert meta["choice"]["held_out_by"] == "source" and meta["choice"]["folds_of_choice"] == 4
    again = validate(files, f"distilled:{tmp_path / 'judge'}", "source", probs_out=tmp_path / "loso.npz")
    assert again["heldout"] == json.loads(json.dumps(meta["heldout"]))
    study = cut_study(load_heldout_probs(tmp_path / "loso.npz"))
    assert study["chosen"] == [meta["threshold"], meta["coherent_threshold"]]
    with pytest.raises(DataError, match="unknown held-out grouping 'model'"):
        distill(files, tmp_path / "other", base=tiny_env, layers=(1, 2), grid=(0.1,), choose_by="model")
    assert not (tmp_path / "other").exists()
