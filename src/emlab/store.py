"""The workspace store: a SQLite database (WAL) of samples and scores (of every metric) keyed by content hash.

One truth for every run on a workspace:
- the first writer wins (`INSERT OR IGNORE`), and `put_*` return what the store holds for the keys written,
  so a caller builds its outputs from the store, never from its own in-memory copy;
- runs share work through leases: `share_work` claims chunks of missing keys that no live run holds, computes
  and commits them, then waits for the keys other runs hold (taking over leases whose run died or expired);
- every chunk is committed in one transaction, so a killed run loses at most the rows in flight.
The schema carries a version (`PRAGMA user_version`); `MIGRATIONS` bring an older store up to date, in order,
in one transaction, and a store newer than this code is refused. Open it with `sqlite3` to inspect.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from emlab.errors import EmlabError

# MIGRATIONS[v] brings a store from version v to v + 1. A workspace made before versions existed is at 0 and
# already holds version 1's tables (and perhaps an old `scores` table, which is left alone).
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: samples and scores
        """CREATE TABLE IF NOT EXISTS samples (
            key TEXT PRIMARY KEY,        -- hash(model identity, conversation, sampling params, seed) + ':' + index
            model TEXT NOT NULL,         -- model identity
            conversation TEXT NOT NULL,  -- JSON messages the model was asked
            sample_index INTEGER NOT NULL,
            text TEXT NOT NULL,
            created TEXT DEFAULT CURRENT_TIMESTAMP
        )""",
        """CREATE TABLE IF NOT EXISTS metric_scores (
            key TEXT PRIMARY KEY,        -- hash(scorer identity, metric kind, judge prompt or question+answer, labels)
            scorer TEXT NOT NULL,        -- scorer identity
            payload TEXT NOT NULL,       -- JSON of emlab.scoring.base.Score (value, reason, mass, distribution)
            created TEXT DEFAULT CURRENT_TIMESTAMP
        )""",
    ),
    (  # 2: leases, so concurrent runs share the work instead of each doing all of it
        """CREATE TABLE leases (
            kind TEXT NOT NULL,          -- the table the key will be written to: samples or metric_scores
            key TEXT NOT NULL,
            owner TEXT NOT NULL,         -- host:pid:token of the run computing it
            expires REAL NOT NULL,       -- unix time after which anyone may take it over
            PRIMARY KEY (kind, key)
        )""",
        "CREATE INDEX leases_owner ON leases (owner)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
KINDS = ("samples", "metric_scores")
LEASE_SECONDS = 900.0  # a chunk's lease; a run on this host that dies frees its leases at once
BUSY_SECONDS = 60.0  # how long a statement waits for another process's write lock
POLL_SECONDS = 0.5  # how often a run waiting for other runs' keys looks again
_IN = 500  # keys per `IN (...)` query


@dataclass(frozen=True)
class Claim:
    """What `Store.claim` found: keys now leased to this store's owner, and keys that were already stored."""

    mine: list[str]
    stored: list[str]


class Store:
    """Content-addressed cache of samples and judge scores in one SQLite file, shared safely between runs."""

    def __init__(self, path: str | Path, lease_seconds: float = LEASE_SECONDS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lease_seconds = lease_seconds
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        # autocommit mode: every write below is one explicit BEGIN IMMEDIATE ... COMMIT
        self._db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before reading so that what it reads cannot change under it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _select(self, query: str, keys: Sequence[str], *args) -> list[tuple]:
        """Rows of `query` (with `{}` for the placeholders) over `keys`, 500 at a time."""
        rows: list[tuple] = []
        for i in range(0, len(keys), _IN):
            chunk = list(keys[i : i + _IN])
            rows += self._db.execute(query.format(",".join("?" * len(chunk))), [*args, *chunk]).fetchall()
        return rows

    # -- schema ------------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Apply the missing migrations in order, all in one transaction (none when the store is up to date)."""
        if self._check_version() == SCHEMA_VERSION:
            return
        with self._write() as db:
            version = self._check_version()  # again under the write lock: another run may have just migrated
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    db.execute(sql)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_version(self) -> int:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise EmlabError(f"{self.path}: store schema version {version} is newer than this emlab knows "
                             f"({SCHEMA_VERSION}); upgrade emlab to use this workspace")
        return version

    def version(self) -> int:
        """The schema version of the file."""
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    # -- samples -----------------------------------------------------------------------------------------
    def get_samples(self, keys: Iterable[str]) -> dict[str, str]:
        """Texts for the keys that are stored."""
        with self._lock:
            return dict(self._select("SELECT key, text FROM samples WHERE key IN ({})", list(keys)))

    def put_samples(self, rows: Iterable[tuple[str, str, str, int, str]]) -> dict[str, str]:
        """Insert (key, model, conversation JSON, sample index, text) rows in one transaction; the first writer wins.

        Returns the texts the store holds for these keys (another run's where it wrote a key first).
        """
        rows = list(rows)
        keys = [r[0] for r in rows]
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO samples (key, model, conversation, sample_index, text) VALUES (?,?,?,?,?)", rows)
            self._select("DELETE FROM leases WHERE kind = ? AND key IN ({})", keys, "samples")
            return dict(self._select("SELECT key, text FROM samples WHERE key IN ({})", keys))

    # -- scores of any kind (emlab.scoring) ---------------------------------------------------------------
    def get_metric_scores(self, keys: Iterable[str]) -> dict[str, dict]:
        """Stored Score payloads (dicts) for the keys that are stored."""
        with self._lock:
            rows = self._select("SELECT key, payload FROM metric_scores WHERE key IN ({})", list(keys))
        return {k: json.loads(p) for k, p in rows}

    def put_metric_scores(self, rows: Iterable[tuple[str, str, dict]]) -> dict[str, dict]:
        """Insert (key, scorer identity, Score payload) rows in one transaction; the first writer wins.

        Returns the payloads the store holds for these keys (another run's where it wrote a key first).
        """
        rows = list(rows)
        mine = {k: payload for k, _, payload in rows}
        encoded = [(k, scorer, json.dumps(payload, ensure_ascii=False)) for k, scorer, payload in rows]
        keys = [r[0] for r in encoded]
        with self._write() as db:
            db.executemany("INSERT OR IGNORE INTO metric_scores (key, scorer, payload) VALUES (?,?,?)", encoded)
            self._select("DELETE FROM leases WHERE kind = ? AND key IN ({})", keys, "metric_scores")
            stored = dict(self._select("SELECT key, payload FROM metric_scores WHERE key IN ({})", keys))
        written = {k: text for k, _, text in encoded}
        return {k: mine[k] if text == written[k] else json.loads(text) for k, text in stored.items()}

    # -- leases ------------------------------------------------------------------------------------------
    def claim(self, kind: str, keys: Sequence[str], limit: int) -> Claim:
        """Lease to this store's owner up to `limit` of `keys` that `kind` lacks and no live run holds (in order).

        A lease is live until it expires, and, for a run on this host, only while its process lives, so a killed
        run's work is taken over at once. `stored` lists the keys met on the way that are already stored.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
        now = time.time()
        mine: list[str] = []
        stored: list[str] = []
        alive: dict[str, bool] = {}
        with self._write() as db:
            for i in range(0, len(keys), _IN):
                chunk = list(keys[i : i + _IN])
                done = {k for (k,) in self._select(f"SELECT key FROM {kind} WHERE key IN ({{}})", chunk)}
                held = {k: (o, e) for k, o, e in
                        self._select("SELECT key, owner, expires FROM leases WHERE kind = ? AND key IN ({})", chunk, kind)}
                for k in chunk:
                    if k in done:
                        stored.append(k)
                        continue
                    if k in held and held[k][0] != self.owner:
                        owner, expires = held[k]
                        if owner not in alive:
                            alive[owner] = self._owner_alive(owner)
                        if expires > now and alive[owner]:
                            continue
                    mine.append(k)
                    if len(mine) == limit:
                        break
                if len(mine) == limit:
                    break
            db.executemany("INSERT OR REPLACE INTO leases (kind, key, owner, expires) VALUES (?,?,?,?)",
                           [(kind, k, self.owner, now + self.lease_seconds) for k in mine])
        return Claim(mine, stored)

    def release(self) -> None:
        """Give up every lease this store's owner holds."""
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE owner = ?", (self.owner,))

    def _owner_alive(self, owner: str) -> bool:
        """Whether the run that owns a lease may still be running: on this host, whether its process lives."""
        host, pid, _ = owner.rsplit(":", 2)
        return host != self.host or _process_alive(int(pid))

    def counts(self) -> dict[str, int]:
        """Row counts per table (for tests and `emlab` status lines)."""
        with self._lock:
            return {t: self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in KINDS}


def _process_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (killed, not yet reaped). Unknown (not POSIX): True."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def share_work(store: Store, kind: str, keys: Sequence[str], chunk: int, compute: Callable[[list[str]], None],
               done: Callable[[list[str]], None] | None = None, what: str = "items") -> None:
    """Compute every key of `keys` that `kind` lacks, sharing the work with other runs on the same store.

    Claims up to `chunk` missing keys at a time and calls `compute(keys)`, which commits what it can (a key it
    cannot compute, such as a failed judge call, is simply not stored, and its lease is given back at once);
    each key is tried at most once here. When every missing key is leased by another live run it waits,
    holding no lease, until they are stored or their leases die (so two waiting runs never wait on each other;
    the wait is bounded by the lease lifetime). `done(keys)` is told of keys other runs stored.
    """
    todo = list(keys)
    waiting_since: float | None = None
    try:
        while todo:
            claim = store.claim(kind, todo, chunk)
            finished = set(claim.stored) | set(claim.mine)
            if claim.stored and done:
                done(claim.stored)
            if claim.mine:
                waiting_since = None
                compute(claim.mine)
                store.release()  # keys it could not compute go back at once: a waiting run may try them
            todo = [k for k in todo if k not in finished]
            if todo and not claim.mine:
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    from emlab.progress import console

                    console.print(f"waiting for {len(todo)} {what} that another run on this workspace is computing "
                                  f"(its leases end within {store.lease_seconds:.0f} s if it stops)")
                time.sleep(POLL_SECONDS)
    finally:
        store.release()
