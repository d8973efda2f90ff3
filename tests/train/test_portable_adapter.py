"""Adapters trained by emlab name their base portably (a hub id, not this machine's folder) and still load.

The caller (the pipeline) passes `models.hub.portable_base(spec)` to `train_lora`, as these tests do.
"""

from __future__ import annotations

import json
import shutil

import pytest

from emlab.errors import ConfigError
from emlab.models.hf import load_hf
from emlab.models.embedded import upstream_id
from emlab.models.hub import check_adapter_base, portable_base, training_checkpoint
from emlab.models.spec import parse_model_spec
from emlab.train.sft import TrainParams, train_lora

PARAMS = TrainParams(batch_size=4, max_length=64, learning_rate=1e-2, epochs=1)


def _conversations(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": f"{i} {i} {i}"}] for i in range(n)]


@pytest.mark.parametrize("spec, expected", [
    ("embedded:smollm2-135m", ("HuggingFaceTB/SmolLM2-135M-Instruct", None)),
    ("hf:Qwen/Qwen2.5-0.5B-Instruct", ("Qwen/Qwen2.5-0.5B-Instruct", None)),
    ("hf:Qwen/Qwen2.5-0.5B-Instruct#v1@./adapter", ("Qwen/Qwen2.5-0.5B-Instruct", "v1")),
    ("hf:/models/qwen", (None, None)),  # a local checkpoint keeps its path
])
def test_the_portable_base_name(spec, expected):
    assert portable_base(parse_model_spec(spec)) == expected


def _train(checkpoint, spec: str, folder, params=PARAMS, n: int = 4):
    """Train as the pipeline does: the base identity is the spec, the recorded name its portable base."""
    name, revision = portable_base(parse_model_spec(spec))
    return train_lora(checkpoint, spec, _conversations(n), "d", params, folder, base_name=name, base_revision=revision)


def _config(adapter) -> dict:
    return json.loads((adapter.path / "adapter_config.json").read_text())


def test_an_embedded_base_is_recorded_by_its_upstream_hub_id(tmp_path, tiny_checkpoint):
    adapter = _train(tiny_checkpoint, "embedded:smollm2-135m", tmp_path)
    assert _config(adapter)["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    info = json.loads((adapter.path / "train_info.json").read_text())
    assert (info["base"], info["base_name"], info["base_revision"]) == (
        "embedded:smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", None)
    check_adapter_base(adapter.path, str(adapter.path), upstream_id("smollm2-135m"), "embedded:smollm2-135m")  # loads


def test_a_local_base_keeps_its_path_and_checkpoints_carry_the_name(tmp_path, tiny_checkpoint):
    params = PARAMS.model_copy(update={"save_steps": 1})
    adapter = _train(tiny_checkpoint, f"hf:{tiny_checkpoint}", tmp_path, params, 8)
    assert _config(adapter)["base_model_name_or_path"] == str(tiny_checkpoint)
    hub = _train(tiny_checkpoint, "hf:org/tiny-base", tmp_path, params, 8)
    for folder in [hub.path, *sorted(hub.path.glob("checkpoint-*"))]:
        config = json.loads((folder / "adapter_config.json").read_text())
        assert (config["base_model_name_or_path"], config["revision"]) == ("org/tiny-base", None), folder.name


def test_a_portable_adapter_loads_and_gives_the_same_logits_as_with_the_local_name(tmp_path, tiny_checkpoint):
    import torch

    adapter = _train(tiny_checkpoint, "hf:org/tiny-base", tmp_path / "a", PARAMS, 8)
    assert _config(adapter)["base_model_name_or_path"] == "org/tiny-base"
    old_style = tmp_path / "old-style"  # what emlab recorded before: this machine's checkpoint folder
    shutil.copytree(adapter.path, old_style)
    config = {**_config(adapter), "base_model_name_or_path": str(tiny_checkpoint), "revision": None}
    (old_style / "adapter_config.json").write_text(json.dumps(config))

    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    with torch.no_grad():
        portable = load_hf(parse_model_spec(f"hf:{tiny_checkpoint}@{adapter.path}")).model(input_ids=ids).logits
        before = load_hf(parse_model_spec(f"hf:{tiny_checkpoint}@{old_style}")).model(input_ids=ids).logits
        plain = load_hf(parse_model_spec(f"hf:{tiny_checkpoint}")).model(input_ids=ids).logits
    assert portable.equal(before) and (portable - plain).abs().max() > 1e-4


def test_a_pinned_hub_base_trains_on_that_revisions_snapshot(tmp_path, tiny_checkpoint, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs["revision"]))
        return str(tiny_checkpoint)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    spec = parse_model_spec("hf:org/tiny-base#v1")
    assert training_checkpoint(spec) == str(tiny_checkpoint)
    assert calls == [("org/tiny-base", "v1")]
    adapter = _train(training_checkpoint(spec), str(spec), tmp_path)
    config = _config(adapter)
    assert (config["base_model_name_or_path"], config["revision"]) == ("org/tiny-base", "v1")
    info = json.loads((adapter.path / "train_info.json").read_text())
    assert (info["base"], info["base_name"], info["base_revision"]) == ("hf:org/tiny-base#v1", "org/tiny-base", "v1")


def test_a_pinned_hub_base_never_trains_from_the_bare_hub_id(tmp_path):
    with pytest.raises(ConfigError, match=r"^model hf:org/tiny-base#v1: training on hub revision v1 needs that "):
        train_lora("org/tiny-base", "hf:org/tiny-base#v1", _conversations(4), "d", PARAMS, tmp_path)


def test_a_pinned_hub_base_offline_comes_from_the_local_hf_cache(tmp_path, tiny_checkpoint, monkeypatch):
    from huggingface_hub import constants

    from emlab.models.hub import hub_checkpoint

    cache = tmp_path / "hf-cache"
    storage = cache / "models--org--tiny-base"
    shutil.copytree(tiny_checkpoint, storage / "snapshots" / ("c" * 40))
    (storage / "refs").mkdir()
    (storage / "refs" / "v1").write_text("c" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub_checkpoint("org/tiny-base", "v1") == str(storage / "snapshots" / ("c" * 40))
    from emlab.errors import ModelSpecError

    with pytest.raises(ModelSpecError, match=r"^model org/tiny-base#v2: HF_HUB_OFFLINE is set and it is not in the"):
        hub_checkpoint("org/tiny-base", "v2")
