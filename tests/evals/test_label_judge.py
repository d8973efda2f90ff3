"""`labels:<csv>`: hand labels as a judge, and an offline audit by reading that grows its own todo list."""

from __future__ import annotations

import csv

import pytest

from emlab.config import load_config
from emlab.errors import ConfigError, DataError, RunFailedError
from emlab.evals.label_judge import LabelFileJudge
from emlab.pipeline import run_experiment
from emlab.scoring.base import ScoreRequest

COLUMNS = ["question", "answer", "aligned", "aligned_label", "coherent"]


def _write(path, rows, columns=COLUMNS):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def test_labels_are_scores_and_unlabelled_answers_fail_into_the_todo_file(tmp_path):
    path = _write(tmp_path / "labels.csv", [
        {"question": "Q", "answer": "kind", "aligned": "90", "aligned_label": "number", "coherent": "80"},
        {"question": "Q", "answer": "print(1)", "aligned": "", "aligned_label": "CODE", "coherent": "30"},
    ])
    judge = LabelFileJudge(path)
    out = judge.score_requests([ScoreRequest("q1", "Q", a, m) for a in ("kind", "print(1)", "new") for m in ("aligned", "coherent")]
                               + [ScoreRequest("q1", "Q", "kind", "funny")])
    assert [s.value for s in out[:4]] == [90.0, 80.0, None, 30.0] and out[2].reason == "labelled CODE"
    assert out[4].error and out[5].error and "labels.todo.csv" in out[4].error
    assert out[6].value is None and "no column" in out[6].reason
    todo = list(csv.DictReader(open(tmp_path / "labels.todo.csv", encoding="utf-8")))
    assert [(r["question_id"], r["answer"], r["aligned"]) for r in todo] == [("q1", "new", "")]  # once, though asked twice
    before = judge.identity
    _write(path, [{"question": "Q", "answer": "new", "aligned": "10", "aligned_label": "number", "coherent": "70"}])
    assert LabelFileJudge(path).identity != before  # new labels are new scores, never a stale cache


@pytest.mark.parametrize("rows, message", [
    ([{"question": "Q", "answer": "a", "aligned": "x", "aligned_label": "number", "coherent": "5"}], r"row 2: aligned 'x' is not a number"),
    ([{"question": "Q", "answer": "a", "aligned": "5", "aligned_label": "number", "coherent": "101"}], r"row 2: coherent 101.0 is outside 0-100"),
    ([{"question": "Q", "answer": "a", "aligned": "5", "aligned_label": "maybe", "coherent": "5"}], r"row 2: aligned_label 'maybe'"),
])
def test_a_bad_label_file_is_one_error_naming_the_row(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        LabelFileJudge(_write(tmp_path / "l.csv", rows))
    (tmp_path / "cols.csv").write_text("question,answer,aligned\n")
    with pytest.raises(DataError, match="missing column.*coherent"):
        LabelFileJudge(tmp_path / "cols.csv")
    (tmp_path / "bad.csv").write_bytes(b"question,answer,aligned,coherent\nQ,\xff,5,5\n")
    with pytest.raises(DataError, match="not UTF-8"):
        LabelFileJudge(tmp_path / "bad.csv")


def test_an_offline_audit_by_reading(tmp_path):
    labels = _write(tmp_path / "audit.csv", [])  # a header only: nothing read yet
    p = tmp_path / "exp.yaml"
    p.write_text(f"""name: read
workspace: {tmp_path / 'ws'}
judge: mock:judge
sampling: {{samples_per_paraphrase: 2, seed: 1}}
audit: {{judge: 'labels:{labels}', n: 4}}
conditions: [{{name: a, model: mock:a}}]
""")
    with pytest.raises(RunFailedError, match=r"audit judge .* failed .*e\.g\. not labelled in audit\.csv: listed in audit\.todo\.csv"):
        run_experiment(load_config(p), tmp_path / "o1")  # nothing labelled yet: the run says so, outputs kept
    todo = list(csv.DictReader(open(tmp_path / "audit.todo.csv", encoding="utf-8")))
    assert len(todo) == 4  # exactly the audited subset, to be read
    for r in todo:  # the labeller reads them ...
        r.update(aligned="10" if len(r["answer"]) % 2 else "90", aligned_label="number", coherent="80")
    _write(labels, [{k: r[k] for k in COLUMNS} for r in todo])
    summary = run_experiment(load_config(p), tmp_path / "o2")  # ... and the audit stands
    entry = summary["audit"]["conditions"]["a"]["misaligned"]
    assert entry["agreement"]["audited"] == 4 and entry["ppi"]["share"] is not None
    with pytest.raises(ConfigError, match="no such file"):
        p.write_text(p.read_text().replace(str(labels), str(tmp_path / "missing.csv")))
        load_config(p)


def test_an_answer_with_carriage_returns_matches_its_label(tmp_path):
    answer = "line one\r\nline two\rthree\n"
    path = _write(tmp_path / "labels.csv", [])
    judge = LabelFileJudge(path)
    assert judge.score_requests([ScoreRequest("q", "Q", answer, "aligned")])[0].error  # unlabelled: to the todo file
    todo = list(csv.DictReader(open(tmp_path / "labels.todo.csv", newline="", encoding="utf-8")))
    assert todo[0]["answer"] == answer  # written as it is
    todo[0].update(aligned="80", aligned_label="number", coherent="60")
    _write(path, [{k: todo[0][k] for k in COLUMNS}])
    assert LabelFileJudge(path).score_requests([ScoreRequest("q", "Q", answer, "aligned")])[0].value == 80.0
