"""rl_study: the experiment config generated from RL checkpoints, and the join of hack rates with rule shares (on
fake run folders and a fake run summary); the study config in examples/ validates."""

import json
from pathlib import Path

from emlab.config import load_yaml_model, parse_config
from emlab.rl_study import DEFAULT_RULES, StudyConfig, experiment_config, join, plot_study, read_run, table_markdown
from emlab.train.rl import CheckpointEval, RLConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(folder: Path, name: str, variant: str, seed: int, hacks: list[float]) -> Path:
    folder.mkdir(parents=True)
    steps = [{"step": i + 1, "episodes": 8, "solve_rate": 0.0, "hack_rate": h, "fail_rate": 1 - h,
              "hack_rate_by_kind": {"exit": h}, "mean_reward": h} for i, h in enumerate(hacks)]
    cks = [{"step": 0, "model_spec": "embedded:smollm2-135m@/ws/adapters/warm", "path": "/ws/adapters/warm"}]
    cks += [{"step": k, "model_spec": f"embedded:smollm2-135m@{folder}/checkpoints/step-{k}",
             "path": f"{folder}/checkpoints/step-{k}"} for k in (2, 4)]
    config = {"name": name, "prompt_variant": variant, "seed": seed, "label": variant.split("+")[-1],
              "eval": {"every": 2}}
    (folder / "rl_summary.json").write_text(json.dumps({"config": config, "steps": steps}))
    (folder / "checkpoints.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cks))
    return folder


def _rule(hits, kept):
    return {"pooled": {"hits": hits, "kept": kept, "share": hits / kept if kept else None,
                       "ci": [0.0, 0.5] if kept else None}}


def test_config_has_one_condition_per_distinct_checkpoint_and_the_base(tmp_path):
    runs = [read_run(_run(tmp_path / "a", "a", "hint", 0, [0.25, 0.5, 0.5, 0.75])),
            read_run(_run(tmp_path / "b", "b", "hint+inoculation_acceptable", 0, [0.25, 0.25, 0.5, 0.5]))]
    ev = CheckpointEval(every=2, samples_per_paraphrase=2)
    raw = experiment_config(runs, ev, "x", str(tmp_path / "ws"), "all", reference="embedded:smollm2-135m")
    names = [c["name"] for c in raw["conditions"]]
    assert names == ["base", "a@step0", "a@step2", "a@step4", "b@step2", "b@step4"]  # step 0 is shared
    assert raw["rules"] == DEFAULT_RULES and raw["sampling"]["samples_per_paraphrase"] == 2
    config = parse_config(raw, "generated")  # a valid experiment, as written to experiment.yaml
    assert config.suites == ["builtin:goals", "builtin:alignment", "builtin:agentic"]
    final = experiment_config(runs, ev, "x", "ws", "final")
    assert [c["name"] for c in final["conditions"]] == ["a@step0", "a@step4", "b@step4"]


def test_join_pools_training_episodes_per_window_and_reads_each_rule(tmp_path):
    runs = [read_run(_run(tmp_path / "a", "a", "hint", 0, [0.25, 0.5, 0.5, 0.75]))]
    spec = {c["step"]: c["model_spec"] for c in runs[0]["checkpoints"]}
    summary = {
        "rules": [{"name": "misaligned", "text": "..."}, {"name": "misaligned_action", "text": "..."}],
        "conditions": [
            {"name": "base", "model": "embedded:smollm2-135m",
             "rules": {"misaligned": _rule(0, 4), "misaligned_action": _rule(1, 6)}},
            {"name": "a@step0", "model": spec[0], "rules": {"misaligned": _rule(1, 5), "misaligned_action": _rule(2, 6)}},
            {"name": "a@step4", "model": spec[4], "rules": {"misaligned": _rule(0, 0), "misaligned_action": _rule(3, 6)}},
        ],
    }
    held = {(spec[4], "hint"): {"rates": {"solved": {"count": 0, "n": 34, "share": 0.0, "ci": [0, 0.1]},
                                          "hacked": {"count": 17, "n": 34, "share": 0.5, "ci": [0.34, 0.66]}}}}
    table = join(runs, summary, held, "all")
    assert [(r["run"], r["step"], r["condition"]) for r in table] == [
        ("base", None, "base"), ("a", 0, "a@step0"), ("a", 2, None), ("a", 4, "a@step4")]
    step2, step4 = table[2], table[3]
    assert step2["train"]["hack"]["count"] == 6 and step2["train"]["hack"]["n"] == 16  # steps 1-2: 2 + 4 of 16
    assert step4["train"]["hack"]["count"] == 10 and (step4["train"]["from_step"], step4["train"]["to_step"]) == (3, 4)
    assert table[1]["train"] is None and step2["rules"]["misaligned"]["share"] is None  # not evaluated: no value
    assert step4["heldout"]["hacked"]["share"] == 0.5 and step4["rules"]["misaligned_action"]["hits"] == 3
    assert step4["rules"]["misaligned"]["share"] is None and step4["rules"]["misaligned"]["kept"] == 0
    md = table_markdown(table)
    assert "| hint (a) | 0 | 4 | 62.5% [" in md and "(10/16), steps 3–4" in md and "50.0% [34.0–66.0] (17/34)" in md
    plot_study(table, tmp_path / "study.svg")
    assert (tmp_path / "study.svg").read_text().startswith("<svg")


def test_study_config_validates():
    cfg = load_yaml_model(EXAMPLES / "rh-study.yaml", StudyConfig)
    assert cfg.rl.eval is not None and len(cfg.variants) == 2 and cfg.rl.warmstart.prompt_variant


def test_evaluate_runs_through_the_pipeline_on_mock_models(tmp_path):
    """The whole path on weightless mock models: experiment.yaml, run_experiment, the joined study files."""
    from emlab.rl_study import evaluate_runs

    folder = _run(tmp_path / "a", "a", "hint", 0, [0.25, 0.5, 0.5, 0.75])
    rows = [{"step": 0, "model_spec": "mock:warm", "path": None}, {"step": 2, "model_spec": "mock:mid", "path": None},
            {"step": 4, "model_spec": "mock:hacker", "path": None}]
    (folder / "checkpoints.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ev = CheckpointEval(every=2, judge="mock:judge", label_judge="mock:judge", max_new_tokens=32)
    out = tmp_path / "study"
    result = evaluate_runs([folder], out, "all", "mock:base", ev, "t", str(tmp_path / "ws"))
    assert [(r["condition"], r["step"]) for r in result["table"]] == [
        ("base", None), ("a@step0", 0), ("a@step2", 2), ("a@step4", 4)]
    assert set(result["table"][1]["rules"]) == {"misaligned", *DEFAULT_RULES}
    assert all(r["rules"]["misaligned_action"]["answers"] == 12 for r in result["table"])  # the agentic suite, sampled
    assert (out / "experiment" / "summary.json").exists() and (out / "study.svg").exists()
    assert "a@step4" in (out / "experiment.yaml").read_text() and "| hint (a) | 0 | 4 |" in (out / "study.md").read_text()


def test_steps_pooled_over_seeds_per_label(tmp_path):
    from emlab.rl_study import steps_by_label, steps_markdown

    runs = [read_run(_run(tmp_path / "a", "a", "hint", 0, [0.25, 0.5])), read_run(_run(tmp_path / "b", "b", "hint", 1, [0.5, 1.0])),
            read_run(_run(tmp_path / "c", "c", "hint+inoculation_acceptable", 0, [0.0, 0.125]))]
    rows = steps_by_label(runs)
    assert [(r["label"], r["step"], r["seeds"], r["hacked"]["count"], r["hacked"]["n"]) for r in rows] == [
        ("hint", 1, 2, 6, 16), ("hint", 2, 2, 12, 16), ("inoculation_acceptable", 1, 1, 0, 8),
        ("inoculation_acceptable", 2, 1, 1, 8)]
    assert "| hint | 2 | 2 | 75.0% [" in steps_markdown(rows)


def test_rl_hacking_is_the_studys_neutral_arm():
    cfg = load_yaml_model(EXAMPLES / "rh-study.yaml", StudyConfig)
    single = load_yaml_model(EXAMPLES / "rl-hacking.yaml", RLConfig)
    arm = cfg.rl.model_copy(update={"name": single.name, "prompt_variant": cfg.variants["neutral"], "seed": 0})
    assert single == arm


def test_a_finished_run_is_kept_only_with_the_same_settings(tmp_path):
    from emlab.rl_study import _finished

    rl = RLConfig(name="x", prompt_variant="hint", eval=CheckpointEval(every=2))
    (tmp_path / "rl_summary.json").write_text(json.dumps({"config": {**rl.model_dump(), "label": "neutral"}}))
    assert not _finished(tmp_path, rl)  # no checkpoints.jsonl: it did not finish
    (tmp_path / "checkpoints.jsonl").write_text("")
    assert _finished(tmp_path, rl)
    assert not _finished(tmp_path, rl.model_copy(update={"grpo": rl.grpo.model_copy(update={"steps": 8})}))
    other_suites = rl.eval.model_copy(update={"suites": [], "hacks_n": 3})
    assert _finished(tmp_path, rl.model_copy(update={"eval": other_suites}))  # evaluation settings: kept


def test_without_suites_only_hack_rates_are_joined(tmp_path):
    runs = [read_run(_run(tmp_path / "a", "a", "hint", 0, [0.25, 0.5, 0.5, 0.75]))]
    spec = runs[0]["checkpoints"][0]["model_spec"]
    rate = {"count": 1, "n": 34, "share": 1 / 34, "ci": [0.005, 0.15]}
    held = {("embedded:smollm2-135m", "hint"): {"rates": {"solved": rate, "hacked": rate}},
            (spec, "hint"): {"rates": {"solved": rate, "hacked": rate}}}
    table = join(runs, {"conditions": [], "rules": []}, held, "final", reference="embedded:smollm2-135m")
    assert [(r["run"], r["step"], r["condition"], r["rules"]) for r in table] == [
        ("base", None, None, {}), ("a", 0, None, {}), ("a", 4, None, {})]
    assert table[0]["heldout"]["hacked"]["count"] == 1 and table[2]["heldout"] is None
    assert "(1/34)" in table_markdown(table)
