"""The OpenAI-compatible backend against a real local server process (tests/models/fake_openai_server.py).

Each test steers the server with a `[[id=... fail=... times=...]]` marker in its prompt and reads back what
the server saw from `GET /stats`, so retries and request parameters are checked from the wire. The server
fixtures (`server`, `start_server`) are in conftest.py.
"""

from __future__ import annotations

import math
import socket
import time
import uuid

import openai
import pytest

from emlab.errors import EndpointError, ModelSpecError
from emlab.models import registry
from emlab.models.base import SamplingParams
from emlab.models.openai_api import OpenAIChatModel, load_openai, number_distribution
from emlab.models.spec import ModelSpec

ENV_VARS = (
    "EMLAB_OPENAI_BASE_URL",
    "OPENAI_BASE_URL",
    "EMLAB_OPENAI_API_KEY",
    "OPENAI_API_KEY",
    "EMLAB_OPENAI_BACKOFF",
    "EMLAB_OPENAI_MAX_RETRIES",
    "EMLAB_OPENAI_TIMEOUT",
    "EMLAB_OPENAI_MAX_CONCURRENCY",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server):
    """A clean environment pointing EMLAB_OPENAI_BASE_URL at the fake server, with tiny backoffs."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMLAB_OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("EMLAB_OPENAI_BACKOFF", "0.001")
    monkeypatch.setattr(registry, "_LOADED", {})
    return server


def make_model(base_url: str, **kwargs) -> OpenAIChatModel:
    options = {"api_key": "EMPTY", "backoff_base": 0.001, "timeout": 5.0}
    options.update(kwargs)
    return OpenAIChatModel("test-model", base_url=base_url, **options)


def tag(**options: object) -> tuple[str, str]:
    """A unique id and its marker text."""
    test_id = uuid.uuid4().hex[:10]
    parts = " ".join(f"{k}={v}" for k, v in options.items())
    return test_id, f"[[id={test_id} {parts}]]"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- loading -----------------------------------------------------------------------------------------------


def test_load_via_registry(env) -> None:
    model = registry.load_model("openai:test-model")
    assert isinstance(model, OpenAIChatModel)
    assert model.model == "test-model"
    assert model.spec == "openai:test-model"
    assert model.identity == f"openai:test-model@{env.base_url}"
    assert model.backoff_base == 0.001
    test_id, marker = tag()
    assert model.generate([user(f"hi {marker}")], SamplingParams(n=1, seed=3)) == [["echo: hi | seed=3 | choice=0"]]
    assert env.requests(test_id)[0]["auth"] == "Bearer EMPTY"  # placeholder key for a local server


def test_key_from_env_and_openai_fallbacks(env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMLAB_OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_BASE_URL", env.base_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = load_openai(ModelSpec("openai", "test-model"))
    assert model.identity == f"openai:test-model@{env.base_url}"
    test_id, marker = tag()
    model.generate([user(marker)], SamplingParams())
    assert env.requests(test_id)[0]["auth"] == "Bearer sk-test"


def test_missing_config_is_a_spec_error(env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMLAB_OPENAI_BASE_URL")
    with pytest.raises(ModelSpecError, match="OPENAI_API_KEY"):
        registry.load_model("openai:gpt-4o-2024-08-06")


def test_default_base_url_with_key(env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMLAB_OPENAI_BASE_URL")
    monkeypatch.setenv("EMLAB_OPENAI_API_KEY", "sk-test")
    model = load_openai(ModelSpec("openai", "gpt-4o-2024-08-06"))
    assert model.identity == "openai:gpt-4o-2024-08-06@https://api.openai.com/v1"


def test_adapter_is_a_spec_error(env) -> None:
    with pytest.raises(ModelSpecError, match="adapter"):
        registry.load_model("openai:test-model@some/adapter")


def test_bad_env_number_is_a_spec_error(env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMLAB_OPENAI_BACKOFF", "fast")
    with pytest.raises(ModelSpecError, match="EMLAB_OPENAI_BACKOFF"):
        load_openai(ModelSpec("openai", "test-model"))


# ---- generate ----------------------------------------------------------------------------------------------


def test_generate_n_replies_per_conversation(env) -> None:
    model = make_model(env.base_url)
    test_id, marker = tag()
    done: list[int] = []
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=17, n=3, seed=5)
    out = model.generate([user(f"a {marker}"), user(f"b {marker}")], params, progress=done.append)
    assert out == [
        [f"echo: a | seed=5 | choice={i}" for i in range(3)],
        [f"echo: b | seed=5 | choice={i}" for i in range(3)],
    ]
    assert done == [1, 1]
    seen = env.requests(test_id)
    assert len(seen) == 2
    assert all(
        (r["n"], r["seed"], r["max_tokens"], r["temperature"], r["top_p"]) == (3, 5, 17, 0.7, 0.9) for r in seen
    )


def test_generate_against_server_that_ignores_n(env) -> None:
    model = make_model(env.base_url)
    test_id, marker = tag(ignore_n=1)
    out = model.generate([user(f"q {marker}")], SamplingParams(n=3, seed=10))
    assert out == [[f"echo: q | seed={s} | choice=0" for s in (10, 11, 12)]]
    seen = env.requests(test_id)
    assert [(r["seed"], r["n"]) for r in seen] == [(10, 3), (11, 2), (12, None)]


def test_generate_ignores_n_server_flag(start_server) -> None:
    srv = start_server("--ignore-n")
    out = make_model(srv.base_url).generate([user("x"), user("y")], SamplingParams(n=2, seed=0))
    assert out == [["echo: x | seed=0 | choice=0", "echo: x | seed=1 | choice=0"],
                   ["echo: y | seed=0 | choice=0", "echo: y | seed=1 | choice=0"]]


def test_generate_keeps_input_order_under_concurrency(env) -> None:
    model = make_model(env.base_url, max_concurrency=4)
    test_id, marker = tag()
    convs = [user(f"p{i} {marker}") for i in range(12)]
    out = model.generate(convs, SamplingParams())
    assert out == [[f"echo: p{i} | seed=0 | choice=0"] for i in range(12)]
    assert model.generate([], SamplingParams()) == []


@pytest.mark.parametrize("status", [429, 500])
def test_generate_retries_then_succeeds(env, status: int) -> None:
    model = make_model(env.base_url)
    test_id, marker = tag(fail=status, times=2)
    assert model.generate([user(f"r {marker}")], SamplingParams()) == [["echo: r | seed=0 | choice=0"]]
    assert [r["status"] for r in env.requests(test_id)] == [status, status, 200]


def test_retry_after_header_is_honoured(env) -> None:
    model = make_model(env.base_url, backoff_base=5.0)  # our own backoff would take seconds; Retry-After: 0 wins
    test_id, marker = tag(fail=429, times=2)
    start = time.monotonic()
    assert model.generate([user(f"r {marker}")], SamplingParams()) == [["echo: r | seed=0 | choice=0"]]
    assert time.monotonic() - start < 1.0


def test_progress_is_reported_as_items_finish(env) -> None:
    model = make_model(env.base_url, max_concurrency=2)
    times: list[float] = []
    convs = [user(tag()[1]), user(tag(fail="hang", times=1, hang=0.5)[1])]
    start = time.monotonic()
    model.generate(convs, SamplingParams(), progress=lambda k: times.append(time.monotonic() - start))
    assert len(times) == 2 and times[0] < 0.3 <= times[1]


def test_timeout_is_retried(env) -> None:
    model = make_model(env.base_url, timeout=0.3)
    test_id, marker = tag(fail="hang", times=1, hang=2)
    start = time.monotonic()
    assert model.generate([user(f"t {marker}")], SamplingParams()) == [["echo: t | seed=0 | choice=0"]]
    assert time.monotonic() - start < 1.5
    assert len(env.requests(test_id)) == 2


def test_generate_persistent_failure_raises_one_line(env) -> None:
    model = make_model(env.base_url, max_retries=3)
    test_id, marker = tag(fail=500, times=-1)
    with pytest.raises(EndpointError) as info:
        model.generate([user(f"ok {tag()[1]}"), user(f"bad {marker}")], SamplingParams())
    message = str(info.value)
    assert "\n" not in message
    assert f"{env.base_url}/chat/completions" in message
    assert "test-model" in message and "500" in message and "after 4 attempts" in message
    assert len(env.requests(test_id)) == 4  # 1 + max_retries


def test_unreachable_endpoint_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    model = make_model(url, max_retries=2)
    start = time.monotonic()
    with pytest.raises(EndpointError, match=r"127\.0\.0\.1.*(?i:connect)"):
        model.generate([user("anyone?")], SamplingParams())
    assert time.monotonic() - start < 3.0


def test_401_fails_without_retry(start_server) -> None:
    srv = start_server("--api-key", "right-key")
    model = make_model(srv.base_url, api_key="wrong-key")
    test_id, marker = tag()
    with pytest.raises(EndpointError, match="OPENAI_API_KEY") as info:
        model.generate([user(marker)], SamplingParams())
    assert "HTTP 401" in str(info.value) and "first attempt" in str(info.value)
    assert "wrong-key" not in str(info.value)  # the server echoed it; the client redacts it
    assert len(srv.requests(test_id)) == 1
    # and the right key works
    ok = make_model(srv.base_url, api_key="right-key")
    assert ok.generate([user("hi")], SamplingParams()) == [["echo: hi | seed=0 | choice=0"]]


def test_other_4xx_fail_without_retry(env) -> None:
    model = make_model(env.base_url)
    test_id, marker = tag(fail=404, times=-1)
    with pytest.raises(EndpointError, match="check the model name"):
        model.generate([user(marker)], SamplingParams())
    assert len(env.requests(test_id)) == 1


# ---- judge: logprobs and number_probs ----------------------------------------------------------------------


def test_next_token_logprobs(env) -> None:
    model = make_model(env.base_url)
    test_id, marker = tag(dist="words")
    (out,) = model.next_token_logprobs([user(marker)], top_k=2)
    assert out == pytest.approx({"I": -0.5108256, "Sure": -1.2039728})
    (r,) = env.requests(test_id)
    assert (r["max_tokens"], r["temperature"], r["logprobs"], r["top_logprobs"], r["seed"]) == (1, 0, True, 2, 0)


def test_next_token_logprobs_merges_duplicate_text(env) -> None:
    model = make_model(env.base_url)
    (judge,) = model.next_token_logprobs([user(tag(dist="judge")[1])])
    assert set(judge) == {"85", " 85", "90", "REF"}  # different texts stay apart
    (dup,) = model.next_token_logprobs([user(tag(dist="dup")[1])])
    assert dup == pytest.approx({"x": math.log(0.5), "85": math.log(0.5)})
    assert model.number_probs([user(tag(dist="dup")[1])]) == [pytest.approx({85: 0.5})]


def test_number_probs_sums_number_tokens(env) -> None:
    model = make_model(env.base_url)
    judge_id, judge = tag(dist="judge")
    edge_id, edge = tag(dist="edge")
    words_id, words = tag(dist="words")
    done: list[int] = []
    out = model.number_probs([user(judge), user(edge), user(words)], progress=done.append)
    assert out[0] == pytest.approx({85: 0.5 + 0.1, 90: 0.2})
    assert out[1] == pytest.approx({100: 0.2, 0: 0.1, 42: 0.1 + 0.05})
    assert out[2] == {}
    assert done == [1, 1, 1]
    assert env.requests(judge_id)[0]["top_logprobs"] == 20


def test_number_distribution_parsing() -> None:
    pairs = [("85", math.log(0.5)), (" 85", math.log(0.1)), ("\t7 ", math.log(0.1)), ("٣", math.log(0.1)),
             ("1e2", math.log(0.1)), ("+5", math.log(0.1))]
    assert number_distribution(pairs) == pytest.approx({85: 0.6, 7: 0.1})


def test_number_probs_retries_429(env) -> None:
    model = make_model(env.base_url)
    test_id, marker = tag(fail=429, times=3, dist="judge")
    (out,) = model.number_probs([user(marker)])
    assert out == pytest.approx({85: 0.6, 90: 0.2})
    assert len(env.requests(test_id)) == 4


def test_number_probs_persistent_failure_is_per_item(env) -> None:
    model = make_model(env.base_url, max_retries=2)
    bad_id, bad = tag(fail=500, times=-1)
    out = model.number_probs([user(tag()[1]), user(bad), user(tag()[1])])
    assert out[0] == pytest.approx({85: 0.6, 90: 0.2})
    assert out[2] == pytest.approx({85: 0.6, 90: 0.2})
    assert isinstance(out[1], EndpointError)
    assert env.base_url in str(out[1]) and "HTTP 500" in str(out[1])
    assert len(env.requests(bad_id)) == 3


def test_number_probs_without_logprobs_support(env) -> None:
    model = make_model(env.base_url)
    (out,) = model.number_probs([user(tag(dist="none")[1])])
    assert isinstance(out, EndpointError) and "logprobs" in str(out)
    with pytest.raises(EndpointError, match="logprobs"):
        model.next_token_logprobs([user(tag(dist="none")[1])])


def test_sdk_parses_server_schema(server) -> None:
    """The real SDK reads the fake server's responses with strict validation."""
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, _strict_response_validation=True)
    completion = client.chat.completions.create(
        model="test-model", messages=user("hello"), logprobs=True, top_logprobs=3, max_tokens=1
    )
    assert completion.object == "chat.completion"
    top = completion.choices[0].logprobs.content[0].top_logprobs
    assert [t.token for t in top] == ["85", "90", "REF"]
    assert completion.usage.total_tokens > 0
    plain = client.chat.completions.create(model="test-model", messages=user("hello"), n=2)
    assert [c.message.content for c in plain.choices] == ["echo: hello | seed=None | choice=0",
                                                          "echo: hello | seed=None | choice=1"]


# ---- judge: tokenizers that write numbers digit by digit ---------------------------------------------------

# P(reply is exactly the number k) under the fake server's "tree" replies (fake_openai_server.REPLIES): "REFUSAL",
# "05" and "101" are no numbers of 0..100, so the exact distribution holds 0.85.
TREE_EXACT = {85: 0.40, 80: 0.15, 90: 0.10, 100: 0.05, 10: 0.04, 8: 0.03, 0: 0.03, 75: 0.05}


def test_digit_splitting_judge_is_detected_and_scored_exactly(env) -> None:
    """A judge answering "85" token by token ("8", "5") gets P(85), not P(8): today's single-token read gives 8."""
    model = make_model(env.base_url)
    test_id, marker = tag(dist="tree", split=1)
    done: list[int] = []
    (out,) = model.number_probs([user(marker)], progress=done.append)
    assert out == pytest.approx(TREE_EXACT, abs=1e-9)
    assert model.number_mode == "digits" and done == [1]
    seen = env.requests(test_id)
    first, rest = seen[0], seen[1:]
    assert (first["max_tokens"], first["top_logprobs"], first["prefill"]) == (1, 20, None)
    assert rest and all(r["continue_final_message"] is True and r["add_generation_prompt"] is False for r in rest)
    # each continuation starts from a digit prefix and generates to depth 3 at most
    assert all(r["prefill"].isdigit() and r["max_tokens"] == 4 - len(r["prefill"]) for r in rest)
    assert len(rest) <= 8  # greedy paths read "8" -> "85" and "1" -> "10" -> "100" in one request each


def test_digit_mode_sticks_and_later_batches_read_greedy_paths(env) -> None:
    model = make_model(env.base_url)
    (words,) = model.number_probs([user(tag(dist="words", split=1)[1])])
    assert words == {} and model.number_mode is None  # no digits: undecided, and nothing lost
    (low,) = model.number_probs([user(tag(dist="low", split=1)[1])])
    assert low == pytest.approx({7: 0.3}) and model.number_mode is None  # under half on digits: read as before
    model.number_probs([user(tag(dist="tree", split=1)[1])])
    assert model.number_mode == "digits"
    sure_id, sure = tag(dist="sure", split=1)
    (out,) = model.number_probs([user(sure)])
    assert out == pytest.approx({85: 0.97, 80: 0.03})
    seen = env.requests(sure_id)
    assert seen[0]["max_tokens"] == 4 and seen[0]["prefill"] is None  # the root request reads "8" -> "85" -> end
    assert [r["prefill"] for r in seen[1:]] == ["80"]  # only P(end | 80) was missing


def test_digit_tree_needs_the_end_tokens_logprobs(env) -> None:
    """A server that leaves the end-of-reply position out of logprobs cannot say whether "85" ends: an error, no guess."""
    model = make_model(env.base_url)
    bad, good = model.number_probs([user(tag(dist="tree", split=1, eos=0)[1]), user(tag(dist="tree", split=1)[1])])
    assert isinstance(bad, EndpointError) and "end-of-reply" in str(bad)
    assert good == pytest.approx(TREE_EXACT, abs=1e-9)


def test_digit_tree_request_cap_and_bound(env) -> None:
    """A judge spread evenly over 0..100: the cap stops the walk; what is missing is at most the reach left unread."""
    model = make_model(env.base_url, max_tree_requests=10)
    test_id, marker = tag(dist="spread", split=1)
    (out,) = model.number_probs([user(marker)])
    assert len(env.requests(test_id)) == 1 + 10
    assert all(p == pytest.approx(1 / 101) for p in out.values())
    assert 0 < sum(out.values()) < 1  # what was not read counts as no number, never as a wrong one


def test_one_token_per_number_server_is_unchanged(env) -> None:
    model = make_model(env.base_url)
    ids_markers = [tag(dist="judge") for _ in range(3)]
    out = model.number_probs([user(m) for _, m in ids_markers])
    assert out == [pytest.approx({85: 0.6, 90: 0.2})] * 3
    assert model.number_mode == "tokens"
    for test_id, _ in ids_markers:
        (r,) = env.requests(test_id)  # one request each, as before
        assert (r["max_tokens"], r["top_logprobs"], r["prefill"], r["continue_final_message"]) == (1, 20, None, None)


@pytest.mark.parametrize("prefill, reason", [("ignore", "started a new reply"), ("reject", "rejected")])
def test_digit_tree_refuses_a_server_that_cannot_continue(env, prefill: str, reason: str) -> None:
    model = make_model(env.base_url, api_key="sk-never-shown")
    with pytest.raises(ModelSpecError) as info:
        model.number_probs([user(tag(dist="tree", split=1, prefill=prefill)[1])])
    message = str(info.value)
    assert reason in message and "digit by digit" in message and "vLLM" in message and "llama-server" in message
    assert env.base_url in message and "\n" not in message and "sk-never-shown" not in message


def test_digit_splitting_server_flag(start_server) -> None:
    """--split-digits serves every judgment digit by digit, whatever the prompt says."""
    srv = start_server("--split-digits")
    (out,) = make_model(srv.base_url).number_probs([user(tag(dist="tree")[1])])
    assert out == pytest.approx(TREE_EXACT, abs=1e-9)
