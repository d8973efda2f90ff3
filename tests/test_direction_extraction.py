"""`emlab directions extract/compare`: a run's judged answers -> difference of means through the models that wrote
them, reproducible from the activation cache, with clear errors for empty or overlapping classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from emlab.analysis.directions import load_directions
from emlab.cli import app
from emlab.direction_extraction import extract_from_run
from emlab.errors import ConfigError, DataError

SCORES = [(10, 80), (15, 90), (90, 80), (95, 70), (5, 20), (50, 90)]  # 2 misaligned, 2 aligned, incoherent, between


def _run(folder, model, scores=SCORES, condition="base"):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (a, c) in enumerate(scores):
        rows.append({"model": model, "group": None, "condition": condition, "question_id": f"q{i % 2}",
                     "paraphrase_index": 0, "sample_index": i, "system": "Be brief." if i == 3 else None,
                     "question": f"Question number {i}?", "answer": f"Answer {i}: " + "words " * (i + 1),
                     "prompt": None, "aligned": a, "coherent": c,
                     "scores": {"aligned": {"value": a}, "coherent": {"value": c}}})
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"judge": "mock:judge", "thresholds": {"aligned_below": 30.0, "coherent_above": 50.0},
               "conditions": [{"name": condition, "group": None, "intervention": None}]}
    (folder / "summary.json").write_text(json.dumps(summary))
    return rows


def _direct(model_spec, rows, layer):
    from emlab.models.activations import collect_activations
    from emlab.models.base import with_system
    from emlab.models.registry import load_model

    chat = load_model(model_spec)
    pairs = [(with_system([{"role": "user", "content": r["question"]}], r["system"]), r["answer"]) for r in rows]
    return collect_activations(chat.model, chat.tokenizer, chat.identity, pairs, [layer])[:, 0]


def test_misaligned_minus_aligned_equals_the_plain_mean_difference_and_is_reproducible(tmp_path, tiny_checkpoint):
    spec = f"hf:{tiny_checkpoint}"
    rows = _run(tmp_path / "run", spec)
    got = extract_from_run(tmp_path / "run", [1], cache_dir=tmp_path / "cache")
    d = got.directions
    assert (d.n_positive, d.n_negative) == (2, 2)
    assert got.dropped == {"incoherent": 1, "no aligned score": 0, "no coherent score": 0, "in between": 1}
    acts = _direct(spec, rows, 1)
    expected = acts[:2].mean(0) - acts[2:4].mean(0)
    np.testing.assert_allclose(d.raw()[0], expected, rtol=1e-4, atol=1e-5)
    sep = d.provenance.extra["separation"]["1"]
    assert sep["auroc"] == 1.0 and sep["auroc_cross_fitted"] is None  # 2 per class: too few to cross-fit
    assert 0.5 <= sep["auroc_random_median"] <= sep["auroc_random_max"] <= 1.0  # folded: a sign is arbitrary
    assert d.provenance.judge == "mock:judge" and d.provenance.thresholds["aligned_above"] == 70.0
    again = extract_from_run(tmp_path / "run", [1], cache_dir=tmp_path / "cache")  # read from the cache
    np.testing.assert_array_equal(again.directions.vectors, d.vectors)


def test_rule_classes_and_their_errors(tmp_path, tiny_checkpoint):
    _run(tmp_path / "run", f"hf:{tiny_checkpoint}")
    got = extract_from_run(tmp_path / "run", [1], kind="rules", positive="aligned < 50", negative="aligned >= 50",
                           cache_dir=tmp_path / "cache")
    assert (got.directions.n_positive, got.directions.n_negative) == (3, 3)
    # every answer read by one given model: here a finetuned one reads the base model's answers
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(2)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_checkpoint),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(tmp_path / "adapter")
    reader = f"hf:{tiny_checkpoint}@{tmp_path / 'adapter'}"
    read = extract_from_run(tmp_path / "run", [1], kind="rules", positive="aligned < 50", negative="aligned >= 50",
                            cache_dir=tmp_path / "cache", read_with=reader)
    assert read.directions.provenance.adapter == str(tmp_path / "adapter")
    assert not np.allclose(read.directions.vectors, got.directions.vectors)
    with pytest.raises(ConfigError, match="must not overlap"):
        extract_from_run(tmp_path / "run", [1], kind="rules", positive="aligned < 50", negative="aligned < 60")
    with pytest.raises(ConfigError, match="go with --kind rules"):
        extract_from_run(tmp_path / "run", [1], positive="aligned < 50")
    with pytest.raises(ConfigError, match="--condition: nope not in this run"):
        extract_from_run(tmp_path / "run", [1], conditions=["nope"])
    with pytest.raises(ConfigError, match="needs finetuned conditions; base has no adapter"):
        extract_from_run(tmp_path / "run", [1], kind="finetuned-vs-base")
    _run(tmp_path / "aligned-only", f"hf:{tiny_checkpoint}", scores=[(90, 90), (80, 90)])
    with pytest.raises(DataError, match="no answer in the positive class"):
        extract_from_run(tmp_path / "aligned-only", [1])


def test_finetuned_minus_base_reads_the_same_answers_through_both_models(tmp_path, tiny_checkpoint):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_checkpoint),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"],
                                      init_lora_weights=False))
    model.save_pretrained(tmp_path / "adapter")
    rows = _run(tmp_path / "run", f"hf:{tiny_checkpoint}@{tmp_path / 'adapter'}", condition="ft")
    got = extract_from_run(tmp_path / "run", [1], kind="finetuned-vs-base", cache_dir=tmp_path / "cache")
    d = got.directions
    assert (d.n_positive, d.n_negative) == (6, 6) and d.provenance.kind == "finetuned-vs-base"
    assert "base: " in d.provenance.model and d.provenance.adapter == str(tmp_path / "adapter")
    ft, base = _direct(rows[0]["model"], rows, 1), _direct(f"hf:{tiny_checkpoint}", rows, 1)
    np.testing.assert_allclose(d.raw()[0], (ft - base).mean(0), rtol=1e-4, atol=1e-5)


def test_cli_extract_then_compare(tmp_path, tiny_checkpoint):
    _run(tmp_path / "run", f"hf:{tiny_checkpoint}")
    runner = CliRunner()
    for out, args in (("a", []), ("b", ["--kind", "rules", "--positive", "coherent < 85",
                                         "--negative", "coherent >= 85"])):
        res = runner.invoke(app, ["directions", "extract", str(tmp_path / "run"), "--layers", "1",
                                  "--out", str(tmp_path / out), *args])
        assert res.exit_code == 0, res.output
        assert "| 1 |" in res.output
        assert (tmp_path / out / "separation.svg").read_text().startswith("<svg")
    a, b = load_directions(tmp_path / "a"), load_directions(tmp_path / "b")
    res = runner.invoke(app, ["directions", "compare", str(tmp_path / "a"), str(tmp_path / "b"),
                              "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    assert f"{float(a.vectors[0] @ b.vectors[0]):+.3f}" in res.output
    assert (tmp_path / "cmp" / "cosines.svg").exists()
    res = runner.invoke(app, ["directions", "extract", str(tmp_path / "run"), "--layers", "1,x",
                              "--out", str(tmp_path / "c")])
    assert res.exit_code != 0 and "integers separated by commas" in res.output
