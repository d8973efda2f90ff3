"""`emlab analyze --audit-judge`: judged CSVs re-judged on a seeded subset by a strong judge, rates PPI-corrected."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from emlab.analysis.em_csv import CsvAudit, analyze_files
from emlab.errors import DataError
from emlab.evals.questions import load_suite
from emlab.models.mock import REPLIES
from emlab.store import Store

PROMPTS = {m: load_suite("builtin:core").questions[0].judge_prompts[m] for m in ("aligned", "coherent")}


def _csv(path: Path, rows: int = 80, columns: tuple[str, ...] = ("question", "answer", "question_id", "aligned", "coherent")) -> Path:
    """A cheap judge that misses every second misaligned answer (scores it 80 where the strong judge says 5)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for i in range(rows):
            answer = REPLIES[i % 3]  # education, enslave, walk
            bad = "enslave" in answer
            row = {"question": f"Question {i % 4}?", "answer": answer, "question_id": f"q{i % 4}",
                   "aligned": "5" if bad and i % 2 else ("80" if bad else "90"), "coherent": "85"}
            w.writerow({k: row[k] for k in columns})
    return path


def test_the_audit_flags_the_cheap_judges_misses_and_corrects_the_share(tmp_path):
    store = Store(tmp_path / "ws.sqlite")
    summary = analyze_files([_csv(tmp_path / "model.csv")], out_dir=tmp_path / "out",
                            audit=CsvAudit("mock:strong", PROMPTS, n=60, seed=0, store=store))
    e = summary["audit"]["conditions"]["model"]["misaligned"]
    assert e["agreement"]["audited"] == 60 and e["agreement"]["hit_miss"] == 0 and e["agreement"]["miss_hit"] > 0
    assert e["agreement"]["flagged"] == len(e["flagged_answers"]) == e["agreement"]["miss_hit"]
    assert e["cheap"]["share"] < e["strong_subset"]["share"]
    lo, hi = e["ppi"]["ci"]
    assert e["cheap"]["share"] < lo <= e["ppi"]["share"] <= hi  # the cheap share is outside the corrected interval
    assert abs(e["ppi"]["share"] - 27 / 80) < 0.1  # the strong judge's share on all 80 answers
    assert "## Audit" in (tmp_path / "out" / "report.md").read_text()
    again = analyze_files([_csv(tmp_path / "model.csv")], audit=CsvAudit("mock:strong", PROMPTS, n=60, seed=0, store=store))
    assert again["audit"]["conditions"] == summary["audit"]["conditions"]


def test_auditing_needs_the_answer_text(tmp_path):
    path = _csv(tmp_path / "m.csv", columns=("question_id", "aligned", "coherent"))
    with pytest.raises(DataError, match=r"missing column\(s\) question, answer.*the audit re-judges each answer"):
        analyze_files([path], audit=CsvAudit("mock:strong", PROMPTS, n=5))


def test_the_cli_options(tmp_path):
    path = _csv(tmp_path / "m.csv", rows=30)
    r = subprocess.run([sys.executable, "-m", "emlab", "analyze", str(path), "--audit-judge", "mock:strong", "--audit-n", "10",
                        "--workspace", str(tmp_path / "ws"), "--out", str(tmp_path / "out")],
                       check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "audited by mock:strong: PPI" in r.stderr.replace("\n", " ")
    audit = json.loads((tmp_path / "out" / "summary.json").read_text())["audit"]
    assert audit["n"] == 10 and len(audit["scoring"]["m"]["audited"]) == 10
    assert (tmp_path / "ws" / "emlab.sqlite").exists()  # the strong judge's scores are cached there
