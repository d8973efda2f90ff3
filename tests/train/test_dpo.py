"""DPO through TRL on the tiny random Llama: two steps on the built-in HHH pairs, the adapter cached and reused,
its key following the data and the DPO parameters."""

import json

import pytest
from pydantic import ValidationError

from emlab.data.hhh import load_pairs
from emlab.errors import ConfigError
from emlab.train.dpo import DpoParams, dpo_key, train_dpo
from emlab.train.params import TrainParams


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_two_steps_on_hhh_pairs_then_reuse(tmp_path, tiny_checkpoint):
    pairs = load_pairs("builtin:hhh-pairs", rows=4)
    params = TrainParams(max_steps=2, batch_size=4, max_length=128, learning_rate=1e-2, warmup_steps=0)
    adapter = train_dpo(tiny_checkpoint, "tiny", pairs.pairs, params, tmp_path)
    assert not adapter.reused and adapter.steps == 2
    curve = json.loads((adapter.path / "loss.json").read_text())
    # step 1: the fresh LoRA is the reference, so the loss is log 2; step 2 (same batch) prefers chosen more
    assert curve[0]["loss"] == pytest.approx(0.6931, abs=1e-3) and curve[1]["loss"] < curve[0]["loss"] - 0.01
    info = json.loads((adapter.path / "train_info.json").read_text())
    assert info["stage"] == "dpo" and info["pairs_hash"] == pairs.content_hash and info["rows"] == 4
    assert (adapter.path / "adapter_config.json").exists() and (adapter.path / "adapter_model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == [adapter.key]

    again = train_dpo(tiny_checkpoint, "tiny", pairs.pairs, params, tmp_path)
    assert again.reused and again.path == adapter.path


def test_the_key_follows_data_and_dpo_params():
    params = TrainParams()
    one, two = load_pairs("builtin:hhh-pairs", rows=8), load_pairs("builtin:hhh-pairs", rows=9)
    k = dpo_key("tiny", one.content_hash, params, DpoParams())
    assert k != dpo_key("tiny", two.content_hash, params, DpoParams())
    assert k != dpo_key("tiny", one.content_hash, params, DpoParams(beta=0.5))
    assert k != dpo_key("tiny", one.content_hash, TrainParams(seed=1), DpoParams())
    assert k == dpo_key("tiny", one.content_hash, TrainParams(trainer="trl"), DpoParams())


def test_bad_settings(tmp_path, tiny_checkpoint):
    with pytest.raises(ValidationError):
        DpoParams(beta=0)
    with pytest.raises(ConfigError, match="train.trainer: DPO"):
        train_dpo(tiny_checkpoint, "tiny", [{"prompt": "a", "chosen": "b", "rejected": "c"}],
                  TrainParams(trainer="openai"), tmp_path)
