"""Results that leave emlab: `samples.csv` with the columns researchers already use, and reading it (or
`samples.jsonl`) back into per-condition answers for `emlab analyze`.

The CSV leads with `model, group, condition, question_id, question, answer, aligned, coherent`, then every other
metric the run computed, then where each answer came from (paraphrase, sample index, system prompt, the user
turn as sent). A metric with no score is an empty cell, as in the EM replications' CSVs.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Sequence

from emlab.errors import DataError

LEADING = ("model", "group", "condition", "question_id", "question", "answer")
TRAILING = ("paraphrase_index", "sample_index", "system", "prompt")


def _cell(v: object) -> object:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def write_samples_csv(path: str | os.PathLike, rows: Sequence[dict], metrics: Sequence[str]) -> Path:
    """Write rows (as `pipeline.sample_rows` makes them) to CSV atomically; aligned and coherent come first."""
    path = Path(path)
    ordered = [m for m in ("aligned", "coherent") if m in metrics] + [m for m in metrics if m not in ("aligned", "coherent")]
    columns = list(LEADING) + ordered + list(TRAILING)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in columns])
    os.replace(tmp, path)
    return path


def read_samples_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of an emlab `samples.jsonl`; DataError naming the line of anything unreadable."""
    from emlab.data.conversations import read_text

    path = Path(path)
    rows = []
    for i, line in enumerate(read_text(path, "samples file").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or "question_id" not in row:
            raise DataError(f"{path}: line {i}: expected an object with question_id (an emlab samples.jsonl row)")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows
