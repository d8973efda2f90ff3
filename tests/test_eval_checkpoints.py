"""`train: eval_checkpoints`: every saved checkpoint evaluated as an arm `<arm>@step<k>` in the same run, the series
in summary.json and the report, re-runs that reuse everything, and the config error without save_steps."""

import json

import pytest

from emlab.config import load_config
from emlab.errors import ConfigError
from emlab.estimate import estimate
from emlab.models.registry import load_model
from emlab.pipeline import run_experiment
from emlab.plan import plan_experiment
from emlab.store import Store

CONFIG = """name: dynamics
workspace: {ws}
judge: mock:judge
sampling: {{max_new_tokens: 4, samples_per_paraphrase: 1}}
bootstrap: {{min_kept_per_question: 1, n_resamples: 200, n_permutations: 200}}
compare:
  - {{a: ft@step2, b: ft, rule: misaligned}}
conditions:
  - name: ft
    model: hf:{model}
    train: {{dataset: builtin:insecure, rows: 8, batch_size: 4, max_length: 256, max_steps: 6, save_steps: 2,
             seed: 0, eval_checkpoints: true}}
  - name: base
    model: hf:{model}
"""


@pytest.fixture
def config_path(tmp_path, tiny_checkpoint):
    p = tmp_path / "exp.yaml"
    p.write_text(CONFIG.format(ws=tmp_path / "ws", model=tiny_checkpoint))
    return p


def test_checkpoints_are_planned_evaluated_summarized_and_reused(config_path, tmp_path):
    cfg = load_config(config_path)
    plan = plan_experiment(cfg)
    assert [a.name for a in plan.arms] == ["ft", "base"] and not plan.groups  # checkpoints come after training
    planned = [(e.name, e.adapter) for e in estimate(cfg, plan)]
    assert planned == [("ft", "to train"), ("ft@step2", "checkpoint"), ("ft@step4", "checkpoint"), ("base", "-")]

    summary = run_experiment(cfg, tmp_path / "o1")
    names = [c["name"] for c in summary["conditions"]]
    assert names == ["ft", "ft@step2", "ft@step4", "base"]
    by_name = {c["name"]: c for c in summary["conditions"]}
    ft = by_name["ft"]
    assert ft["adapter"]["steps"] == 6 and "checkpoint" not in ft
    for step in (2, 4):
        c = by_name[f"ft@step{step}"]
        assert c["checkpoint"] == {"of": "ft", "step": step} and c["group"] is None
        assert c["adapter"]["path"].endswith(f"checkpoint-{step}") and c["adapter"]["steps"] == step
        assert c["evaluated_model"].endswith(f"@{c['adapter']['path']}")
    # each checkpoint is its own model: its answers are cached (and seeded) under its own weights' identity
    rows = [json.loads(line) for line in (tmp_path / "o1" / "samples.jsonl").read_text().splitlines()]
    answers = {n: [r["answer"] for r in rows if r["condition"] == n] for n in names}
    assert len({len(a) for a in answers.values()}) == 1 and len(answers["ft"]) > 0
    assert answers["ft@step2"] != answers["ft@step4"] != answers["ft"]
    identities = {load_model(by_name[n]["evaluated_model"]).identity for n in ("ft", "ft@step2", "ft@step4")}
    assert len(identities) == 3

    series = summary["checkpoints"]
    points = series["arms"]["ft"]
    assert [(p["step"], p["arm"], p["final"]) for p in points] == [(2, "ft@step2", False), (4, "ft@step4", False),
                                                                     (6, "ft", True)]
    for p in points:
        rate = p["rules"]["misaligned"]
        pooled = by_name[p["arm"]]["rules"]["misaligned"]["pooled"]
        assert {k: rate[k] for k in ("share", "ci", "hits", "kept", "answers")} == {
            k: pooled[k] for k in ("share", "ci", "hits", "kept", "answers")}
        assert rate["answers"] == len(answers["ft"])
    assert series["groups"] == {} and "base" not in series["arms"]
    # checkpoint arms enter comparisons only when asked, and no group
    (comparison,) = summary["comparisons"]
    assert (comparison["a_name"], comparison["b_name"]) == ("ft@step2", "ft") and summary["groups"] == []

    md = (tmp_path / "o1" / "report.md").read_text()
    page = (tmp_path / "o1" / "report.html").read_text()
    assert "## Through training" in md and "Through training</h2>" in page
    assert 'aria-label="misaligned share against the training step' in page
    assert "training step (optimizer steps)" in page  # the figure's axis label, as SVG text
    assert "6 (final)" in md and "ft@step4" in md

    # a re-run trains, samples and judges nothing again, and reports the same series
    store = Store(tmp_path / "ws" / "emlab.sqlite")
    counts = store.counts()
    store.close()
    judge_calls = dict(load_model("mock:judge").calls)
    again = run_experiment(load_config(config_path), tmp_path / "o2")
    assert again["conditions"][0]["adapter"]["reused"] is True
    assert dict(load_model("mock:judge").calls) == judge_calls
    store = Store(tmp_path / "ws" / "emlab.sqlite")
    assert store.counts() == counts
    store.close()
    assert again["checkpoints"] == series
    assert [(e.name, e.adapter, e.answers_cached == e.answers) for e in estimate(cfg, plan_experiment(cfg))] == [
        ("ft", "cached", True), ("ft@step2", "checkpoint", True), ("ft@step4", "checkpoint", True), ("base", "-", True)]


def test_seed_groups_get_a_series_over_models(tmp_path, tiny_checkpoint):
    p = tmp_path / "exp.yaml"
    p.write_text(f"""name: dynamics-seeds
workspace: {tmp_path / 'ws'}
judge: mock:judge
sampling: {{max_new_tokens: 2, samples_per_paraphrase: 1}}
bootstrap: {{min_kept_per_question: 1, n_resamples: 200}}
compare: [{{a: ft@step1, b: ft}}]  # a seed group's checkpoints at one step, against the final adapters
conditions:
  - name: ft
    model: hf:{tiny_checkpoint}
    seeds: [0, 1]
    train: {{dataset: builtin:insecure, rows: 4, batch_size: 4, max_length: 128, max_steps: 2, save_steps: 1,
             eval_checkpoints: true}}
""")
    summary = run_experiment(load_config(p), tmp_path / "out")
    assert [g["name"] for g in summary["groups"]] == ["ft"]
    assert summary["groups"][0]["members"] == ["ft/seed0", "ft/seed1"]  # no checkpoint arm in the group
    series = summary["checkpoints"]
    assert sorted(series["arms"]) == ["ft/seed0", "ft/seed1"]
    (group,) = series["groups"].values()
    assert [(pt["step"], pt["members"], pt["final"]) for pt in group] == [
        (1, ["ft/seed0@step1", "ft/seed1@step1"], False), (2, ["ft/seed0", "ft/seed1"], True)]
    assert all(set(pt["rules"]["misaligned"]) == {"mean", "ci", "n_models", "per_model"} for pt in group)
    assert "ft (seed group)" in (tmp_path / "out" / "report.md").read_text()
    (comparison,) = summary["comparisons"]
    assert set(comparison["group"]["a"]["per_model"]) == {"ft/seed0@step1", "ft/seed1@step1"}
    assert set(comparison["group"]["b"]["per_model"]) == {"ft/seed0", "ft/seed1"}


def test_a_comparison_may_name_only_planned_checkpoints(config_path):
    text = config_path.read_text().replace("ft@step2", "ft@step3")
    config_path.write_text(text)
    with pytest.raises(ConfigError) as e:
        plan_experiment(load_config(config_path))
    assert "compare[0].a: unknown condition or group 'ft@step3'" in str(e.value)
    assert "checkpoint arms of this run: ft@step2, ft@step4" in str(e.value)


def test_eval_checkpoints_without_save_steps_is_one_config_error(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("""name: bad
judge: mock:judge
conditions:
  - name: ft
    model: embedded:smollm2-135m
    train: {dataset: builtin:insecure, eval_checkpoints: true}
""")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    assert text.startswith(f"{p}:") and "conditions[0].train" in text and "eval_checkpoints" in text
    assert "save_steps" in text and "\n" not in text


def test_eval_checkpoints_leaves_the_adapter_key_unchanged(tmp_path):
    from emlab.plan import train_identity

    cfgs = []
    for flag in ("false", "true"):
        p = tmp_path / f"{flag}.yaml"
        p.write_text(f"""conditions:
  - name: ft
    model: embedded:smollm2-135m
    train: {{dataset: builtin:insecure, save_steps: 5, eval_checkpoints: {flag}}}
""")
        cfgs.append(load_config(p))
    from emlab.plan import expand_arms

    identities = [train_identity(expand_arms(c)[0]) for c in cfgs]
    assert identities[0] == identities[1]


@pytest.mark.parametrize("rows, kwargs", [(10, {"batch_size": 4, "epochs": 1.5, "grad_accum": 2}),
                                          (7, {"batch_size": 2, "epochs": 3}), (5, {"max_steps": 9})])
def test_the_forecast_steps_are_the_loops(rows, kwargs):
    import math

    from emlab.train.lora_loop import plan_batches
    from emlab.train.params import TrainParams

    params = TrainParams(save_steps=2, **kwargs)
    batches = params.max_steps * params.grad_accum if params.max_steps else None
    loop_steps = math.ceil(len(plan_batches([10] * rows, params.batch_size, 0, params.epochs, batches)) / params.grad_accum)
    assert params.optimizer_steps(rows) == loop_steps
    assert params.checkpoint_steps(rows) == list(range(2, loop_steps, 2))
