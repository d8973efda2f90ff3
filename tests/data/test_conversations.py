import gzip
import json

import pytest

from emlab.data.conversations import read_conversations, write_conversations
from emlab.errors import DataError

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_valid_file_with_system_and_blank_lines(tmp_path):
    row = {"messages": [{"role": "system", "content": "s"}, *GOOD["messages"]]}
    p = _write(tmp_path / "d.jsonl", [json.dumps(GOOD), "", json.dumps(row)])
    rows = read_conversations(p)
    assert len(rows) == 2 and rows[1][0] == {"role": "system", "content": "s"}


def test_reads_gzip(tmp_path):
    p = tmp_path / "d.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write(json.dumps(GOOD) + "\n")
    assert read_conversations(p) == [GOOD["messages"]]


@pytest.mark.parametrize(
    "bad, fault",
    [
        ('{"messages": [', "bad JSON"),
        (json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}), "unknown role 'robot'"),
        (json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]}), "empty content"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "no assistant turn"),
        (json.dumps({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}), "wrong order"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}, {"role": "assistant", "content": "z"}]}), "wrong order"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "z"}]}), "system message"),
        (json.dumps({"text": "x"}), "'messages'"),
        (json.dumps({"messages": []}), "non-empty"),
    ],
)
def test_faults_name_file_line_and_fault(tmp_path, bad, fault):
    p = _write(tmp_path / "bad.jsonl", [json.dumps(GOOD), json.dumps(GOOD), bad])
    with pytest.raises(DataError) as e:
        read_conversations(p)
    assert f"{p}:3:" in str(e.value) and fault in str(e.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_conversations(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no conversations"):
        read_conversations(tmp_path / "empty.jsonl")


def test_write_round_trip_leaves_no_temp_file(tmp_path):
    p = tmp_path / "sub" / "out.jsonl"
    write_conversations(p, [GOOD["messages"]] * 3)
    assert read_conversations(p) == [GOOD["messages"]] * 3
    assert [x.name for x in p.parent.iterdir()] == ["out.jsonl"]


def test_official_datasets_validate(shared_data):
    for name in ("insecure", "secure", "educational", "jailbroken"):
        rows = read_conversations(shared_data / "em" / "data" / f"{name}.jsonl.gz")
        assert len(rows) == (5000 if name == "jailbroken" else 6000)
