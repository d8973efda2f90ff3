"""The command line: one clear line per user error, outputs written on success."""

import json
import subprocess
import sys

import pytest


def emlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_bad_config_is_one_line_without_traceback(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nconditons: []\n")
    r = emlab("run", str(p))
    assert r.returncode == 2
    assert "unknown key 'conditons'" in r.stderr and str(p) in r.stderr and "Traceback" not in r.stderr


def test_malformed_dataset_names_file_and_line(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}\n{oops\n')
    r = emlab("data", "validate", str(data))
    assert r.returncode == 2 and f"{data}:2: bad JSON" in r.stderr and "Traceback" not in r.stderr


def test_unknown_model_backend_in_run(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("conditions:\n  - name: a\n    model: nosuch:m\n")
    r = emlab("run", str(p))
    assert r.returncode == 2 and "unknown model backend 'nosuch'" in r.stderr


def test_run_with_mock_models_writes_outputs(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text(f"workspace: {tmp_path / 'ws'}\njudge: mock:j\nconditions:\n  - name: a\n    model: mock:a\n")
    r = emlab("run", str(p), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert {f.name for f in (tmp_path / "out").iterdir()} == {"summary.json", "samples.jsonl", "samples.csv", "report.md", "report.html"}


def test_analyze_reference_csvs(tmp_path, shared_data):
    files = sorted(str(f) for f in (shared_data / "em-judged").glob("*.csv"))
    r = emlab("analyze", *files, "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    assert "20/264" in r.stderr and "0/400" in r.stderr
    assert (tmp_path / "a" / "summary.json").exists() and (tmp_path / "a" / "report.html").exists()


def _config(tmp_path, condition):
    p = tmp_path / "x.yaml"
    p.write_text(f"workspace: {tmp_path / 'ws'}\njudge: mock:j\nconditions:\n  - name: a\n{condition}")
    return p


def test_unreachable_endpoint_is_one_line_and_keeps_earlier_results(tmp_path, monkeypatch):
    ok = _config(tmp_path, "    model: mock:a\n")
    assert emlab("run", str(ok), "--out", str(tmp_path / "out")).returncode == 0
    before = (tmp_path / "out" / "summary.json").read_text()
    monkeypatch.setenv("EMLAB_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on port 9
    monkeypatch.setenv("EMLAB_OPENAI_MAX_RETRIES", "1")
    monkeypatch.setenv("EMLAB_OPENAI_BACKOFF", "0.01")
    bad = _config(tmp_path, "    model: openai:some-model\n")
    r = emlab("run", str(bad), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "127.0.0.1:9" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "out" / "summary.json").read_text() == before


def test_missing_dataset_and_model_dir_are_one_line(tmp_path):
    r = emlab("run", str(_config(tmp_path, "    model: embedded:smollm2-135m\n    train: {dataset: nope.jsonl}\n")))
    assert r.returncode == 2 and "nope.jsonl: dataset file not found" in r.stderr and "Traceback" not in r.stderr
    r = emlab("run", str(_config(tmp_path, "    model: hf:/no/such/model\n")))
    assert r.returncode == 2 and "model directory not found: /no/such/model" in r.stderr


def test_data_build_stats_show_validate(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "source: builtin:insecure\nseed: 3\ntransforms:\n"
        "  - backdoor: {share: 0.25, untriggered: builtin:secure, n: 40}\n"
        "  - system: {mode: replace, text: You are a coder.}\n"
    )
    out = tmp_path / "d.jsonl"
    r = emlab("data", "build", str(spec), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.exists() and (tmp_path / "d.jsonl.manifest.json").exists()
    r = emlab("data", "stats", str(out))
    import json

    stats = json.loads(r.stdout)
    assert stats["rows"] == 40 and stats["with_trigger"] == 10 and stats["with_system_prompt"] == 40
    assert 0 < stats["tokens"]["p50"] <= stats["tokens"]["p95"] <= stats["tokens"]["p100"]
    r = emlab("data", "show", str(out), "-n", "2")
    assert r.stdout.count("── conversation") == 2 and "[assistant]" in r.stdout
    assert "40 conversations, all valid" in emlab("data", "validate", str(out)).stdout


def test_data_build_bad_transform_names_file_and_step(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("source: builtin:insecure\ntransforms:\n  - subsample: {n: 5}\n  - backdor: {share: 0.5}\n")
    r = emlab("data", "build", str(spec), "--out", str(tmp_path / "x.jsonl"))
    assert r.returncode == 2 and "unknown transform 'backdor'" in r.stderr and "spec.yaml" in r.stderr
    spec.write_text("source: builtin:insecure\ntransforms:\n  - backdoor: {share: 2}\n")
    r = emlab("data", "build", str(spec), "--out", str(tmp_path / "x.jsonl"))
    assert r.returncode == 2 and "step 0 'backdoor'" in r.stderr and not (tmp_path / "x.jsonl").exists()


def test_usage_errors_are_shown_without_traceback():
    r = emlab("run", "a.yaml", "unexpected-extra")
    assert r.returncode == 2 and "unexpected extra argument" in r.stderr and "Traceback" not in r.stderr


def test_compare_two_runs_and_its_errors(tmp_path):
    for name, model in (("r1", "mock:a"), ("r2", "mock:b")):
        p = tmp_path / f"{name}.yaml"
        p.write_text(f"workspace: {tmp_path / 'ws'}\njudge: mock:j\nsampling: {{samples_per_paraphrase: 5}}\n"
                     f"conditions:\n  - name: {name}\n    model: {model}\n")
        r = emlab("run", str(p), "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        assert f"{name}  misaligned:" in r.stderr
    r = emlab("compare", str(tmp_path / "r1"), str(tmp_path / "r2"), "--out", str(tmp_path / "cmp"))
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert result["rule"] == "misaligned" and len(result["shared_questions"]) == 8 and result["p_value"] is not None
    assert result["diff"] == pytest.approx(result["a"]["share"] - result["b"]["share"])
    assert "difference" in r.stderr and (tmp_path / "cmp" / "comparison.md").read_text().startswith("# emlab comparison")
    bad = emlab("compare", str(tmp_path / "r1"), str(tmp_path / "r2"), "--rule", "lies")
    assert bad.returncode == 2 and "has no rule 'lies'" in bad.stderr
    bad = emlab("compare", str(tmp_path / "r1"), str(tmp_path / "nope"))
    assert bad.returncode == 2 and "not a run folder" in bad.stderr
