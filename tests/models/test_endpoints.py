"""Named endpoints: each model talks to its own server with its own key, and no credential leaks anywhere.

Two fake OpenAI-compatible servers (tests/models/fake_openai_server.py, fixtures in conftest.py) stand in for a
local vLLM server and api.openai.com; each records what it saw, so routing and keys are checked from the wire.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from emlab.config import load_config
from emlab.errors import ConfigError, EndpointError, ModelSpecError
from emlab.models import registry
from emlab.models.base import SamplingParams
from emlab.models.endpoints import Endpoint, active_endpoints, endpoint, public_url, use_endpoints
from emlab.models.openai_api import OpenAIChatModel
from emlab.models.spec import ModelSpec, parse_model_spec
from emlab.pipeline import run_experiment

README = Path(__file__).resolve().parents[2] / "README.md"
LOCAL_KEY, JUDGE_KEY = "local-secret-4711", "sk-judge-secret-0815"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch):
    """No endpoints, no loaded models, tiny backoffs; the old environment recipe points at nowhere useful."""
    for name in ("OPENAI_BASE_URL", "EMLAB_OPENAI_API_KEY", "OPENAI_API_KEY", "EMLAB_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMLAB_OPENAI_BACKOFF", "0.001")
    monkeypatch.setattr(registry, "_LOADED", {})
    use_endpoints({})
    yield
    use_endpoints({})


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def tag() -> tuple[str, str]:
    test_id = uuid.uuid4().hex[:10]
    return test_id, f"[[id={test_id}]]"


# ---- specs -------------------------------------------------------------------------------------------------


def test_spec_names_its_endpoint() -> None:
    spec = parse_model_spec("openai@local:Qwen/Qwen2.5-7B-Instruct")
    assert spec == ModelSpec("openai", "Qwen/Qwen2.5-7B-Instruct", None, "local")
    assert str(spec) == "openai@local:Qwen/Qwen2.5-7B-Instruct"
    assert registry.check_model_spec("openai@my-server.2:m").endpoint == "my-server.2"
    assert parse_model_spec("openai:gpt-4o").endpoint is None
    with pytest.raises(ModelSpecError, match="not an endpoint name"):
        parse_model_spec("openai@:m")
    with pytest.raises(ModelSpecError, match="only openai specs name an endpoint"):
        registry.check_model_spec("hf@local:gpt2")


# ---- point 1: the evaluated model and the judge on different servers ----------------------------------------


def test_model_and_judge_each_use_their_own_server_and_key(start_server, monkeypatch) -> None:
    local, remote = start_server("--api-key", LOCAL_KEY), start_server("--api-key", JUDGE_KEY)
    monkeypatch.setenv("LOCAL_KEY", LOCAL_KEY)
    monkeypatch.setenv("JUDGE_KEY", JUDGE_KEY)
    monkeypatch.setenv("EMLAB_OPENAI_BASE_URL", local.base_url)  # the old single-URL recipe: no longer in the way
    use_endpoints({"local": {"base_url": local.base_url, "api_key_env": "LOCAL_KEY"},
                   "api": {"base_url": remote.base_url, "api_key_env": "JUDGE_KEY"}})
    model = registry.load_model("openai@local:Qwen/Qwen2.5-7B-Instruct")
    judge = registry.load_model("openai@api:gpt-4o-2024-08-06")
    sample_id, sample = tag()
    judge_id, judgment = tag()
    assert model.generate([user(f"hi {sample}")], SamplingParams()) == [["echo: hi | seed=0 | choice=0"]]
    assert judge.number_probs([user(judgment)]) == [pytest.approx({85: 0.6, 90: 0.2})]

    assert [(r["model"], r["auth"]) for r in local.all_requests()] == [
        ("Qwen/Qwen2.5-7B-Instruct", f"Bearer {LOCAL_KEY}")]
    assert [(r["model"], r["auth"], r["logprobs"]) for r in remote.all_requests()] == [
        ("gpt-4o-2024-08-06", f"Bearer {JUDGE_KEY}", True)]
    assert model.identity == f"openai:Qwen/Qwen2.5-7B-Instruct@{local.base_url}"
    assert judge.identity == f"openai:gpt-4o-2024-08-06@{remote.base_url}"  # two servers never share a cache
    for shown in (model.identity, judge.identity, repr(model), repr(judge)):
        assert LOCAL_KEY not in shown and JUDGE_KEY not in shown


def test_readme_recipe_runs_against_two_local_servers(start_server, monkeypatch, tmp_path) -> None:
    """The README's experiment.yaml, as written but for the two base URLs: a whole run, each server in its role."""
    text = README.read_text(encoding="utf-8")
    recipe = re.search(r"```yaml\n(# experiment\.yaml\n.*?)```", text, re.S).group(1)
    local, openai_ = start_server(), start_server("--api-key", JUDGE_KEY)
    recipe = recipe.replace("http://127.0.0.1:8000/v1", local.base_url)
    recipe = recipe.replace("https://api.openai.com/v1", openai_.base_url)
    path = tmp_path / "experiment.yaml"
    path.write_text(f"{recipe}workspace: {tmp_path / 'ws'}\n", encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", JUDGE_KEY)
    config = load_config(path)
    use_endpoints(config.endpoints)  # whoever loads a config declares its endpoints
    summary = run_experiment(config, tmp_path / "out")

    generations = local.all_requests()
    judgments = openai_.all_requests()
    assert generations and all(r["model"] == "Qwen/Qwen2.5-7B-Instruct" and not r["logprobs"] for r in generations)
    assert judgments and all(r["model"] == "gpt-4o-2024-08-06" and r["logprobs"] for r in judgments)
    assert {r["auth"] for r in judgments} == {f"Bearer {JUDGE_KEY}"} and {r["auth"] for r in generations} == {
        "Bearer EMPTY"}
    (base,) = summary["conditions"]
    assert base["rates"]["pooled"]["answers"] == len(generations)
    for written in [*(tmp_path / "out").iterdir(), tmp_path / "ws" / "emlab.sqlite"]:
        assert JUDGE_KEY.encode() not in written.read_bytes(), written


def test_undeclared_endpoint_is_a_clear_error() -> None:
    use_endpoints({"local": Endpoint("local", "http://127.0.0.1:8000/v1")})
    with pytest.raises(ModelSpecError, match=r"endpoint 'remote' is not declared \(declared: local\).*endpoints:"):
        registry.load_model("openai@remote:gpt-4o")
    use_endpoints(None)
    with pytest.raises(ModelSpecError, match="none is declared"):
        endpoint("local")


def test_unset_key_variable_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    use_endpoints({"api": {"base_url": "https://api.openai.com/v1", "api_key_env": "NOT_SET_KEY"}})
    with pytest.raises(ModelSpecError, match="NOT_SET_KEY, which is not set"):
        registry.load_model("openai@api:gpt-4o")


def test_a_new_declaration_gets_a_new_client(start_server) -> None:
    first, second = start_server(), start_server()
    use_endpoints({"local": {"base_url": first.base_url}})
    a = registry.load_model("openai@local:m")
    assert registry.load_model("openai@local:m") is a  # memoized
    use_endpoints({"local": {"base_url": second.base_url}})
    b = registry.load_model("openai@local:m")
    assert b is not a and b.base_url == second.base_url
    assert active_endpoints() == {"local": Endpoint("local", second.base_url)}
    registry.unload_model("openai@local:m")
    assert registry.load_model("openai@local:m") is not b


# ---- credentials never reach identities, errors, reprs ------------------------------------------------------


@pytest.mark.parametrize("secret_part", ["userinfo", "query"])
def test_credentials_in_the_environment_url_never_show(start_server, monkeypatch, secret_part: str) -> None:
    srv = start_server("--api-key", "right-key")
    if secret_part == "userinfo":
        secret_url = srv.base_url.replace("http://", "http://bob:pw-hunter22@")
    else:  # the SDK cannot even use such a URL (the query lands inside the path), but it must not show either
        secret_url = srv.base_url + "?api-key=sk-in-query-99"
    monkeypatch.setenv("EMLAB_OPENAI_BASE_URL", secret_url)
    monkeypatch.setenv("EMLAB_OPENAI_API_KEY", "sk-wrong-key-1234")
    model = registry.load_model("openai:test-model")
    assert model.identity == f"openai:test-model@{srv.base_url}"
    with pytest.raises(EndpointError) as info:
        model.generate([user("hello")], SamplingParams())
    (result,) = model.number_probs([user("judge me")])
    assert isinstance(result, EndpointError)
    for shown in (model.identity, repr(model), str(info.value), str(result)):
        for secret in ("bob", "pw-hunter22", "sk-in-query-99", "sk-wrong-key-1234"):
            assert secret not in shown, shown
    assert "***" in str(info.value)  # the server echoed a secret back (the key, or the URL's query): redacted


def test_unreachable_url_with_credentials_never_shows_them() -> None:
    model = OpenAIChatModel("m", base_url="http://u:pw-12345@127.0.0.1:9/v1", api_key="sk-abcdefg",
                            max_retries=0, timeout=2.0)
    with pytest.raises(EndpointError) as info:
        model.generate([user("x")], SamplingParams())
    assert "pw-12345" not in str(info.value) and "u:" not in str(info.value) and "sk-abcdefg" not in str(info.value)
    assert "http://127.0.0.1:9/v1/chat/completions" in str(info.value)


def test_public_url() -> None:
    assert public_url("https://user:pass@host.example:8443/v1/?api-key=x#f") == "https://host.example:8443/v1"
    assert public_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert public_url("http://h:notaport/v1") == "<unparseable URL>"


# ---- the config's endpoints: block -------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_endpoints_are_checked(tmp_path: Path) -> None:
    ok = load_config(write(tmp_path, """
endpoints:
  local: {base_url: "http://127.0.0.1:8000/v1/"}
  openai: {base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY}
judge: openai@openai:gpt-4o-2024-08-06
label_judge: openai@local:Qwen/Qwen2.5-7B-Instruct
conditions:
  - {name: base, model: "openai@local:Qwen/Qwen2.5-7B-Instruct"}
"""))
    assert ok.endpoints["local"].base_url == "http://127.0.0.1:8000/v1" and ok.endpoints["local"].api_key_env is None
    use_endpoints(ok.endpoints)
    assert endpoint("openai") == Endpoint("openai", "https://api.openai.com/v1", "OPENAI_API_KEY")

    with pytest.raises(ConfigError, match=r"exp\.yaml:4: judge: 'openai@gpt:gpt-4o' names endpoint 'gpt', which "
                                          r"endpoints: does not declare \(declared: local\)"):
        load_config(write(tmp_path, """
endpoints:
  local: {base_url: "http://127.0.0.1:8000/v1"}
judge: openai@gpt:gpt-4o
conditions: [{name: base, model: mock:a}]
"""))
    with pytest.raises(ConfigError, match=r"model of condition 'base': .*none is declared"):
        load_config(write(tmp_path, "judge: mock:j\nconditions: [{name: base, model: 'openai@local:m'}]\n"))


def test_config_refuses_credentials_without_repeating_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, """
endpoints:
  local: {base_url: "http://bob:pw-hunter22@127.0.0.1:8000/v1", api_key_env: "sk-pasted-key-123"}
  other: {base_url: "http://127.0.0.1:8001/v1?api-key=sk-in-query-99"}
judge: mock:j
conditions: [{name: base, model: mock:a}]
"""))
    message = str(info.value)
    assert "endpoints.local.base_url" in message and "endpoints.local.api_key_env" in message
    assert "endpoints.other.base_url" in message and "must not carry credentials" in message
    for secret in ("pw-hunter22", "sk-pasted-key-123", "sk-in-query-99"):
        assert secret not in message


# ---- a whole run with an open-weight judge on a local server (point 2 end to end) ---------------------------

JUDGED_LOCALLY = """
endpoints:
  local: {{base_url: "{local}"}}
  judge: {{base_url: "{judge}"}}
judge: openai@judge:Qwen/Qwen2.5-7B-Instruct
workspace: {ws}
conditions:
  - {{name: base, model: "openai@local:my-model"}}
"""


def test_run_with_a_digit_splitting_judge(start_server, tmp_path: Path) -> None:
    """Every judgment is "85" (0.5) or "90" (0.2) written digit by digit: scored 86.4, not 8.6."""
    local, judge = start_server(), start_server("--split-digits")
    config = load_config(write(tmp_path, JUDGED_LOCALLY.format(local=local.base_url, judge=judge.base_url,
                                                                ws=tmp_path / "ws")))
    use_endpoints(config.endpoints)
    run_experiment(config, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert rows and all(r["aligned"] == pytest.approx((85 * 0.5 + 90 * 0.2) / 0.7) for r in rows)
    assert any(r["continue_final_message"] for r in judge.all_requests())


def test_run_stops_when_the_judge_server_cannot_continue(start_server, tmp_path: Path) -> None:
    local, judge = start_server(), start_server("--split-digits", "--prefill", "ignore")
    config = load_config(write(tmp_path, JUDGED_LOCALLY.format(local=local.base_url, judge=judge.base_url,
                                                                ws=tmp_path / "ws")))
    use_endpoints(config.endpoints)
    with pytest.raises(ModelSpecError, match="started a new reply instead of continuing"):
        run_experiment(config, tmp_path / "out")
