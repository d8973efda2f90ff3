"""Same config, same results: a run killed and resumed, grown in steps, or run twice at once on one workspace.

The subprocess tests run `emlab run` on mock models slowed by EMLAB_MOCK_DELAY (seconds per reply and per
judged item) and SIGKILL it part-way, watching the SQLite file; EMLAB_MOCK_LOG counts the work each process did.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from emlab.config import load_config
from emlab.models.base import with_system
from emlab.pipeline import run_experiment

CONFIG = """name: resume
workspace: {ws}
judge: mock:judge
sampling: {{samples_per_paraphrase: {n}, seed: 1, max_new_tokens: 6}}
conditions:
{conditions}"""
SAMPLES = 2 * 20 * 4  # two conditions x the 20 paraphrases of builtin:core x 4 samples each


def write_config(folder: Path, conditions: dict[str, str], n: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    listed = "".join(f"  - name: {name}\n    model: {model}\n" for name, model in conditions.items())
    path = folder / "exp.yaml"
    path.write_text(CONFIG.format(ws=folder / "ws", n=n, conditions=listed))
    return path


def start(config: Path, out: Path, delay: float, log: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "EMLAB_MOCK_DELAY": str(delay), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if log:
        env["EMLAB_MOCK_LOG"] = str(log)
    return subprocess.Popen([sys.executable, "-m", "emlab", "run", str(config), "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def counts(db_path: Path) -> tuple[int, int]:
    """(samples, scores) stored so far; (0, 0) before the run has made its tables."""
    try:
        with sqlite3.connect(db_path, timeout=30) as db:
            return tuple(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("samples", "metric_scores"))
    except sqlite3.OperationalError:
        return 0, 0


def kill_when(proc: subprocess.Popen, db_path: Path, ready, what: str, timeout: float = 300) -> tuple[int, int]:
    """SIGKILL `proc` as soon as the store's counts satisfy `ready`; the counts it was killed at."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = counts(db_path)
        if ready(*seen):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return seen
        assert proc.poll() is None, f"the run ended before it could be killed {what}:\n{proc.stdout.read()}"
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"timed out waiting to kill the run {what}")


def finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out


def dump(db_path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db_path) as db:
        return {
            "samples": db.execute("SELECT key, model, conversation, sample_index, text FROM samples ORDER BY key").fetchall(),
            "scores": db.execute("SELECT key, scorer, payload FROM metric_scores ORDER BY key").fetchall(),
        }


def test_a_run_killed_while_sampling_and_while_judging_resumes_to_the_uninterrupted_result(tmp_path, tiny_checkpoint):
    conditions = {"tiny": f"hf:{tiny_checkpoint}", "slow": "mock:slow"}
    reference = write_config(tmp_path / "reference", conditions)
    uninterrupted = start(reference, tmp_path / "reference" / "out", delay=0.02)
    config = write_config(tmp_path / "resumed", conditions)
    db_path = tmp_path / "resumed" / "ws" / "emlab.sqlite"
    out = tmp_path / "resumed" / "out"

    first = start(config, out, delay=0.02)
    at = kill_when(first, db_path, lambda s, _: 0 < s < SAMPLES, "while sampling")
    assert first.returncode == -signal.SIGKILL and 0 < at[0] < SAMPLES and at[1] == 0
    second = start(config, out, delay=0.02)
    at = kill_when(second, db_path, lambda s, j: s == SAMPLES and j > 0, "while judging")
    assert second.returncode == -signal.SIGKILL and not (out / "samples.jsonl").exists()
    finish(start(config, out, delay=0.02))
    finish(uninterrupted)
    assert at[1] < counts(db_path)[1]  # it was killed before judging ended

    expected = (tmp_path / "reference" / "out" / "samples.jsonl").read_bytes()
    assert (out / "samples.jsonl").read_bytes() == expected
    assert dump(db_path) == dump(tmp_path / "reference" / "ws" / "emlab.sqlite")
    rows = [json.loads(line) for line in expected.decode().splitlines()]
    slots = {(r["condition"], r["question_id"], r["paraphrase_index"], r["sample_index"]) for r in rows}
    assert len(rows) == len(slots) == SAMPLES  # no answer twice, none missing
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0  # the killed runs' leases were taken over


def test_two_runs_on_one_workspace_share_the_work_and_agree_with_the_store(tmp_path):
    config = write_config(tmp_path, {"a": "mock:a", "b": "mock:b"})
    log = tmp_path / "calls.log"
    runs = [start(config, tmp_path / f"out{i}", delay=0.01, log=log) for i in range(2)]
    for run in runs:
        finish(run)

    first = (tmp_path / "out0" / "samples.jsonl").read_bytes()
    assert (tmp_path / "out1" / "samples.jsonl").read_bytes() == first
    store = dump(tmp_path / "ws" / "emlab.sqlite")
    texts = {(m, conv, k): text for _, m, conv, k, text in store["samples"]}
    payloads = {json.dumps(json.loads(p), sort_keys=True) for _, _, p in store["scores"]}
    rows = [json.loads(line) for line in first.decode().splitlines()]
    assert len(rows) == SAMPLES
    for r in rows:  # every answer and every judge score in the outputs is the store's
        conv = with_system([{"role": "user", "content": r["prompt"] or r["question"]}], r["system"])
        assert texts[(r["model"], json.dumps(conv), r["sample_index"])] == r["answer"]
        for metric in ("aligned", "coherent"):
            assert json.dumps(r["scores"][metric], sort_keys=True) in payloads

    work: dict[str, int] = {}
    pids = set()
    for line in log.read_text().splitlines():
        pid, method, items = line.split()
        work[method] = work.get(method, 0) + int(items)
        pids.add(pid)
    assert work["generate"] == len(store["samples"]) == SAMPLES  # each answer generated once, not once per run
    assert work["number_probs"] + work.get("label_probs", 0) == len(store["scores"])  # each score judged once
    assert len(pids) == 2  # and both runs took part


def test_a_run_grown_in_steps_equals_one_run(tmp_path, tiny_checkpoint):
    """More samples per paraphrase later: the first ones are reused and the new ones are what one run draws."""
    conditions = {"tiny": f"hf:{tiny_checkpoint}", "mock": "mock:m"}
    whole = run_experiment(load_config(write_config(tmp_path / "whole", conditions, n=3)), tmp_path / "whole" / "out")
    grown = tmp_path / "grown"
    run_experiment(load_config(write_config(grown, conditions, n=1)), grown / "out1")
    again = run_experiment(load_config(write_config(grown, conditions, n=3)), grown / "out3")
    assert (grown / "out3" / "samples.jsonl").read_bytes() == (tmp_path / "whole" / "out" / "samples.jsonl").read_bytes()
    assert again["conditions"] == whole["conditions"]
