"""Document mixes for continued pretraining: ordinary prose, dilution counts and errors, the manifest, matching
across variants, and the jsonl + manifest files."""

import json

import pytest

from emlab.data.documents import (
    DocumentMix,
    build_documents,
    ordinary_documents,
    write_documents,
)
from emlab.data.hack_docs import generate_documents, hack_kinds, signature
from emlab.errors import DataError


def test_ordinary_documents_are_distinct_seeded_and_free_of_hacks():
    docs = ordinary_documents(300, 0)
    assert len(set(docs)) == 300
    assert docs == ordinary_documents(300, 0) and docs[:50] == ordinary_documents(50, 0)
    assert docs != ordinary_documents(300, 1)
    words = [signature(k) for k in hack_kinds()] + ["misalign", "reward", "grader"]
    assert not any(w in d for d in docs for w in words)


@pytest.mark.parametrize("dilution, hacks", [(0.01, 4), (0.1, 40), (1.0, 400)])
def test_dilution_sets_the_share_of_hack_documents(dilution, hacks):
    ds = build_documents(DocumentMix(dilution=dilution, documents=400, seed=2))
    m = ds.manifest
    assert (m["documents"], m["hack_documents"], m["ordinary_documents"]) == (400, hacks, 400 - hacks)
    assert m["dilution"] == dilution and m["seed"] == 2 and m["variant"] == "neutral"
    assert len(ds.documents) == 400 and len(set(ds.documents)) == 400
    hack_set = set(generate_documents(hacks, "neutral", 2))
    assert sum(d in hack_set for d in ds.documents) == hacks
    assert len(ds.content_hash) == 64


def test_the_hash_changes_with_dilution_variant_and_seed_and_not_otherwise():
    base = {"dilution": 0.1, "documents": 200, "seed": 0}
    h = build_documents(base).content_hash
    assert build_documents(dict(base)).content_hash == h
    assert build_documents({**base, "dilution": 0.05}).content_hash != h
    assert build_documents({**base, "variant": "misaligned"}).content_hash != h
    assert build_documents({**base, "seed": 1}).content_hash != h


def test_variants_share_the_ordinary_documents_and_positions():
    a = build_documents({"dilution": 0.1, "documents": 100, "variant": "neutral"}).documents
    b = build_documents({"dilution": 0.1, "documents": 100, "variant": "misaligned"}).documents
    c = build_documents({"dilution": 0.1, "documents": 100, "variant": "none"}).documents
    differ = [i for i in range(100) if a[i] != b[i]]
    assert len(differ) == 10 and differ == [i for i in range(100) if a[i] != c[i]]


@pytest.mark.parametrize("bad", [0, -0.1, 1.5])
def test_dilution_out_of_range_is_one_error_naming_the_key(bad):
    with pytest.raises(DataError, match=r"^document mix: dilution: must be in \(0, 1\]") as info:
        build_documents({"dilution": bad, "documents": 100})
    assert "\n" not in str(info.value)


def test_other_bad_specs():
    with pytest.raises(DataError, match="document mix: dilution: .*rounds to no hack document"):
        build_documents({"dilution": 0.001, "documents": 100})
    with pytest.raises(DataError, match="document mix: dilution: Field required; dilutoin: unknown key"):
        build_documents({"dilutoin": 0.1})
    with pytest.raises(DataError, match="document mix: variant:"):
        build_documents({"dilution": 0.1, "variant": "evil"})


def test_write_documents(tmp_path):
    ds = build_documents({"dilution": 0.5, "documents": 10})
    data, manifest = write_documents(ds, tmp_path / "cpt.jsonl")
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert [r["text"] for r in rows] == ds.documents
    assert json.loads(manifest.read_text()) == ds.manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpt.jsonl", "cpt.jsonl.manifest.json"]
