"""The store: schema versions and migrations, first writer wins, callers return what the store holds, leases."""

import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from emlab import store as store_module
from emlab.errors import EmlabError
from emlab.evals.questions import load_suite
from emlab.evals.sampling import sample_keys, sample_suite
from emlab.models.base import SamplingParams
from emlab.models.mock import MockChatModel
from emlab.scoring.base import Score, ScoreRequest
from emlab.scoring.cache import score_all, score_key
from emlab.store import SCHEMA_VERSION, Store, share_work

OLD_SCHEMA = """
CREATE TABLE samples (key TEXT PRIMARY KEY, model TEXT NOT NULL, conversation TEXT NOT NULL,
    sample_index INTEGER NOT NULL, text TEXT NOT NULL, created TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE metric_scores (key TEXT PRIMARY KEY, scorer TEXT NOT NULL, payload TEXT NOT NULL,
    created TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE scores (key TEXT PRIMARY KEY, judge TEXT, value REAL);
INSERT INTO samples (key, model, conversation, sample_index, text) VALUES ('k:0', 'mock:m', '[]', 0, 'old answer');
INSERT INTO metric_scores (key, scorer, payload) VALUES ('s', 'mock:j', '{"value": 5.0}');
INSERT INTO scores VALUES ('x', 'mock:j', 1.0);
"""


def tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_store_has_the_current_schema_version(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    assert store.version() == SCHEMA_VERSION >= 2
    assert {"samples", "metric_scores", "leases"} <= tables(tmp_path / "s.sqlite")
    store.close()
    assert Store(tmp_path / "s.sqlite").version() == SCHEMA_VERSION  # opening again changes nothing


def test_a_store_from_before_versions_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = Store(path)
    assert store.version() == SCHEMA_VERSION
    assert store.get_samples(["k:0"]) == {"k:0": "old answer"}
    assert store.get_metric_scores(["s"]) == {"s": {"value": 5.0}}
    assert {"scores", "leases"} <= tables(path)  # the old table is left alone


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, ("CREATE TABLE extra (a)", "NOT SQL")])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(store_module.MIGRATIONS))
    with pytest.raises(sqlite3.OperationalError):
        Store(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    assert "leases" not in tables(path) and "extra" not in tables(path)  # all migrations in one transaction


def test_a_store_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(EmlabError, match=f"schema version {SCHEMA_VERSION + 1} is newer .*upgrade emlab"):
        Store(path)


def test_the_first_writer_wins_and_put_returns_what_is_stored(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    assert store.put_samples([("a:0", "m", "[]", 0, "first")]) == {"a:0": "first"}
    assert store.put_samples([("a:0", "m", "[]", 0, "second"), ("b:0", "m", "[]", 0, "b")]) == {"a:0": "first", "b:0": "b"}
    assert store.get_samples(["a:0", "b:0", "c:0"]) == {"a:0": "first", "b:0": "b"}
    assert store.put_metric_scores([("s", "j", {"value": 1.0})]) == {"s": {"value": 1.0}}
    assert store.put_metric_scores([("s", "j", {"value": 2.0})]) == {"s": {"value": 1.0}}
    assert store.counts() == {"samples": 2, "metric_scores": 1}


class Racer(MockChatModel):
    """A model that loses the race: while it generates, another run commits every answer first, with other texts."""

    def __init__(self, path, keys):
        super().__init__("racer")
        self.other, self.keys = Store(path), keys

    def generate(self, conversations, params, progress=None):
        mine = super().generate(conversations, params, progress)
        self.other.put_samples([(k, self.identity, "[]", 0, f"other run's answer {k}") for k in self.keys])
        return mine


def test_sample_suite_returns_the_answers_of_the_run_that_wrote_first(tmp_path):
    suite = load_suite("builtin:core")
    path = tmp_path / "s.sqlite"
    params = SamplingParams(seed=2)
    keys = sample_keys("mock:racer", suite, params, 2)
    samples = sample_suite(Racer(path, keys), suite, params, Store(path), samples_per_paraphrase=2)
    stored = Store(path).get_samples(keys)
    assert [s.answer for s in samples] == [stored[k] for k in keys]  # outputs agree with the store
    assert all(s.answer.startswith("other run's answer") for s in samples)


class RacingScorer:
    """A cached scorer whose scores lose the race to another run that stores value 1.0 for the same keys first."""

    identity, kind, cacheable = "racing", "numeric", True

    def __init__(self, path):
        self.other = Store(path)

    def score(self, requests, progress=None):
        self.other.put_metric_scores([(score_key(self, r), self.identity, Score(value=1.0).as_dict()) for r in requests])
        return [Score(value=99.0) for _ in requests]


def test_score_all_returns_the_scores_of_the_run_that_wrote_first(tmp_path):
    path = tmp_path / "s.sqlite"
    requests = [ScoreRequest(f"q{i}", "question?", f"answer {i}", "aligned", "prompt {answer}") for i in range(40)]
    scores = score_all(RacingScorer(path), requests, Store(path))
    assert [s.value for s in scores] == [1.0] * 40
    assert {p["value"] for p in Store(path).get_metric_scores([score_key(RacingScorer, r) for r in requests]).values()} == {1.0}


def test_claims_skip_live_leases_and_take_over_dead_or_expired_ones(tmp_path):
    path = tmp_path / "s.sqlite"
    a, b = Store(path), Store(path)
    keys = [f"k:{i}" for i in range(6)]
    assert a.claim("samples", keys, 2).mine == ["k:0", "k:1"]
    b.put_samples([("k:2", "m", "[]", 2, "done")])
    claim = b.claim("samples", keys, 10)
    assert claim.mine == ["k:3", "k:4", "k:5"] and claim.stored == ["k:2"]  # a's leases are live (this process)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with sqlite3.connect(path) as db:  # a lease of a process that has exited, and an expired one of another host
        db.execute("UPDATE leases SET owner = ? WHERE key = 'k:0'", (f"{a.host}:{gone.stdout.strip()}:dead",))
        db.execute("UPDATE leases SET owner = 'elsewhere:1:x', expires = 0 WHERE key = 'k:1'")
    c = Store(path)
    assert c.claim("samples", keys, 10).mine == ["k:0", "k:1"]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE leases SET owner = 'elsewhere:1:x', expires = 1e12 WHERE key = 'k:0'")
    assert c.claim("samples", keys, 10).mine == ["k:1"]  # its own lease again; another host's live lease is respected


def test_share_work_waits_for_the_keys_another_run_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "POLL_SECONDS", 0.02)
    path = tmp_path / "s.sqlite"
    other, mine = Store(path), Store(path)
    keys = [f"k:{i}" for i in range(10)]
    held = other.claim("samples", keys, 4).mine

    def finish_later():
        time.sleep(0.3)
        other.put_samples([(k, "m", "[]", 0, "theirs") for k in held])

    thread = threading.Thread(target=finish_later)
    thread.start()
    computed, seen = [], []

    def compute(chunk):
        computed.extend(chunk)
        mine.put_samples([(k, "m", "[]", 0, "mine") for k in chunk])

    share_work(mine, "samples", keys, 3, compute, done=seen.extend, what="answers")
    thread.join()
    assert sorted(computed) == sorted(set(keys) - set(held)) and sorted(seen) == sorted(held)
    assert mine.get_samples(keys) == {k: "theirs" if k in held else "mine" for k in keys}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


def test_keys_a_run_could_not_compute_are_given_back_at_once(tmp_path):
    a, b = Store(tmp_path / "s.sqlite"), Store(tmp_path / "s.sqlite")
    keys = [f"k:{i}" for i in range(5)]
    tried = []

    def fail(chunk):  # e.g. the judge endpoint failed: nothing stored
        assert b.claim("samples", keys, 10).mine == [k for k in keys if k not in chunk]  # held while computing
        b.release()
        tried.extend(chunk)

    share_work(a, "samples", keys, 2, fail)
    assert tried == keys  # each tried once
    assert b.claim("samples", keys, 10).mine == keys  # and none still held
