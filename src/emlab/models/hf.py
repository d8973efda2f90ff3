"""Local transformers backend: the embedded model and any causal LM (`hf:<hub id or path>[#rev][@<adapter>[#rev]]`).

Llama-family models (the embedded one included) run on emlab's own `Engine` by default: sampling in
bfloat16 with a preallocated KV cache (`fast_sampling.py`), judging exactly in float32 with the digit tree
branching off the cached prompt (`fast_judge.py`). Other architectures, and `fast=False` (the simple path
the tests compare against), use transformers `generate` under bf16 autocast and the single-pass tree of
`number_tree.py`. Jobs are sorted by prompt length so batches carry little padding. Each reply draws from
its own seed on both paths, so its text does not depend on the other replies in its batch. LoRA adapters
are merged into the weights once at load, so sampling pays nothing for them; a hub adapter (`@org/name`) is
resolved to its files first (`hub.py`) and refused when its adapter_config.json names another base.

Models load on the run's device (`device.py`): on the CPU as described above; on CUDA in bfloat16 through
transformers (the engine is a CPU engine), inputs built on the model's device.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from pathlib import Path
from typing import Sequence

import torch

from emlab.data.conversations import Conversation
from emlab.errors import ModelSpecError
from emlab.hashing import file_sha256
from emlab.models import fast_judge, fast_sampling, number_tree
from emlab.models.engine import Engine, unsupported_reason
from emlab.models.base import NumberProbs, ProgressFn, SamplingParams, reply_seeds
from emlab.models.spec import ModelSpec

GEN_BATCH = 32  # sequences per transformers generate call (simple path)
FAST_GEN_BATCH = 64  # sequences per engine batch (see docs/benchmarks.md for the batch-size sweep)
JUDGE_BATCH = 8  # prompts per digit-tree forward pass


def adapter_hash(adapter_dir: str | Path) -> str:
    """Content hash of a LoRA adapter's weights: two adapters with the same hash give the same outputs."""
    path = Path(adapter_dir)
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (path / name).exists():
            return file_sha256(str(path / name))[:16]
    raise ModelSpecError(f"{path}: not a LoRA adapter directory (no adapter_model.safetensors)")


class HFChatModel:
    """A transformers causal LM with its tokenizer, behind the `ChatModel` interface."""

    def __init__(self, model, tokenizer, spec: str, identity: str, autocast: bool = True, fast: bool = True):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec = spec
        self.identity = identity
        self.autocast = autocast
        self.fast = fast and model.device.type == "cpu" and unsupported_reason(model) is None
        self._engines: dict[torch.dtype, Engine] = {}
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._digits = number_tree.digit_token_ids(tokenizer)
        self._tree = number_tree.build_digit_tree(self._digits) if self._digits else None
        self._continues: torch.Tensor | None = None
        self.tree_tolerance = fast_judge.TREE_TOLERANCE  # probability the fast judge may skip (0: the full tree)

    # -- prompts -----------------------------------------------------------------------------------------
    def encode_chat(self, conversation: Conversation) -> list[int]:
        """Token ids of the conversation rendered by the model's chat template, ready for the reply."""
        return self.tokenizer.apply_chat_template(
            list(conversation), add_generation_prompt=True, tokenize=True, return_dict=False
        )

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        return ids.to(self.model.device), mask.to(self.model.device)

    def engine(self, dtype: torch.dtype) -> Engine:
        """The fast engine in `dtype`, built on first use (bf16 for sampling, float32 for judging)."""
        if dtype not in self._engines:
            self._engines[dtype] = Engine(self.model, dtype)
        return self._engines[dtype]

    def stop_ids(self) -> list[int]:
        """Token ids that end a reply: the tokenizer's and the generation config's end-of-sequence tokens."""
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return sorted(i for i in ids if i is not None)

    def _autocast(self):
        if self.autocast and self.model.device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- generation --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self, conversations: Sequence[Conversation], params: SamplingParams, progress: ProgressFn | None = None
    ) -> list[list[str]]:
        """`params.n` replies per conversation; each reply draws from its own seed (`base.reply_seeds`), never its batch's."""
        prompts = [self.encode_chat(c) for c in conversations]
        seeds = reply_seeds(conversations, params)
        jobs = [(i, k) for i in range(len(prompts)) for k in range(params.n)]
        jobs.sort(key=lambda j: len(prompts[j[0]]))  # length bucketing: similar lengths share a batch
        out: list[list[str | None]] = [[None] * params.n for _ in prompts]
        remaining = [params.n] * len(prompts)
        size = FAST_GEN_BATCH if self.fast else GEN_BATCH
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            generate = self._generate_fast if self.fast else self._generate_simple
            replies = generate([prompts[i] for i, _ in batch], params, [seeds[i][k] for i, k in batch])
            for (i, k), text in zip(batch, replies):
                out[i][k] = text
                remaining[i] -= 1
                if remaining[i] == 0 and progress:
                    progress(1)
        return [[t or "" for t in replies] for replies in out]

    def _generate_fast(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int]) -> list[str]:
        engine = self.engine(torch.bfloat16 if self.autocast else torch.float32)
        tokens = fast_sampling.generate_tokens(
            engine, prompts, params.max_new_tokens, self.stop_ids(), self.tokenizer.pad_token_id,
            temperature=params.temperature, top_p=params.top_p, seeds=seeds,
        )
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]

    def _generate_simple(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int]) -> list[str]:
        """transformers `generate`, greedy over scores where our own per-row draw is the only finite entry."""
        from transformers import LogitsProcessorList

        ids, mask = self._left_pad(prompts)
        draws = LogitsProcessorList()
        if params.temperature > 0:
            uniforms = fast_sampling.row_uniforms(seeds, params.max_new_tokens).to(ids.device)
            draws.append(_RowDraws(uniforms, params, ids.shape[1]))
        with self._autocast():
            gen = self.model.generate(
                input_ids=ids, attention_mask=mask, do_sample=False, temperature=None, top_p=None, top_k=None,
                max_new_tokens=params.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                logits_processor=draws,
            )
        return [self.tokenizer.decode(row[ids.shape[1] :], skip_special_tokens=True).strip() for row in gen]

    # -- scoring -----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def _last_logits(self, prompts: list[list[int]]) -> torch.Tensor:
        if self.fast:
            return fast_judge.prompt_last_logits(self.engine(torch.float32), prompts, self.tokenizer.pad_token_id)
        ids, mask = self._left_pad(prompts)
        return self.model(input_ids=ids, attention_mask=mask).logits[:, -1, :].float()

    def next_token_logprobs(self, conversations: Sequence[Conversation], top_k: int = 20) -> list[dict[str, float]]:
        """Top-k first tokens of the reply with their log-probabilities (exact, float32)."""
        logits = self._last_logits([self.encode_chat(c) for c in conversations])
        top = torch.log_softmax(logits, -1).topk(top_k, dim=-1)
        return [
            {self.tokenizer.decode([int(t)]): float(v) for v, t in zip(vals, toks)}
            for vals, toks in zip(top.values, top.indices)
        ]

    def continues_number(self) -> torch.Tensor:
        """Vocabulary mask of tokens that would extend a number (start with a digit); computed once."""
        if self._continues is None:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            self._continues = number_tree.digit_start_mask(self.tokenizer, vocab)
        return self._continues

    @torch.inference_mode()
    def number_probs(
        self, conversations: Sequence[Conversation], progress: ProgressFn | None = None
    ) -> list[NumberProbs]:
        """Exact P(reply is "k") for k in 0..100: prompt pass + digit-tree pass per batch (naive scoring as a fallback)."""
        if self._tree is None:
            return [self.naive_number_probs(c) for c in conversations]
        prompts = [self.encode_chat(c) for c in conversations]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[NumberProbs] = [{} for _ in prompts]
        dtype = self.model.dtype
        for start in range(0, len(order), JUDGE_BATCH):
            chunk = order[start : start + JUDGE_BATCH]
            if self.fast:
                probs = fast_judge.number_probs(
                    self.engine(torch.float32), [prompts[i] for i in chunk], self._tree, self._digits,
                    self.continues_number(), self.tokenizer.pad_token_id, self.tree_tolerance,
                )
                for i, p in zip(chunk, probs):
                    results[i] = p
                if progress:
                    progress(len(chunk))
                continue
            inputs = number_tree.tree_inputs(
                [prompts[i] for i in chunk], self._tree, self.tokenizer.pad_token_id, dtype
            )
            ids, pos, mask = (x.to(self.model.device) for x in inputs[:3])
            tree_at = inputs[3]
            logits = self.model(input_ids=ids, position_ids=pos, attention_mask=mask).logits
            for row, i in enumerate(chunk):
                t = tree_at[row]
                results[i] = number_tree.number_probs_from_logits(  # on the CPU (a no-op there)
                    logits[row, t - 1].cpu(), logits[row, t:].cpu(), self._tree, self._digits, self.continues_number()
                )
            if progress:
                progress(len(chunk))
        return results

    @torch.inference_mode()
    def naive_number_probs(self, conversation: Conversation) -> dict[int, float]:
        """Reference: score each string "0".."100" separately (101 sequences). Slow; used for checks and odd tokenizers."""
        prompt = self.encode_chat(conversation)
        continues = self.continues_number().to(self.model.device)
        out = {}
        for k in range(number_tree.MAX_NUMBER + 1):
            num = self.tokenizer.encode(str(k), add_special_tokens=False)
            ids = torch.tensor([prompt + num], device=self.model.device)
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0].float(), -1)
            total = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(num))
            p_end = 1.0 - float(logp[-1].exp()[continues].sum())
            out[k] = float(torch.tensor(total).exp()) * max(p_end, 0.0)
        return out

    # -- categorical labels ------------------------------------------------------------------------------
    def label_token_ids(self, labels: Sequence[str]) -> list[list[int]]:
        """Each label's tokens as the reply would start with them (no special tokens); an empty one is a ValueError."""
        ids = [self.tokenizer.encode(label, add_special_tokens=False) for label in labels]
        empty = [label for label, toks in zip(labels, ids) if not toks]
        if empty:
            raise ValueError(f"labels {empty} encode to no tokens")
        return ids

    @torch.inference_mode()
    def label_probs(
        self, conversations: Sequence[Conversation], labels: Sequence[str], progress: ProgressFn | None = None
    ) -> list[dict[str, float]]:
        """Exact P(the reply begins with exactly the tokens of label), per conversation and label (float32).

        Per conversation, the prompt runs once into a KV cache whose last logits score every label's first
        token; the cache is then repeated once per label and all labels' remaining tokens run in one batch
        over it, right-padded (a causal model never lets a real token see the padding after it).
        """
        label_ids = self.label_token_ids(labels)
        width = max(len(toks) for toks in label_ids) - 1  # label tokens fed after the prompt
        device = self.model.device
        rows = torch.full((len(labels), max(width, 1)), self.tokenizer.pad_token_id, dtype=torch.long, device=device)
        for i, toks in enumerate(label_ids):
            rows[i, : len(toks) - 1] = torch.tensor(toks[:-1], dtype=torch.long)
        out = []
        for conv in conversations:
            prompt = torch.tensor([self.encode_chat(conv)], dtype=torch.long, device=device)
            first = self.model(input_ids=prompt, use_cache=width > 0)
            logp_first = torch.log_softmax(first.logits[0, -1].float(), -1)  # [V]
            if width > 0:
                cache = getattr(first, "cache", None) or first.past_key_values
                cache.batch_repeat_interleave(len(labels))  # [1, ...] -> [L, ...]
                logits = self.model(input_ids=rows, use_cache=False, **{self._cache_kwarg(): cache}).logits
                logp_rest = torch.log_softmax(logits.float(), -1)  # [L, width, V]
            probs = {}
            for i, (label, toks) in enumerate(zip(labels, label_ids)):
                total = float(logp_first[toks[0]])
                total += sum(float(logp_rest[i, j, t]) for j, t in enumerate(toks[1:]))
                probs[label] = math.exp(total)
            out.append(probs)
            if progress:
                progress(1)
        return out

    def _cache_kwarg(self) -> str:
        """The forward() keyword of a KV cache: `cache` in newer transformers, `past_key_values` before."""
        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    @torch.inference_mode()
    def naive_label_probs(self, conversation: Conversation, labels: Sequence[str]) -> dict[str, float]:
        """Reference for `label_probs`: each label scored as its own prompt+label sequence, no cache, no padding."""
        prompt = self.encode_chat(conversation)
        out = {}
        for label, toks in zip(labels, self.label_token_ids(labels)):
            ids = torch.tensor([prompt + toks], dtype=torch.long, device=self.model.device)
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0].float(), -1)
            out[label] = math.exp(sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(toks)))
        return out


class _RowDraws:
    """A transformers logits processor that draws each row's token as the engine does, from the row's own uniforms.

    It leaves only the drawn token finite, so `generate(do_sample=False)` takes it: the simple path then draws
    exactly like the fast one (same temperature/top-p rule, same uniforms), whatever the batch.
    """

    def __init__(self, uniforms: torch.Tensor, params: SamplingParams, prompt_width: int):
        self.uniforms, self.params, self.width = uniforms, params, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.width
        p = self.params
        tokens = fast_sampling.pick_tokens(scores.float(), p.temperature, p.top_p, self.uniforms[:, step])
        return torch.full_like(scores, float("-inf")).scatter_(1, tokens[:, None], 0.0)


# -- loaders (registered in registry.py) ---------------------------------------------------------------------
def load_kwargs(device: str) -> dict:
    """`from_pretrained` arguments for a device: float32 on the CPU, as before devices existed; on CUDA bfloat16,
    placed on the device as it loads (no float32 copy in host memory); quantized when the run says so."""
    from emlab.models.device import weights_dtype
    from emlab.quantize import quantization_kwargs

    dtype = weights_dtype(device)
    placed = {"dtype": dtype} if device == "cpu" else {"dtype": dtype, "device_map": device}
    return placed | quantization_kwargs(device)


def load_checkpoint(
    path: str | Path, adapter: str | None, spec: str, device: str | None = None, *, revision: str | None = None,
    adapter_revision: str | None = None, base_hub_id: str | None = None,
) -> HFChatModel:
    """Load a transformers checkpoint on `device` (default: the run's, see `device.py`), merge an optional LoRA
    adapter (a directory or a hub adapter, checked against `base_hub_id`), and wrap it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from emlab.models.device import current_device

    hf_logging.disable_progress_bar()
    device = device or current_device()
    folder = _adapter_folder(adapter, adapter_revision, spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(path, revision=revision, **load_kwargs(device))
    except OSError as e:
        raise ModelSpecError(f"cannot load model {spec!r}: {str(e).splitlines()[0]}") from None
    identity = _identity(spec, folder)
    if folder is not None:
        from peft import PeftModel

        from emlab.models.hub import check_adapter_base
        from emlab.quantize import is_quantized

        check_adapter_base(folder, str(adapter), base_hub_id, spec.split("@")[0])
        model = PeftModel.from_pretrained(model, str(folder))
        if not is_quantized(model.get_base_model()):  # into 4-bit weights a merge would round the update away
            model = model.merge_and_unload()
    return HFChatModel(model, tokenizer, spec=spec, identity=identity)


def _identity(spec: str, folder: Path | None) -> str:
    """The spec without its adapter, the run's quantization, and the adapter's content hash."""
    from emlab.quantize import identity_suffix

    return spec.split("@")[0] + identity_suffix() + (f"@adapter:{adapter_hash(folder)}" if folder else "")


def _adapter_folder(adapter: str | None, revision: str | None, spec: str) -> Path | None:
    """The adapter's local folder (a hub adapter is resolved now), or None without one; errors name the spec."""
    if not adapter:
        return None
    from emlab.models.hub import resolve_adapter

    try:
        return resolve_adapter(adapter, revision)
    except ModelSpecError as e:
        raise ModelSpecError(f"{e} (in model spec {spec!r})") from None


def checkpoint_identity(spec: str, adapter: str | None, adapter_revision: str | None = None) -> str:
    """What a local model's outputs depend on: the spec without its adapter (a pinned hub revision included), plus
    the adapter's content hash (a hub adapter is resolved to its files for that)."""
    return _identity(spec, _adapter_folder(adapter, adapter_revision, spec))


def local_identity(spec: ModelSpec) -> str:
    """The identity `load_embedded`/`load_hf` would give, without loading any weights (for cache lookups)."""
    return checkpoint_identity(str(spec), spec.adapter, spec.adapter_revision)


def load_embedded(spec: ModelSpec) -> HFChatModel:
    """`embedded:<name>[@adapter]`: the packaged model, converted once and cached on disk."""
    from emlab.models.embedded import embedded_checkpoint, upstream_id

    return load_checkpoint(embedded_checkpoint(spec.name), spec.adapter, str(spec), adapter_revision=spec.adapter_revision,
                           base_hub_id=upstream_id(spec.name))


def load_hf(spec: ModelSpec) -> HFChatModel:
    """`hf:<hub id or path>[#revision][@adapter[#revision]]`: any causal LM transformers can load (a hub id resolves
    only when asked)."""
    from emlab.models.hub import hub_name_of

    looks_local = spec.name.startswith(("/", ".", "~")) or spec.name.count("/") > 1
    if looks_local and not Path(spec.name).expanduser().is_dir():
        raise ModelSpecError(f"model directory not found: {spec.name} (in model spec {str(spec)!r})")
    path = str(Path(spec.name).expanduser()) if looks_local else spec.name
    # the hub id the adapter check compares with: the spec's, or the one a local checkpoint's config.json records
    return load_checkpoint(path, spec.adapter, str(spec), revision=spec.revision,
                           adapter_revision=spec.adapter_revision, base_hub_id=hub_name_of(path))
