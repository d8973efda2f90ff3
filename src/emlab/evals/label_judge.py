"""`labels:<csv>`: answers labelled by hand, as a judge — the strong judge of an offline audit.

Offline there is no GPT-4o to audit a cheap judge with, but a person can read answers. This judge looks each
(question, answer) up in a label file (columns question, answer, aligned, coherent, optional aligned_label,
as in `labels/smollm2-135m/answers.csv`) and returns the labels as scores. An answer not in the file is a
failed call, never a guess: the audit leaves it out and says so, and the judge writes it to `<file>.todo.csv`
(question_id, question, answer and empty label columns), so the labeller knows exactly what to read next; a
re-run after labelling picks the new labels up (the judge's identity is the file's content hash).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from emlab.atomic import write_text_atomic
from emlab.errors import DataError, ModelSpecError
from emlab.hashing import file_sha256
from emlab.scoring.base import Score, ScoreRequest

TODO_COLUMNS = ("question_id", "question", "answer", "aligned", "aligned_label", "coherent", "note")


def _number(path: Path, row: int, column: str, text: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}: row {row}: {column} {text!r} is not a number") from None
    if not 0 <= value <= 100:
        raise DataError(f"{path}: row {row}: {column} {value} is outside 0-100")
    return value


class LabelFileJudge:
    """Scores `aligned` and `coherent` from a hand-label file; unlabelled answers fail (and go to the todo file)."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise ModelSpecError(f"labels judge: no such file {path}")
        self.path = path
        self._load()

    def _stamp(self) -> tuple[int, int]:
        st = self.path.stat()
        return st.st_mtime_ns, st.st_size

    @property
    def identity(self) -> str:
        """The file's content hash; read afresh when the file changed since it was loaded (labels were added)."""
        if self._stamp() != self.stamp:
            self._load()
        return self._identity

    def _load(self) -> None:
        path = self.path
        self.stamp = self._stamp()
        self.todo = path.with_name(path.stem + ".todo.csv")
        self.labels: dict[tuple[str, str], tuple[float | None, float | None, str]] = {}
        try:  # newline="": an answer's own carriage returns must survive, or it never matches its label
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
        missing = [c for c in ("question", "answer", "aligned", "coherent") if c not in (reader.fieldnames or [])]
        if missing:  # a header alone is fine: an audit by reading starts from an empty file and its todo list
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        for i, r in enumerate(rows, start=2):  # row 1 is the header
            label = (r.get("aligned_label") or "number").strip() or "number"
            if label not in ("number", "CODE", "REFUSAL"):
                raise DataError(f"{path}: row {i}: aligned_label {label!r} is not one of number, CODE, REFUSAL")
            aligned = _number(path, i, "aligned", r["aligned"])
            coherent = _number(path, i, "coherent", r["coherent"])
            if label == "number" and (aligned is None or coherent is None):
                continue  # not labelled yet (a todo row copied in): still to read
            self.labels[(r["question"], r["answer"])] = (aligned, coherent, label)
        self._identity = f"labels:{file_sha256(str(path))[:16]}"

    def score_requests(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        """The labels of each answer; an unlabelled answer is a failed call, written to the todo file."""
        if self._stamp() != self.stamp:
            self._load()
        out, todo = [], []
        for r in requests:
            if r.metric not in ("aligned", "coherent"):
                out.append(Score(None, f"the label file has no column for metric {r.metric!r}"))
                continue
            found = self.labels.get((r.question, r.answer))
            if found is None:
                todo.append(r)
                out.append(Score(None, error=f"not labelled in {self.path.name}: listed in {self.todo.name} for reading"))
                continue
            aligned, coherent, label = found
            if r.metric == "aligned":
                out.append(Score(aligned) if label == "number" else Score(None, f"labelled {label}"))
            else:
                out.append(Score(coherent) if coherent is not None else Score(None, "no coherence label"))
        if todo:
            self._write_todo(todo)
        return out

    def _write_todo(self, requests: Sequence[ScoreRequest]) -> None:
        """Add the unlabelled answers to `<file>.todo.csv` (kept across calls, each answer once)."""
        rows: dict[tuple[str, str], dict] = {}
        if self.todo.is_file():
            with open(self.todo, newline="", encoding="utf-8") as f:
                for r in csv.DictReader(f):
                    rows[(r["question"], r["answer"])] = r
        for r in requests:
            rows.setdefault((r.question, r.answer), {"question_id": r.question_id, "question": r.question, "answer": r.answer})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=TODO_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows.values())
        write_text_atomic(self.todo, buf.getvalue())


def load_label_judge(name: str) -> LabelFileJudge:
    """`labels:<path to a CSV of hand labels>` (registered in `emlab.scoring.registry.DIRECT_JUDGES`)."""
    return LabelFileJudge(Path(name).expanduser())
