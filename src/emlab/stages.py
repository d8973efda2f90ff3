"""Training stages: a condition's ordered chain of LoRA steps (continued pretraining, SFT, DPO), each on the last.

A condition may give `stages:` instead of `train:` (MacDiarmid et al. 2025: knowledge of hacks from documents, then
narrow finetuning, then safety training, in either order). Stage i trains a LoRA adapter on base B_i; B_0 is the
condition's model and B_{i+1} is B_i with stage i's adapter merged into its weights (`train.merge`), a checkpoint
cached in `<workspace>/merged/<key of stage i>/`. Stage i's base identity is B_0's identity plus `+<kind>:<key>` for
every stage before it, and its adapter key hashes that identity with the stage's data and parameters
(`sft.adapter_key`, `cpt.cpt_key`, `dpo.dpo_key`), so a key covers everything before it: a changed first stage
retrains every later one, and a changed last stage reuses the others. A one-stage `sft` chain is `train:` itself:
the same adapter key and the same model identity.

The arm samples B_{n-1} with the last adapter (merged when it loads, as any `<base>@<adapter>` spec); its answers are
cached under the chain's identity (B_0, each earlier stage's key, the last adapter's weights hash), which does not
depend on where the workspace lies.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emlab.config import ConditionConfig, StageConfig, TrainConfig
from emlab.errors import ConfigError, DataError
from emlab.models.registry import LazyModel, check_model_spec
from emlab.train.params import TrainParams

__all__ = ["ChainModel", "StageData", "StageStep", "base_identity", "build_stage_data", "chain_identity",
           "plan_chain", "sft_data", "stage_status", "summary_stages", "train_chain"]

MERGED = "merged"  # <workspace>/merged/<key>/: a stage's adapter merged into its base, the next stage's base


@dataclass(frozen=True)
class StageData:
    """A stage's training data, built once at plan time: the rows every seed trains on and their provenance."""

    kind: str
    data: Any  # sft: data.sources.Dataset; cpt: data.documents.DocumentSet; dpo: data.hhh.PairSet
    content_hash: str
    provenance: dict  # source / rows / hash, and the manifest (datasets and document mixes)

    def rows(self) -> int:
        return len(self.data.conversations if self.kind == "sft" else
                   self.data.documents if self.kind == "cpt" else self.data.pairs)

    def tokens(self) -> int:
        """About how many tokens one pass over the data is (4 characters a token), for estimates."""
        if self.kind == "sft":
            chars = sum(len(m["content"]) for c in self.data.conversations for m in c)
        elif self.kind == "cpt":
            chars = sum(len(d) for d in self.data.documents)
        else:  # a pair is two sequences (prompt + chosen, prompt + rejected), each through the model twice
            chars = 4 * sum(len(str(p["prompt"])) + len(str(p["chosen"])) // 2 + len(str(p["rejected"])) // 2
                            for p in self.data.pairs)
        return chars // 4


@dataclass(frozen=True)
class StageStep:
    """One stage of one arm's chain, keyed: where it trains, on what, and the adapter it gives."""

    index: int
    kind: str
    key: str
    base_identity: str  # the condition's model plus every earlier stage's key
    params: TrainParams
    stage: StageConfig
    data: StageData


def base_identity(model: str) -> str:
    """The identity a trainer keys a base model by (the embedded model with its converted checkpoint's name; a
    quantized base with its quantization: QLoRA trains another adapter). A `vllm:` base trains as the `hf:` model
    of the same name (transformers trains it; vLLM only serves it), so both share their adapters."""
    from emlab.quantize import identity_suffix

    spec = check_model_spec(model)
    if spec.backend == "embedded":
        from emlab.models.embedded import checkpoint_name

        return f"{spec}#{checkpoint_name(spec.name)}{identity_suffix()}"
    if spec.backend == "vllm":
        return "hf:" + str(spec).split(":", 1)[1] + identity_suffix()
    return str(spec) + identity_suffix()


def sft_data(t: TrainConfig, where: str, data_dir: str | None) -> tuple[Any, dict]:
    """A TrainConfig's dataset built (source, transforms, the seeded `rows` sample) and its manifest; errors name
    `where` (e.g. `conditions: 'x': train`)."""
    from emlab.data.build import build_dataset
    from emlab.data.sources import dataset_of

    try:
        dataset, manifest = build_dataset(t.dataset, data_dir)
    except DataError as e:
        raise ConfigError(f"{where}.dataset: {e}") from None
    if t.rows is not None:  # the same rows for every seed: seeds vary the training, not the data
        if t.rows > dataset.rows:
            raise ConfigError(f"{where}.rows={t.rows} but the dataset has {dataset.rows} rows")
        picked = random.Random(t.seed).sample(dataset.conversations, t.rows)
        dataset = dataset_of(dataset.source, picked)
        manifest = {**manifest, "train_rows": {"rows": t.rows, "seed": t.seed, "content_hash": dataset.content_hash}}
    return dataset, manifest


def build_stage_data(c: ConditionConfig, data_dir: str | None) -> list[StageData]:
    """Every stage's data of a condition, built now so that a bad source in the last stage fails before the first
    trains; errors name the condition and the stage's key."""
    spec = check_model_spec(c.model)
    if spec.backend not in ("embedded", "hf") or spec.adapter:
        raise ConfigError(f"conditions: {c.name!r}: stages: train LoRA adapters on a local base model without an "
                          f"adapter (got {c.model!r})")
    out = []
    for i, stage in enumerate(c.stages or []):
        where = f"conditions: {c.name!r}: stages[{i}].{stage.kind}"
        if stage.sft is not None:
            dataset, manifest = sft_data(stage.sft, where, data_dir)
            out.append(StageData("sft", dataset, dataset.content_hash, {**dataset.provenance(), "manifest": manifest}))
        elif stage.cpt is not None:
            from emlab.data.documents import build_documents

            try:
                docs = build_documents(stage.cpt.documents)
            except DataError as e:
                raise ConfigError(f"{where}.documents: {e}") from None
            out.append(StageData("cpt", docs, docs.content_hash,
                                 {"source": f"documents ({docs.manifest['variant']}, dilution {docs.manifest['dilution']:g})",
                                  "hash": docs.content_hash, "rows": len(docs.documents), "manifest": docs.manifest}))
        else:
            from emlab.data.hhh import load_pairs

            assert stage.dpo is not None
            try:
                pairs = load_pairs(stage.dpo.pairs, stage.dpo.rows)
            except DataError as e:
                raise ConfigError(f"{where}.pairs: {e}") from None
            out.append(StageData("dpo", pairs, pairs.content_hash, pairs.provenance()))
    return out


def stage_params(stage: StageConfig, seed: int | None) -> TrainParams:
    """The stage's training parameters at the arm's finetuning seed (None: the stage's own seed)."""
    from emlab.config import NOT_TRAINED

    if stage.sft is not None:
        fields = stage.sft.model_dump(exclude=NOT_TRAINED)
    else:
        fields = stage.spec.train.model_dump()  # type: ignore[union-attr]
    return TrainParams.model_validate(fields | ({"seed": seed} if seed is not None else {}))


def _key(kind: str, identity: str, data: StageData, params: TrainParams, stage: StageConfig) -> str:
    if kind == "sft":
        from emlab.train.sft import adapter_key

        return adapter_key(identity, data.content_hash, params)
    if kind == "cpt":
        from emlab.train.cpt import cpt_key

        return cpt_key(identity, data.content_hash, params)
    from emlab.train.dpo import dpo_key

    assert stage.dpo is not None
    return dpo_key(identity, data.content_hash, params, stage.dpo.dpo)


def plan_chain(c: ConditionConfig, seed: int | None, data: list[StageData]) -> list[StageStep]:
    """The keyed stages of a condition at one finetuning seed; nothing is loaded."""
    identity = base_identity(c.model)
    steps = []
    for i, (stage, d) in enumerate(zip(c.stages or [], data)):
        params = stage_params(stage, seed)
        key = _key(stage.kind, identity, d, params, stage)
        steps.append(StageStep(i, stage.kind, key, identity, params, stage, d))
        identity = f"{identity}+{stage.kind}:{key}"
    return steps


def stage_status(steps: list[StageStep], adapters: Path) -> list[bool]:
    """Whether each stage's adapter is already trained (in `adapters`)."""
    return [(adapters / s.key / "train_info.json").exists() for s in steps]


def chain_identity(model: str, steps: list[StageStep], final_adapter: Path) -> str:
    """The identity the arm's answers are cached under: the model, each earlier stage's key, the last adapter's
    weights. For one stage it is the identity of `<model>@<adapter>`, as for `train:`."""
    from emlab.models.hf import adapter_hash

    spec = str(check_model_spec(model))
    return spec + "".join(f"+{s.kind}:{s.key}" for s in steps[:-1]) + f"@adapter:{adapter_hash(final_adapter)}"


class ChainModel(LazyModel):
    """The last stage's base with its adapter (`hf:<merged>@<adapter>`), under the chain's identity."""

    def __init__(self, spec: str, identity: str):
        self._spec = check_model_spec(spec)
        self.spec = spec
        self.identity = identity


@dataclass
class ChainResult:
    """What training a chain gave: the spec to sample, its identity, and each stage's record for the summary."""

    spec: str
    identity: str | None  # None: one stage, whose `<model>@<adapter>` spec has this identity already
    stages: list[dict]
    trained_tokens: int  # about how many tokens the stages trained now took (0 when all were reused)


def train_chain(c: ConditionConfig, steps: list[StageStep], workspace: Path, device: str, label: str) -> ChainResult:
    """Train (or reuse) every stage in order, merging each adapter into the next stage's base; the final spec."""
    from emlab.models.hub import portable_base, training_checkpoint
    from emlab.progress import console
    from emlab.train.merge import merge_adapter

    spec = check_model_spec(c.model)
    workspace = Path(workspace).resolve()  # the merged bases' specs are absolute paths
    adapters = workspace / "adapters"
    checkpoint: str | Path = training_checkpoint(spec)
    names = portable_base(spec)
    records, tokens = [], 0
    adapter = None
    for step in steps:
        if step.index > 0:  # the previous stage's adapter merged into its base: this stage's base
            assert adapter is not None
            before = steps[step.index - 1]
            checkpoint = merge_adapter(checkpoint, adapter.path, workspace / MERGED / before.key,
                                       {"key": before.key, "kind": before.kind, "identity": step.base_identity})
            names = (None, None)  # a local checkpoint: the adapter records its path
        what = f"{step.kind} on {step.data.rows()} rows of {step.data.provenance.get('source')}"
        console.print(f"[bold]train[/] {label} stage {step.index + 1}/{len(steps)} (seed {step.params.seed}): {what}")
        try:
            adapter = _train_step(step, checkpoint, adapters, device, names)
        except DataError as e:
            raise ConfigError(f"conditions: {c.name!r}: stages[{step.index}].{step.kind}: {e}") from None
        if adapter.reused:
            console.print(f"  reused cached adapter {adapter.key}")
        else:
            tokens += int(step.data.tokens() * step.params.epochs)
        assert adapter.key == step.key, (adapter.key, step.key)
        records.append({"stage": step.index, "kind": step.kind, "base": step.base_identity,
                        "base_checkpoint": str(checkpoint), "params": step.params.model_dump(),
                        **({"dpo": step.stage.dpo.dpo.model_dump()} if step.stage.dpo is not None else {}),
                        "data": step.data.provenance, "adapter": adapter.as_dict()})
    assert adapter is not None
    final = f"{spec}@{adapter.path}" if len(steps) == 1 else f"hf:{checkpoint}@{adapter.path}"
    identity = None if len(steps) == 1 else chain_identity(c.model, steps, adapter.path)
    return ChainResult(final, identity, records, tokens)


def _train_step(step: StageStep, checkpoint: str | Path, adapters: Path, device: str, names: tuple):
    base_name, base_revision = names
    common = {"device": device, "base_name": base_name, "base_revision": base_revision}
    if step.kind == "sft":
        from emlab.train.sft import train_lora

        ds = step.data.data
        return train_lora(checkpoint, step.base_identity, ds.conversations, ds.content_hash, step.params, adapters,
                          **common)
    if step.kind == "cpt":
        from emlab.train.cpt import train_cpt

        return train_cpt(checkpoint, step.base_identity, step.data.data.documents, step.params, adapters, **common)
    from emlab.train.dpo import train_dpo

    assert step.stage.dpo is not None
    return train_dpo(checkpoint, step.base_identity, step.data.data.pairs, step.params, adapters, step.stage.dpo.dpo,
                     **common)


def summary_stages(steps: list[StageStep], adapters: Path) -> list[dict]:
    """The planned stages with their keys and whether each is cached, for `emlab plan`."""
    done = stage_status(steps, adapters)
    return [{"stage": s.index, "kind": s.kind, "key": s.key, "cached": d} for s, d in zip(steps, done)]
