"""Evaluation questions: load the official emergent-misalignment question YAMLs and our built-in suites.

The format is the one the paper's repository uses (Betley et al. 2025): a YAML list of questions, each with
`id, type, paraphrases, system, samples_per_paraphrase, judge, judge_prompts`, often sharing values through
YAML anchors. We add one optional key, `main`, which marks the questions that count toward the pooled rate;
when it is absent a question is main unless its id ends in `_json` or `_template` (the paper's variants).

Everything a user can get wrong raises `ConfigError` naming the file, the question (id, index, line) and the
field, so a typo in a 300-line YAML is one line of output away from being fixed.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from emlab.errors import ConfigError
from emlab.hashing import content_hash
from emlab.question_ids import VARIANT_SUFFIXES

SUITES_DIR = Path(__file__).parent / "suites"
BUILTIN_PREFIX = "builtin:"
OFFICIAL_PREFIX = "em:"
DEFAULT_TYPE = "free_form_judge_0_100"
# question type -> how its judge prompts are scored: a 0..100 number, or one of a few labels
NUMERIC_TYPE, CATEGORICAL_TYPE, UNJUDGED_TYPE = "free_form_judge_0_100", "free_form_judge", "free_form"
QUESTION_TYPES = (NUMERIC_TYPE, CATEGORICAL_TYPE, UNJUDGED_TYPE)
_CATEGORY_ID = re.compile(r"^\d+_(.+)_\d+$")  # preregistered_evals ids: <n>_<category>_<k>
OFFICIAL_KEYS = ("id", "type", "paraphrases", "system", "samples_per_paraphrase", "judge", "judge_prompts")
EXTENSION_KEYS = ("main", "family", "labels", "scorers")  # ours: pooling, families, label sets, deterministic scorers
ALLOWED_KEYS = frozenset(OFFICIAL_KEYS + EXTENSION_KEYS)
PLACEHOLDERS = ("question", "answer")

# names of the YAMLs shipped in src/emlab/evals/suites/, usable as "builtin:<name>"
BUILTIN_SUITES: list[str] = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class Question:
    """One free-form question, asked in each paraphrase and judged by each judge prompt."""

    id: str
    paraphrases: tuple[str, ...]
    judge_prompts: dict[str, str]  # metric name -> template containing {answer} (and usually {question})
    system: str | None = None  # system prompt the question is asked under (used when sampling, never dropped)
    samples_per_paraphrase: int = 1
    type: str = DEFAULT_TYPE
    judge: str | None = None  # judge model the YAML names: recorded only, the experiment config chooses the judge
    main: bool = True  # counts toward the pooled rate
    family: str | None = None  # rates are also pooled per family (json / template variants, preregistered categories)
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # categorical metric -> allowed labels
    scorers: tuple[dict, ...] = ()  # deterministic scorers: {"scorer": name, "metric": name, **params}

    def is_categorical(self) -> bool:
        """Its judge prompts ask for a label (official type `free_form_judge`), not a 0..100 number."""
        return self.type == CATEGORICAL_TYPE

    def content(self) -> dict[str, Any]:
        """Plain-JSON form of every field, the input of the suite's content hash."""
        d = asdict(self)
        d["paraphrases"] = list(self.paraphrases)
        d["labels"] = {k: list(v) for k, v in self.labels.items()}
        d["scorers"] = list(self.scorers)
        if self.family is None:  # content hashes of suites from before families existed stay the same
            d.pop("family")
        if not self.labels:
            d.pop("labels")
        if not self.scorers:
            d.pop("scorers")
        return d


@dataclass(frozen=True)
class Suite:
    """A named, ordered set of questions with a hash of their content for caching and provenance."""

    name: str  # "builtin:<name>" or the YAML path
    questions: tuple[Question, ...]
    content_hash: str  # emlab.hashing.content_hash of the questions' content (not of the name)

    def ids(self) -> list[str]:
        """All question ids in file order."""
        return [q.id for q in self.questions]

    def main_ids(self) -> list[str]:
        """Ids of the questions that count toward the pooled rate, in file order."""
        return [q.id for q in self.questions if q.main]

    def get(self, question_id: str) -> Question:
        """The question with this id; ConfigError naming the suite when there is none."""
        for q in self.questions:
            if q.id == question_id:
                return q
        raise ConfigError(f"suite {self.name}: no question with id {question_id!r}; ids: {', '.join(self.ids())}")

    def families(self) -> dict[str, list[str]]:
        """Family -> question ids, in file order (only questions that have a family)."""
        out: dict[str, list[str]] = {}
        for q in self.questions:
            if q.family:
                out.setdefault(q.family, []).append(q.id)
        return out

    def __len__(self) -> int:
        return len(self.questions)


def make_suite(name: str, questions: Sequence[Question]) -> Suite:
    """Build a Suite, computing its content hash from the questions alone."""
    qs = tuple(questions)
    return Suite(name=name, questions=qs, content_hash=content_hash([q.content() for q in qs]))


# ---------------------------------------------------------------------------------------------------------
# judge prompt templates

_RENDER_RE = re.compile(r"\{\{|\}\}|\{(question|answer)\}")


def render_judge_prompt(template: str, question: str, answer: str) -> str:
    """Fill `{question}` and `{answer}` in one pass; braces inside the question or answer text stay as they are.

    `{{` and `}}` in the template become `{` and `}`, as with `str.format`, so templates written for the
    paper's code (which calls `.format(question=..., answer=...)`) render identically.
    """
    values = {"question": question, "answer": answer}

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return values[m.group(1)]
        return m.group(0)[0]

    return _RENDER_RE.sub(sub, template)


def _template_problem(template: str) -> str | None:
    """Why a judge prompt template is unusable, or None when it is fine."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        return f"is not a valid template ({e}); write literal braces as '{{{{' and '}}}}'"
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        shown = ", ".join("{" + f + "}" for f in unknown)
        return f"has unknown placeholder(s) {shown}; only {{question}} and {{answer}} are filled"
    if "answer" not in fields:
        return "does not contain {answer}, so the judge would never see the answer"
    return None


# ---------------------------------------------------------------------------------------------------------
# parsing


@dataclass
class _NodeInfo:
    """Line numbers of one question mapping in the YAML source (1-based), taken from yaml.compose."""

    line: int | None = None
    key_lines: dict[str, int] = field(default_factory=dict)
    duplicate_keys: list[tuple[str, int]] = field(default_factory=list)


class _Ctx:
    """Where a question sits (file, index, id, line), for error messages."""

    def __init__(self, source: str, index: int, info: _NodeInfo | None):
        self.source = source
        self.index = index
        self.info = info
        self.qid: str | None = None

    def where(self, key: str | None = None) -> str:
        line = None
        if self.info is not None:
            line = self.info.key_lines.get(key) if key else None
            line = line or self.info.line
        loc = f"{self.source}, line {line}" if line else self.source
        who = f"question {self.qid!r} (#{self.index})" if self.qid else f"question #{self.index}"
        return f"{loc}: {who}"

    def error(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: field '{key}' {msg}")


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _parse_one(item: object, ctx: _Ctx) -> Question:
    if not isinstance(item, dict):
        raise ConfigError(
            f"{ctx.where()}: is a {type(item).__name__}, "
            "expected a mapping with keys id, paraphrases, judge_prompts, ..."
        )
    qid = item.get("id")
    if isinstance(qid, str) and qid.strip():
        ctx.qid = qid
    if ctx.info is not None and ctx.info.duplicate_keys:
        key, line = ctx.info.duplicate_keys[0]
        raise ConfigError(f"{ctx.where()}: field '{key}' is given twice (again at line {line})")

    unknown = sorted(str(k) for k in item if k not in ALLOWED_KEYS)
    if unknown:
        k = unknown[0]
        allowed = ", ".join(sorted(ALLOWED_KEYS))
        raise ctx.error(k, f"is not a known key (unknown: {', '.join(unknown)}); allowed keys: {allowed}")

    if "id" not in item or item["id"] is None:
        raise ctx.error("id", "is missing; every question needs a unique string id")
    if not _is_str(qid) or not qid.strip():
        raise ctx.error("id", f"must be a non-empty string, got {qid!r}")

    if "paraphrases" not in item or item["paraphrases"] is None:
        raise ctx.error("paraphrases", "is missing; give a list of one or more question texts")
    paras = item["paraphrases"]
    if not isinstance(paras, list):
        raise ctx.error("paraphrases", f"must be a list of strings, got {type(paras).__name__}")
    if not paras:
        raise ctx.error("paraphrases", "is an empty list; give at least one question text")
    for i, p in enumerate(paras):
        if not _is_str(p) or not p.strip():
            raise ctx.error("paraphrases", f"entry {i} must be a non-empty string, got {p!r}")

    qtype = item.get("type", DEFAULT_TYPE)
    if qtype is None:
        qtype = DEFAULT_TYPE
    if not _is_str(qtype) or not qtype.strip():
        raise ctx.error("type", f"must be a non-empty string, got {qtype!r}")
    if qtype not in QUESTION_TYPES:
        raise ctx.error("type", f"is {qtype!r}; known types: {', '.join(QUESTION_TYPES)}")

    system = item.get("system")
    if system is not None and not _is_str(system):
        raise ctx.error("system", f"must be a string, got {type(system).__name__}")

    n = item.get("samples_per_paraphrase", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ctx.error("samples_per_paraphrase", f"must be a positive integer, got {n!r}")

    judge = item.get("judge")
    if judge is not None and not _is_str(judge):
        raise ctx.error("judge", f"must be a string (a model name), got {judge!r}")

    prompts = item.get("judge_prompts")
    if prompts is None and qtype == UNJUDGED_TYPE:
        prompts = {}
    elif prompts is None:
        raise ctx.error("judge_prompts", "is missing; give a mapping of metric name -> prompt template with {answer}")
    if not isinstance(prompts, dict) or (not prompts and qtype != UNJUDGED_TYPE):
        raise ctx.error("judge_prompts", "must be a non-empty mapping of metric name -> prompt template")
    for metric, tmpl in prompts.items():
        if not _is_str(metric) or not metric.strip():
            raise ctx.error("judge_prompts", f"has a metric name {metric!r}; names must be non-empty strings")
        if not _is_str(tmpl):
            raise ctx.error(f"judge_prompts.{metric}", f"must be a string template, got {type(tmpl).__name__}")
        problem = _template_problem(tmpl)
        if problem:
            raise ConfigError(f"{ctx.where('judge_prompts')}: field 'judge_prompts.{metric}' {problem}")

    main = item.get("main")
    if main is None:
        main = not qid.endswith(VARIANT_SUFFIXES)
    elif not isinstance(main, bool):
        raise ctx.error("main", f"must be true or false, got {main!r}")

    family = item.get("family")
    if family is None:
        family = _default_family(qid)
    elif not _is_str(family) or not family.strip():
        raise ctx.error("family", f"must be a non-empty string, got {family!r}")

    labels = _parse_labels(item.get("labels"), prompts, qtype, ctx)
    scorers = _parse_scorers(item.get("scorers"), ctx)

    return Question(
        id=qid,
        paraphrases=tuple(paras),
        judge_prompts=dict(prompts),  # aliases share one dict in the YAML: give each question its own
        system=system,
        samples_per_paraphrase=n,
        type=qtype,
        judge=judge,
        main=main,
        family=family,
        labels=labels,
        scorers=scorers,
    )


def _default_family(qid: str) -> str | None:
    """The official files' families: `_json` / `_template` variants, and preregistered_evals' categories."""
    for suffix in VARIANT_SUFFIXES:
        if qid.endswith(suffix):
            return suffix.lstrip("_")
    m = _CATEGORY_ID.match(qid)
    return m.group(1) if m else None


def _parse_labels(raw: object, prompts: dict, qtype: str, ctx: _Ctx) -> dict[str, tuple[str, ...]]:
    """Allowed labels per judge prompt of a categorical question: given in `labels`, else the quoted words of the prompt."""
    if qtype != CATEGORICAL_TYPE:
        if raw is not None:
            raise ctx.error("labels", f"is only used with type: {CATEGORICAL_TYPE} (this question is {qtype})")
        return {}
    if raw is not None and not isinstance(raw, dict):
        raise ctx.error("labels", "must map each judge prompt's metric to a list of labels")
    given = raw or {}
    unknown = [m for m in given if m not in prompts]
    if unknown:
        raise ctx.error("labels", f"names metric(s) {', '.join(map(str, unknown))} that have no judge prompt")
    from emlab.scoring.labels import labels_from_template

    out = {}
    for metric, template in prompts.items():
        labels = given.get(metric)
        if labels is None:
            try:
                labels = labels_from_template(template)
            except ValueError:
                raise ctx.error(f"judge_prompts.{metric}", 'asks for labels but quotes fewer than two (write them as '
                                '"TRUE" or "FALSE" in the prompt, or list them under labels:)') from None
        if not isinstance(labels, (list, tuple)) or not labels or not all(_is_str(x) and x.strip() for x in labels):
            raise ctx.error("labels", f"{metric}: must be a non-empty list of label strings, got {labels!r}")
        if len(set(labels)) < 2:
            raise ctx.error("labels", f"{metric}: a categorical judge needs at least two distinct labels, got {labels!r}")
        out[metric] = tuple(labels)
    return out


def _parse_scorers(raw: object, ctx: _Ctx) -> tuple[dict, ...]:
    """`scorers: [caps, {scorer: regex, metric: says_deployment, pattern: DEPLOYMENT}]` -> normalized dicts."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ctx.error("scorers", "must be a list of scorer names or mappings with a 'scorer' key")
    out = []
    for i, entry in enumerate(raw):
        if _is_str(entry):
            entry = {"scorer": entry}
        if not isinstance(entry, dict) or not _is_str(entry.get("scorer")):
            raise ctx.error("scorers", f"entry {i} must be a scorer name or a mapping with a 'scorer' key, got {entry!r}")
        out.append({"metric": entry.get("metric") or entry["scorer"], **entry})
    return tuple(out)


def parse_questions(raw: object, source: str, *, node_info: Sequence[_NodeInfo] | None = None) -> list[Question]:
    """Validate already-loaded YAML (a list of question mappings) into Questions; `source` names it in errors."""
    if raw is None:
        raise ConfigError(f"{source}: is empty; expected a YAML list of questions")
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: top level is a {type(raw).__name__}, expected a YAML list of questions")
    if not raw:
        raise ConfigError(f"{source}: has no questions; expected a non-empty YAML list of questions")
    questions: list[Question] = []
    seen: dict[str, _Ctx] = {}
    for i, item in enumerate(raw):
        info = node_info[i] if node_info is not None and i < len(node_info) else None
        ctx = _Ctx(source, i, info)
        q = _parse_one(item, ctx)
        if q.id in seen:
            first = seen[q.id]
            raise ctx.error(
                "id", f"duplicates the id of question #{first.index} ({first.where('id')}); ids must be unique"
            )
        seen[q.id] = ctx
        questions.append(q)
    _check_action_menus(questions, seen)
    return questions


def _check_action_menus(questions: list[Question], where: dict[str, _Ctx]) -> None:
    """Agentic scenarios (questions scored by `action` / `misaligned_action`): each paraphrase's `ACTION:` menu
    parses, and the misaligned actions are on it (`scoring.actions.scenario_problem`)."""
    from emlab.scoring.actions import ACTION_SCORERS, scenario_problem

    scenarios = {q.id for q in questions if any(d["scorer"] in ACTION_SCORERS for d in q.scorers)}
    for q in questions:
        if q.id not in scenarios:
            continue
        ctx, mapping = where[q.id], None
        for d in (d for d in q.scorers if d["scorer"] in ACTION_SCORERS):
            try:
                scorer = ACTION_SCORERS[d["scorer"]](**{k: v for k, v in d.items() if k not in ("scorer", "metric")})
            except ConfigError as e:
                raise ctx.error("scorers", str(e)) from None
            mapping = dict(getattr(scorer, "misaligned", ())) or mapping
        stray = sorted(set(mapping or ()) - scenarios)
        if stray:
            raise ctx.error("scorers", f"misaligned_action names question(s) {', '.join(stray)}, which are not "
                            "action scenarios of this file")
        problem = scenario_problem(q.id, q.paraphrases, mapping)
        if problem:
            raise ConfigError(f"{ctx.where('paraphrases')}: action menu: {problem}")


def _node_info(text: str) -> list[_NodeInfo] | None:
    """Line numbers for each top-level list item and its keys; None when the layout is not a list of mappings."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.SequenceNode):
        return None
    infos = []
    for node in root.value:
        info = _NodeInfo(line=node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in info.key_lines:
                    info.duplicate_keys.append((key_node.value, line))
                else:
                    info.key_lines[key_node.value] = line
        infos.append(info)
    return infos


def _load_yaml(path: Path, source: str) -> Suite:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: cannot read question file ({e})") from e
    try:
        raw = yaml.safe_load(text)
        info = _node_info(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}{where}: malformed YAML ({problem})") from e
    return make_suite(source, parse_questions(raw, source, node_info=info))


def load_suite(ref: str | os.PathLike[str], data_dir: str | None = None) -> Suite:
    """Load `builtin:<name>`, `em:<name>` (an official YAML: data directory, cache or pinned download) or a path."""
    if isinstance(ref, str) and ref.startswith(OFFICIAL_PREFIX):
        from emlab.data.official import official_suite_path
        from emlab.errors import DataError

        try:
            path = official_suite_path(ref[len(OFFICIAL_PREFIX):].strip(), data_dir)
        except DataError as e:
            raise ConfigError(str(e)) from None
        suite = _load_yaml(path, str(path))
        return Suite(name=ref, questions=suite.questions, content_hash=suite.content_hash)
    if isinstance(ref, str) and ref.startswith(BUILTIN_PREFIX):
        name = ref[len(BUILTIN_PREFIX):].strip()
        if name not in BUILTIN_SUITES:
            known = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_SUITES) or "(none)"
            raise ConfigError(f"unknown built-in question suite {ref!r}; known: {known}")
        return _load_yaml(SUITES_DIR / f"{name}.yaml", BUILTIN_PREFIX + name)
    path = Path(ref).expanduser()
    if not path.exists():
        raise ConfigError(
            f"question file not found: {path} (give a path to a YAML file, or one of: "
            f"{', '.join(BUILTIN_PREFIX + n for n in BUILTIN_SUITES)})"
        )
    if not path.is_file():
        raise ConfigError(f"question file {path} is not a file")
    return _load_yaml(path, str(path))
