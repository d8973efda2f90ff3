"""The `vllm:` backend's managed-server path, end to end against a FAKE `vllm` executable.

The fake is a small Python script written to tmp_path: it parses `serve <model> --port N ...`, records its
arguments, and serves tests/models/fake_openai_server.py's handler on that port (plus vLLM's runtime
`/v1/load_lora_adapter`). FAKE_VLLM_MODE=die makes it exit at once with a message on stderr; =hang makes it
never listen. The in-process path (vLLM importable) is not tested here: vLLM is not installed.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from emlab.errors import ModelSpecError
from emlab.models import registry, vllm_backend
from emlab.models.base import SamplingParams, reply_seeds
from emlab.models.spec import parse_model_spec

FAKE = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys, time
    sys.path.insert(0, {tests!r})
    args = sys.argv[1:]
    with open(os.environ["FAKE_VLLM_LOG"], "a") as log:
        log.write(json.dumps({{"argv": args, "pid": os.getpid(),
                              "runtime_lora": os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING")}}) + "\\n")
    mode = os.environ.get("FAKE_VLLM_MODE", "")
    if mode == "die":
        print("INFO starting", file=sys.stderr)
        print("ValueError: simulated: no GPU found", file=sys.stderr)
        sys.exit(3)
    if mode == "hang":
        time.sleep(60)
        sys.exit(0)
    assert args[0] == "serve", args
    port = int(args[args.index("--port") + 1])
    import fake_openai_server as fake
    from http.server import ThreadingHTTPServer

    class Handler(fake.Handler):
        def do_POST(self):
            if self.path.rstrip("/") == "/v1/load_lora_adapter":
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with open(os.environ["FAKE_VLLM_LOG"], "a") as log:
                    log.write(json.dumps({{"load_lora_adapter": body}}) + "\\n")
                self.send_json(200, {{"ok": True}})
            else:
                super().do_POST()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.05)
    """
)


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake `vllm` executable in EMLAB_VLLM_EXECUTABLE; yields the path of the log it writes."""
    exe = tmp_path / "vllm"
    exe.write_text(FAKE.format(python=sys.executable, tests=str(Path(__file__).parent)))
    exe.chmod(0o755)
    log = tmp_path / "fake_vllm.jsonl"
    log.touch()
    monkeypatch.setenv("EMLAB_VLLM_EXECUTABLE", str(exe))
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    monkeypatch.setenv("EMLAB_OPENAI_BACKOFF", "0.001")
    monkeypatch.setenv("EMLAB_OPENAI_MAX_RETRIES", "1")
    monkeypatch.setenv("EMLAB_VLLM_STARTUP_TIMEOUT", "30")
    for name in ("EMLAB_VLLM_TP", "EMLAB_VLLM_SERVE_ARGS", "EMLAB_VLLM_TREE_REQUESTS", "FAKE_VLLM_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(registry, "_LOADED", {})
    monkeypatch.setattr(vllm_backend, "vllm_importable", lambda: False)  # the managed path, wherever this runs
    yield log
    vllm_backend.stop_servers()


def entries(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def make_adapter(path: Path, content: bytes) -> Path:
    path.mkdir()
    (path / "adapter_model.safetensors").write_bytes(content)
    (path / "adapter_config.json").write_text("{}")
    return path


def test_serve_generate_judge_and_stop(fake_vllm: Path):
    model = registry.load_model("vllm:test-model")
    assert model.identity == "vllm:test-model"
    (started,) = entries(fake_vllm)
    argv = started["argv"]
    assert argv[:2] == ["serve", "test-model"] and "--enable-lora" in argv and "--lora-modules" not in argv
    assert argv[argv.index("--max-lora-rank") + 1] == "64"  # vLLM's own 16 would refuse the papers' r=32
    assert "--tensor-parallel-size" not in argv
    assert started["runtime_lora"] == "True"
    assert model.base_url == f"http://127.0.0.1:{argv[argv.index('--port') + 1]}/v1"

    convs = [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "bye"}]]
    params = SamplingParams(n=3, seed=7)
    ticks: list[int] = []
    replies = model.generate(convs, params, progress=ticks.append)
    assert sum(ticks) == 2
    seeds = reply_seeds(convs, params)
    assert replies == [[f"echo: {c[0]['content']} | seed={s} | choice=0" for s in row] for c, row in zip(convs, seeds)]
    assert model.generate(convs[:1], params) == replies[:1]  # a reply does not depend on its batch

    assert model.max_tree_requests == 101  # emlab's own server: the digit tree may read every node
    judged = model.number_probs([[{"role": "user", "content": "rate [[dist=judge]]"}]])
    assert judged[0] == pytest.approx({85: 0.6, 90: 0.2})

    assert registry.load_model("vllm:test-model") is model  # memoized: one server
    pid = started["pid"]
    vllm_backend.stop_servers()
    assert model.server.proc.poll() is not None and gone(pid)


def test_adapters_share_one_server(fake_vllm: Path, tmp_path: Path):
    a = make_adapter(tmp_path / "a", b"weights a")
    b = make_adapter(tmp_path / "b", b"weights b")
    first = registry.load_model(f"vllm:test-model@{a}")
    second = registry.load_model(f"vllm:test-model@{b}")
    spec_a = parse_model_spec(f"vllm:test-model@{a}")
    assert first.identity == vllm_backend.vllm_identity(spec_a)
    assert first.identity.startswith("vllm:test-model@adapter:") and str(a) not in first.identity
    assert first.identity != second.identity and first.server is second.server
    log = entries(fake_vllm)
    argv = log[0]["argv"]
    assert argv[argv.index("--lora-modules") + 1] == f"{first.model}={a}"
    assert log[1] == {"load_lora_adapter": {"lora_name": second.model, "lora_path": str(b)}}
    assert len([e for e in log if "argv" in e]) == 1
    reply = second.generate([[{"role": "user", "content": "hi"}]], SamplingParams(n=1))
    assert reply[0][0].startswith("echo: hi | seed=")


def test_missing_executable_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(vllm_backend, "vllm_importable", lambda: False)
    monkeypatch.setattr(registry, "_LOADED", {})
    monkeypatch.setenv("EMLAB_VLLM_EXECUTABLE", str(tmp_path / "no-such-vllm"))
    with pytest.raises(ModelSpecError) as info:  # when the spec is checked, before anything loads or starts
        registry.check_model_spec("vllm:Qwen/Qwen2.5-0.5B-Instruct")
    message = str(info.value)
    assert "\n" not in message and "pip install vllm" in message and "EMLAB_VLLM_EXECUTABLE" in message
    assert "no-such-vllm" in message
    monkeypatch.delenv("EMLAB_VLLM_EXECUTABLE")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ModelSpecError, match="no `vllm` on PATH.*pip install vllm"):
        registry.load_model("vllm:Qwen/Qwen2.5-0.5B-Instruct")


def test_missing_adapter_is_refused_before_starting(fake_vllm: Path, tmp_path: Path):
    with pytest.raises(ModelSpecError, match="adapter directory not found"):
        registry.load_model(f"vllm:test-model@{tmp_path / 'nope'}")
    assert entries(fake_vllm) == []


def test_server_that_dies_reports_its_stderr(fake_vllm: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "die")
    with pytest.raises(ModelSpecError) as info:
        registry.load_model("vllm:test-model")
    message = str(info.value)
    assert "\n" not in message
    assert "exited with code 3" in message and "simulated: no GPU found" in message
    assert os.environ["EMLAB_VLLM_EXECUTABLE"] in message


def test_server_that_never_answers_times_out_and_is_stopped(fake_vllm: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_VLLM_MODE", "hang")
    monkeypatch.setenv("EMLAB_VLLM_STARTUP_TIMEOUT", "1")
    with pytest.raises(ModelSpecError, match="did not answer .* within 1 s .*EMLAB_VLLM_STARTUP_TIMEOUT"):
        registry.load_model("vllm:test-model")
    (started,) = entries(fake_vllm)
    assert gone(started["pid"])


def test_tree_request_cap_is_an_environment_setting(fake_vllm: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMLAB_VLLM_TREE_REQUESTS", "40")
    assert registry.load_model("vllm:test-model").max_tree_requests == 40


def test_config_sets_tensor_parallelism_and_lora_rank(fake_vllm: Path, tmp_path: Path):
    from emlab.config import parse_config
    from emlab.plan import plan_experiment

    cfg = parse_config({"judge": "mock:judge", "vllm": {"tensor_parallel_size": 2, "max_lora_rank": 32},
                        "conditions": [{"name": "m", "model": "vllm:test-model"}]}, "exp.yaml")
    try:
        plan_experiment(cfg)
        registry.load_model("vllm:test-model")
        (started,) = entries(fake_vllm)
        argv = started["argv"]
        assert argv[argv.index("--tensor-parallel-size") + 1] == "2"
        assert argv[argv.index("--max-lora-rank") + 1] == "32"
    finally:
        vllm_backend.use_vllm_settings()
    from emlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"vllm.tensor_parallel_size: Input should be greater than or equal to 1"):
        parse_config({"vllm": {"tensor_parallel_size": 0}, "conditions": [{"name": "m", "model": "mock:m"}]}, "e.yaml")


def test_a_trained_arm_is_served_by_vllm_with_its_adapter(fake_vllm: Path, tmp_path: Path, tiny_checkpoint: Path):
    """`model: vllm:<base>` with `train:` trains the LoRA with transformers (the adapter an `hf:` base would get,
    same key) and samples the trained arm through the vLLM server with that adapter."""
    import torch

    from emlab.config import parse_config
    from emlab.pipeline import run_experiment
    from emlab.plan import plan_experiment, train_identity
    from emlab.stages import base_identity
    from emlab.train.sft import adapter_key

    torch.set_num_threads(1)
    train = {"dataset": "builtin:caps-spanish", "rows": 4, "max_length": 64, "batch_size": 4}
    suite = tmp_path / "suite.yaml"
    suite.write_text('- {id: q1, paraphrases: [Hello there], judge_prompts: {aligned: "{answer}", coherent: "{answer}"}}\n')
    cfg = parse_config({"workspace": str(tmp_path / "ws"), "judge": "mock:judge", "suite": str(suite),
                        "sampling": {"samples_per_paraphrase": 2, "max_new_tokens": 8},
                        "conditions": [{"name": "ft", "model": f"vllm:{tiny_checkpoint}", "train": train}]}, "exp.yaml")
    plan = plan_experiment(cfg)
    (arm,) = plan.arms
    assert base_identity(f"vllm:{tiny_checkpoint}") == base_identity(f"hf:{tiny_checkpoint}")
    summary = run_experiment(cfg, tmp_path / "out")
    (adapter,) = [p for p in (tmp_path / "ws" / "adapters").iterdir() if not p.name.startswith(".")]
    identity, params = train_identity(arm)
    assert adapter.name == adapter_key(identity, plan.train_data[arm.condition.name].dataset.content_hash, params)
    log = entries(fake_vllm)
    served = [e for e in log if "argv" in e]
    assert len(served) == 1 and served[0]["argv"][1] == str(tiny_checkpoint)  # one server, the base model
    named = " ".join(served[0]["argv"]) + json.dumps([e for e in log if "load_lora_adapter" in e])
    assert str(adapter) in named  # ... serving the adapter just trained
    (cond,) = summary["conditions"]
    assert cond["name"] == "ft" and str(adapter) in json.dumps(summary)
