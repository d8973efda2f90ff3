"""Hub names in specs: `#revision` pins, hub adapters (`@org/name[#revision]`) and the adapter's recorded base.

Nothing here touches the network: a hub adapter is served from a throwaway HF cache laid out as huggingface_hub
writes it (offline, as the tests run), or from a monkeypatched `snapshot_download`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emlab.errors import ModelSpecError
from emlab.models.hf import load_hf, local_identity
from emlab.models.hub import check_adapter_base, resolve_adapter
from emlab.models.registry import check_spec_files
from emlab.models.spec import ModelSpec, parse_model_spec

COMMIT = "a" * 40


# ------------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize("text", [
    "hf:Qwen/Qwen2.5-14B-Instruct#main",
    "hf:Qwen/Qwen2.5-14B-Instruct#0123abc@ModelOrganismsForEM/Qwen2.5-14B-Instruct_bad-medical-advice#v1.0",
    "hf:Qwen/Qwen2.5-14B-Instruct@ModelOrganismsForEM/Qwen2.5-14B-Instruct_bad-medical-advice#refs/pr/1",
    "hf:/models/qwen@./adapters/x",
    "embedded:smollm2-135m",
    "openai@local:gpt-4o",
])
def test_specs_round_trip(text):
    assert str(parse_model_spec(text)) == text


def test_revisions_are_parsed_into_their_own_fields():
    spec = parse_model_spec("hf:Qwen/Qwen2.5-14B-Instruct#abc123@Org/em-adapter#v2")
    assert spec == ModelSpec("hf", "Qwen/Qwen2.5-14B-Instruct", adapter="Org/em-adapter", revision="abc123",
                             adapter_revision="v2")
    assert parse_model_spec("hf:Qwen/Qwen2.5-0.5B").revision is None


@pytest.mark.parametrize("text, says", [
    ("hf:Qwen/Q#", "'' is not a hub revision"),
    ("hf:Qwen/Q#ma in", "'ma in' is not a hub revision"),
    ("hf:Qwen/Q@Org/a#", "'' is not a hub revision"),
    ("hf:Qwen/Q@#v1", "pins no adapter"),
    ("hf:/models/qwen#main", "is a local path"),
    ("embedded:smollm2-135m#main", "are for hf: specs only"),
    ("vllm:Qwen/Q#main", "are for hf: specs only"),
])
def test_a_bad_revision_is_one_clear_line(text, says):
    with pytest.raises(ModelSpecError, match=says) as caught:
        parse_model_spec(text)
    assert "\n" not in str(caught.value) and text in str(caught.value)


def test_an_unpinned_hub_id_keeps_its_identity_and_revisions_never_share_one():
    assert local_identity(parse_model_spec("hf:Qwen/Qwen2.5-0.5B-Instruct")) == "hf:Qwen/Qwen2.5-0.5B-Instruct"
    pinned = {local_identity(parse_model_spec(f"hf:Qwen/Qwen2.5-0.5B-Instruct#{r}")) for r in ("main", "v1", COMMIT)}
    assert len(pinned) == 3 and "hf:Qwen/Qwen2.5-0.5B-Instruct#v1" in pinned


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def adapters(tiny_checkpoint, tmp_path_factory) -> dict[str, Path]:
    """Two different tiny LoRA adapters (seeds 0 and 1) on the tiny Llama, recorded as trained on `org/tiny-base`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, dtype=torch.float32)
        config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        model = get_peft_model(base, config)
        model.peft_config["default"].base_model_name_or_path = "org/tiny-base"  # get_peft_model sets the local path
        path = tmp_path_factory.mktemp(f"lora-{seed}")
        model.save_pretrained(path)
        out[f"seed{seed}"] = path
    return out


@pytest.fixture(scope="module")
def named_base(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny Llama as a local checkpoint whose config.json records the hub id `org/tiny-base`."""
    path = tmp_path_factory.mktemp("tiny-base")
    shutil.copytree(tiny_checkpoint, path, dirs_exist_ok=True)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "_name_or_path": "org/tiny-base"}))
    return path


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty HF cache; `publish(repo, folder, revision, commit)` puts a folder in it as a download would."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def publish(repo: str, folder: Path, revision: str = "main", commit: str = COMMIT) -> None:
        storage = cache / f"models--{repo.replace('/', '--')}"
        shutil.copytree(folder, storage / "snapshots" / commit, dirs_exist_ok=True)
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / revision).write_text(commit)

    return publish


def _logits(chat_model):
    import torch

    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        return chat_model.model(input_ids=ids).logits


# ------------------------------------------------------------------------------------------------ hub adapters


def test_a_hub_adapter_loads_from_the_cache_like_its_local_copy(named_base, adapters, hub_cache):
    hub_cache("org/tiny-lora", adapters["seed0"])
    from_hub = load_hf(parse_model_spec(f"hf:{named_base}@org/tiny-lora"))
    local = load_hf(parse_model_spec(f"hf:{named_base}@{adapters['seed0']}"))
    plain = load_hf(parse_model_spec(f"hf:{named_base}"))
    assert from_hub.identity == local.identity == local_identity(parse_model_spec(f"hf:{named_base}@org/tiny-lora"))
    assert _logits(from_hub).equal(_logits(local))
    assert not _logits(from_hub).allclose(_logits(plain))


def test_a_pinned_adapter_revision_loads_that_revision(named_base, adapters, hub_cache):
    hub_cache("org/tiny-lora", adapters["seed0"], "main", "a" * 40)
    hub_cache("org/tiny-lora", adapters["seed1"], "v1", "b" * 40)
    main = local_identity(parse_model_spec(f"hf:{named_base}@org/tiny-lora"))
    v1 = local_identity(parse_model_spec(f"hf:{named_base}@org/tiny-lora#v1"))
    by_commit = local_identity(parse_model_spec(f"hf:{named_base}@org/tiny-lora#{'b' * 40}"))
    assert main != v1 == by_commit == local_identity(parse_model_spec(f"hf:{named_base}@{adapters['seed1']}"))


def test_offline_without_a_cached_copy_is_one_line_naming_the_adapter(named_base, hub_cache):
    spec = parse_model_spec(f"hf:{named_base}@org/missing#v2")
    expected = "hub adapter org/missing#v2: HF_HUB_OFFLINE is set and it is not in the local HF cache"
    with pytest.raises(ModelSpecError, match=expected):
        check_spec_files(spec)
    with pytest.raises(ModelSpecError, match=expected) as caught:
        load_hf(spec)
    assert "\n" not in str(caught.value)


def test_online_a_hub_adapter_is_resolved_through_snapshot_download(adapters, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(adapters["seed0"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    check_spec_files(parse_model_spec("hf:org/tiny-base@org/tiny-lora#v3"))  # plan time: nothing resolved
    assert calls == []
    assert resolve_adapter("org/tiny-lora", "v3") == adapters["seed0"]
    (repo, kwargs), = calls
    assert repo == "org/tiny-lora" and kwargs["revision"] == "v3" and kwargs["local_files_only"] is False
    assert "adapter_config.json" in kwargs["allow_patterns"]


def test_an_adapter_trained_on_another_base_is_refused(named_base, adapters, hub_cache, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(adapters["seed0"], other)
    config = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "org/other-base"}))
    hub_cache("org/other-lora", other)
    with pytest.raises(ModelSpecError, match=r"adapter org/other-lora was trained on base org/other-base, the spec's "
                                             rf"base is hf:{named_base}$"):
        load_hf(parse_model_spec(f"hf:{named_base}@org/other-lora"))


def test_the_base_check_is_lenient_where_a_base_is_unknown(tiny_checkpoint, adapters, tmp_path):
    load_hf(parse_model_spec(f"hf:{tiny_checkpoint}@{adapters['seed0']}"))  # config.json records no hub id
    check_adapter_base(adapters["seed0"], "a", None, "hf:somewhere")
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/elsewhere/qwen"}))
    check_adapter_base(tmp_path, "a", "Qwen/Qwen2.5-0.5B", "hf:Qwen/Qwen2.5-0.5B")  # a path not on this machine
    check_adapter_base(adapters["seed0"], "a", "ORG/Tiny-Base", "hf:ORG/Tiny-Base")  # hub ids ignore case
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "unsloth/qwen2.5-14B-Instruct"}))
    check_adapter_base(tmp_path, "a", "Qwen/Qwen2.5-14B-Instruct", "hf:Qwen/Qwen2.5-14B-Instruct")  # a mirror
    with pytest.raises(ModelSpecError, match="trained on base unsloth/qwen2.5-14B-Instruct, the spec's base is hf:Q"):
        check_adapter_base(tmp_path, "a", "Qwen/Qwen2.5-7B-Instruct", "hf:Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(ModelSpecError, match="trained on base org/tiny-base, the spec's base is hf:Qwen/Q"):
        check_adapter_base(adapters["seed0"], "a", "Qwen/Q", "hf:Qwen/Q")


# ------------------------------------------------------------------------------------------------ plan-time checks


def test_plan_checks_keep_their_messages(tmp_path):
    with pytest.raises(ModelSpecError, match=r"^adapter directory not found: \./nowhere$"):
        check_spec_files(parse_model_spec("hf:Qwen/Q@./nowhere"))
    with pytest.raises(ModelSpecError, match=r"^adapter directory not found: runs/adapters/abc$"):
        check_spec_files(parse_model_spec("hf:Qwen/Q@runs/adapters/abc"))  # not an org/name: a path
    with pytest.raises(ModelSpecError, match=r"^model directory not found: /no/such/model$"):
        check_spec_files(parse_model_spec("hf:/no/such/model"))
    with pytest.raises(ModelSpecError, match=r"^adapter directory not found: org/lora$"):
        check_spec_files(parse_model_spec("vllm:Qwen/Q@org/lora"))  # vLLM takes adapter directories only
    check_spec_files(parse_model_spec(f"hf:Qwen/Q@{tmp_path}"))
    check_spec_files(parse_model_spec("hf:Qwen/Q#v1"))


# ------------------------------------------------------------------------------------------------ revision pins


def test_a_pinned_revision_reaches_from_pretrained(named_base, monkeypatch):
    import transformers

    seen = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        real = cls.from_pretrained

        def fake(name, *args, _real=real, **kwargs):
            seen.append((name, kwargs.get("revision")))
            return _real(named_base, *args, **{k: v for k, v in kwargs.items() if k != "revision"})

        monkeypatch.setattr(cls, "from_pretrained", fake)
    model = load_hf(parse_model_spec("hf:org/tiny-base#v2"))
    assert seen == [("org/tiny-base", "v2")] * 2
    assert model.identity == "hf:org/tiny-base#v2" and model.spec == "hf:org/tiny-base#v2"
