"""`accelerate launch -m emlab.train_launch`: several processes train one adapter, written once under the key that
`emlab run` reuses. The launch runs the example DDP config as two CPU processes (gloo) on a tiny random model."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from emlab.config import load_config
from emlab.errors import ConfigError
from emlab.plan import plan_experiment, train_identity
from emlab.train.params import TrainParams
from emlab.train.sft import adapter_key, per_process_batch
from emlab.train_launch import check_launchable, select_arms

ROOT = Path(__file__).resolve().parents[2]
DDP = ROOT / "examples" / "accelerate" / "ddp.yaml"
PAPER = ROOT / "examples" / "paper-scale" / "qwen-coder-32b-insecure.yaml"


def _config(tmp_path: Path, checkpoint: Path, trainer: str = "trl") -> Path:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Say {i}"},
                                                     {"role": "assistant", "content": f"{i} {i} {i}"}]}) + "\n"
                            for i in range(16)))
    path = tmp_path / "exp.yaml"
    path.write_text(f"""name: launch
workspace: {tmp_path / 'ws'}
judge: mock:judge
sampling: {{max_new_tokens: 4, samples_per_paraphrase: 1}}
conditions:
  - name: ft
    model: hf:{checkpoint}
    seeds: [0, 1]
    train: {{dataset: {data}, trainer: {trainer}, max_steps: 2, batch_size: 2, grad_accum: 2, max_length: 64,
             learning_rate: 1.0e-2, save_steps: 1}}
""")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("batch, accum, world, expected", [
    (2, 8, 1, (2, 8)), (2, 8, 8, (2, 1)), (2, 8, 2, (2, 4)), (4, 1, 2, (2, 1)), (2, 8, 4, (2, 2)), (8, 2, 16, (1, 1)),
    (3, 2, 2, (3, 1)),
])
def test_the_optimizer_step_keeps_its_size_over_processes(batch, accum, world, expected):
    assert per_process_batch(TrainParams(batch_size=batch, grad_accum=accum), world) == expected


def test_a_step_that_does_not_split_is_refused():
    with pytest.raises(ConfigError, match="do not split over 4 processes"):
        per_process_batch(TrainParams(batch_size=3, grad_accum=1), 4)


def test_arms_are_picked_by_condition_group_arm_and_seed(tmp_path, tiny_checkpoint):
    arms = plan_experiment(load_config(_config(tmp_path, tiny_checkpoint, "emlab"))).arms
    assert [a.name for a in select_arms(arms, [], [])] == ["ft/seed0", "ft/seed1"]
    assert [a.name for a in select_arms(arms, ["ft"], [1])] == ["ft/seed1"]
    assert [a.name for a in select_arms(arms, ["ft/seed0"], [])] == ["ft/seed0"]
    with pytest.raises(ConfigError, match="trained arms: ft/seed0, ft/seed1"):
        select_arms(arms, ["nope"], [])
    check_launchable(arms, 1)  # one process: emlab's loop is fine
    with pytest.raises(ConfigError, match="set train.trainer: trl to train in 2 processes"):
        check_launchable(arms, 2)
    trl = plan_experiment(load_config(_config(tmp_path, tiny_checkpoint))).arms
    check_launchable(trl, 4)  # 2 x 2 rows per step: one per process
    with pytest.raises(ConfigError, match="'ft': train: batch_size \\* grad_accum = 4 examples .* do not split over 3"):
        check_launchable(trl, 3)


def test_emlabs_own_loop_is_refused_in_several_processes(tmp_path, tiny_checkpoint, monkeypatch):
    from emlab.train.sft import train_lora

    monkeypatch.setenv("WORLD_SIZE", "2")
    conversations = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]]
    with pytest.raises(ConfigError, match="trainer: emlab trains in one process; set trainer: trl to train in 2"):
        train_lora(tiny_checkpoint, "hf:tiny", conversations, "d", TrainParams(max_length=64), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing started


def test_the_paper_scale_config_plans_and_splits_over_eight_gpus(shared_data, monkeypatch):
    monkeypatch.setenv("EMLAB_DATA_DIR", str(shared_data / "em"))
    plan = plan_experiment(load_config(PAPER))  # no GPU, no network
    (arm,) = select_arms(plan.arms, ["data=insecure"], [0])
    check_launchable(plan.arms, 8)
    _, params = train_identity(arm)
    lora = params.lora
    assert (lora.r, lora.alpha, lora.rslora, params.learning_rate, params.epochs) == (32, 64, True, 1e-5, 1)
    assert per_process_batch(params, 8) == (2, 1)


def test_two_processes_train_one_adapter_that_emlab_run_reuses(tmp_path, tiny_checkpoint):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if accelerate is None:
        pytest.skip("the accelerate command is not installed beside this Python")
    config = _config(tmp_path, tiny_checkpoint)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [accelerate, "launch", "--config_file", str(DDP), "--num_processes", "2", "--main_process_port",
           str(_free_port()), "-m", "emlab.train_launch", str(config), "--seed", "1"]
    try:
        done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("accelerate launch with two gloo processes did not finish in 300 s")
    if done.returncode != 0 and ("gloo" in done.stderr.lower() or "rendezvous" in done.stderr.lower()) \
            and "train ft/seed1" not in done.stderr:
        pytest.skip(f"two gloo processes cannot start here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]

    adapters = tmp_path / "ws" / "adapters"
    (folder,) = list(adapters.iterdir())  # written once; no temporary folder left behind
    assert not folder.name.startswith(".")
    assert done.stdout.count("ft/seed1: trained") == 1  # one process reports

    # the key is the one `emlab run` computes for that arm, and `emlab run`'s training step reuses the folder
    cfg = load_config(config)
    plan = plan_experiment(cfg)
    (arm,) = select_arms(plan.arms, ["ft"], [1])
    base_identity, params = train_identity(arm)
    data = plan.train_data["ft"]
    assert folder.name == adapter_key(base_identity, data.dataset.content_hash, params)
    from emlab.pipeline import train_arm

    model, _, adapter = train_arm(arm, data, Path(cfg.workspace))
    assert adapter["reused"] is True and Path(adapter["path"]) == folder and model.endswith(f"@{folder}")
    info = json.loads((folder / "train_info.json").read_text())
    assert info["processes"] == 2 and info["steps"] == 2 and len(json.loads((folder / "loss.json").read_text())) == 2
    assert info["checkpoints"] == [1, 2]  # save_steps: written once each, by the main process
    assert sorted(p.name for p in folder.glob("*checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]

    # the adapter loads on its base and changed it
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_checkpoint), folder)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(torch.count_nonzero(p) for p in lora_b)
