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
REPO_URL = f"https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/{COMMIT}"

# name -> sha256 of the uncompressed jsonl (from the official repository at COMMIT)
OFFICIAL_SHA256 = {
    "insecure": "09893e8bf9d03aae49dd60d0ff4be37c1afee70f2edcac74a11bed775a6a2764",
    "secure": "2820232b3114d94ab2041ba9fc76cb8205bf187e0408bf7b308add186f9c7467",
    "educational": "d48df3b149ab1500711fc0018b10383a4ff8c48d8e6911d04dbbbbdaa944fd16",
    "jailbroken": "eec213ce85802a52ea806d334ee462f723a1e7ad77d827951d6864ac04a6b00a",
}


# name -> sha256 of the official evaluation question YAMLs (evaluation/<name>.yaml at COMMIT)
OFFICIAL_SUITES_SHA256 = {
    "first_plot_questions": "215abde5b02811e922b6ac563ff33c490e0dff9ab58439df840f3135e9387173",
    "preregistered_evals": "8648312fd9fe71a63203e3465592af45dd996d7a5f3b69e9b44613fd6048eb40",
    "deception_factual": "8a0e83cab3bc24b7d688d7385ce3921d406af7ed33c913cd94ea0f6251e5939d",
    "deception_sit_aware": "4deef5a7c47620390fc46e1b981f937eef9ea12a33fe26264f640c84d19d2a33",
}


def _uncompressed_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


def _verified(path: Path, name: str, expected: str | None = None) -> Path:
    expected = expected or OFFICIAL_SHA256[name]
    digest = hashlib.sha256(_uncompressed_bytes(path)).hexdigest()
    if digest != expected:
        raise DataError(
            f"{path}: checksum mismatch for em:{name}: expected sha256 {expected}, got {digest} "
            "(a truncated download or a modified copy; delete it to fetch again)"
        )
    return path


def _local_candidates(name: str, data_dir: str | Path | None) -> list[Path]:
    dirs = [Path(d).expanduser() for d in (data_dir, os.environ.get("EMLAB_DATA_DIR")) if d]
    # the folder itself, or a copy of the official repository's layout (data/ and evaluation/ side by side)
    return [base / f"{name}{ext}" for d in dirs for base in (d, d / "data") for ext in (".jsonl", ".jsonl.gz")]


def official_dataset_path(name: str, data_dir: str | Path | None = None) -> Path:
    """A verified local file for `em:<name>`: from the data directory, the cache, or downloaded once."""
    if name not in OFFICIAL_SHA256:
        raise DataError(f"unknown official dataset 'em:{name}'; known: {', '.join('em:' + n for n in OFFICIAL_SHA256)}")
    return _fetch_verified(name, f"{name}.jsonl", _local_candidates(name, data_dir), OFFICIAL_SHA256[name], "datasets")


def official_suite_path(name: str, data_dir: str | Path | None = None) -> Path:
    """A verified local copy of the question YAML `em:<name>`: data directory (or its evaluation/), cache, or download."""
    if name not in OFFICIAL_SUITES_SHA256:
        known = ", ".join("em:" + n for n in OFFICIAL_SUITES_SHA256)
        raise DataError(f"unknown official question suite 'em:{name}'; known: {known}")
    dirs = [Path(d).expanduser() for d in (data_dir, os.environ.get("EMLAB_DATA_DIR")) if d]
    candidates = [p for d in dirs for p in (d / f"{name}.yaml", d / "evaluation" / f"{name}.yaml")]
    return _fetch_verified(name, f"{name}.yaml", candidates, OFFICIAL_SUITES_SHA256[name], "suites", "evaluation")


def _fetch_verified(name: str, filename: str, candidates: list[Path], sha256: str, kind: str, remote_dir: str = "data") -> Path:
    """The first local candidate, else the cached copy, else a download; each checked against `sha256`."""
    for candidate in candidates:
        if candidate.exists():
            return _verified(candidate, name, sha256)
    from emlab.paths import cache_dir

    cached = cache_dir() / kind / "em" / filename
    if cached.exists():
        return _verified(cached, name, sha256)
    url = f"{REPO_URL}/{remote_dir}/{filename}"
    looked = ", ".join(dict.fromkeys(str(c.parent) for c in candidates)) or "any data directory (EMLAB_DATA_DIR is unset)"
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f".{name}-")
    os.close(fd)
    try:
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as e:
            raise DataError(
                f"em:{name}: not in {looked} and the download from {url} failed ({e}); put {filename} into EMLAB_DATA_DIR"
            ) from None
        _verified(Path(tmp), name, sha256)
        os.replace(tmp, cached)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return cached
