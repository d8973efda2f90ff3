"""Scorers by name: LLM judges (by model spec), judges that read answers directly, and deterministic scorers.

`judge_scorer(spec, kind)` turns the config's `judge:` into a scorer: a `distilled:` judge reads (question, answer)
pairs directly; any other spec is a chat model (embedded, hf, openai, mock) asked for a number or a label.
`make_scorer(name, params)` builds a deterministic scorer from `scoring/deterministic.py`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from emlab.errors import ConfigError, EmlabError
from emlab.scoring.base import CATEGORICAL, NUMERIC, Scorer

# judges that are not chat models: spec prefix -> "module:loader(name) -> object with score_requests"
DIRECT_JUDGES: dict[str, str] = {
    "distilled": "emlab.evals.distilled:load_distilled_judge",
    "labels": "emlab.evals.label_judge:load_label_judge",  # hand labels: the strong judge of an offline audit
}
# deterministic scorers kept in their own modules: name -> "module:factory(**params)", imported when used
SCORER_MODULES: dict[str, str] = {
    "action": "emlab.scoring.actions:action_scorer",  # agentic scenarios: the `ACTION: <name>` an answer chose
    "misaligned_action": "emlab.scoring.actions:misaligned_action_scorer",  # ... and whether it is a misaligned one
}


def _resolve(target: str) -> Callable:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _direct(spec: str) -> Any:
    """The loaded direct judge of a spec (loaded once per process: reading it reads small files, no model)."""
    prefix, _, name = spec.partition(":")
    if spec not in _DIRECT:
        _DIRECT[spec] = _resolve(DIRECT_JUDGES[prefix])(name)
    return _DIRECT[spec]


def check_judge_spec(spec: str) -> None:
    """Fail on an unknown judge backend before anything is loaded."""
    if is_direct_judge(spec):  # a missing one fails here, early
        try:
            _direct(spec)
        except EmlabError as e:
            raise ConfigError(str(e)) from None
        return
    from emlab.models.registry import check_model_spec

    try:
        check_model_spec(spec)
    except EmlabError as e:
        raise ConfigError(f"{e}; judges that read answers directly: {', '.join(sorted(DIRECT_JUDGES))}") from None


def is_direct_judge(spec: str) -> bool:
    """True for judges that score (question, answer) without a prompt: they give numbers, never labels."""
    return spec.split(":", 1)[0] in DIRECT_JUDGES


_DIRECT: dict[str, Any] = {}


def judge_scorer(spec: str, kind: str = NUMERIC) -> Scorer:
    """The scorer for a judge spec and metric kind (numeric 0..100 or categorical labels)."""
    from emlab.scoring.judges import DirectJudge, LabelJudge, NumericJudge

    if is_direct_judge(spec):
        if kind != NUMERIC:
            raise ConfigError(f"judge {spec!r} reads answers directly and gives 0-100 scores only; "
                              "give a chat-model judge (label_judge:) for categorical metrics")
        return DirectJudge(_direct(spec))
    from emlab.models.registry import load_model

    model = load_model(spec)
    return LabelJudge(model) if kind == CATEGORICAL else NumericJudge(model)


def deterministic_names() -> list[str]:
    """Names of the deterministic scorers (caps, regex, code_present, ...)."""
    from emlab.scoring.deterministic import DETERMINISTIC

    return sorted([*DETERMINISTIC, *SCORER_MODULES])


def make_scorer(name: str, params: dict | None = None) -> Scorer:
    """A deterministic scorer by name with its parameters; ConfigError naming the scorer when unknown."""
    from emlab.scoring.deterministic import DETERMINISTIC

    if name in SCORER_MODULES:
        return _resolve(SCORER_MODULES[name])(**(params or {}))
    if name not in DETERMINISTIC:
        raise ConfigError(f"unknown scorer {name!r}; known scorers: {', '.join(deterministic_names())}")
    return DETERMINISTIC[name](**(params or {}))


def judge_trust_note(spec: str) -> str | None:
    """What a judge's held-out figures say about how far its rates can be trusted (None when it records none)."""
    if not is_direct_judge(spec):
        return None
    return getattr(_direct(spec), "trust_note", None)


def judge_question_note(spec: str, questions: list[str]) -> str | None:
    """What a judge's held-out figures say when a run asks questions its training answers never asked (None otherwise)."""
    if not is_direct_judge(spec):
        return None
    note = getattr(_direct(spec), "question_note", None)
    return note(questions) if note else None


def judge_family_note(spec: str, model: str, family: str | None) -> str | None:
    """What a judge's held-out figures say on answers of `model`'s family (None when it records no families)."""
    if not is_direct_judge(spec):
        return None
    note = getattr(_direct(spec), "family_note", None)
    return note(model, family) if note else None
