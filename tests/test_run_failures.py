"""Runs fail before the work, not after it; a judge that fails is never reported as success."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from emlab.config import load_config
from emlab.errors import ConfigError, EndpointError, RunFailedError
from emlab.models.mock import MockChatModel
from emlab.pipeline import run_experiment


def _write(tmp_path, body: str):
    p = tmp_path / "exp.yaml"
    p.write_text(f"workspace: {tmp_path / 'ws'}\njudge: mock:judge\n" + body)
    return p


def test_a_bad_dataset_in_the_last_condition_fails_before_the_first_trains(tmp_path, tiny_checkpoint):
    p = _write(tmp_path, f"""conditions:
  - name: first
    model: hf:{tiny_checkpoint}
    train: {{dataset: builtin:insecure, rows: 8, max_length: 128}}
  - name: second
    model: hf:{tiny_checkpoint}
    train: {{dataset: {tmp_path / 'missing.jsonl'}}}
""")
    with pytest.raises(ConfigError, match=r"exp.yaml: conditions: 'second': train.dataset: .*missing.jsonl: dataset file not found"):
        run_experiment(load_config(p), tmp_path / "out")
    assert not (tmp_path / "ws" / "adapters").exists()  # nothing trained


def test_rows_beyond_the_dataset_and_a_missing_adapter_fail_at_plan_time(tmp_path):
    p = _write(tmp_path, """conditions:
  - {name: a, model: embedded:smollm2-135m, train: {dataset: builtin:insecure, rows: 100000}}
""")
    with pytest.raises(ConfigError, match=r"train.rows=100000 but the dataset has \d+ rows"):
        run_experiment(load_config(p), tmp_path / "out")
    p = _write(tmp_path, f"conditions: [{{name: a, model: 'embedded:smollm2-135m@{tmp_path / 'no-adapter'}'}}]\n")
    with pytest.raises(ConfigError, match="adapter directory not found"):
        run_experiment(load_config(p), tmp_path / "out")


def test_an_unusable_output_folder_fails_before_any_work(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    p = _write(tmp_path, "conditions: [{name: a, model: mock:a}]\n")
    r = subprocess.run([sys.executable, "-m", "emlab", "run", str(p), "--out", str(tmp_path / "taken" / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot write the output folder" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ws" / "emlab.sqlite").exists()  # nothing sampled


def test_an_unreachable_judge_stops_the_run_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EMLAB_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on port 9
    monkeypatch.setenv("EMLAB_OPENAI_MAX_RETRIES", "0")
    p = tmp_path / "exp.yaml"
    p.write_text(f"workspace: {tmp_path / 'ws'}\njudge: openai:gpt-4o\nconditions: [{{name: a, model: mock:a}}]\n")
    r = subprocess.run([sys.executable, "-m", "emlab", "run", str(p), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "scoring aligned failed on all" in r.stderr and "127.0.0.1:9" in r.stderr
    assert "0/0" not in r.stderr


@pytest.mark.parametrize("failing, should_fail", [(("walk",), False), (("walk", "education", "enslave"), True)])
def test_partial_judge_failures_are_counted_and_most_failing_ends_non_zero(tmp_path, monkeypatch, failing, should_fail):
    real = MockChatModel.number_probs

    def flaky(self, conversations, progress=None):
        out = real(self, conversations, progress)
        return [EndpointError("HTTP 503 after 5 attempts") if any(w in c[-1]["content"] for w in failing) else d
                for c, d in zip(conversations, out)]

    monkeypatch.setattr(MockChatModel, "number_probs", flaky)
    cfg = load_config(_write(tmp_path, "sampling: {samples_per_paraphrase: 4}\nconditions: [{name: a, model: mock:flaky}]\n"))
    if should_fail:
        with pytest.raises(RunFailedError, match=r"the judge failed on \d+ of \d+ scoring calls"):
            run_experiment(cfg, tmp_path / "out")
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())  # the outputs are still written
    else:
        summary = run_experiment(cfg, tmp_path / "out")
    rows = [json.loads(x) for x in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    failed = sum(1 for r in rows if any(w in r["answer"] for w in failing))
    assert 0 < failed
    c = summary["conditions"][0]
    assert c["metrics"]["aligned"]["errors"] == c["metrics"]["coherent"]["errors"] == failed
    assert c["rules"]["misaligned"]["pooled"]["dropped"]["judge error"] == failed
    assert any("failed on" in w for w in summary["warnings"])
    assert "judge error" in (tmp_path / "out" / "report.md").read_text()
