"""The workspace store: a SQLite database (WAL) of samples and scores (of every metric) keyed by content hash.

Every sample and every judgment is committed as soon as its batch finishes, so a killed run loses at most
the rows in flight and a re-run recomputes only what is missing. Open it with `sqlite3` to inspect.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,        -- hash(model identity, conversation, sampling params, seed) + ':' + index
    model TEXT NOT NULL,         -- model identity
    conversation TEXT NOT NULL,  -- JSON messages the model was asked
    sample_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    created TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS metric_scores (
    key TEXT PRIMARY KEY,        -- hash(scorer identity, metric kind, judge prompt or question+answer, labels)
    scorer TEXT NOT NULL,        -- scorer identity
    payload TEXT NOT NULL,       -- JSON of emlab.scoring.base.Score (value, reason, mass, distribution)
    created TEXT DEFAULT CURRENT_TIMESTAMP
);
"""


class Store:
    """Content-addressed cache of samples and judge scores in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    # -- samples -----------------------------------------------------------------------------------------
    def get_samples(self, keys: Iterable[str]) -> dict[str, str]:
        """Texts for the keys that are stored."""
        keys = list(keys)
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, text FROM samples WHERE key IN ({','.join('?' * len(chunk))})"
            out.update(dict(self._db.execute(q, chunk).fetchall()))
        return out

    def put_samples(self, rows: Iterable[tuple[str, str, str, int, str]]) -> None:
        """Insert (key, model, conversation JSON, sample index, text) rows in one transaction."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO samples (key, model, conversation, sample_index, text) VALUES (?,?,?,?,?)",
                list(rows),
            )

    # -- scores of any kind (emlab.scoring) ---------------------------------------------------------------
    def get_metric_scores(self, keys: Iterable[str]) -> dict[str, dict]:
        """Stored Score payloads (dicts) for the keys that are stored."""
        keys = list(keys)
        out: dict[str, dict] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, payload FROM metric_scores WHERE key IN ({','.join('?' * len(chunk))})"
            out.update({k: json.loads(p) for k, p in self._db.execute(q, chunk)})
        return out

    def put_metric_scores(self, rows: Iterable[tuple[str, str, dict]]) -> None:
        """Insert (key, scorer identity, Score payload) rows in one transaction."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO metric_scores (key, scorer, payload) VALUES (?,?,?)",
                [(k, scorer, json.dumps(payload, ensure_ascii=False)) for k, scorer, payload in rows],
            )

    def counts(self) -> dict[str, int]:
        """Row counts per table (for tests and `emlab` status lines)."""
        return {t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("samples", "metric_scores")}
