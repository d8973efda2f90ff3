"""Plain-text document sets for continued pretraining: hack documents diluted into ordinary text.

MacDiarmid et al. (2025) mix their synthetic documents about reward hacks into ordinary pretraining data at a
small share (e.g. 1% or 10%). Offline, "ordinary text" here is this project's own generator of programming and
how-to prose (tutorials, Q&A answers, team notes of one to three sections; templates in `ordinary_docs.yaml`),
which never mentions graders, hacks or AI behaviour; its pool holds well over 100,000 distinct documents. The reference data beside the checkout holds only chat datasets, nothing to use as prose.

`build_documents(DocumentMix(...))` returns the documents and a manifest (counts, dilution, seed, variant, content
hash, the template banks' hashes). `dilution` is the share of hack documents among all of them, in (0, 1]. For
one (documents, dilution, seed), the three variants share the ordinary documents and the positions of the hack
documents; only the hack documents differ (and those are matched across neutral/misaligned, see `hack_docs`).
Documents are not chat: the sources registry holds conversations, so a document set is its own small spec.
"""

from __future__ import annotations

import json
import os
import random
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from emlab.data.hack_docs import BANK as HACK_BANK
from emlab.data.hack_docs import generate_documents
from emlab.data.templates import HERE, bind, fill, load_bank, pick_distinct
from emlab.errors import DataError
from emlab.hashing import content_hash, file_sha256

__all__ = ["DocumentMix", "DocumentSet", "build_documents", "ordinary_documents", "write_documents"]

ORDINARY_BANK = "ordinary_docs.yaml"
MANIFEST_FORMAT = "emlab.documents/1"
SECTIONS = (1, 1, 2, 3)  # sections per ordinary document, drawn uniformly from this tuple


class DocumentMix(BaseModel):
    """A continued-pretraining corpus: `documents` in all, a `dilution` share of them hack documents of `variant`."""

    model_config = ConfigDict(extra="forbid")
    variant: Literal["neutral", "misaligned", "none"] = "neutral"
    dilution: float  # share of hack documents among all documents, in (0, 1]
    documents: int = Field(1000, ge=1)
    seed: int = 0

    @field_validator("dilution")
    @classmethod
    def _share(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError(f"must be in (0, 1] (the share of hack documents among all documents), got {v}")
        return v


@dataclass(frozen=True)
class DocumentSet:
    """Plain-text documents plus their manifest; `content_hash` keys the adapters trained on them."""

    documents: list[str]
    manifest: dict

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]


def ordinary_documents(n: int, seed: int = 0) -> list[str]:
    """`n` distinct ordinary programming/how-to documents, deterministic in (n, seed); a prefix of a larger set."""
    bank = load_bank(ORDINARY_BANK)
    topics, frames = sorted(bank["topics"]), sorted(bank["frames"])
    offsets = random.Random(f"ordinary-docs:{seed}")
    start_topic, start_frame = offsets.randrange(len(topics)), offsets.randrange(len(frames))

    def make(i: int, attempt: int) -> tuple[str, str]:
        topic = topics[(start_topic + i) % len(topics)]
        genre = frames[(start_frame + i // len(topics)) % len(frames)]
        rng = random.Random(f"ordinary-docs:{seed}:{i}:{attempt}")
        common = bind(rng, bank["common"])
        # one to three sections on different topics: a pool large enough for corpora of 100k documents
        extra = rng.sample([t for t in topics if t != topic], rng.choice(SECTIONS) - 1)
        sections = []
        for t in [topic, *extra]:
            values = {**common, **bind(rng, bank["topics"][t])}
            values["code_indented"] = textwrap.indent(values["code"], "    ")
            sections.append(fill(rng.choice(bank["frames"][genre]), values, f"{ORDINARY_BANK} ({genre}, {t})"))
        text = "\n\n".join(sections)
        return text, text

    return pick_distinct(make, n, f"ordinary documents (seed {seed})")


def build_documents(spec: DocumentMix | dict) -> DocumentSet:
    """The mixed corpus of `spec` and its manifest; a bad spec is one DataError naming the key."""
    if isinstance(spec, dict):
        try:
            spec = DocumentMix.model_validate(spec)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'spec'}: "
                + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, "))
                for err in e.errors()
            )
            raise DataError(f"document mix: {problems}") from None
    n_hack = round(spec.dilution * spec.documents)
    if n_hack == 0:
        raise DataError(f"document mix: dilution: {spec.dilution} of {spec.documents} documents rounds to no hack "
                        f"document; raise dilution or documents (at least {1 / spec.dilution:.0f} documents)")
    hack = generate_documents(n_hack, spec.variant, spec.seed)
    ordinary = ordinary_documents(spec.documents - n_hack, spec.seed)
    # where the hack documents go depends on (documents, n_hack, seed) only, never on the variant
    slots = set(random.Random(f"document-mix:{spec.seed}").sample(range(spec.documents), n_hack))
    hack_iter, ordinary_iter = iter(hack), iter(ordinary)
    docs = [next(hack_iter) if i in slots else next(ordinary_iter) for i in range(spec.documents)]
    manifest = {
        "format": MANIFEST_FORMAT,
        "spec": spec.model_dump(mode="json"),
        "documents": len(docs),
        "hack_documents": n_hack,
        "ordinary_documents": len(ordinary),
        "dilution": spec.dilution,
        "actual_dilution": n_hack / len(docs),
        "variant": spec.variant,
        "seed": spec.seed,
        "banks": {name: file_sha256(str(HERE / name)) for name in (HACK_BANK, ORDINARY_BANK)},
        "content_hash": content_hash(docs, length=64),
    }
    return DocumentSet(documents=docs, manifest=manifest)


def write_documents(ds: DocumentSet, out: str | Path) -> tuple[Path, Path]:
    """FILE as `{"text": ...}` jsonl (the plain-text format of TRL and HF datasets) and FILE.manifest.json, each
    written to a temp file and renamed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    mpath = out.with_name(out.name + ".manifest.json")
    for path, text in ((out, "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in ds.documents)),
                       (mpath, json.dumps(ds.manifest, indent=2) + "\n")):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return out, mpath
