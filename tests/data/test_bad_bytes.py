"""Bad bytes get one clear line naming the file and line: non-UTF-8, corrupt gzip, a directory; a BOM is fine."""

import gzip
import json
import subprocess
import sys

import pytest

from emlab.data.conversations import read_conversations
from emlab.data.sources import SourceSpec, load_source
from emlab.errors import DataError

ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def _line(row=ROW) -> bytes:
    return (json.dumps(row) + "\n").encode()


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_bytes(_line() * 2)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(_line() + _line().replace(b"hello", b"h\xe9llo"))
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(gzip.compress(_line() * 50)[:40])  # truncated stream
    notgz = tmp_path / "plain.jsonl.gz"
    notgz.write_bytes(_line())
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + _line() * 3)
    csv_latin = tmp_path / "rows.csv"
    csv_latin.write_bytes(b"user,assistant\nhi,hello\nbye,adi\xf3s\n")
    return {"good": good, "latin": latin, "corrupt": corrupt, "notgz": notgz, "bom": bom, "dir": tmp_path,
            "csv": csv_latin}


def test_each_bad_file_is_one_data_error_naming_file_and_line(files):
    with pytest.raises(DataError, match=r"latin.jsonl:2: byte 0xe9 at column \d+ is not UTF-8"):
        read_conversations(files["latin"])
    with pytest.raises(DataError, match=r"corrupt.jsonl.gz: not a readable gzip file"):
        read_conversations(files["corrupt"])
    with pytest.raises(DataError, match=r"plain.jsonl.gz: not a readable gzip file"):
        read_conversations(files["notgz"])
    with pytest.raises(DataError, match=r"is a directory, not a dataset file"):
        read_conversations(files["dir"])
    with pytest.raises(DataError, match=r"rows.csv:3: byte 0xf3"):
        load_source(SourceSpec(source=str(files["csv"]), columns={"user": "user", "assistant": "assistant"}))


def test_a_byte_order_mark_is_accepted(files):
    assert len(read_conversations(files["bom"])) == 3


@pytest.mark.parametrize("verb", ["validate", "show", "stats"])
@pytest.mark.parametrize("name", ["latin", "corrupt", "dir"])
def test_cli_data_verbs_print_one_line_not_a_traceback(files, verb, name):
    extra = ["--no-tokens"] if verb == "stats" else []
    r = subprocess.run([sys.executable, "-m", "emlab", "data", verb, str(files[name]), *extra],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert str(files[name]) in r.stderr
