"""Build a dataset from a spec (a source and a chain of transforms) and record its manifest.

The manifest lists the sources with their content hashes, each transform with its parameters, the seed,
and the resulting content hash and row count. Rebuilding from a manifest checks every source hash and the
result hash, so "the same manifest gives the same bytes" is verified, not assumed.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emlab.data.conversations import write_conversations
from emlab.data.sources import Dataset, SourceSpec, dataset_of, load_source
from emlab.data.transforms import TRANSFORMS, BuildContext, unknown_transform
from emlab.errors import DataError
from emlab.hashing import content_hash

MANIFEST_FORMAT = "emlab.dataset/1"


class DatasetSpec(BaseModel):
    """A source, then transforms in order: `[{inoculate: {...}}, {subsample: {n: 500}}]`."""

    model_config = ConfigDict(extra="forbid")
    source: Union[str, SourceSpec]
    transforms: list[dict[str, dict[str, Any]]] = Field(default_factory=list)
    seed: int = 0

    @field_validator("transforms")
    @classmethod
    def _one_name_per_step(cls, steps):
        for i, step in enumerate(steps):
            if len(step) != 1:
                raise ValueError(f"step {i} must be a mapping with exactly one transform name, got {list(step) or 'none'}")
            (name,) = step
            if name not in TRANSFORMS:
                raise ValueError(str(unknown_transform(name)) + f" (step {i})")
        return steps


def _step_error(i: int, name: str, params: dict, problem: str) -> DataError:
    return DataError(f"transform step {i} '{name}' {json.dumps(params, default=str)}: {problem}")


def _validated_params(i: int, name: str, params: dict) -> BaseModel:
    model, _ = TRANSFORMS[name]
    try:
        return model.model_validate(params or {})
    except ValidationError as e:
        problems = "; ".join(
            (f"unknown parameter '{'.'.join(map(str, err['loc']))}'" if err["type"] == "extra_forbidden"
             else f"{'.'.join(map(str, err['loc'])) or 'parameters'}: {err['msg'].removeprefix('Value error, ')}")
            for err in e.errors()
        )
        raise _step_error(i, name, params, problems) from None


def build_dataset(spec: DatasetSpec | str, data_dir: str | None = None) -> tuple[Dataset, dict]:
    """Run the chain; returns the dataset and its manifest."""
    if isinstance(spec, str):
        spec = DatasetSpec(source=spec)
    ctx = BuildContext(data_dir)
    base = load_source(spec.source, data_dir)
    ctx.sources.append(base.provenance())
    rows = base.conversations
    for i, step in enumerate(spec.transforms):
        (name, params), = step.items()
        p = _validated_params(i, name, params)
        rng = random.Random(f"{spec.seed}:{i}:{name}")  # each step its own stream: editing one step leaves the others' draws
        try:
            rows = TRANSFORMS[name][1](rows, p, rng, ctx)
        except ValueError as e:
            raise _step_error(i, name, params, str(e)) from None
        except DataError as e:
            raise _step_error(i, name, params, str(e)) from None
        if not rows:
            raise _step_error(i, name, params, "the dataset is empty after this step")
    ds = dataset_of(_describe_source(spec.source), rows)
    manifest = {
        "format": MANIFEST_FORMAT,
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "sources": ctx.sources,
        "transforms": [
            {"step": i, "name": name, "params": params} for i, step in enumerate(spec.transforms) for name, params in step.items()
        ],
        "seed": spec.seed,
        "content_hash": ds.content_hash,
        "rows": ds.rows,
    }
    return ds, manifest


def _describe_source(source: Union[str, SourceSpec]) -> str:
    return source if isinstance(source, str) else source.source


def rebuild_from_manifest(manifest: dict, data_dir: str | None = None) -> tuple[Dataset, dict]:
    """Build again from a manifest and check that sources and result are byte-for-byte the same."""
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(f"manifest format {manifest.get('format')!r} is not {MANIFEST_FORMAT!r}")
    ds, again = build_dataset(DatasetSpec.model_validate(manifest["spec"]), data_dir)
    for old, new in zip(manifest["sources"], again["sources"]):
        if old["hash"] != new["hash"]:
            raise DataError(f"source {old['source']} changed: manifest hash {old['hash']}, now {new['hash']}")
    if ds.content_hash != manifest["content_hash"]:
        raise DataError(f"rebuilt dataset hash {ds.content_hash} differs from the manifest's {manifest['content_hash']}")
    return ds, again


def write_dataset(ds: Dataset, manifest: dict, out: str | Path) -> tuple[Path, Path]:
    """Write FILE (messages jsonl) and FILE.manifest.json, each atomically."""
    out = Path(out)
    write_conversations(out, ds.conversations)
    mpath = out.with_name(out.name + ".manifest.json")
    tmp = mpath.with_name(mpath.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, mpath)
    return out, mpath


def spec_hash(spec: DatasetSpec) -> str:
    """A short id for a spec, for naming outputs."""
    return content_hash(spec.model_dump(mode="json", by_alias=True))
