"""The official emergent-misalignment datasets (Betley et al. 2025), fetched at a pinned commit and verified.

A local directory is read first (`EMLAB_DATA_DIR` or the config's `data_dir`), so offline users can drop the
files in; then the emlab cache; only then the network. Every file is checked against the sha256 of its
uncompressed content, so a truncated download or an edited copy is an error, never silently different data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from emlab.errors import DataError

COMMIT = "80c11967c07a328e7d7d43d13ce6847ae44dbcc9"
BASE_URL = f"https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/{COMMIT}/data"

# name -> sha256 of the uncompressed jsonl (from the official repository at COMMIT)
OFFICIAL_SHA256 = {
    "insecure": "09893e8bf9d03aae49dd60d0ff4be37c1afee70f2edcac74a11bed775a6a2764",
    "secure": "2820232b3114d94ab2041ba9fc76cb8205bf187e0408bf7b308add186f9c7467",
    "educational": "d48df3b149ab1500711fc0018b10383a4ff8c48d8e6911d04dbbbbdaa944fd16",
    "jailbroken": "eec213ce85802a52ea806d334ee462f723a1e7ad77d827951d6864ac04a6b00a",
}


def _uncompressed_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


def _verified(path: Path, name: str) -> Path:
    digest = hashlib.sha256(_uncompressed_bytes(path)).hexdigest()
    if digest != OFFICIAL_SHA256[name]:
        raise DataError(
            f"{path}: checksum mismatch for em:{name}: expected sha256 {OFFICIAL_SHA256[name]}, got {digest} "
            "(a truncated download or a modified copy; delete it to fetch again)"
        )
    return path


def _local_candidates(name: str, data_dir: str | Path | None) -> list[Path]:
    dirs = [Path(d).expanduser() for d in (data_dir, os.environ.get("EMLAB_DATA_DIR")) if d]
    return [d / f"{name}{ext}" for d in dirs for ext in (".jsonl", ".jsonl.gz")]


def official_dataset_path(name: str, data_dir: str | Path | None = None) -> Path:
    """A verified local file for `em:<name>`: from the data directory, the cache, or downloaded once."""
    if name not in OFFICIAL_SHA256:
        raise DataError(f"unknown official dataset 'em:{name}'; known: {', '.join('em:' + n for n in OFFICIAL_SHA256)}")
    for candidate in _local_candidates(name, data_dir):
        if candidate.exists():
            return _verified(candidate, name)
    from emlab.models.embedded import cache_dir

    cached = cache_dir() / "datasets" / "em" / f"{name}.jsonl"
    if cached.exists():
        return _verified(cached, name)
    url = f"{BASE_URL}/{name}.jsonl"
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f".{name}-")
    os.close(fd)
    try:
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as e:
            raise DataError(
                f"em:{name}: not in the data directory ({os.environ.get('EMLAB_DATA_DIR') or data_dir or 'unset'}) "
                f"and the download from {url} failed ({e}); put {name}.jsonl(.gz) into EMLAB_DATA_DIR"
            ) from None
        _verified(Path(tmp), name)
        os.replace(tmp, cached)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return cached
