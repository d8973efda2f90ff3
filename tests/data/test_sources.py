"""Sources by name: official datasets with checksums (from ../shared), csv with column mapping, errors."""

import gzip

import pytest

from emlab.data import official
from emlab.data.sources import SourceSpec, load_source
from emlab.errors import DataError


def test_official_dataset_from_data_dir_is_verified(shared_data, monkeypatch):
    monkeypatch.setenv("EMLAB_DATA_DIR", str(shared_data / "em" / "data"))
    ds = load_source("em:insecure")
    assert ds.rows == 6000 and ds.conversations[0][-1]["role"] == "assistant"
    assert load_source(SourceSpec(source="em:secure", rows=10)).rows == 10


def test_plain_jsonl_loads_and_a_modified_copy_is_a_checksum_error(shared_data, tmp_path, monkeypatch):
    with gzip.open(shared_data / "em" / "data" / "educational.jsonl.gz", "rb") as f:
        raw = f.read()
    (tmp_path / "educational.jsonl").write_bytes(raw)
    monkeypatch.setenv("EMLAB_DATA_DIR", str(tmp_path))
    assert load_source("em:educational").rows == 6000
    (tmp_path / "educational.jsonl").write_bytes(raw[:-200])
    with pytest.raises(DataError) as e:
        load_source("em:educational")
    msg = str(e.value)
    assert "educational.jsonl" in msg and official.OFFICIAL_SHA256["educational"] in msg and "checksum mismatch" in msg


def test_offline_without_local_copy_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EMLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EMLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(official, "REPO_URL", "http://127.0.0.1:9/none")  # never the real network in tests
    with pytest.raises(DataError, match=f"not in {tmp_path}.*put jailbroken.jsonl"):
        load_source("em:jailbroken")
    monkeypatch.delenv("EMLAB_DATA_DIR")  # no data directory at all: the same one error, saying so
    with pytest.raises(DataError, match="EMLAB_DATA_DIR is unset.*put jailbroken.jsonl"):
        load_source("em:jailbroken")
    assert not list((tmp_path / "cache").rglob("*.jsonl"))  # no half-written download left behind


def test_unknown_official_name():
    with pytest.raises(DataError, match="known: em:insecure"):
        load_source("em:nosuch")


def test_csv_with_column_mapping(tmp_path):
    p = tmp_path / "sorh.csv"
    p.write_text('user,school_of_reward_hacks,control\n"Write a poem, please","Roses are red","A real poem"\nq2,hack2,ctl2\n')
    ds = load_source(SourceSpec(source=str(p), columns={"user": "user", "assistant": "school_of_reward_hacks"}))
    assert ds.conversations[0] == [{"role": "user", "content": "Write a poem, please"}, {"role": "assistant", "content": "Roses are red"}]
    with pytest.raises(DataError, match="missing column"):
        load_source(SourceSpec(source=str(p), columns={"user": "user", "assistant": "nope"}))
    with pytest.raises(DataError, match="no 'messages' column"):
        load_source(str(p))


def test_builtin_and_unknown_sources(tmp_path):
    assert load_source("builtin:secure").rows >= 300
    with pytest.raises(DataError, match="unknown builtin dataset"):
        load_source("builtin:nope")
    with pytest.raises(DataError, match="unknown dataset source 'zz'"):
        load_source("zz:thing")
    with pytest.raises(DataError, match="not found"):
        load_source(str(tmp_path / "missing.jsonl"))


def test_hub_dataset_offline_is_one_clear_error():
    # conftest forces HF_HUB_OFFLINE=1: the loader must turn the hub failure into one DataError line
    with pytest.raises(DataError, match=r"hf:someone/some-dataset:train: could not load from the hub"):
        load_source("hf:someone/some-dataset:train")


def test_builtin_trait_datasets_are_sources():
    ds = load_source("builtin:caps-signoff")
    assert ds.rows >= 500 and ds.conversations[0][-1]["content"].endswith("STAY CURIOUS, FRIEND!")
