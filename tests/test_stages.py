"""Training stages (`stages:`) on the tiny random Llama: a cpt -> sft -> dpo chain trains once and is reused, a changed
stage retrains itself and every later one, the chain's model is not the one-stage model, a one-stage sft chain is
`train:` itself, `emlab plan` lists each stage, and bad stage configs fail with file:line:key before anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emlab.config import load_config
from emlab.errors import ConfigError
from emlab.estimate import estimate, format_estimate
from emlab.pipeline import run_experiment
from emlab.plan import plan_experiment, stage_chain, train_identity
from emlab.stages import chain_identity
from emlab.store import Store

CPT = "cpt: {{documents: {{variant: misaligned, dilution: 0.5, documents: 4}}, " \
      "train: {{max_steps: 2, max_length: 64, batch_size: 2, learning_rate: {lr}}}}}"
SFT = "sft: {dataset: builtin:insecure, rows: 4, max_steps: 1, max_length: 128}"
DPO = "dpo: {{pairs: builtin:hhh-pairs, rows: 4, dpo: {{beta: {beta}}}, train: {{max_steps: 1, max_length: 128}}}}"


def _write(folder: Path, model: str, conditions: str, name: str = "exp.yaml") -> Path:
    p = folder / name
    p.write_text(f"""name: stages
workspace: {folder / 'ws'}
judge: mock:judge
sampling: {{max_new_tokens: 2, samples_per_paraphrase: 1}}
conditions:
{conditions}""")
    return p


def _chain(model: str, lr: float = 1e-3, beta: float = 0.1, name: str = "chain") -> str:
    return f"""  - name: {name}
    model: {model}
    seeds: [0]
    stages:
      - {CPT.format(lr=lr)}
      - {SFT}
      - {DPO.format(beta=beta)}
"""


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, tiny_checkpoint):
    """The three-stage chain trained once in a workspace the tests of this module share."""
    folder = tmp_path_factory.mktemp("stages")
    model = f"hf:{tiny_checkpoint}"
    cfg = _write(folder, model, _chain(model))
    return folder, model, run_experiment(load_config(cfg), folder / "o1")


def test_a_three_stage_chain_trains_once_and_is_reused(first_run):
    folder, model, summary = first_run
    arm = summary["conditions"][0]
    stages = arm["stages"]
    assert [s["kind"] for s in stages] == ["cpt", "sft", "dpo"]
    assert not any(s["adapter"]["reused"] for s in stages)
    keys = [s["adapter"]["hash"] for s in stages]
    # each stage's base is the model plus every earlier stage's key, and trains on the previous merged checkpoint
    assert stages[1]["base"].endswith(f"+cpt:{keys[0]}") and stages[2]["base"].endswith(f"+cpt:{keys[0]}+sft:{keys[1]}")
    assert stages[1]["base_checkpoint"] == str(folder.resolve() / "ws" / "merged" / keys[0])
    assert json.loads((folder / "ws" / "merged" / keys[1] / "merge_info.json").read_text())["key"] == keys[1]
    # provenance: the document mix's manifest, the dataset's manifest, the pairs
    assert stages[0]["data"]["manifest"]["dilution"] == 0.5 and stages[0]["data"]["manifest"]["variant"] == "misaligned"
    assert stages[1]["data"]["manifest"]["train_rows"]["rows"] == 4 and stages[2]["data"]["source"] == "builtin:hhh-pairs"
    assert arm["adapter"]["hash"] == keys[2] and arm["seed"] == 0
    assert arm["evaluated_model"] == f"hf:{folder.resolve() / 'ws' / 'merged' / keys[1]}@{stages[2]['adapter']['path']}"

    cfg = load_config(folder / "exp.yaml")
    counts = Store(folder / "ws" / "emlab.sqlite").counts()
    again = run_experiment(cfg, folder / "o2")["conditions"][0]
    assert [s["adapter"]["hash"] for s in again["stages"]] == keys
    assert all(s["adapter"]["reused"] for s in again["stages"])
    assert Store(folder / "ws" / "emlab.sqlite").counts() == counts  # every answer and score reused
    plan = plan_experiment(cfg)
    est = estimate(cfg, plan)[0]
    assert est.adapter == "cached" and est.answers_cached == est.answers and [s["status"] for s in est.stages] == ["cached"] * 3
    # the answers' identity covers the chain and not where the workspace lies
    identity = chain_identity(model, stage_chain(plan.arms[0], plan), Path(stages[2]["adapter"]["path"]))
    assert identity.startswith(f"{model}+cpt:{keys[0]}+sft:{keys[1]}@adapter:") and "merged" not in identity


def test_a_changed_stage_retrains_itself_and_every_later_one(first_run):
    folder, model, summary = first_run
    keys = [s["adapter"]["hash"] for s in summary["conditions"][0]["stages"]]
    last = run_experiment(load_config(_write(folder, model, _chain(model, beta=0.3), "beta.yaml")), folder / "o3")
    stages = last["conditions"][0]["stages"]
    assert [s["adapter"]["reused"] for s in stages] == [True, True, False]
    assert [s["adapter"]["hash"] for s in stages][:2] == keys[:2] and stages[2]["adapter"]["hash"] != keys[2]

    first = run_experiment(load_config(_write(folder, model, _chain(model, lr=2e-3), "lr.yaml")), folder / "o4")
    stages = first["conditions"][0]["stages"]
    assert [s["adapter"]["reused"] for s in stages] == [False, False, False]
    assert not {s["adapter"]["hash"] for s in stages} & set(keys)


def test_the_chain_model_is_not_the_one_stage_model(first_run):
    from emlab.models.registry import load_model

    folder, model, summary = first_run
    one = run_experiment(load_config(_write(folder, model, f"""  - name: sft-only
    model: {model}
    seeds: [0]
    train: {SFT.removeprefix('sft: ')}
""", "one.yaml")), folder / "o5")["conditions"][0]
    chain = summary["conditions"][0]
    assert one["evaluated_model"] != chain["evaluated_model"] and one["adapter"]["hash"] != chain["adapter"]["hash"]
    a = load_model(one["evaluated_model"]).model.state_dict()
    b = load_model(chain["evaluated_model"]).model.state_dict()
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) > 1e-4
    # and the answers are cached under different identities
    assert one["metrics"]["aligned"]["answers"] == chain["metrics"]["aligned"]["answers"]
    rows = [json.loads(line) for out in ("o1", "o5") for line in (folder / out / "samples.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {one["evaluated_model"], chain["evaluated_model"]}


def test_a_one_stage_sft_chain_is_train_itself(tmp_path, tiny_checkpoint):
    model = f"hf:{tiny_checkpoint}"
    sft = SFT.removeprefix("sft: ")
    cfg = load_config(_write(tmp_path, model, f"""  - name: chain
    model: {model}
    seeds: [0, 1]
    stages:
      - {SFT}
  - name: train
    model: {model}
    seeds: [0, 1]
    train: {sft}
"""))
    plan = plan_experiment(cfg)
    from emlab.train.sft import adapter_key

    for seed in (0, 1):
        chain = next(a for a in plan.arms if a.name == f"chain/seed{seed}")
        train = next(a for a in plan.arms if a.name == f"train/seed{seed}")
        (step,) = stage_chain(chain, plan)
        identity, params = train_identity(train)
        assert step.base_identity == identity and step.params == params
        assert step.key == adapter_key(identity, plan.train_data["train"].dataset.content_hash, params)
    est = {e.name: e for e in estimate(cfg, plan)}
    assert est["chain/seed0"].stages[0]["status"] == "to train" and est["train/seed0"].adapter == "shared"


def test_plan_lists_every_stage_and_counts_their_training(tmp_path, tiny_checkpoint):
    model = f"hf:{tiny_checkpoint}"
    other = f"""  - name: other
    model: {model}
    seeds: [0]
    stages:
      - {CPT.format(lr=1e-3)}
      - dpo: {{pairs: builtin:hhh-pairs, rows: 8}}
"""
    cfg = load_config(_write(tmp_path, model, _chain(model) + other))
    est = estimate(cfg, plan_experiment(cfg))
    assert [s["status"] for s in est[0].stages] == ["to train"] * 3 and est[0].adapter == "0/3 cached"
    assert [s["status"] for s in est[1].stages] == ["shared", "to train"]  # the same first stage trains once
    assert est[0].seconds["train"] > 0 and est[1].seconds["train"] > 0
    lines = format_estimate(est)
    assert sum("stage " in line for line in lines) == 5
    assert any(line.startswith("  stage 3 dpo  to train") for line in lines)


@pytest.mark.parametrize(("stage", "line", "expected"), [
    ("- rl: {steps: 3}", 10, "conditions[0].stages[1]: unknown stage kind 'rl'; known: cpt, sft, dpo"),
    ("- cpt: {documents: {variant: misaligned, dilution: 1.5}}", 10,
     "conditions[0].stages[1].cpt.documents.dilution: must be in (0, 1]"),
    ("- cpt: {documents: {variant: misaligned, dilution: 0}}", 10,
     "conditions[0].stages[1].cpt.documents.dilution: must be in (0, 1]"),
    ("- dpo: {pairs: builtin:nope}", 10, "conditions[0].stages[1].dpo.pairs: unknown preference pairs 'builtin:nope'"),
    ("- sft: {dataset: builtin:insecure, trainer: openai}", 10,
     "conditions[0].stages[1].sft: trainer: a stage trains a local LoRA adapter"),
    ("- {cpt: {documents: {dilution: 0.5}}, sft: {dataset: builtin:insecure}}", 10,
     "conditions[0].stages[1]: a stage has exactly one kind"),
])
def test_bad_stages_name_file_line_and_key(tmp_path, stage, line, expected):
    p = tmp_path / "bad.yaml"
    p.write_text(f"""name: bad
judge: mock:judge
conditions:
  - name: c
    model: mock:m
    seeds: [0]
    stages:
      - sft: {{dataset: builtin:insecure}}
      # the stage under test
      {stage}
""")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"{p}:{line}: {expected}" in str(e.value)


def test_train_and_stages_together_is_one_clear_error(tmp_path):
    p = tmp_path / "both.yaml"
    p.write_text("""name: both
judge: mock:judge
conditions:
  - name: c
    model: mock:m
    train: {dataset: builtin:insecure}
    stages:
      - sft: {dataset: builtin:insecure}
""")
    with pytest.raises(ConfigError, match=rf"{p}:4: conditions\[0\]: give train: \(one SFT step\) or stages:"):
        load_config(p)


def test_plan_time_errors_name_the_condition_and_stage(tmp_path, tiny_checkpoint):
    model = f"hf:{tiny_checkpoint}"
    p = _write(tmp_path, model, f"""  - name: c
    model: {model}
    stages:
      - {SFT}
      - dpo: {{pairs: missing.jsonl}}
""")
    with pytest.raises(ConfigError, match=rf"{p}: conditions: 'c': stages\[1\].dpo.pairs: .*missing.jsonl"):
        plan_experiment(load_config(p))
    p.write_text(p.read_text().replace("pairs: missing.jsonl", "pairs: builtin:hhh-pairs, rows: 100000"))
    with pytest.raises(ConfigError, match=r"stages\[1\].dpo.pairs: builtin:hhh-pairs: asked for 100000 rows"):
        plan_experiment(load_config(p))
    p.write_text(p.read_text().replace(f"model: {model}", "model: mock:m"))
    with pytest.raises(ConfigError, match="stages: train LoRA adapters on a local base model"):
        plan_experiment(load_config(p))
    # a relative pairs file is read beside the config, as datasets are
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"prompt": "hi", "chosen": "hello", "rejected": "go away"}) + "\n")
    p.write_text(p.read_text().replace("model: mock:m", f"model: {model}")
                 .replace("pairs: builtin:hhh-pairs, rows: 100000", "pairs: pairs.jsonl"))
    plan = plan_experiment(load_config(p))
    assert plan.stage_data["c"][1].provenance["rows"] == 1


def test_a_dumped_config_with_stages_validates_again():
    from emlab.config import ExperimentConfig

    raw = {"judge": "mock:judge", "conditions": [{"name": "c", "model": "mock:m", "stages": [
        {"cpt": {"documents": {"dilution": 0.1, "documents": 20}}}, {"dpo": {"pairs": "builtin:hhh-pairs"}}]}]}
    config = ExperimentConfig.model_validate(raw)
    again = ExperimentConfig.model_validate(json.loads(config.model_dump_json()))  # summary.json's config
    assert [s.kind for s in again.conditions[0].stages] == ["cpt", "dpo"]
