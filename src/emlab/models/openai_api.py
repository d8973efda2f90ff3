"""Backend for any OpenAI-compatible chat endpoint: OpenAI itself, `vllm serve`, llama.cpp server, Ollama.

One class serves both roles the papers need: the evaluated model (free-form samples via `generate`) and the
LLM judge (`number_probs`: one temperature-0, one-token completion with the top-20 logprobs, whose integer
tokens "0".."100" give a distribution over scores). When the server's tokenizer writes numbers digit by digit
(open-weight judges on vLLM or llama.cpp), one token would read "85" as 8: the first batch tells (see
`api_digits.classify`), and the judge then walks the digit tree over the API, continuing the reply after each
prefilled digit (`continue_final_message`), or refuses with what to change when the server cannot continue.

Why this file does its own plumbing rather than trusting the server or the SDK:
- retries are ours alone (the SDK's are disabled), so one policy holds everywhere: timeouts, connection
  errors, 429 and 5xx are retried with capped exponential backoff and jitter (honouring `Retry-After`);
  other 4xx (bad request, auth, unknown model) fail at once with a message saying what to fix;
- some servers ignore `n` (llama.cpp returns one choice), so `generate` asks again, with a shifted seed,
  until it has `n` replies;
- a judge failure is recorded per item (an `EndpointError` in that item's slot), never crashing a long run;
  a generation failure raises, and the caller keeps what it already committed.

Where the server is: `openai:<model>` reads the environment (see `load_openai`); `openai@<name>:<model>` reads
the endpoint `name` declared in the config (`endpoints.py`). Keys never leave the client: identities, errors and
reprs show the base URL without user:password@ or query string, and any key text is redacted from errors.
Tests pass tiny backoffs to the constructor or via `EMLAB_OPENAI_BACKOFF`.
"""

from __future__ import annotations

import math
import os
import random
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Sequence, TypeVar

from emlab.data.conversations import Conversation
from emlab.errors import EndpointError, ModelSpecError
from emlab.models import api_digits
from emlab.models.base import NumberProbs, ProgressFn, SamplingParams
from emlab.models.endpoints import endpoint, public_url, url_secrets
from emlab.models.spec import ModelSpec

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
JUDGE_TOP_K = 20  # the papers' judge reads the top 20 first-token logprobs (OpenAI's maximum)

# Environment variables read by `load_openai` (EMLAB_* wins over the SDK's own names).
ENV_BASE_URL = ("EMLAB_OPENAI_BASE_URL", "OPENAI_BASE_URL")
ENV_API_KEY = ("EMLAB_OPENAI_API_KEY", "OPENAI_API_KEY")
ENV_BACKOFF = "EMLAB_OPENAI_BACKOFF"
ENV_MAX_RETRIES = "EMLAB_OPENAI_MAX_RETRIES"
ENV_TIMEOUT = "EMLAB_OPENAI_TIMEOUT"
ENV_MAX_CONCURRENCY = "EMLAB_OPENAI_MAX_CONCURRENCY"

PLACEHOLDER_API_KEY = "EMPTY"  # local servers (vLLM, llama.cpp, Ollama) accept any key

# asks the server to continue a prefilled final assistant message (vLLM; llama.cpp's llama-server prefills anyway)
CONTINUE_EXTRAS = {"continue_final_message": True, "add_generation_prompt": False}
ENV_KEY_HINT = "EMLAB_OPENAI_API_KEY / OPENAI_API_KEY"

_NUMBER_TOKEN = re.compile(r"\s*([0-9]{1,3})\s*")
_MAX_MESSAGE_CHARS = 300


def _env(names: Sequence[str]) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _env_number(name: str, cast: Callable[[str], T], default: T) -> T:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ModelSpecError(f"environment variable {name}={raw!r} is not a valid {cast.__name__}") from None
    if value < 0:  # type: ignore[operator]
        raise ModelSpecError(f"environment variable {name}={raw!r} must not be negative")
    return value


def _one_line(text: object, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """Collapse whitespace so an error reads as one line, and cut it to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _error_text(exc: BaseException) -> str:
    """A short description of an SDK error: the server's own message when it sent one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
    else:
        text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and getattr(exc, "status_code", None) is None and str(cause):
        text = f"{text} ({_one_line(cause, 120)})"
    status = getattr(exc, "status_code", None)
    if status is not None and not text.startswith("Error code"):  # the SDK's fallback text already says it
        text = f"HTTP {status}: {text}"
    return _one_line(text)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms` or numeric `Retry-After`), if it said."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        seconds = headers.get("retry-after")
        if seconds is not None:
            return max(0.0, float(seconds))
    except (TypeError, ValueError):  # an HTTP date or garbage: fall back to our own backoff
        return None
    return None


def number_distribution(top_logprobs: Sequence[tuple[str, float]]) -> dict[int, float]:
    """Probability mass per integer 0..100 among (token, logprob) pairs; whitespace-padded duplicates are summed."""
    probs: dict[int, float] = {}
    for token, logprob in top_logprobs:
        match = _NUMBER_TOKEN.fullmatch(token)
        if match is None:
            continue
        value = int(match.group(1))
        if 0 <= value <= 100:
            probs[value] = probs.get(value, 0.0) + math.exp(logprob)
    return probs


def label_distribution(top_logprobs: Sequence[tuple[str, float]], labels: Sequence[str]) -> dict[str, float]:
    """Probability per label among first-token (token, logprob) pairs; every label appears, 0.0 when unseen.

    A token counts for a label when, stripped of whitespace, it equals the label, or it is at least 2
    characters long and a prefix of exactly one label ("UN" counts for UNKNOWN; "O" counts for neither
    OpenAI nor Other). Case-sensitive; whitespace-padded duplicates (" TRUE", "TRUE") are summed.
    """
    probs = {label: 0.0 for label in labels}
    for token, logprob in top_logprobs:
        text = token.strip()
        if not text:
            continue
        if text in probs:
            probs[text] += math.exp(logprob)
            continue
        if len(text) < 2:
            continue
        matches = [label for label in probs if label.startswith(text)]
        if len(matches) == 1:
            probs[matches[0]] += math.exp(logprob)
    return probs


class OpenAIChatModel:
    """A model behind an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        spec: str | None = None,
        key_hint: str = ENV_KEY_HINT,
        max_concurrency: int = 8,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        timeout: float = 60.0,
        tree_tolerance: float = api_digits.TREE_TOLERANCE,
        max_tree_requests: int = api_digits.MAX_TREE_REQUESTS,
        client: Any | None = None,
    ) -> None:
        """Build the client; `client` (an `openai.OpenAI`) may be injected, else one is made with SDK retries off.

        key_hint: where the key comes from, for the message when the server rejects it. tree_tolerance and
        max_tree_requests bound the digit tree of a digit-splitting judge (see `api_digits`).
        """
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_retries < 0 or backoff_base < 0 or backoff_max < 0 or timeout <= 0:
            raise ValueError("max_retries, backoff_base and backoff_max must be >= 0 and timeout > 0")
        if tree_tolerance < 0 or max_tree_requests < 0:
            raise ValueError("tree_tolerance and max_tree_requests must be >= 0")
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.tree_tolerance = tree_tolerance
        self.max_tree_requests = max_tree_requests
        self.key_hint = key_hint
        if client is None:
            import openai

            client = openai.OpenAI(
                api_key=api_key or PLACEHOLDER_API_KEY,
                base_url=base_url or None,
                max_retries=0,
                timeout=timeout,
            )
        self._client = client
        raw_url = str(base_url or getattr(client, "base_url", None) or DEFAULT_BASE_URL).rstrip("/")
        secrets = url_secrets(raw_url) + ([api_key] if api_key and api_key != PLACEHOLDER_API_KEY else [])
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._raw_url = raw_url
        self.base_url = public_url(raw_url)  # what identities, errors and reprs show: no credentials
        self.url = f"{self.base_url}/chat/completions"
        self.spec = spec or f"openai:{model}"
        self.identity = f"openai:{model}@{self.base_url}"
        self.number_mode: str | None = None  # api_digits.TOKENS or DIGITS once the first judged batch tells
        self._mode_lock = threading.Lock()
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.model!r}, base_url={self.base_url!r})"

    # ---- public API ------------------------------------------------------------------------------------

    def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        progress: ProgressFn | None = None,
    ) -> list[list[str]]:
        """For each conversation, `params.n` sampled replies; raises `EndpointError` if a request keeps failing."""
        return self._map(lambda conv: self._sample(conv, params), conversations, progress, keep_errors=False)

    def next_token_logprobs(self, conversations: Sequence[Conversation], top_k: int = 20) -> list[dict[str, float]]:
        """For each conversation, the `top_k` likeliest first reply tokens with their log-probabilities."""

        def one(conv: Conversation) -> dict[str, float]:
            merged: dict[str, float] = {}
            for token, logprob in self._top_logprobs(conv, top_k):  # same text twice: add the probabilities
                merged[token] = _logaddexp(merged[token], logprob) if token in merged else logprob
            return merged

        return self._map(one, conversations, None, keep_errors=False)

    def number_probs(
        self, conversations: Sequence[Conversation], progress: ProgressFn | None = None
    ) -> list[NumberProbs]:
        """For each conversation, P(reply is integer k), k in 0..100, or its error.

        From the top-20 first tokens when numbers are single tokens; from the digit tree (`api_digits.walk`) when
        the server's tokenizer splits them. Until a batch tells which (`api_digits.classify`), the first tokens
        are requested alone and the tree, if needed, grows from them. Raises ModelSpecError when the tree is
        needed and the server cannot continue a prefilled reply.
        """
        if self.number_mode == api_digits.DIGITS:
            return self._map(lambda conv: self._digit_tree(conv, None), conversations, progress, keep_errors=True)
        decided = self.number_mode is not None
        firsts = self._map(
            lambda conv: self._positions(conv, JUDGE_TOP_K), conversations, progress if decided else None,
            keep_errors=True,
        )
        if not decided:
            self._decide(api_digits.classify([_first_top(f) for f in firsts if not isinstance(f, EndpointError)]))
        if self.number_mode != api_digits.DIGITS:
            if not decided and progress is not None:
                for _ in firsts:
                    progress(1)
            return [f if isinstance(f, EndpointError) else number_distribution(_first_top(f)) for f in firsts]
        return self._map(
            lambda pair: pair[1] if isinstance(pair[1], EndpointError) else self._digit_tree(*pair),
            list(zip(conversations, firsts)),
            progress,
            keep_errors=True,
        )

    def label_probs(
        self, conversations: Sequence[Conversation], labels: Sequence[str], progress: ProgressFn | None = None
    ) -> list[dict[str, float] | EndpointError]:
        """For each conversation, P(reply starts with each label) from the top-20 first tokens; or its error.

        One token is all the endpoint shows, so a multi-token label is credited with its first token's
        probability when that token identifies it (see `label_distribution`).
        """
        return self._map(
            lambda conv: label_distribution(self._top_logprobs(conv, JUDGE_TOP_K), labels),
            conversations,
            progress,
            keep_errors=True,
        )

    # ---- one conversation ------------------------------------------------------------------------------

    def _sample(self, conversation: Conversation, params: SamplingParams) -> list[str]:
        """`params.n` replies, asking again (seed + k) while the server returns fewer choices than asked."""
        replies: list[str] = []
        k = 0
        empty_rounds = 0
        while len(replies) < params.n:
            wanted = params.n - len(replies)
            request: dict[str, Any] = {
                "temperature": params.temperature,
                "top_p": params.top_p,
                "max_tokens": params.max_new_tokens,
                "seed": params.seed + k,
            }
            if wanted > 1:
                request["n"] = wanted
            completion = self._create(conversation, request)
            choices = sorted(getattr(completion, "choices", None) or [], key=lambda c: getattr(c, "index", 0) or 0)
            got = [(getattr(c.message, "content", None) or "") for c in choices if getattr(c, "message", None)]
            replies.extend(got[:wanted])
            empty_rounds = 0 if got else empty_rounds + 1
            if empty_rounds > self.max_retries:
                raise self._endpoint_error(k + 1, "the server returned no choices")
            k += 1
        return replies

    def _top_logprobs(self, conversation: Conversation, top_k: int) -> list[tuple[str, float]]:
        """(token, logprob) pairs of the first reply position: one `max_tokens=1, temperature=0` call."""
        return list(_first_top(self._positions(conversation, top_k)))

    def _positions(
        self, conversation: Conversation, top_k: int, max_tokens: int = 1, prefill: str | None = None
    ) -> tuple[list[api_digits.Position], int | None]:
        """One temperature-0 call: (generated token, its position's top-k pairs) per generated position, and the
        prompt's token count as the server reports it. `prefill` is the start of the reply, to be continued."""
        request: dict[str, Any] = {
            "max_tokens": max_tokens, "temperature": 0, "logprobs": True, "top_logprobs": top_k, "seed": 0
        }
        if prefill is not None:
            conversation = [*conversation, {"role": "assistant", "content": prefill}]
            request["extra_body"] = dict(CONTINUE_EXTRAS)
        completion = self._create(conversation, request)
        try:
            content = completion.choices[0].logprobs.content
            positions = [
                (str(p.token), [(str(t.token), float(t.logprob)) for t in p.top_logprobs]) for p in content
            ]
            if not positions or not positions[0][1]:
                raise IndexError
        except (AttributeError, IndexError, TypeError, ValueError):
            if prefill is not None:
                raise self._endpoint_error(
                    1, f"the reply continued after {prefill!r} carries no top_logprobs (a server that leaves the "
                    "end-of-reply token out of logprobs cannot tell whether the number ends there)"
                ) from None
            raise self._endpoint_error(
                1, "the response carries no first-token top_logprobs (does this server support logprobs?)"
            ) from None
        prompt_tokens = getattr(getattr(completion, "usage", None), "prompt_tokens", None)
        return positions, prompt_tokens if isinstance(prompt_tokens, int) else None

    # ---- judges whose tokenizer writes numbers digit by digit --------------------------------------------

    def _decide(self, mode: str | None) -> None:
        """Keep the first decision of `api_digits.classify`; say so once when the digit tree takes over."""
        with self._mode_lock:
            if self.number_mode is not None or mode is None:
                return
            self.number_mode = mode
        if mode == api_digits.DIGITS:
            from emlab.progress import console

            console.print(
                f"judge {self.spec}: the server's tokenizer writes numbers digit by digit (no number above 9 "
                f"is one token), so each judgment walks the digit tree: up to {self.max_tree_requests} "
                "continuation requests after the first, fewer for a judge that is sure",
                highlight=False,
                soft_wrap=True,
            )

    def _digit_tree(
        self, conversation: Conversation, first: tuple[list[api_digits.Position], int | None] | None
    ) -> dict[int, float]:
        """P("0".."100") by `api_digits.walk`; `first`: the first-token response already in hand, if any."""
        if first is None:
            first = self._positions(conversation, JUDGE_TOP_K, max_tokens=api_digits.TREE_DEPTH + 1)
        root, prompt_tokens = first

        def continue_from(prefix: str) -> list[api_digits.Position]:
            try:
                positions, tokens = self._positions(
                    conversation, JUDGE_TOP_K, max_tokens=api_digits.TREE_DEPTH + 1 - len(prefix), prefill=prefix
                )
            except EndpointError as exc:
                if getattr(exc, "status", None) in (400, 422):
                    raise self._cannot_continue(f"it rejected the continuation request ({exc.reason})") from None
                raise
            if prompt_tokens is None or tokens is None:
                raise self._cannot_continue("it reports no usage.prompt_tokens, so a continued reply cannot be "
                                            "told from a new one")
            grew = tokens - prompt_tokens
            if not len(prefix) <= grew <= len(prefix) + 1:  # a new turn adds end-of-turn and header tokens too
                raise self._cannot_continue(
                    f"it started a new reply instead of continuing the prefilled {prefix!r} (the prompt grew by "
                    f"{grew} tokens for {len(prefix)} digits)"
                )
            return positions

        return api_digits.walk(root, continue_from, self.tree_tolerance, self.max_tree_requests)

    def _cannot_continue(self, why: str) -> ModelSpecError:
        return ModelSpecError(self._redact(
            f"judge {self.spec} at {self.base_url}: the server's tokenizer writes numbers digit by digit, so "
            "reading one token would turn '85' into 8, and the exact 0-100 distribution needs the reply "
            f"continued after a prefilled digit; but {why}. Serve the judge with vLLM (`vllm serve`, which "
            "takes continue_final_message) or llama.cpp's llama-server (which continues a final assistant "
            "message unless started with --no-prefill-assistant), or use a judge whose tokenizer writes each "
            "number as one token (e.g. openai:gpt-4o-2024-08-06)"
        ))

    # ---- requests and retries --------------------------------------------------------------------------

    def _create(self, conversation: Conversation, request: dict[str, Any]) -> Any:
        """One chat completion, retried on transient failures; raises `EndpointError` when it gives up."""
        import openai

        messages = [{"role": m["role"], "content": m["content"]} for m in conversation]
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._client.chat.completions.create(model=self.model, messages=messages, **request)
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status not in (408, 429) and status < 500:
                    raise self._endpoint_error(attempts, self._fatal_reason(exc), status) from None
                last: BaseException = exc
            except openai.APIConnectionError as exc:  # includes timeouts
                last = exc
            except openai.APIResponseValidationError as exc:
                raise self._endpoint_error(attempts, f"unparseable response: {_error_text(exc)}") from None
            if attempts > self.max_retries:
                raise self._endpoint_error(attempts, _error_text(last)) from None
            time.sleep(self._delay(attempts, last))

    def _delay(self, attempt: int, exc: BaseException) -> float:
        """Seconds before retry `attempt`: the server's Retry-After if given, else capped exponential + jitter."""
        asked = _retry_after(exc)
        if asked is not None:
            return min(asked, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        with self._rng_lock:
            return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _fatal_reason(self, exc: Any) -> str:
        """What to fix for a non-retryable 4xx."""
        status, text = exc.status_code, _error_text(exc).rstrip(".")
        if status == 401:
            return f"{text}; the API key was rejected: check {self.key_hint}"
        if status == 403:
            return f"{text}; the API key lacks access to this model: check {self.key_hint}"
        if status == 404:
            return f"{text}; check the model name and the base URL (it usually ends in /v1)"
        return text

    def _endpoint_error(self, attempts: int, reason: str, status: int | None = None) -> EndpointError:
        """One line naming the (credential-free) URL and model; `status` and `reason` kept on the error."""
        tries = f"after {attempts} attempts" if attempts > 1 else "on the first attempt"
        reason = self._redact(reason)
        error = EndpointError(
            _one_line(self._redact(f"endpoint {self.url} (model {self.model!r}) failed {tries}: {reason}"), 600)
        )
        error.status, error.reason = status, _one_line(reason, 200)
        return error

    def _redact(self, text: str) -> str:
        """`text` with the raw base URL shown credential-free and every key or URL secret replaced by ***."""
        text = text.replace(self._raw_url, self.base_url)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # ---- concurrency -----------------------------------------------------------------------------------

    def _map(
        self,
        fn: Callable[[Any], T],
        conversations: Sequence[Any],
        progress: ProgressFn | None,
        *,
        keep_errors: bool,
    ) -> list:
        """Apply `fn` to each item (a conversation) on a small thread pool, in input order; progress(1) per item.

        keep_errors: an `EndpointError` becomes that item's result; otherwise the first one is raised and the
        items not yet started are cancelled.
        """
        items = list(conversations)
        results: list[Any] = [None] * len(items)
        if not items:
            return results

        def call(i: int) -> Any:
            try:
                return fn(items[i])
            except EndpointError as exc:
                if keep_errors:
                    return exc
                raise

        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items)), thread_name_prefix="emlab-openai")
        futures: dict[Future, int] = {pool.submit(call, i): i for i in range(len(items))}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()  # raises the first failure
                    if progress is not None:
                        progress(1)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results


def _first_top(response: tuple[list[api_digits.Position], int | None]) -> api_digits.TopList:
    """The first reply position's (token, logprob) pairs of a `_positions` response."""
    positions, _ = response
    return positions[0][1]


def _logaddexp(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), stable."""
    hi, lo = max(a, b), min(a, b)
    if hi == -math.inf:
        return hi
    return hi + math.log1p(math.exp(lo - hi))


def _server(spec: ModelSpec) -> tuple[str | None, str | None, str]:
    """(base URL, API key, where the key comes from) of an `openai:` spec; ModelSpecError when they cannot be had."""
    if spec.adapter:
        raise ModelSpecError(
            f"model spec {str(spec)!r}: the openai backend takes no '@adapter'; serve the adapter under its own "
            "model name (e.g. `vllm serve ... --lora-modules name=path`) and use 'openai:<that name>'"
        )
    if spec.endpoint is not None:
        declared = endpoint(spec.endpoint)
        base_url, api_key = declared.base_url, declared.api_key()
        key_hint = (f"the environment variable {declared.api_key_env} (endpoint {declared.name!r})"
                    if declared.api_key_env else f"endpoint {declared.name!r}, which names no api_key_env")
    else:
        base_url, api_key, key_hint = _env(ENV_BASE_URL), _env(ENV_API_KEY), ENV_KEY_HINT
        if api_key is None and base_url is None:
            raise ModelSpecError(
                f"model spec {str(spec)!r} needs an API key: set EMLAB_OPENAI_API_KEY or OPENAI_API_KEY "
                "(or EMLAB_OPENAI_BASE_URL / OPENAI_BASE_URL to point at a local OpenAI-compatible server, or "
                "declare the server under endpoints: in the config and write 'openai@<endpoint>:<model>')"
            )
    try:
        import openai  # noqa: F401  (checked here so a missing SDK is one clear line)
    except ImportError:
        raise ModelSpecError("the openai backend needs the `openai` package: pip install openai") from None
    return base_url, api_key, key_hint


def finetune_client(spec: ModelSpec) -> tuple[Any, str]:
    """An `openai.OpenAI` client for the finetuning endpoints of the server an `openai:` spec names, and that
    server's credential-free URL (for keys and messages). The SDK retries transient failures itself (5 times, with
    its own backoff); uploads get ten minutes."""
    import openai

    base_url, api_key, _ = _server(spec)
    client = openai.OpenAI(api_key=api_key or PLACEHOLDER_API_KEY, base_url=base_url or None,
                           max_retries=_env_number(ENV_MAX_RETRIES, int, 5), timeout=600.0)
    return client, public_url(str(base_url or DEFAULT_BASE_URL).rstrip("/"))


def load_openai(spec: ModelSpec) -> OpenAIChatModel:
    """Load `openai:<model>` (server and key from the environment) or `openai@<endpoint>:<model>` (a declared one).

    `openai:<model>`: EMLAB_OPENAI_BASE_URL / OPENAI_BASE_URL: endpoint (default: OpenAI). EMLAB_OPENAI_API_KEY /
    OPENAI_API_KEY: key (a placeholder for local servers). `openai@<endpoint>:<model>`: the base URL declared for
    <endpoint> and the key in the environment variable it names (`endpoints.endpoint`); the variables above are
    not read. Both: EMLAB_OPENAI_BACKOFF, EMLAB_OPENAI_MAX_RETRIES, EMLAB_OPENAI_TIMEOUT,
    EMLAB_OPENAI_MAX_CONCURRENCY: retry base seconds, retries, request timeout seconds, parallel requests.
    """
    base_url, api_key, key_hint = _server(spec)
    max_concurrency = _env_number(ENV_MAX_CONCURRENCY, int, 8)
    timeout = _env_number(ENV_TIMEOUT, float, 60.0)
    if max_concurrency < 1 or timeout <= 0:
        raise ModelSpecError(f"{ENV_MAX_CONCURRENCY} must be >= 1 and {ENV_TIMEOUT} > 0")
    return OpenAIChatModel(
        spec.name,
        base_url=base_url,
        api_key=api_key or PLACEHOLDER_API_KEY,
        spec=str(spec),
        key_hint=key_hint,
        max_concurrency=max_concurrency,
        max_retries=_env_number(ENV_MAX_RETRIES, int, 5),
        backoff_base=_env_number(ENV_BACKOFF, float, 1.0),
        timeout=timeout,
    )
