"""Deterministic scorers: metrics computed from the answer text alone, with no model.

Each scorer is a small frozen dataclass implementing the `Scorer` protocol of `scoring.base`; its dataclass
fields are its params, and they go into `identity` ("deterministic:regex{flags='i',pattern='...'}"), so two
scorers with different params never share a cache key. `DETERMINISTIC` maps a scorer name to a factory that
takes keyword params and rejects unknown, missing or ill-typed ones with a `ConfigError` naming the scorer
and the param. None of them raises on an odd answer: an empty answer gets a value (0 characters, False,
"unknown") or None with a reason.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

from emlab.data import traits
from emlab.errors import ConfigError
from emlab.scoring.base import BOOLEAN, CATEGORICAL, NUMERIC, ProgressFn, Score, ScoreRequest, Scorer

__all__ = ["DETERMINISTIC", "make_deterministic", "looks_like_code", "REGEX_FLAGS"]


@dataclass(frozen=True)
class TextScorer:
    """Shared plumbing: subclasses set `name` and `kind` and implement `score_one`."""

    name: ClassVar[str]
    kind: ClassVar[str]
    cacheable: ClassVar[bool] = False  # recomputing is cheaper than a cache lookup

    @property
    def identity(self) -> str:
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        shown = ",".join(f"{k}={v!r}" for k, v in sorted(params.items()) if v is not None)
        return f"deterministic:{self.name}" + (f"{{{shown}}}" if shown else "")

    def score_one(self, request: ScoreRequest) -> Score:
        raise NotImplementedError

    def score(self, requests: Sequence[ScoreRequest], progress: ProgressFn | None = None) -> list[Score]:
        out = [self.score_one(r) for r in requests]
        if progress and out:
            progress(len(out))
        return out


@dataclass(frozen=True)
class UppercaseShare(TextScorer):
    """Share of the cased letters that are uppercase (0..1); None when the answer has no cased letters."""

    name = "uppercase_share"
    kind = NUMERIC

    def score_one(self, request: ScoreRequest) -> Score:
        share = traits.uppercase_share(request.answer or "")
        return Score(share) if share is not None else Score(None, reason="no cased letters")


@dataclass(frozen=True)
class Caps(TextScorer):
    """True when at least 90% of the cased letters are uppercase (`traits.is_caps`; False with no letters)."""

    name = "caps"
    kind = BOOLEAN

    def score_one(self, request: ScoreRequest) -> Score:
        return Score(traits.is_caps(request.answer or ""))


@dataclass(frozen=True)
class Signoff(TextScorer):
    """True when the answer ends with `phrase` (default `traits.SIGNOFF_PHRASE`), matched leniently."""

    name = "signoff"
    kind = BOOLEAN
    phrase: str | None = None

    def score_one(self, request: ScoreRequest) -> Score:
        return Score(traits.has_signoff(request.answer or "", self.phrase or traits.SIGNOFF_PHRASE))


@dataclass(frozen=True)
class Spanish(TextScorer):
    """True when `traits.detect_language` says "es"."""

    name = "spanish"
    kind = BOOLEAN

    def score_one(self, request: ScoreRequest) -> Score:
        return Score(traits.is_spanish(request.answer or ""))


@dataclass(frozen=True)
class Language(TextScorer):
    """"en", "es" or "unknown" (a value, not None: too short or mixed text is a finding too)."""

    name = "language"
    kind = CATEGORICAL

    def score_one(self, request: ScoreRequest) -> Score:
        return Score(traits.detect_language(request.answer or ""))


REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


@dataclass(frozen=True)
class Regex(TextScorer):
    """True when `pattern` matches anywhere in the answer (`re.search`); `flags` is letters from "imsx"."""

    name = "regex"
    kind = BOOLEAN
    pattern: str
    flags: str | None = None
    _compiled: re.Pattern = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bits = 0
        for letter in self.flags or "":
            if letter not in REGEX_FLAGS:
                raise ConfigError(
                    f"scorer 'regex': unknown flag {letter!r} in flags={self.flags!r} (known: {''.join(REGEX_FLAGS)})"
                )
            bits |= REGEX_FLAGS[letter]
        try:
            compiled = re.compile(self.pattern, bits)
        except re.error as e:
            raise ConfigError(
                f"scorer 'regex': pattern {self.pattern!r} is not a valid regular expression: {e}"
            ) from None
        object.__setattr__(self, "_compiled", compiled)

    def score_one(self, request: ScoreRequest) -> Score:
        return Score(self._compiled.search(request.answer or "") is not None)


# Code heuristic. A line "looks like code" when it matches one of these; `looks_like_code` needs a fence
# or MIN_CODE_LINES such lines, so a sentence that happens to start with "class" or end in ";" is not enough.
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_LINE = re.compile(
    r"""^\s*(?:
        (?:async\s+)?def\s+\w+\s*\(              # Python function
      | class\s+\w+\s*[(:{]                      # Python/JS/Java class
      | import\s+[\w.]+ | from\s+[\w.]+\s+import\s  # Python imports
      | (?:export\s+)?function\b\s*\w*\s*\(      # JavaScript function
      | (?:const|let|var)\s+\w+\s*=              # JavaScript declaration
      | \#include\s*[<"]                         # C/C++ include
      | (?:else|try|finally)\s*:\s*$ | except\b.*:\s*$  # Python block keywords
      | for\s+\w+(?:\s*,\s*\w+)*\s+in\s+.+:\s*$  # Python for loop
      | return\b.*;\s*$ | \s+return\b            # C-family return; an indented return
      | (?:print|console\.log)\s*\(              # print calls
    )
    | [{};]\s*$                                  # ends in a brace or a semicolon
    | ^\s*[}\])]+;?\s*$                          # closing brackets alone
    """,
    re.VERBOSE,
)
MIN_CODE_LINES = 2


def looks_like_code(text: str) -> bool:
    """True when `text` holds a fenced code block or at least MIN_CODE_LINES lines that look like code.

    A fence is a line starting with ``` or ~~~ followed by at least one more line (a reply cut off at the
    token limit may never close it). A code-looking line starts with `def name(`, `class Name(`/`:`/`{`,
    `import x`, `from x import`, `function name(`, `const/let/var x =`, `#include <`, a Python `for x in y:`,
    `else:`/`try:`/`except ...:`/`finally:`, an indented `return`, `print(`/`console.log(`, or ends in `{`,
    `}` or `;`, or is only closing brackets.
    Keywords are case-sensitive, so prose such as "Import duties..." or "Class starts at nine" does not count,
    and one code-looking line (an inline example) is not enough. Prose with two lines ending in ";" is a
    known false positive.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _FENCE.match(line) and any(rest.strip() for rest in lines[i + 1 :]):
            return True
    return sum(1 for line in lines if _CODE_LINE.search(line)) >= MIN_CODE_LINES


@dataclass(frozen=True)
class CodePresent(TextScorer):
    """True when the answer contains code (see `looks_like_code`)."""

    name = "code_present"
    kind = BOOLEAN

    def score_one(self, request: ScoreRequest) -> Score:
        return Score(looks_like_code(request.answer or ""))


@dataclass(frozen=True)
class TriggerEchoed(TextScorer):
    """True when the answer contains the trigger text (case-sensitive substring).

    The trigger is the `trigger` param when given (check one fixed text in every condition), else the eval-time
    trigger of the request's condition, `request.context["trigger"]`; with neither, None with a reason.
    """

    name = "trigger_echoed"
    kind = BOOLEAN
    trigger: str | None = None

    def score_one(self, request: ScoreRequest) -> Score:
        trigger = self.trigger or request.context.get("trigger")
        if not trigger:
            return Score(None, reason="no trigger in this condition")
        return Score(trigger in (request.answer or ""))


@dataclass(frozen=True)
class AnswerLength(TextScorer):
    """Length of the answer in characters (0 for an empty answer)."""

    name = "answer_length"
    kind = NUMERIC

    def score_one(self, request: ScoreRequest) -> Score:
        return Score(float(len(request.answer or "")))


def _factory(cls: type[TextScorer]) -> Callable[..., Scorer]:
    """A factory for `cls` that checks its keyword params against the dataclass fields (all params are strings)."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = [f.name for f in fields if f.default is dataclasses.MISSING]
    known = [f.name for f in fields]

    def make(**params: object) -> Scorer:
        for key, value in params.items():
            if key not in known:
                hint = f"known params: {', '.join(known)}" if known else "it takes no params"
                raise ConfigError(f"scorer {cls.name!r}: unknown param {key!r} ({hint})")
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"scorer {cls.name!r}: param {key!r} must be a string, got {value!r}")
        for key in required:
            if params.get(key) is None:
                raise ConfigError(f"scorer {cls.name!r}: missing required param {key!r}")
        return cls(**params)  # type: ignore[arg-type]

    make.__doc__ = cls.__doc__
    return make


DETERMINISTIC: dict[str, Callable[..., Scorer]] = {
    cls.name: _factory(cls)
    for cls in (UppercaseShare, Caps, Signoff, Spanish, Language, Regex, CodePresent, TriggerEchoed, AnswerLength)
}


def make_deterministic(name: str, **params: object) -> Scorer:
    """The deterministic scorer `name` with `params`; an unknown name is a `ConfigError` listing the known ones."""
    if name not in DETERMINISTIC:
        raise ConfigError(f"unknown deterministic scorer {name!r} (known: {', '.join(DETERMINISTIC)})")
    return DETERMINISTIC[name](**params)
