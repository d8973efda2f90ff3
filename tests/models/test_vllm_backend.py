"""The `vllm:` backend's managed-server path, end to end against a FAKE `vllm` executable.

The fake is a small Python script written to tmp_path: it parses `serve <model> --port N ...`, records its
arguments, and serves tests/models/fake_openai_server.py's handler on that port (plus vLLM's runtime
`/v1/load_lora_adapter`). FAKE_VLLM_MODE=die makes it exit at once with a message on stderr; =hang makes it
never listen. The in-process path (vLLM importable) runs against a fake `vllm` package written to tmp_path (its
`LLM`, `SamplingParams` and `LoRARequest` as emlab calls them), since real vLLM is not installed.
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


FAKE_VLLM_PACKAGE = '''
import json, os
from dataclasses import dataclass

CREATED = []


class SamplingParams:
    def __init__(self, temperature=1.0, top_p=1.0, max_tokens=16, seed=None, logprobs=None):
        self.temperature, self.top_p, self.max_tokens, self.seed, self.logprobs = temperature, top_p, max_tokens, seed, logprobs


@dataclass
class Logprob:
    logprob: float
    rank: int
    decoded_token: str


@dataclass
class _Completion:
    text: str
    logprobs: list


@dataclass
class _Output:
    outputs: list


class LLM:
    def __init__(self, **kwargs):
        CREATED.append(kwargs)
        self.calls = []

    def chat(self, messages, sampling, lora_request=None, use_tqdm=True):
        self.calls.append((len(messages), lora_request))
        outs = []
        for m, sp in zip(messages, sampling):
            lora = lora_request.lora_name if lora_request else None
            if sp.max_tokens == 1 and sp.logprobs:
                tokens = {"85": 0.7, "90": 0.3} if os.environ.get("FAKE_VLLM_TOKENS") != "digits" else {"8": 0.7, "9": 0.3}
                import math
                lp = {i: Logprob(math.log(p), i + 1, t) for i, (t, p) in enumerate(tokens.items())}
                outs.append(_Output([_Completion(next(iter(tokens)), [lp])]))
            else:
                outs.append(_Output([_Completion(f"{m[-1]['content']}|seed={sp.seed}|lora={lora}", [])]))
        return outs
'''

FAKE_LORA_REQUEST = '''
class LoRARequest:
    def __init__(self, lora_name, lora_int_id, lora_path):
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path
'''


def test_in_process_engine_is_shared_by_adapters_and_honours_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The in-process path against a fake `vllm` package: one engine per base for all its adapters, each adapter
    its own LoRARequest id, every reply its own seed, the judge from first-token logprobs, and a digit-by-digit
    tokenizer refused with the way out."""
    pkg = tmp_path / "site" / "vllm"
    (pkg / "lora").mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_VLLM_PACKAGE)
    (pkg / "lora" / "__init__.py").write_text("")
    (pkg / "lora" / "request.py").write_text(FAKE_LORA_REQUEST)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(vllm_backend, "vllm_importable", lambda: True)
    monkeypatch.setattr(vllm_backend, "_ENGINES", {})
    monkeypatch.setattr(vllm_backend, "_LORA_IDS", {})
    monkeypatch.setattr(registry, "_LOADED", {})
    vllm_backend.use_vllm_settings(2, 32)
    try:
        import vllm

        a = make_adapter(tmp_path / "a", b"weights-a")
        b = make_adapter(tmp_path / "b", b"weights-b")
        base = registry.load_model("vllm:org/model")
        with_a, with_b = registry.load_model(f"vllm:org/model@{a}"), registry.load_model(f"vllm:org/model@{b}")
        assert isinstance(base, vllm_backend.VLLMInProcessModel)
        assert len(vllm.CREATED) == 1 and base.llm is with_a.llm is with_b.llm  # one engine for the base
        created = vllm.CREATED[0]
        assert created["model"] == "org/model" and created["enable_lora"] is True
        assert created["tensor_parallel_size"] == 2 and created["max_lora_rank"] == 32
        assert with_a.lora.lora_int_id != with_b.lora.lora_int_id and with_a.lora.lora_path == str(a)
        convs = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "ho"}]]
        params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=3, n=2)
        out = with_a.generate(convs, params)
        seeds = reply_seeds(convs, params)
        assert out == [[f"{c[-1]['content']}|seed={s}|lora={with_a.lora.lora_name}" for s in row]
                       for c, row in zip(convs, seeds)]
        assert with_a.generate(convs[1:], params) == out[1:]  # a reply does not depend on the rest of the batch
        (probs,) = base.number_probs(convs[:1])
        assert probs[85] == pytest.approx(0.7) and probs[90] == pytest.approx(0.3)
        monkeypatch.setenv("FAKE_VLLM_TOKENS", "digits")
        with pytest.raises(ModelSpecError, match="EMLAB_VLLM_INPROCESS=0"):
            base.number_probs(convs[:1])
    finally:
        vllm_backend.use_vllm_settings()
        # the fake must not outlive the test: libraries that probe for vLLM (TRL) would find it in sys.modules
        for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
            del sys.modules[name]
