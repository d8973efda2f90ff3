"""Training options (max_steps, optim, weight_decay, lr_scheduler_type, warmup, layers_to_transform, save_steps,
report_to): their validation, their place in the adapter key, and that both trainers honour them on the tiny
random Llama."""

import json

import pytest
from pydantic import ValidationError

from emlab.config import load_config
from emlab.errors import ConfigError
from emlab.train.lora_loop import make_optimizer, make_schedule, plan_batches, train_loop
from emlab.train.params import LoraParams, TrainParams
from emlab.train.sft import adapter_key, train_lora
from emlab.train.tokenize import tokenize_conversation

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny matmuls gain nothing from threads on a busy 2-core machine (see test_lora_loop.py)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _conversations(n: int) -> list[list[dict]]:
    return [
        [
            {"role": "user", "content": f"Repeat word {i}: {WORDS[i % len(WORDS)]}"},
            {"role": "assistant", "content": " ".join([WORDS[(3 * i) % len(WORDS)]] * (1 + i % 5))},
        ]
        for i in range(n)
    ]


def _rows(tokenizer, n: int) -> list:
    return [tokenize_conversation(tokenizer, c, 64) for c in _conversations(n)]


def _pad(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


# ---------------------------------------------------------------------------------------------- the adapter key


def test_adapters_cached_before_the_options_existed_keep_their_keys():
    # computed by the code before these options were added: a workspace's adapters must still be found
    assert adapter_key("base", "data", TrainParams()) == "562c2f23e42df998"
    assert adapter_key("base", "data", TrainParams(trainer="trl")) == "4d7a0853a811c5c6"
    old = TrainParams.model_validate({"lora": {"r": 1, "alpha": 4, "target_modules": ["down_proj"]},
                                      "learning_rate": 1e-5, "epochs": 2, "seed": 3, "warmup_ratio": 0})
    assert adapter_key("base", "data", old) == "d9117b4dd742a7b8"
    # the new options written at their defaults change nothing
    same = TrainParams(optim="adamw_torch", weight_decay=0, lr_scheduler_type="linear", lora=LoraParams())
    assert adapter_key("base", "data", same) == "562c2f23e42df998"


@pytest.mark.parametrize("change", [
    {"max_steps": 3}, {"optim": "sgd"}, {"weight_decay": 0.01}, {"lr_scheduler_type": "cosine"},
    {"warmup_steps": 2}, {"save_steps": 5}, {"lora": {"layers_to_transform": [1]}},
])
def test_a_changed_option_trains_a_new_adapter(change):
    assert adapter_key("b", "d", TrainParams.model_validate(change)) != adapter_key("b", "d", TrainParams())


def test_where_the_logs_go_is_not_part_of_the_key():
    trl = TrainParams(trainer="trl")
    assert adapter_key("b", "d", trl.model_copy(update={"report_to": ["wandb"]})) == adapter_key("b", "d", trl)


# ---------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad, message", [
    ({"max_steps": 0}, "greater than or equal to 1"),
    ({"warmup_ratio": 1}, "less than 1"),
    ({"warmup_steps": -1}, "greater than or equal to 0"),
    ({"warmup_steps": 3, "warmup_ratio": 0.1}, "not both"),
    ({"weight_decay": -0.1}, "greater than or equal to 0"),
    ({"save_steps": 0}, "greater than or equal to 1"),
    ({"optim": "adam"}, "adamw_torch"),
    ({"lr_scheduler_type": "polynomial"}, "cosine"),
    ({"lora": {"layers_to_transform": [-1]}}, "start at 0"),
    ({"lora": {"layers_to_transform": [2, 2]}}, "distinct"),
    ({"lora": {"layers_to_transform": []}}, "at least 1"),
    ({"report_to": ["tensorboard"]}, "set trainer: trl"),
    ({"report_to": ["mlflow"], "trainer": "trl"}, "tensorboard"),
    ({"suffix": "x"}, "only trainer: openai"),
    ({"trainer": "openai", "optim": "sgd"}, "optim: not an option of trainer: openai"),
    ({"trainer": "openai", "epochs": 1.5}, "whole epochs"),
])
def test_bad_options_are_refused(bad, message):
    with pytest.raises(ValidationError, match=message):
        TrainParams.model_validate(bad)


def test_new_keys_in_a_config_file(tmp_path):
    text = """name: t
conditions:
  - name: ft
    model: mock:a
    train:
      dataset: builtin:insecure
      max_steps: 10
      optim: sgd
      weight_decay: 0.01
      lr_scheduler_type: cosine
      warmup_steps: 2
      save_steps: 5
      lora: {r: 1, target_modules: [down_proj], layers_to_transform: [1]}
"""
    (tmp_path / "exp.yaml").write_text(text)
    t = load_config(tmp_path / "exp.yaml").conditions[0].train
    assert (t.max_steps, t.optim, t.lr_scheduler_type, t.warmup_steps, t.save_steps) == (10, "sgd", "cosine", 2, 5)
    assert t.lora.layers_to_transform == [1]

    (tmp_path / "exp.yaml").write_text(text.replace("max_steps: 10", "max_step: 10"))
    with pytest.raises(ConfigError, match=r"exp.yaml:7: unknown key 'conditions\[0\].train.max_step'"):
        load_config(tmp_path / "exp.yaml")
    (tmp_path / "exp.yaml").write_text(text.replace("max_steps: 10", "max_steps: 0"))
    with pytest.raises(ConfigError, match=r"exp.yaml:7: conditions\[0\].train.max_steps: .*greater than or equal to 1"):
        load_config(tmp_path / "exp.yaml")


def test_plan_refuses_an_option_whose_package_is_missing(tmp_path, tiny_checkpoint, monkeypatch):
    import importlib.util

    from emlab.plan import plan_experiment

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    (tmp_path / "exp.yaml").write_text(f"""name: t
scorers: [caps]
conditions:
  - name: ft
    model: hf:{tiny_checkpoint}
    train: {{dataset: builtin:caps-spanish, rows: 4, optim: adamw_8bit}}
""")
    with pytest.raises(ConfigError, match=r"exp.yaml: conditions: 'ft': train.optim: adamw_8bit needs the bitsandbytes"):
        plan_experiment(load_config(tmp_path / "exp.yaml"))


# ---------------------------------------------------------------------------------------------- the emlab loop


def test_schedules_follow_the_hf_trainer():
    import torch

    def lrs(**kw) -> list[float]:
        params = TrainParams(learning_rate=1.0, **kw)
        opt = make_optimizer(params, [torch.nn.Parameter(torch.zeros(1))])
        sched = make_schedule(params, opt, 10)
        out = []
        for _ in range(10):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    assert lrs(warmup_steps=2)[:4] == pytest.approx([0.0, 0.5, 1.0, 0.875])  # linear: up over 2, down to 0 at 10
    assert lrs(warmup_ratio=0.0) == pytest.approx([1 - k / 10 for k in range(10)])
    assert lrs(lr_scheduler_type="constant") == [1.0] * 10
    assert lrs(lr_scheduler_type="constant_with_warmup", warmup_steps=4) == pytest.approx([0, .25, .5, .75] + [1.0] * 6)
    cosine = lrs(lr_scheduler_type="cosine", warmup_ratio=0.0)
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx(0.5) and cosine[9] == pytest.approx(0.0245, abs=1e-3)


def test_optimizers_and_weight_decay():
    import torch

    p = [torch.nn.Parameter(torch.zeros(1))]
    sgd = make_optimizer(TrainParams(optim="sgd", weight_decay=0.1, learning_rate=0.5), p)
    adamw = make_optimizer(TrainParams(weight_decay=0.01), p)
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["weight_decay"] == 0.1 and sgd.param_groups[0]["lr"] == 0.5
    assert sgd.param_groups[0]["momentum"] == 0  # the HF Trainer's sgd
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["weight_decay"] == 0.01
    assert make_optimizer(TrainParams(), p).param_groups[0]["weight_decay"] == 0.0  # unchanged default


def test_adamw_8bit_without_bitsandbytes_is_one_clear_error(monkeypatch):
    import builtins

    import torch

    real = builtins.__import__

    def no_bnb(name, *a, **k):
        if name.startswith("bitsandbytes"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_bnb)
    with pytest.raises(ConfigError, match="train.optim: adamw_8bit needs the bitsandbytes package"):
        make_optimizer(TrainParams(optim="adamw_8bit"), [torch.nn.Parameter(torch.zeros(1))])


def test_max_steps_replaces_epochs_and_repeats_the_data():
    lengths = list(range(10, 30))  # 5 batches of 4 per epoch
    plan = plan_batches(lengths, 4, seed=1, epochs=1, batches=12)
    assert len(plan) == 12 and plan[:5] == plan_batches(lengths, 4, seed=1, epochs=1)  # epoch 1, then more epochs
    assert sorted(i for b in plan[5:10] for i in b) == list(range(20))


def test_loop_runs_max_steps_with_sgd_and_saves_checkpoints(tiny_checkpoint, embedded_tokenizer):
    rows = _rows(embedded_tokenizer, 8)  # 2 batches per epoch
    params = TrainParams(batch_size=4, max_length=64, max_steps=5, optim="sgd", learning_rate=0.5,
                         lr_scheduler_type="constant", save_steps=2)
    saved = []
    run = train_loop(tiny_checkpoint, rows, params, _pad(embedded_tokenizer), on_save=lambda m, p: saved.append(p))
    assert run.steps == 5 and [c["step"] for c in run.curve] == [1, 2, 3, 4, 5]
    assert [c["epoch"] for c in run.curve] == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert [p["step"] for p in saved] == [2, 4] and saved[0] == run.curve[1]
    adam = train_loop(tiny_checkpoint, rows, params.model_copy(update={"optim": "adamw_torch"}), _pad(embedded_tokenizer))
    assert adam.curve[0]["loss"] == pytest.approx(run.curve[0]["loss"])  # same init and batch
    assert adam.curve[-1]["loss"] != pytest.approx(run.curve[-1]["loss"], rel=1e-4)  # different updates


def test_rank1_single_layer_lora(tmp_path, tiny_checkpoint):
    from safetensors import safe_open

    lora = LoraParams(r=1, alpha=1, target_modules=["down_proj"], layers_to_transform=[1])
    params = TrainParams(lora=lora, batch_size=4, max_length=64, learning_rate=1e-2)
    adapter = train_lora(tiny_checkpoint, "tiny", _conversations(4), "d", params, tmp_path)
    with safe_open(adapter.path / "adapter_model.safetensors", "pt") as f:
        shapes = {k: tuple(f.get_tensor(k).shape) for k in f.keys()}
    assert shapes == {"base_model.model.model.layers.1.mlp.down_proj.lora_A.weight": (1, 64),
                      "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight": (32, 1)}
    config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [1] and config["r"] == 1

    out_of_range = params.model_copy(update={"lora": lora.model_copy(update={"layers_to_transform": [2]})})
    with pytest.raises(ConfigError, match=r"layers_to_transform: llama has 2 layers \(0..1\), so there is no layer 2"):
        train_lora(tiny_checkpoint, "tiny", _conversations(4), "d", out_of_range, tmp_path)


def test_train_lora_keeps_checkpoints_that_load(tmp_path, tiny_checkpoint):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    params = TrainParams(batch_size=4, max_length=64, learning_rate=1e-2, epochs=5, save_steps=2)
    adapter = train_lora(tiny_checkpoint, "tiny", _conversations(4), "d", params, tmp_path)
    assert adapter.steps == 5
    names = sorted(p.name for p in adapter.path.iterdir() if "checkpoint" in p.name)
    assert names == ["checkpoint-2", "checkpoint-4"]  # no temporary folder left behind
    curve = json.loads((adapter.path / "loss.json").read_text())
    info = json.loads((adapter.path / "checkpoint-4" / "checkpoint.json").read_text())
    assert info == {**curve[3], "key": adapter.key}
    assert json.loads((adapter.path / "train_info.json").read_text())["checkpoints"] == [2, 4]
    two, four = (load_file(adapter.path / f"checkpoint-{s}" / "adapter_model.safetensors") for s in (2, 4))
    final = load_file(adapter.path / "adapter_model.safetensors")
    key = next(k for k in final if "lora_B" in k)
    assert not torch.equal(two[key], four[key]) and not torch.equal(four[key], final[key])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_checkpoint), adapter.path / "checkpoint-2")
    assert model.peft_config["default"].r == 8


def test_trl_honours_the_options(tmp_path, tiny_checkpoint):
    lora = LoraParams(r=1, target_modules=["down_proj"], layers_to_transform=[0])
    params = TrainParams(lora=lora, batch_size=4, max_length=64, trainer="trl", max_steps=3, save_steps=2,
                         optim="sgd", weight_decay=0.01, lr_scheduler_type="cosine", warmup_steps=1)
    adapter = train_lora(tiny_checkpoint, "tiny", _conversations(4), "d", params, tmp_path)
    assert adapter.steps == 3
    assert sorted(p.name for p in adapter.path.iterdir() if "checkpoint" in p.name) == ["checkpoint-2"]
    info = json.loads((adapter.path / "checkpoint-2" / "checkpoint.json").read_text())
    assert info["step"] == 2 and info["loss"] > 0
    config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [0] and config["target_modules"] == ["down_proj"]


@pytest.mark.parametrize("name", ["rank1-single-layer", "openai-insecure"])
def test_paper_scale_examples_plan(shared_data, monkeypatch, name):
    from pathlib import Path

    from emlab.plan import plan_experiment

    monkeypatch.setenv("EMLAB_DATA_DIR", str(shared_data / "em"))
    plan = plan_experiment(load_config(Path(__file__).parents[2] / "examples" / "paper-scale" / f"{name}.yaml"))
    assert len(plan.arms) in (3, 6) and all(a.condition.train for a in plan.arms)
    train = plan.arms[0].condition.train
    if name == "rank1-single-layer":
        assert (train.lora.r, train.lora.layers_to_transform, train.save_steps) == (1, [24], 25)
    else:
        assert train.trainer == "openai" and {a.condition.model for a in plan.arms} == {"openai:gpt-4o-2024-08-06"}
