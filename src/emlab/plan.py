"""Everything an experiment will do, checked before any model loads: suites, conditions × seeds, metrics, rules.

`plan_experiment(config)` expands conditions with `seeds:` into one arm per seed (grouped for the bootstrap
over models), merges the suites, decides which scorer computes each metric (the judge for 0..100 prompts, the
label judge for categorical prompts, deterministic scorers by name), parses the metric rules and checks the
comparisons. A typo anywhere is one ConfigError here, not a crash after an hour of training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emlab.analysis.rules import Rule, check_rule, misaligned_rule, parse_rule
from emlab.config import NOT_TRAINED, CompareConfig, ConditionConfig, ExperimentConfig, InterventionSetting
from emlab.errors import ConfigError, EmlabError, ModelSpecError
from emlab.models.base import SamplingParams
from emlab.models.registry import check_model_spec, model_for_sampling
from emlab.store import Store
from emlab.train.params import TrainParams
from emlab.evals.questions import Question, Suite, load_suite, make_suite
from emlab.evals.sampling import Variant
from emlab.scoring.base import BOOLEAN, CATEGORICAL, NUMERIC

JUDGE, LABEL_JUDGE = "judge", "label_judge"


@dataclass(frozen=True)
class Arm:
    """One expanded condition: a condition at one seed, in its group, with its test-time variant."""

    name: str
    condition: ConditionConfig
    group: str | None
    train_seed: int | None  # None: not finetuned
    sampling_seed: int
    variant: Variant
    intervention: Any = None  # a models.steering Steer/Ablate built from the condition's `intervention:` setting


@dataclass(frozen=True)
class MetricPlan:
    """Which scorer computes a metric, and what kind of value it gives."""

    name: str
    kind: str
    source: str  # JUDGE, LABEL_JUDGE, or a deterministic scorer's name
    params: dict = field(default_factory=dict, hash=False, compare=False)
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainData:
    """A trained condition's dataset, built and checked once at plan time: the rows every seed trains on."""

    dataset: Any  # emlab.data.sources.Dataset
    manifest: dict


@dataclass
class Plan:
    """The checked experiment: arms, one merged suite, metrics, rules, groups and comparisons."""

    arms: list[Arm]
    suite: Suite
    suites: list[dict]
    metrics: dict[str, MetricPlan]
    question_metrics: dict[str, list[str]]  # question id -> metrics computed on its answers
    rules: list[Rule]
    groups: dict[str, list[str]]  # group -> arm names
    label_judge: str | None
    train_data: dict[str, TrainData] = field(default_factory=dict)  # condition name -> its built dataset
    device: str = "cpu"  # where local models load and train: 'cpu' or 'cuda:N' (config `device:` resolved)
    comparisons: list[CompareConfig] = field(default_factory=list)  # config.compare + those interventions add
    interventions: list[dict] = field(default_factory=list)  # intervened condition -> its baseline, for the report
    stage_data: dict[str, list] = field(default_factory=dict)  # condition name -> each stage's built data (stages.py)


def expand_arms(config: ExperimentConfig) -> list[Arm]:
    """One arm per condition and seed; seeded conditions are named `<name>/seed<k>` and grouped under `<name>`."""
    arms = []
    for c in config.conditions:
        variant = Variant(c.system, c.trigger, c.trigger_position, c.trigger_separator)
        if not c.seeds:  # a chain of stages without seeds: each stage trains at its own seed
            seed = c.train.seed if c.train else None
            arms.append(Arm(c.name, c, c.group, seed, config.sampling.seed, variant))
            continue
        for s in c.seeds:
            arms.append(Arm(f"{c.name}/seed{s}", c, c.group or c.name, s if c.trains() else None,
                            config.sampling.seed if c.trains() else s, variant))
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"conditions: expanded names repeat: {', '.join(dupes)} (rename a condition)")
    return arms


def _check_model(c: ConditionConfig) -> None:
    """A local model's files must be there before anything trains (hub ids resolve only when loaded)."""
    from emlab.models.registry import check_spec_files
    from emlab.models.spec import parse_model_spec

    try:
        check_spec_files(parse_model_spec(c.model))
    except ModelSpecError as e:
        raise ConfigError(f"conditions: {c.name!r}: model {c.model!r}: {e}") from None


def _train_data(c: ConditionConfig, data_dir: str | None) -> TrainData:
    """Build the condition's training set now (source, transforms, the seeded `rows` sample), so a missing or bad
    dataset in the last condition fails before the first one trains."""
    from emlab.models.spec import parse_model_spec
    from emlab.stages import sft_data

    assert c.train is not None
    spec = parse_model_spec(c.model)
    _check_trainer(c, spec)
    dataset, manifest = sft_data(c.train, f"conditions: {c.name!r}: train", data_dir)
    return TrainData(dataset, manifest)


def _stage_data(c: ConditionConfig, data_dir: str | None) -> list:
    """Each stage's data, built now (see `stages.build_stage_data`), and the packages its options need."""
    from emlab.stages import build_stage_data, stage_params

    for i, stage in enumerate(c.stages or []):
        _check_packages(stage_params(stage, None), f"conditions: {c.name!r}: stages[{i}].{stage.kind}")
    return build_stage_data(c, data_dir)


def stage_chain(arm: Arm, plan: "Plan") -> list:
    """The arm's keyed training stages (`stages.StageStep`), empty for an arm without `stages:`."""
    from emlab.stages import plan_chain

    if not arm.condition.stages:
        return []
    return plan_chain(arm.condition, arm.train_seed, plan.stage_data[arm.condition.name])


# packages a training option needs: (option, value) -> (module to import, pip name)
OPTION_PACKAGES = {
    ("optim", "adamw_8bit"): ("bitsandbytes", "bitsandbytes"),
    ("report_to", "tensorboard"): ("tensorboard", "tensorboard"),
    ("report_to", "wandb"): ("wandb", "wandb"),
}


def _check_trainer(c: ConditionConfig, spec) -> None:
    """The trainer fits the model (LoRA: a local or vLLM-served base without an adapter, trained with transformers
    and then served by vLLM with the adapter; openai: an openai: model), and the packages its options need are
    installed."""
    t = c.train
    assert t is not None
    where = f"conditions: {c.name!r}"
    if t.trainer == "openai":
        if spec.backend != "openai":
            raise ConfigError(f"{where}: trainer: openai finetunes an 'openai:<model>' base (got {c.model!r})")
    elif spec.backend not in ("embedded", "hf", "vllm") or spec.adapter:
        hint = "; for OpenAI finetuning set train.trainer: openai" if spec.backend == "openai" else ""
        raise ConfigError(f"{where}: training needs a local base model without an adapter (got {c.model!r}){hint}")
    _check_packages(t, f"{where}: train")


def _check_packages(t: TrainParams, where: str) -> None:
    """The packages a training option needs are installed."""
    import importlib.util

    for key in ("optim", "report_to"):
        values = getattr(t, key)
        for value in values if isinstance(values, list) else [values]:
            need = OPTION_PACKAGES.get((key, value))
            if need and importlib.util.find_spec(need[0]) is None:
                raise ConfigError(f"{where}.{key}: {value} needs the {need[1]} package (pip install {need[1]})")


def merge_suites(refs: list[str], data_dir: str | None) -> tuple[Suite, list[dict]]:
    """One suite of all questions (ids unique across suites) and each suite's provenance."""
    suites = [load_suite(r, data_dir) for r in refs]
    seen: dict[str, str] = {}
    for s in suites:
        for q in s.questions:
            if q.id in seen:
                raise ConfigError(f"suites: question id {q.id!r} is in both {seen[q.id]} and {s.name}; ids must be unique")
            seen[q.id] = s.name
    merged = suites[0] if len(suites) == 1 else make_suite(" + ".join(s.name for s in suites), [q for s in suites for q in s.questions])
    info = [{"name": s.name, "content_hash": s.content_hash, "main_ids": s.main_ids(), "families": s.families(),
             "questions": len(s)} for s in suites]
    return merged, info


def _add(metrics: dict[str, MetricPlan], m: MetricPlan, where: str) -> None:
    old = metrics.get(m.name)
    if old is None:
        metrics[m.name] = m
    elif (old.kind, old.source, old.labels) != (m.kind, m.source, m.labels) or old.params != m.params:
        raise ConfigError(f"{where}: metric {m.name!r} is computed two different ways "
                          f"({old.source}/{old.kind} and {m.source}/{m.kind}); give one of them another metric name")


def _question_metrics(q: Question, config: ExperimentConfig, metrics: dict[str, MetricPlan]) -> list[str]:
    from emlab.scoring.registry import make_scorer

    names = []
    for metric in q.judge_prompts:
        if q.is_categorical():
            plan = MetricPlan(metric, CATEGORICAL, LABEL_JUDGE, labels=q.labels[metric])
        else:
            plan = MetricPlan(metric, NUMERIC, JUDGE)
        _add(metrics, plan, f"question {q.id!r}")
        names.append(metric)
    entries = [(s.name(), s.scorer, s.params(), "scorers") for s in config.scorers]  # type: ignore[union-attr]
    for d in q.scorers:
        params = {k: v for k, v in d.items() if k not in ("scorer", "metric")}
        entries.append((d["metric"], d["scorer"], params, f"question {q.id!r}: scorers"))
    for metric, scorer, params, where in entries:
        try:
            kind = make_scorer(scorer, params).kind
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"{where}: {e}") from None
        _add(metrics, MetricPlan(metric, kind, scorer, params), where)
        names.append(metric)
    return list(dict.fromkeys(names))


def _rules(config: ExperimentConfig, metrics: dict[str, MetricPlan]) -> list[Rule]:
    rules: list[Rule] = []
    kinds = {m.name: m.kind for m in metrics.values()}
    labels = {m.name: m.labels for m in metrics.values() if m.labels}
    has_default = kinds.get("aligned") == NUMERIC and kinds.get("coherent") == NUMERIC
    if has_default and "misaligned" not in config.rules:
        rules.append(misaligned_rule(config.thresholds.aligned_below, config.thresholds.coherent_above))
    for name, text in config.rules.items():
        rule = parse_rule(name, text, where=f"rules.{name}")
        check_rule(rule, kinds, labels, where=f"rules.{name}")
        rules.append(rule)
    if not config.rules:  # nothing asked: one rate per label of each categorical metric, one per true/false metric
        for m in metrics.values():
            if m.kind == CATEGORICAL:
                rules += [parse_rule(f"{m.name}_{lab}", f"{m.name} == '{lab}'") for lab in m.labels]
            elif m.kind == BOOLEAN:
                rules.append(parse_rule(m.name, f"{m.name} == true"))
    return rules


def _check_audit(config: ExperimentConfig, metrics: dict[str, MetricPlan], rules: list[Rule]) -> None:
    """An audit needs 0-100 judge metrics to re-score and a rule that reads one of them."""
    if config.audit is None:
        return
    judged = {m.name for m in metrics.values() if m.source == JUDGE}
    if not judged:
        raise ConfigError("audit: the suites have no 0-100 judge prompts, so the audit judge has nothing to re-score")
    if not any(set(r.metrics()) & judged for r in rules):
        raise ConfigError(f"audit: no rule reads a metric the judge scores ({', '.join(sorted(judged))}); "
                          "add one to rules: or drop audit:")


def plan_experiment(config: ExperimentConfig) -> Plan:
    """Check and expand the whole experiment without loading any model; errors name the config file.

    It also sets the run's device for the model loaders (`models.device.use_device`), once it is checked.
    """
    try:
        return _plan(config)
    except ConfigError as e:
        if config.source and not str(e).startswith(config.source):
            raise ConfigError(f"{config.source}: {e}") from None
        raise


def _plan(config: ExperimentConfig) -> Plan:
    from emlab.models.device import use_device
    from emlab.scoring.registry import is_direct_judge

    device = use_device(config.device)  # a CUDA device torch cannot see: ConfigError naming `device`
    from emlab.quantize import use_quantization

    use_quantization(config.quantize)  # bitsandbytes missing: ConfigError naming `quantize`
    from emlab.models.vllm_backend import use_vllm_settings

    use_vllm_settings(config.vllm.tensor_parallel_size, config.vllm.max_lora_rank)
    arms = expand_arms(config)
    suite, suites = merge_suites(config.suite_refs(), config.data_dir)
    metrics: dict[str, MetricPlan] = {}
    question_metrics = {q.id: _question_metrics(q, config, metrics) for q in suite.questions}
    if not metrics:
        raise ConfigError("the suites have no judge prompts and no scorers are configured: nothing would be measured")
    label_judge = None
    if any(m.source == LABEL_JUDGE for m in metrics.values()):
        label_judge = config.label_judge or config.judge
        if is_direct_judge(label_judge):
            cats = sorted(m.name for m in metrics.values() if m.source == LABEL_JUDGE)
            raise ConfigError(f"judge {label_judge!r} gives 0-100 scores only, but metric(s) {', '.join(cats)} need a "
                              "label judge: set label_judge: to a chat model (e.g. openai:gpt-4o-2024-08-06)")
    rules = _rules(config, metrics)
    _check_audit(config, metrics, rules)
    for c in config.conditions:
        _check_model(c)
    arms = _with_interventions(arms, config)
    if config.intervention_pairs and metrics.get("coherent", MetricPlan("", "", "")).kind == NUMERIC \
            and COHERENT_RULE not in {r.name for r in rules}:  # the coherence cost of each intervention
        rules.append(parse_rule(COHERENT_RULE, f"coherent > {config.thresholds.coherent_above:g}"))
    train_data = {c.name: _train_data(c, config.data_dir) for c in config.conditions if c.train is not None}
    stage_data = {c.name: _stage_data(c, config.data_dir) for c in config.conditions if c.stages}
    groups: dict[str, list[str]] = {}
    for a in arms:
        if a.group:
            groups.setdefault(a.group, []).append(a.name)
    arm_names = {a.name for a in arms}
    clash = sorted(arm_names & set(groups) - {a.name for a in arms if a.group == a.name})
    if clash:
        raise ConfigError(f"group name(s) {', '.join(clash)} are also condition names; rename one")
    rule_names = [r.name for r in rules]
    comparisons, interventions = _intervention_comparisons(config, rule_names)
    plan = Plan(arms, suite, suites, metrics, question_metrics, rules, groups, label_judge, train_data, device,
                list(config.compare) + comparisons, interventions, stage_data=stage_data)
    checkpoints = _check_checkpoint_names(plan)
    for i, c in enumerate(config.compare):
        for side in ("a", "b"):
            ref = getattr(c, side)
            if ref not in arm_names and ref not in groups and ref not in checkpoints:
                known = ", ".join(sorted(arm_names | set(groups)))
                asked = f" (checkpoint arms of this run: {', '.join(sorted(checkpoints))})" if checkpoints else ""
                raise ConfigError(f"compare[{i}].{side}: unknown condition or group {ref!r}; known: {known}{asked}")
        if c.rule not in rule_names:
            raise ConfigError(f"compare[{i}].rule: unknown rule {c.rule!r}; this run's rules: {', '.join(rule_names) or '(none)'}")
        if c.by_family():
            family_pairs(c, suite.families(), f"compare[{i}]")
    return plan


def family_keys(families: dict[str, list[str]], family: str, suffix: str, where: str) -> dict[str, str]:
    """Question id -> pair key (the id less `suffix`) for every question of `family`; errors name `where`."""
    if family not in families:
        known = ", ".join(sorted(families)) or "none: no question of these suites has a family"
        raise ConfigError(f"{where}: unknown question family {family!r}; this run's families: {known}")
    keys = {}
    for qid in families[family]:
        if not qid.endswith(suffix) or qid == suffix:
            raise ConfigError(f"{where}: question {qid!r} of family {family!r} does not end with the suffix {suffix!r} "
                              "that pairs it (declare the family's suffix with a_suffix / b_suffix)")
        keys[qid] = qid[: len(qid) - len(suffix)] if suffix else qid
    return keys


def family_pairs(c: CompareConfig, families: dict[str, list[str]], where: str) -> tuple[dict[str, str], dict[str, str]]:
    """A by-family comparison's id -> pair key maps for side a and side b; ConfigError when nothing pairs."""
    assert c.a_family is not None and c.b_family is not None
    a = family_keys(families, c.a_family, c.suffix("a"), f"{where}.a_family")
    b = family_keys(families, c.b_family, c.suffix("b"), f"{where}.b_family")
    if not set(a.values()) & set(b.values()):
        raise ConfigError(f"{where}: no question of family {c.a_family!r} (less {c.suffix('a')!r}: "
                          f"{', '.join(a.values())}) pairs with one of family {c.b_family!r} (less {c.suffix('b')!r}: "
                          f"{', '.join(b.values())})")
    return a, b


# --- checkpoint arms (train: eval_checkpoints) ---------------------------------------------------------------

CHECKPOINT_TAG = "@step"


def checkpoint_arm_name(arm_name: str, step: int) -> str:
    """The arm that evaluates `arm_name`'s adapter as saved at optimizer step `step`."""
    return f"{arm_name}{CHECKPOINT_TAG}{step}"


def evaluates_checkpoints(arm: Arm) -> bool:
    """Whether the arm's condition asks for its training checkpoints to be evaluated (train: eval_checkpoints)."""
    return arm.condition.train is not None and arm.condition.train.eval_checkpoints


def planned_checkpoints(arm: Arm, plan: Plan) -> list[int]:
    """The checkpoint steps an arm will evaluate, forecast from its data and parameters (the run reads the saved ones)."""
    if not evaluates_checkpoints(arm):
        return []
    _, params = train_identity(arm)
    return params.checkpoint_steps(plan.train_data[arm.condition.name].dataset.rows)


def saved_checkpoints(adapter: Path) -> list[int]:
    """The steps of the complete checkpoint-<step>/ folders inside a trained adapter folder, ascending."""
    steps = []
    for p in adapter.glob("checkpoint-*"):
        tail = p.name.removeprefix("checkpoint-")
        if tail.isdigit() and (p / "checkpoint.json").is_file():
            steps.append(int(tail))
    return sorted(steps)


def checkpoint_members(name: str, plan: Plan) -> list[str] | None:
    """The checkpoint arms a compare: side names as `<arm or group>@step<k>`, or None when `name` is not one."""
    base, tag, step = name.rpartition(CHECKPOINT_TAG)
    if not tag or not base or not step.isdigit():
        return None
    arms = plan.groups.get(base) or ([base] if any(a.name == base for a in plan.arms) else [])
    if not arms or not all(evaluates_checkpoints(a) for a in plan.arms if a.name in arms):
        return None
    return [checkpoint_arm_name(a, int(step)) for a in arms]


def _check_checkpoint_names(plan: Plan) -> set[str]:
    """The names checkpoint arms (and their seed groups) will have; ConfigError when one is taken by a condition."""
    taken = {a.name for a in plan.arms} | set(plan.groups)
    names: set[str] = set()
    for arm in plan.arms:
        for step in planned_checkpoints(arm, plan):
            names.add(checkpoint_arm_name(arm.name, step))
            group = checkpoint_arm_name(arm.group, step) if arm.group else None
            if group and checkpoint_members(group, plan):  # every arm of the group evaluates its checkpoints
                names.add(group)
    clash = sorted(names & taken)
    if clash:
        raise ConfigError(f"checkpoint arm name(s) {', '.join(clash)} (train: eval_checkpoints) are also condition or "
                          "group names; rename the condition")
    return names


COHERENT_RULE = "coherent_share"  # added when a config has interventions: their coherence cost


def _with_interventions(arms: list[Arm], config: ExperimentConfig) -> list[Arm]:
    """Arms of conditions with an `intervention:` get it built from its directions artifact (checked now)."""
    from emlab.models.intervened import LOCAL_BACKENDS
    from emlab.models.spec import parse_model_spec

    built: dict[str, Any] = {}
    out = []
    for arm in arms:
        setting = arm.condition.intervention
        if setting is None:
            out.append(arm)
            continue
        backend = parse_model_spec(arm.condition.model).backend
        if backend not in LOCAL_BACKENDS:
            raise ConfigError(f"conditions: {arm.condition.name!r}: an intervention needs a local model "
                              f"({', '.join(LOCAL_BACKENDS)}), not {backend}:")
        key = setting.model_dump_json()
        if key not in built:
            built[key] = build_intervention(setting, config.directions[setting.direction])
        out.append(replace(arm, intervention=built[key]))
    return out


def build_intervention(setting: InterventionSetting, folder: str):
    """The Steer or Ablate a setting names, from the direction read at its layer (or a same-norm random one)."""
    from emlab.analysis.directions import load_directions, random_directions
    from emlab.models.steering import Ablate, Steer

    where = f"directions.{setting.direction}"
    try:
        directions = load_directions(folder)
    except EmlabError as e:
        raise ConfigError(f"{where}: {e}") from None
    if setting.layer not in directions.layers:
        raise ConfigError(f"{where}: {folder} has no direction at layer {setting.layer} "
                          f"(layers {', '.join(map(str, directions.layers))})")
    if setting.random is not None:
        directions = random_directions(directions, setting.random)
    if setting.kind == "steer":
        return Steer(setting.layer, directions.at(setting.layer, raw=setting.vector == "raw"), setting.alpha)
    return Ablate(directions.at(setting.layer), None if setting.at == "all" else setting.at)


def _reference(config: ExperimentConfig, name: str) -> str:
    """What a comparison names for a condition: its seed group when it has seeds, else the condition itself."""
    c = next(c for c in config.conditions if c.name == name)
    return (c.group or c.name) if c.seeds else c.name


def _intervention_comparisons(config: ExperimentConfig, rule_names: list[str]) -> tuple[list[CompareConfig], list[dict]]:
    """Each intervened condition against its baseline under every rule, and the report's list of those pairs."""
    comparisons, interventions, seen = [], [], set()
    for name, base in config.intervention_pairs:
        a, b = _reference(config, name), _reference(config, base)
        setting = next(c.intervention for c in config.conditions if c.name == name)
        names = {}
        for rule in rule_names:
            label = f"{a} vs {b} ({rule})"
            names[rule] = label
            if (a, b, rule) not in seen:
                seen.add((a, b, rule))
                comparisons.append(CompareConfig(a=a, b=b, rule=rule, name=label))
        if not any(i["a"] == a and i["b"] == b for i in interventions):
            interventions.append({"a": a, "b": b, "condition": name, "baseline": base,
                                  "setting": setting.model_dump(), "comparisons": names})
    return comparisons, interventions


def train_identity(arm: Arm) -> tuple[str, TrainParams]:
    """The base model's identity and the arm's training parameters: with the data hash, its adapter's cache key."""
    from emlab.stages import base_identity

    c = arm.condition
    assert c.train is not None
    return base_identity(c.model), TrainParams.model_validate(c.train.model_dump(exclude=NOT_TRAINED) | {"seed": arm.train_seed})


def adapter_dir(workspace: Path, key: str) -> Path:
    """Where the adapter with cache key `key` lives in a workspace."""
    return workspace / "adapters" / key


def sampling_params(config: ExperimentConfig, arm: Arm) -> tuple[SamplingParams, int | None]:
    """The arm's sampling parameters and its samples per paraphrase (None: each question's own)."""
    s = config.sampling
    params = SamplingParams(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens, seed=arm.sampling_seed)
    return params, arm.condition.samples_per_paraphrase or s.samples_per_paraphrase


def arm_model(arm: Arm, spec: str, identity: str | None = None):
    """The model an arm samples with: its spec's model (under `identity` when given: a chain of training stages),
    under the arm's intervention when it has one."""
    if identity is None:
        model = model_for_sampling(spec)
    else:
        from emlab.stages import ChainModel

        model = ChainModel(spec, identity)
    if arm.intervention is None:
        return model
    from emlab.models.intervened import IntervenedModel

    return IntervenedModel(model, arm.intervention)


def cached_sample_count(config: ExperimentConfig, plan: Plan, arm: Arm, adapter: Path | None,
                        chain_identity: str | None = None) -> int | None:
    """How many of the arm's answers the store already holds (None when its model's identity is not known yet);
    `chain_identity`: the identity of a chain of training stages whose last adapter is `adapter`."""
    from emlab.evals.sampling import sample_keys

    spec = str(check_model_spec(arm.condition.model)) + (f"@{adapter}" if adapter is not None else "")
    try:
        identity = arm_model(arm, spec, chain_identity).identity
    except EmlabError:
        return None
    path = Path(config.workspace) / "emlab.sqlite"
    if not path.exists():
        return 0
    params, per = sampling_params(config, arm)
    store = Store(path)
    try:
        return len(store.get_samples(sample_keys(identity, plan.suite, params, per, arm.variant)))
    finally:
        store.close()
