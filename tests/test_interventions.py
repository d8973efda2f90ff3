"""Eval-time interventions in configs: `directions:` + `interventions:` expand into steered/ablated conditions that
are sampled under the intervention (own cache keys, the plain model's seeds) and compared with their baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emlab.analysis.directions import Directions, Provenance, save_directions
from emlab.config import load_config
from emlab.errors import ConfigError, ModelSpecError
from emlab.pipeline import run_experiment
from emlab.plan import plan_experiment
from emlab.store import Store


def _artifact(folder, hidden=32, layers=(1,), norm=4.0, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((len(layers), hidden))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    d = Directions(tuple(layers), v.astype(np.float32), np.full(len(layers), norm, np.float32), 3, 4,
                   Provenance(model="test"))
    return save_directions(d, folder)


def _config(tmp_path, model, interventions, directions="{d: dir}", extra=""):
    p = tmp_path / "exp.yaml"
    p.write_text(f"""name: steer
workspace: {tmp_path / 'ws'}
judge: mock:judge
sampling: {{max_new_tokens: 6, samples_per_paraphrase: 2}}
directions: {directions}
{extra}conditions:
  - name: base
    model: {model}
    interventions: {interventions}
""")
    return p


def test_interventions_expand_into_conditions_with_their_comparisons(tmp_path, tiny_checkpoint):
    _artifact(tmp_path / "dir")
    p = _config(tmp_path, f"hf:{tiny_checkpoint}",
                "[{steer: {direction: d, layer: 1, alpha: [0, 3]}}, {ablate: {direction: d, layer: 1}}]")
    cfg = load_config(p)
    assert [c.name for c in cfg.conditions] == ["base", "base~steer-d-L1-a0", "base~steer-d-L1-a3", "base~ablate-d-L1"]
    assert cfg.directions["d"] == str(tmp_path / "dir")  # relative to the config file
    plan = plan_experiment(cfg)
    assert "coherent_share" in [r.name for r in plan.rules]  # the coherence cost is measured
    rules = [r.name for r in plan.rules]
    assert sorted((c.a, c.b, c.rule) for c in plan.comparisons) == sorted(
        (c.name, "base", rule) for c in cfg.conditions[1:] for rule in rules)
    steered = [a for a in plan.arms if a.name == "base~steer-d-L1-a3"][0]
    assert steered.intervention.alpha == 3.0 and steered.intervention.layer == 1
    # the raw difference of means is what alpha scales
    assert float(np.linalg.norm(steered.intervention.vector.v)) == pytest.approx(4.0, rel=1e-5)


def test_steered_answers_are_cached_apart_and_steering_by_zero_changes_nothing(tmp_path, tiny_checkpoint):
    _artifact(tmp_path / "dir", norm=50.0)
    _artifact(tmp_path / "other", seed=5)
    p = _config(tmp_path, f"hf:{tiny_checkpoint}",
                "[{steer: {direction: d, layer: 1, alpha: [0, 40]}}, {ablate: {direction: d, layer: 1, random: 3}}]",
                directions="{d: dir, e: other}")
    summary = run_experiment(load_config(p), tmp_path / "out")
    from emlab.analysis.directions import load_directions

    d, e = load_directions(tmp_path / "dir"), load_directions(tmp_path / "other")
    made = summary["directions"]
    assert made["artifacts"]["d"]["norms"] == [50.0] and made["artifacts"]["e"]["layers"] == [1]
    assert made["cosines"] == [{"a": "d", "b": "e", "by_layer": {"1": pytest.approx(float(d.vectors[0] @ e.vectors[0]))}}]
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    by = {}
    for r in rows:
        by.setdefault(r["condition"], []).append(r["answer"])
    assert by["base~steer-d-L1-a0"] == by["base"]  # same seeds, x + 0 * v == x
    changed = sum(a != b for a, b in zip(by["base~steer-d-L1-a40"], by["base"]))
    assert changed >= len(by["base"]) // 2
    entries = {c["name"]: c for c in summary["conditions"]}
    assert entries["base"]["intervention"] is None
    assert entries["base~ablate-d-L1-random3"]["intervention"]["random"] == 3
    assert entries["base~steer-d-L1-a40"]["intervention"]["identity"].startswith("steer(layer=1,alpha=40.0")
    assert [i["a"] for i in summary["interventions"]] == ["base~steer-d-L1-a0", "base~steer-d-L1-a40",
                                                          "base~ablate-d-L1-random3"]
    names = {c["name"] for c in summary["comparisons"]}
    assert all(n in names for i in summary["interventions"] for n in i["comparisons"].values())
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Interventions" in report and "random direction (seed 3)" in report
    assert "### Directions" in report and "d · e" in report
    assert "<svg" in (tmp_path / "out" / "report.html").read_text()
    # four conditions' answers under four identities, none shared; a second run samples nothing new
    store = Store(tmp_path / "ws" / "emlab.sqlite")
    counts = store.counts()
    store.close()
    assert counts["samples"] == 4 * len(by["base"])
    run_experiment(load_config(p), tmp_path / "out2")
    store = Store(tmp_path / "ws" / "emlab.sqlite")
    assert store.counts() == counts
    store.close()


def test_bad_interventions_are_config_errors_before_anything_loads(tmp_path, tiny_checkpoint):
    _artifact(tmp_path / "dir", layers=(1,))
    model = f"hf:{tiny_checkpoint}"
    with pytest.raises(ConfigError, match=r"exp.yaml:\d+: .*direction 'nope' is not under directions: \(d\)"):
        load_config(_config(tmp_path, model, "[{steer: {direction: nope, layer: 1, alpha: 2}}]"))
    with pytest.raises(ConfigError, match="exactly one of steer: or ablate:"):
        load_config(_config(tmp_path, model, "[{}]"))
    with pytest.raises(ConfigError, match="a sweep needs distinct values"):
        load_config(_config(tmp_path, model, "[{steer: {direction: d, layer: 1, alpha: [2, 2]}}]"))
    with pytest.raises(ConfigError, match=r"unknown key .*alfa"):
        load_config(_config(tmp_path, model, "[{steer: {direction: d, layer: 1, alfa: 2}}]"))
    cfg = load_config(_config(tmp_path, model, "[{steer: {direction: d, layer: 2, alpha: 2}}]"))
    with pytest.raises(ConfigError, match=r"directions.d: .* no direction at layer 2 \(layers 1\)"):
        plan_experiment(cfg)
    cfg = load_config(_config(tmp_path, "mock:m", "[{ablate: {direction: d, layer: 1}}]"))
    with pytest.raises(ConfigError, match="an intervention needs a local model"):
        plan_experiment(cfg)
    cfg = load_config(_config(tmp_path, model, "[{ablate: {direction: d, layer: 1}}]", directions="{d: missing}"))
    with pytest.raises(ConfigError, match="directions.d: .*not a directions artifact"):
        plan_experiment(cfg)


def test_a_direction_of_another_model_fails_with_one_line_and_keeps_the_baseline(tmp_path, tiny_checkpoint):
    _artifact(tmp_path / "dir", hidden=16)  # the tiny model's stream has 32 entries
    p = _config(tmp_path, f"hf:{tiny_checkpoint}", "[{steer: {direction: d, layer: 1, alpha: 1}}]")
    with pytest.raises(ModelSpecError, match=r"cannot apply steer\(.*16 entries, the residual stream 32"):
        run_experiment(load_config(p), tmp_path / "out")
    store = Store(tmp_path / "ws" / "emlab.sqlite")
    assert store.counts()["samples"] > 0  # the baseline's answers were kept
    store.close()


@pytest.mark.parametrize("name,layers", [("persona-spanish.yaml", (10, 15)), ("persona-insecure.yaml", (15,)),
                                         ("paper-scale/persona-directions.yaml", (24,))])
def test_example_intervention_configs_are_valid(tmp_path, name, layers, shared_data, monkeypatch):
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[1] / "examples" / name)
    assert cfg.intervention_pairs and all("~" in a for a, _ in cfg.intervention_pairs)
    if name.startswith("paper-scale"):
        return  # its organism is a hub adapter, which the tests' offline hub cannot resolve
    monkeypatch.setenv("EMLAB_DATA_DIR", str(shared_data / "em"))
    for d in cfg.directions:  # the artifacts are made by `emlab directions extract`; stand-ins of the right layers
        cfg.directions[d] = str(_artifact(tmp_path / d, hidden=576, layers=layers))
    plan = plan_experiment(cfg)
    assert all(a.intervention is not None for a in plan.arms if "~" in a.name)
