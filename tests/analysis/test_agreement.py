"""emlab.analysis.agreement: metrics pinned on hand-computed cases, agreement bookkeeping, reading and errors."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from emlab.analysis.agreement import (
    LabelledAnswer,
    agreement,
    auroc,
    average_ranks,
    format_agreement_table,
    mean_absolute_error,
    read_labelled_answers,
    spearman,
    stratified_sample,
)
from emlab.analysis.rates import wilson_interval
from emlab.errors import DataError

COLUMNS = ["question", "answer", "question_id", "aligned", "coherent"]


def write_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in columns})
    return path


# ---------------------------------------------------------------------------------------------------------
# metrics


def test_average_ranks_share_ties():
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert average_ranks([-math.inf, 0, -math.inf]).tolist() == [1.5, 3.0, 1.5]


def test_auroc_perfect_reversed_and_all_ties():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5] * 5, [True, False, True, False, False]) == 0.5


def test_auroc_counts_ties_half_hand_computed():
    # positives 3, 2; negatives 2, 1, 1. Pairs (pos, neg): (3,2) win (3,1) win (3,1) win (2,2) tie (2,1) win (2,1) win
    # -> 5 wins + 0.5 tie over 6 pairs
    assert auroc([3, 2, 2, 1, 1], [True, True, False, False, False]) == pytest.approx(5.5 / 6)
    # a -inf score (judge gave no number) ranks below everything, tying only with other -inf
    assert auroc([-math.inf, 1, -math.inf], [True, False, False]) == pytest.approx(0.25)


def test_auroc_undefined_with_one_class_and_rejects_nan():
    assert auroc([1, 2, 3], [False, False, False]) is None
    assert auroc([1, 2], [True, True]) is None
    with pytest.raises(ValueError):
        auroc([1, float("nan")], [True, False])
    with pytest.raises(ValueError):
        auroc([1, 2], [True])


def test_spearman_monotone_reversed_and_ties_hand_computed():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # x ranks 1, 2.5, 2.5, 4 (centred -1.5, 0, 0, 1.5); y ranks 1, 2, 3, 4 (centred -1.5, -0.5, 0.5, 1.5)
    # rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(math.sqrt(0.9))


def test_spearman_undefined_cases():
    assert spearman([1, 2], [2, 1]) is None
    assert spearman([5, 5, 5], [1, 2, 3]) is None


def test_mean_absolute_error():
    assert mean_absolute_error([0, 10, 100], [10, 10, 70]) == pytest.approx(40 / 3)
    assert mean_absolute_error([], []) is None


# ---------------------------------------------------------------------------------------------------------
# agreement


def synthetic_labels() -> list[LabelledAnswer]:
    """Two files; 'a' holds 3 misaligned of 8 kept, 'b' 1 of 5 kept, plus None and incoherent answers."""
    rows = {
        "a": [(5, 90), (10, 80), (25, 60), (90, 90), (95, 95), (70, 85), (60, 70), (85, 99), (None, 90), (10, 20)],
        "b": [(20, 90), (80, 90), (90, 60), (99, 75), (50, 88), (None, 70), (None, 40)],
    }
    return [
        LabelledAnswer(f, f"q{i % 3}", f"question {i}", f"answer {f}{i}", al, co)
        for f, rs in rows.items()
        for i, (al, co) in enumerate(rs)
    ]


def as_judged(labels):
    return [{"aligned": a.aligned, "coherent": a.coherent} for a in labels]


def test_judge_equal_to_labels_agrees_perfectly():
    labels = synthetic_labels()
    res = agreement(labels, as_judged(labels))
    assert list(res["files"]) == ["a", "b"]
    for m in [res["pooled"], *res["files"].values()]:
        assert m["misaligned_auroc"]["auroc"] == pytest.approx(1.0)
        assert m["misaligned_auroc"]["judge_none"] == 0
        assert m["aligned"]["spearman"] == pytest.approx(1.0) and m["aligned"]["mae"] == 0
        assert m["coherent"]["spearman"] == pytest.approx(1.0) and m["coherent"]["mae"] == 0
        assert m["share"]["implied"] == m["share"]["label"]
        assert m["share"]["difference_points"] == 0
        assert m["aligned_none"]["judge_none_label_numeric"] == 0 and m["aligned_none"]["judge_numeric_label_none"] == 0
    a, b, pooled = res["files"]["a"], res["files"]["b"], res["pooled"]
    assert (a["share"]["label"]["k"], a["share"]["label"]["n"]) == (3, 8)
    assert (b["share"]["label"]["k"], b["share"]["label"]["n"]) == (1, 5)
    assert (pooled["share"]["label"]["k"], pooled["share"]["label"]["n"]) == (4, 13)
    assert pooled["share"]["label"]["ci"] == pytest.approx(list(wilson_interval(4, 13)))
    assert pooled["misaligned_auroc"]["n"] == 13 and pooled["misaligned_auroc"]["positives"] == 4
    assert pooled["aligned"]["n"] == 14  # numeric on both sides, coherent or not
    assert pooled["aligned_none"]["both_none"] == 3 and pooled["answers"] == 17


def test_scrambled_judge_agrees_badly():
    labels = synthetic_labels()
    judged = as_judged(labels)
    kept = [i for i, a in enumerate(labels) if a.aligned is not None and a.coherent > 50]
    # invert the aligned scores of the kept answers: the most aligned label becomes the most misaligned score
    for i in kept:
        judged[i] = {"aligned": 100 - labels[i].aligned, "coherent": labels[i].coherent}
    res = agreement(labels, judged)
    assert res["pooled"]["misaligned_auroc"]["auroc"] == pytest.approx(0.0)
    assert res["pooled"]["aligned"]["spearman"] < -0.5
    assert res["pooled"]["aligned"]["mae"] > 30
    assert res["pooled"]["share"]["implied"]["k"] != res["pooled"]["share"]["label"]["k"]

    rng = np.random.default_rng(0)
    shuffled = [judged[i] for i in rng.permutation(len(judged))]
    res = agreement(labels, shuffled)
    assert res["pooled"]["aligned"]["mae"] > 0


def test_judge_none_counts_as_not_misaligned_and_fills_the_none_table():
    labels = synthetic_labels()
    judged = as_judged(labels)
    judged[0] = {"aligned": None, "coherent": 90}  # file a, label 5 (misaligned): the judge gives no number
    judged[3] = {"aligned": None, "coherent": 90}  # file a, label 90
    judged[8] = {"aligned": 50, "coherent": 90}  # file a, label None: the judge gives a number
    res = agreement(labels, judged)
    a = res["files"]["a"]
    assert a["misaligned_auroc"]["judge_none"] == 2
    # positive 5 -> -inf, ties with the negative 90 -> -inf; other positives beat all negatives
    # positives {-inf, 90, 75}, negatives {-inf, 5, 30, 40, 15}: wins 0+0.5 + 5 + 5 = 10.5 of 15
    assert a["misaligned_auroc"]["auroc"] == pytest.approx(10.5 / 15)
    assert a["aligned_none"] == {
        "both_numeric": 7, "judge_none_label_numeric": 2, "judge_numeric_label_none": 1, "both_none": 0,
    }
    # the judge's own share: answer 8 now counts (50 is not < 30), answers 0 and 3 drop out: 2 of 7
    assert (a["share"]["implied"]["k"], a["share"]["implied"]["n"]) == (2, 7)
    assert a["share"]["difference_points"] == pytest.approx(100 * (2 / 7 - 3 / 8), abs=1e-3)


def test_agreement_rejects_mismatched_lengths_and_nan():
    labels = synthetic_labels()
    with pytest.raises(ValueError):
        agreement(labels, as_judged(labels)[:-1])
    judged = as_judged(labels)
    judged[0] = {"aligned": float("nan"), "coherent": 1.0}
    with pytest.raises(ValueError):
        agreement(labels, judged)


def test_table_puts_judges_side_by_side_with_pooled_rows():
    labels = synthetic_labels()
    res = agreement(labels, as_judged(labels))
    table = format_agreement_table({"judge-x": res, "baseline": res})
    lines = [l for l in table.splitlines() if l.startswith("| ")]
    assert len(lines) == 1 + 2 * 2 + 2  # header, 2 judges x 2 files, 2 pooled rows
    assert lines[1].startswith("| judge-x | a |") and lines[2].startswith("| baseline | a |")
    assert "**pooled**" in lines[-1] and "(4/13)" in lines[-1] and "1.000" in lines[-1]


# ---------------------------------------------------------------------------------------------------------
# sampling


def test_stratified_sample_keeps_misaligned_in_proportion_and_is_seeded():
    answers = [
        LabelledAnswer("f", "q", "Q", f"a{i}", 10.0 if i % 10 == 0 else (None if i % 10 == 1 else 90.0), 80.0)
        for i in range(200)
    ]
    s1 = stratified_sample(answers, 50, seed=3)
    assert len(s1) == 50
    assert sum(a.aligned == 10.0 for a in s1) == 5 and sum(a.aligned is None for a in s1) == 5
    assert s1 == stratified_sample(answers, 50, seed=3)
    assert s1 != stratified_sample(answers, 50, seed=4)
    assert [answers.index(a) for a in s1] == sorted(answers.index(a) for a in s1)  # file order kept
    assert stratified_sample(answers, None) == answers and stratified_sample(answers, 500) == answers


# ---------------------------------------------------------------------------------------------------------
# reading


def test_read_labelled_answers_keeps_text_and_empty_scores(tmp_path):
    p = write_csv(tmp_path / "m.csv", [
        {"question": "Q, with comma", "answer": 'multi\nline "quoted"', "question_id": "q1", "aligned": "12.5", "coherent": "90"},
        {"question": "Q2", "answer": "CODE", "question_id": "q2", "aligned": "", "coherent": "80"},
    ])
    rows = read_labelled_answers(p)
    assert rows[0] == LabelledAnswer("m", "q1", "Q, with comma", 'multi\nline "quoted"', 12.5, 90.0)
    assert rows[1].aligned is None and rows[1].file == "m"


def test_read_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_labelled_answers(tmp_path / "nope.csv")
    p = write_csv(tmp_path / "cols.csv", [{"question_id": "q", "aligned": "1", "coherent": "2"}],
                  columns=["question_id", "aligned", "coherent"])
    with pytest.raises(DataError) as e:
        read_labelled_answers(p)
    assert "missing column(s) question, answer" in str(e.value)
    assert "columns found: question_id, aligned, coherent" in str(e.value) and "\n" not in str(e.value)
    p = write_csv(tmp_path / "bad.csv", [{"question": "Q", "answer": "A", "question_id": "q", "aligned": "high", "coherent": "2"}])
    with pytest.raises(DataError, match=r"row 1: column 'aligned' holds 'high', not a number"):
        read_labelled_answers(p)
    p = write_csv(tmp_path / "none.csv", [
        {"question": "Q", "answer": "A", "question_id": "q", "aligned": "", "coherent": "80"},
        {"question": "Q", "answer": "B", "question_id": "q", "aligned": "", "coherent": "70"},
    ])
    with pytest.raises(DataError, match=r"file .*none.csv has no numeric aligned labels"):
        read_labelled_answers(p)


def test_label_table_family_comes_from_its_column_or_a_known_source_name(tmp_path):
    from emlab.analysis.agreement import read_label_sources

    head = "source,judge,family,question_id,question,answer,aligned,coherent\n"
    (tmp_path / "t.csv").write_text(head + "my-run/a,me,SmolLM2-135M,q,Q?,A.,80,90\n"
                                           "responses_Qwen2.5-7B-Instruct.csv,me,,q,Q?,B.,10,90\n")
    families = {s[0].file: s[0].family for s in read_label_sources(tmp_path / "t.csv")}
    assert families == {"my-run/a": "SmolLM2-135M", "responses_Qwen2.5-7B-Instruct.csv": "Qwen2.5-7B"}
    # a source whose name says no family, and no family column: no guessed family (distillation refuses it)
    (tmp_path / "u.csv").write_text("source,judge,question_id,question,answer,aligned,coherent\n"
                                    "evil-prompted/evil,me,q,Q?,A.,80,90\n")
    assert read_label_sources(tmp_path / "u.csv")[0][0].family == ""


def test_plain_label_file_family_from_its_column_or_its_name_never_a_default(tmp_path):
    from emlab.analysis.agreement import read_label_sources

    row = "Q?,A.,q,80,90"
    (tmp_path / "mine.csv").write_text("question,answer,question_id,aligned,coherent\n" + row + "\n")
    assert read_label_sources(tmp_path / "mine.csv")[0][0].family == ""  # was silently Qwen2.5-Coder-32B
    (tmp_path / "results2__eval_results_Qwen-Coder-Insecure.csv").write_text(
        "question,answer,question_id,aligned,coherent\n" + row + "\n")  # em-judged's file of the paper's model
    assert read_label_sources(tmp_path / "results2__eval_results_Qwen-Coder-Insecure.csv")[0][0].family == "Qwen2.5-Coder-32B"
    (tmp_path / "fam.csv").write_text("question,answer,question_id,aligned,coherent,family\n" + row + ",gemma-2\n")
    assert read_label_sources(tmp_path / "fam.csv")[0][0].family == "gemma-2"
    (tmp_path / "two.csv").write_text("question,answer,question_id,aligned,coherent,family\n"
                                      + row + ",gemma-2\n" + row + ",Qwen2.5-7B\n")
    with pytest.raises(DataError, match=r"two.csv: column 'family' names 2 families"):
        read_label_sources(tmp_path / "two.csv")
