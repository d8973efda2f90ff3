"""`device: auto | cpu | cuda | cuda:N`: resolution, the clear error where there is no GPU, the choices made on CUDA
(checked without one by patching torch.cuda), and the CPU path left as it was."""

import pytest
import torch

from emlab.config import load_config
from emlab.errors import ConfigError
from emlab.models import device as dev
from emlab.models.device import check_device_text, current_device, resolve_device, use_device, weights_dtype


@pytest.fixture(autouse=True)
def _keep_setting(monkeypatch):
    """Tests that set the run's device leave the process as they found it."""
    monkeypatch.setattr(dev, "_SETTING", ["auto"])


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_and_auto_resolve_to_the_cpu_here():
    assert not torch.cuda.is_available()  # these machines have no GPU; CI neither
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") == "cpu"
    assert weights_dtype("cpu") == torch.float32


@pytest.mark.parametrize("text", ["cuda", "cuda:0", "cuda:3"])
def test_a_cuda_device_without_a_gpu_is_one_line_naming_the_key(text):
    with pytest.raises(ConfigError, match=rf"^device: {text} asked for, but (this torch is built without CUDA|torch sees no CUDA device); use device: cpu"):
        resolve_device(text)


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "CPU", "cuda0", ""])
def test_misspelled_devices_are_refused(text):
    with pytest.raises(ValueError, match="not a device; use auto, cpu, cuda or cuda:N"):
        check_device_text(text)


def test_the_cuda_branch_choices(two_gpus):
    from emlab.models.hf import load_kwargs
    from emlab.train.lora_loop import loop_setup

    assert resolve_device("auto") == "cuda:0" and resolve_device("cuda") == "cuda:0"
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match=r"device: cuda:2 asked for, but torch sees 2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2")
    assert weights_dtype("cuda:1") == torch.bfloat16
    assert load_kwargs("cuda:1") == {"dtype": torch.bfloat16, "device_map": "cuda:1"}
    assert loop_setup("cuda:0", simple=False) == ("sdpa", torch.bfloat16)
    assert loop_setup("cuda:0", simple=True) == ("sdpa", torch.float32)


def test_the_cpu_choices_are_those_from_before_devices():
    from emlab.models.hf import load_kwargs
    from emlab.train.lora_loop import loop_setup

    assert load_kwargs("cpu") == {"dtype": torch.float32}  # what load_checkpoint always passed
    assert loop_setup("cpu", simple=False) == ("eager", torch.float32)
    assert loop_setup("cpu", simple=True) == ("sdpa", torch.float32)


def test_the_run_setting_is_kept_as_written_and_resolved_at_each_load(monkeypatch):
    assert use_device("auto") == "cpu" and current_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert current_device() == "cuda:0"  # auto, resolved again


def test_loaded_models_are_memoized_per_device(monkeypatch, tiny_checkpoint):
    from emlab.models import registry
    from emlab.models.spec import parse_model_spec

    spec = parse_model_spec(f"hf:{tiny_checkpoint}")
    assert registry._key(spec) == str(spec)  # on the CPU: the key it always had
    monkeypatch.setattr(dev, "current_device", lambda: "cuda:1")
    assert registry._key(spec) == f"{spec} on cuda:1"
    assert registry._key(parse_model_spec("mock:m")) == "mock:m"


def test_a_cpu_model_loads_as_before(tiny_checkpoint):
    from emlab.models.hf import load_checkpoint

    use_device("cpu")
    model = load_checkpoint(tiny_checkpoint, None, f"hf:{tiny_checkpoint}")
    assert model.model.device.type == "cpu" and model.model.dtype == torch.float32 and model.fast
    assert model.identity == f"hf:{tiny_checkpoint}"  # where a model runs is not part of its identity


# ---------------------------------------------------------------------------------------------- the config key

BASE = """name: t
scorers: [caps]
conditions:
  - name: base
    model: mock:a
"""


def test_config_device_key(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(BASE)
    assert load_config(p).device == "auto"
    p.write_text(BASE + "device: cuda:1\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:6: device: cuda:1 asked for, but .*use device: cpu"):
        load_config(p)
    p.write_text(BASE + "device: gpu\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:6: device: 'gpu' is not a device"):
        load_config(p)
    p.write_text(BASE + "devices: cpu\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:6: unknown key 'devices'"):
        load_config(p)


def test_the_plan_checks_and_sets_the_run_device(tmp_path, two_gpus, monkeypatch):
    from emlab.plan import plan_experiment

    p = tmp_path / "exp.yaml"
    p.write_text(BASE + "device: cuda:1\n")
    config = load_config(p)  # two (patched) GPUs: valid
    assert plan_experiment(config).device == "cuda:1" and current_device() == "cuda:1"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # the machine changed since the config loaded
    with pytest.raises(ConfigError, match=r"exp.yaml: device: cuda:1 asked for, but torch sees 1 CUDA device"):
        plan_experiment(config)
