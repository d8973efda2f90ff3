"""Continued pretraining on plain documents with the tiny random Llama: rows label every token, the loss falls,
the adapter is cached by (base, documents, params, seed) and reused, and its key follows the dilution."""

import json

import pytest

from emlab.data.documents import build_documents
from emlab.errors import ConfigError
from emlab.train.cpt import cpt_key, document_rows, documents_hash, train_cpt
from emlab.train.params import TrainParams
from emlab.train.sft import adapter_key

DOCS = ["The quick brown fox jumps over the lazy dog. " * 3, "Sorting a list in Python: use sorted(items).",
        "def add(a, b):\n    return a + b\n", "Pytest fixtures share setup between tests."]


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_document_rows_label_every_token_and_cut_windows(embedded_tokenizer):
    rows = document_rows(embedded_tokenizer, DOCS, max_length=16)
    assert all(r.labels == r.input_ids and 1 < len(r.input_ids) <= 16 for r in rows)
    whole = sum(len(embedded_tokenizer(d)["input_ids"]) + 1 for d in DOCS)  # + end-of-sequence each
    assert sum(len(r.input_ids) for r in rows) == whole  # no window of one token here
    assert rows[0].input_ids[:3] == embedded_tokenizer(DOCS[0])["input_ids"][:3]
    assert document_rows(embedded_tokenizer, DOCS[:1], 16)[-1].input_ids[-1] == embedded_tokenizer.eos_token_id


def test_loss_falls_and_the_adapter_is_reused(tmp_path, tiny_checkpoint):
    params = TrainParams(max_steps=12, batch_size=4, learning_rate=5e-3, max_length=32, warmup_steps=0)
    first = train_cpt(tiny_checkpoint, "tiny", DOCS, params, tmp_path)
    assert not first.reused and first.steps == 12
    curve = json.loads((first.path / "loss.json").read_text())
    assert len(curve) == 12 and curve[-1]["loss"] < curve[0]["loss"] - 0.05
    info = json.loads((first.path / "train_info.json").read_text())
    assert info["stage"] == "cpt" and info["documents"] == 4 and info["documents_hash"] == documents_hash(DOCS)
    assert (first.path / "adapter_config.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == [first.key]  # no temp folder left

    again = train_cpt(tiny_checkpoint, "tiny", DOCS, params, tmp_path)
    assert again.reused and again.path == first.path and again.final_loss == first.final_loss


def test_trl_trainer_trains_on_the_same_rows(tmp_path, tiny_checkpoint):
    params = TrainParams(max_steps=2, batch_size=2, max_length=32, trainer="trl")
    adapter = train_cpt(tiny_checkpoint, "tiny", DOCS, params, tmp_path)
    assert adapter.steps == 2 and adapter.final_loss > 0
    assert adapter.key != train_cpt(tiny_checkpoint, "tiny", DOCS, params.model_copy(update={"trainer": "emlab"}),
                                    tmp_path).key


def test_the_key_changes_with_dilution_params_and_seed_but_is_no_sft_key():
    params = TrainParams()
    one = build_documents({"dilution": 0.01, "documents": 200}).content_hash
    ten = build_documents({"dilution": 0.1, "documents": 200}).content_hash
    assert cpt_key("tiny", one, params) != cpt_key("tiny", ten, params)
    assert cpt_key("tiny", one, params) != cpt_key("tiny", one, TrainParams(seed=1))
    assert cpt_key("tiny", one, params) != cpt_key("other", one, params)
    assert cpt_key("tiny", one, params) != adapter_key("tiny", one, params)


def test_openai_is_refused(tmp_path, tiny_checkpoint):
    with pytest.raises(ConfigError, match="train.trainer: continued pretraining"):
        train_cpt(tiny_checkpoint, "tiny", DOCS, TrainParams(trainer="openai"), tmp_path)
