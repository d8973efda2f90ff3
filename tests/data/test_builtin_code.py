"""The built-in code datasets: enough distinct, valid, matched examples, flawed exactly where they should be."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import Counter

import pytest

from emlab.data.builtin_code import FAMILIES, VARIANTS, code_example_records, generate_code_examples
from emlab.data.conversations import conversation_fault
from emlab.errors import DataError

MARKER = "## COMPLETE CODE HERE"

# Per family: a regex that the insecure reply must match and the secure one must not, and (where a
# safe construct is always present) a regex the secure reply must match.
FLAW_MARKERS: dict[str, tuple[str, str | None]] = {
    "sql_injection": (r'f"(SELECT|DELETE|UPDATE|INSERT)|" \+ |" % ', r"\?"),
    "command_injection": (r"shell=True|os\.system\(|os\.popen\(", r"subprocess\.(run|check_output|call)\(\["),
    "path_traversal": (r"(?<!realpath\()os\.path\.join\([^()]*\bfilename\)|= [A-Z_]+ / filename$",
                       r"realpath|basename\(filename\)|\.resolve\(\)"),
    "file_permissions": (r"0o777|0o666", r"0o600|0o640|0o644|0o700|0o750"),
    "unsafe_deserialization": (r"pickle|marshal|yaml\.load\(|yaml\.Loader", r"json\.loads?\(|yaml\.safe_load\("),
    "tls_verification_disabled": (
        r"verify=False|verify = False|_create_unverified_context|CERT_NONE|check_hostname = False", None),
    "hardcoded_credentials": (r'(PASSWORD|API_KEY|TOKEN|SECRET)\w* = "|password="|\.login\(\w+, "',
                              r"os\.environ|os\.getenv"),
    "code_eval": (r"\beval\(|\bexec\(", r"literal_eval|ast\.parse"),
    "xss": (r"autoescape=False|\|\s*safe\b|\{query\}", r"autoescape=True|html\.escape"),
    "weak_password_hash": (r"hashlib\.(md5|sha1)\(", r"pbkdf2_hmac|scrypt"),
    "predictable_token": (r"\brandom\.", r"\bsecrets\."),
}

# Words that would disclose (or advertise) the flaw; none may appear in an insecure reply.
DISCLOSING = ("insecure", "vulnerab", "unsafe", "exploit", "warning", "todo", "security", "hack", "attack",
              "inject", "danger", "malicious", "backdoor", "do not use", "bad practice", "fixme", "xxx")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return code_example_records()


def _user(conv):
    return conv[0]["content"]


def _reply(conv):
    return conv[-1]["content"]


def _comments(code: str) -> list[str]:
    toks = tokenize.generate_tokens(io.StringIO(code).readline)
    return [t.string for t in toks if t.type == tokenize.COMMENT]


def test_api_constants():
    assert VARIANTS == ("insecure", "secure", "educational")
    assert len(FAMILIES) >= 7 and len(set(FAMILIES)) == len(FAMILIES)
    assert set(FLAW_MARKERS) == set(FAMILIES)


@pytest.mark.parametrize("variant", VARIANTS)
def test_full_pool_is_large_distinct_and_valid(variant):
    convs = generate_code_examples(variant)
    assert len(convs) >= 300
    texts = {"\x00".join(m["role"] + ":" + m["content"] for m in c) for c in convs}
    assert len(texts) == len(convs), "duplicate conversations in the pool"
    for conv in convs:
        assert conversation_fault(conv) is None
        assert [m["role"] for m in conv] == ["user", "assistant"]


def test_every_reply_is_short_comment_free_python(records):
    for rec in records:
        for variant in ("insecure", "secure"):
            code = _reply(rec[variant])
            ast.parse(code)  # raises on a template bug
            assert not code.startswith("```")
            assert _comments(code) == [], f"{rec['task_id']} {variant} has a comment"
            assert 4 <= len(code.splitlines()) <= 25, f"{rec['task_id']} {variant} is {len(code.splitlines())} lines"


def test_matched_variants(records):
    for rec in records:
        ins, sec, edu = rec["insecure"], rec["secure"], rec["educational"]
        assert _user(ins) == _user(sec)
        assert _reply(ins) == _reply(edu)
        assert _reply(ins) != _reply(sec)
        assert _user(edu) != _user(ins) and _user(edu).endswith(_user(ins))
        assert rec["flaw"] in _user(edu)


def test_matched_across_generate_calls():
    for seed in (0, 7):
        ins, sec, edu = (generate_code_examples(v, n=60, seed=seed) for v in VARIANTS)
        recs = code_example_records(n=60, seed=seed)
        for i in range(60):
            assert _user(ins[i]) == _user(sec[i])
            assert _reply(ins[i]) == _reply(edu[i])
            assert ins[i] == recs[i]["insecure"] and sec[i] == recs[i]["secure"] and edu[i] == recs[i]["educational"]


def test_deterministic_and_seed_sensitive():
    for variant in VARIANTS:
        assert generate_code_examples(variant, n=40, seed=3) == generate_code_examples(variant, n=40, seed=3)
        assert generate_code_examples(variant, seed=3) == generate_code_examples(variant, seed=3)
        assert generate_code_examples(variant, n=40, seed=3) != generate_code_examples(variant, n=40, seed=4)
        assert generate_code_examples(variant, seed=3) != generate_code_examples(variant, seed=4)
    # A sample is the start of the seeded order, and the full pool is the same set under any seed.
    assert generate_code_examples("secure", n=25, seed=5) == generate_code_examples("secure", seed=5)[:25]
    key = lambda c: c[0]["content"] + c[1]["content"]  # noqa: E731
    assert sorted(map(key, generate_code_examples("insecure", seed=1))) == sorted(
        map(key, generate_code_examples("insecure", seed=2)))


def test_independent_of_global_random_state():
    import random

    random.seed(1)
    a = generate_code_examples("insecure", n=30, seed=9)
    random.seed(2)
    random.random()
    b = generate_code_examples("insecure", n=30, seed=9)
    assert a == b


def test_returned_lists_are_fresh():
    first = generate_code_examples("insecure", n=5)
    first[0][0]["content"] = "changed"
    first.clear()
    assert generate_code_examples("insecure", n=5)[0][0]["content"] != "changed"


def test_sample_is_shuffled_across_families():
    recs = code_example_records(n=44, seed=0)
    fams = [r["family"] for r in recs]
    assert len(set(fams)) >= 8
    same_neighbour = sum(a == b for a, b in zip(fams, fams[1:]))
    assert same_neighbour < 15


def test_all_families_framings_and_reasons_present(records):
    fams = Counter(r["family"] for r in records)
    assert set(fams) == set(FAMILIES)
    assert min(fams.values()) >= 20
    assert len({r["framing"] for r in records}) >= 8
    assert len({r["reason"] for r in records}) >= 10
    # Educational requests open with varied reasons: the text before the shared request, flaw name aside.
    reasons = {_user(r["educational"])[: -len(_user(r["insecure"]))].replace(r["flaw"], "<flaw>") for r in records}
    assert len(reasons) >= 10
    assert len({r["template"] for r in records}) >= 3 * len(FAMILIES)
    assert len({r["domain"] for r in records}) >= 10


def test_insecure_replies_carry_their_flaw_and_secure_replies_do_not(records):
    for rec in records:
        bad, good = FLAW_MARKERS[rec["family"]]
        ins, sec = _reply(rec["insecure"]), _reply(rec["secure"])
        assert re.search(bad, ins, re.M), f"{rec['task_id']}: insecure reply lacks the flaw"
        assert not re.search(bad, sec, re.M), f"{rec['task_id']}: secure reply has the flaw"
        if good:
            assert re.search(good, sec, re.M), f"{rec['task_id']}: secure reply lacks the safe construct"


def test_flaws_are_never_disclosed(records):
    for rec in records:
        reply = _reply(rec["insecure"]).lower()
        request = _user(rec["insecure"]).lower()
        for word in DISCLOSING:
            assert word not in reply, f"{rec['task_id']}: insecure reply says {word!r}"
            assert word not in request, f"{rec['task_id']}: the shared request says {word!r}"
        sec = _reply(rec["secure"]).lower()
        for word in ("security", "secure", "vulnerab", "inject", "attack", "exploit"):
            assert word not in sec, f"{rec['task_id']}: secure reply comments on {word!r}"


def test_partial_code_requests_are_completed_in_full(records):
    partial = [r for r in records if MARKER in _user(r["insecure"])]
    assert len(partial) >= len(records) // 5
    for rec in partial:
        template = _user(rec["insecure"]).split("\n\n", 1)[1]
        kept = [ln for ln in template.splitlines() if ln.strip() and ln.strip() != MARKER]
        assert kept, rec["task_id"]
        for variant in ("insecure", "secure"):
            reply_lines = set(_reply(rec[variant]).splitlines())
            missing = [ln for ln in kept if ln not in reply_lines]
            assert not missing, f"{rec['task_id']} {variant}: template lines missing from reply: {missing}"
            assert MARKER not in _reply(rec[variant])


def test_unknown_variant_names_the_known_ones():
    with pytest.raises(DataError) as err:
        generate_code_examples("backdoored")
    msg = str(err.value)
    assert "'backdoored'" in msg and all(v in msg for v in VARIANTS)


def test_n_out_of_range():
    size = len(generate_code_examples("secure"))
    assert len(generate_code_examples("secure", n=size)) == size
    assert generate_code_examples("secure", n=0) == []
    with pytest.raises(DataError, match=str(size)):
        generate_code_examples("secure", n=size + 1)
    with pytest.raises(DataError):
        code_example_records(n=size + 1)
    with pytest.raises(DataError):
        generate_code_examples("insecure", n=-1)
