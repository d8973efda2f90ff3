"""Where emlab keeps files between runs: the cache of converted models, downloaded datasets and features."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The emlab cache: $EMLAB_CACHE, else ~/.cache/emlab."""
    return Path(os.environ.get("EMLAB_CACHE", Path.home() / ".cache" / "emlab"))
