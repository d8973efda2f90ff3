"""The `summary.json` every run and every analysis writes: rates per condition plus the provenance behind them."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Sequence

from emlab import __version__
from emlab.analysis.rates import JudgedAnswer, Thresholds, rate_table


def package_versions() -> dict[str, str]:
    """Versions that can change results, recorded with every summary."""
    out = {"emlab": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "trl", "openai"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def condition_entry(
    name: str,
    answers: Sequence[JudgedAnswer],
    thresholds: Thresholds,
    main_ids: Sequence[str] | None,
    **provenance,
) -> dict:
    """One condition's block: its provenance (model, dataset, adapter, seed...) and its rate table."""
    table = rate_table(answers, thresholds, question_ids=main_ids)
    return {"name": name, **provenance, "rates": table.as_dict()}


def build_summary(
    title: str,
    conditions: list[dict],
    thresholds: Thresholds,
    judge: str | None = None,
    suite: dict | None = None,
    sampling: dict | None = None,
    warnings: list[str] | None = None,
) -> dict:
    """Assemble the summary dict (the shape `emlab.report` renders)."""
    return {
        "emlab_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": title,
        "thresholds": asdict(thresholds),
        "judge": judge,
        "suite": suite,
        "sampling": sampling,
        "versions": package_versions(),
        "warnings": warnings or [],
        "conditions": conditions,
    }


def write_json_atomic(path: str | os.PathLike, obj: object) -> Path:
    """Write JSON through a temp file and a rename, so readers never see half a file."""
    from emlab.atomic import write_text_atomic

    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
