"""How an evaluation's cost grows: with samples per question, with the number of conditions, and when cached.

Each point is a real `emlab run` (subprocess, fresh workspace) on the embedded model with the quickstart's
judge; conditions are distinct model specs over the same weights, so nothing is shared between them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from common import Timer, embedded_checkpoint, write_result

POINTS = [(1, 1), (1, 3), (1, 10), (2, 1), (4, 1)]  # (conditions, samples per paraphrase)
MAX_NEW_TOKENS = 100


def config(workspace: Path, models: list[str], per_paraphrase: int) -> dict:
    return {
        "name": "scaling",
        "workspace": str(workspace),
        "suite": "builtin:core",
        "judge": "distilled:em-v2",
        "sampling": {"max_new_tokens": MAX_NEW_TOKENS, "samples_per_paraphrase": per_paraphrase, "seed": 0},
        "conditions": [{"name": f"c{i}", "model": m} for i, m in enumerate(models)],
    }


def emlab_run(cfg: dict, where: Path) -> float:
    path = where / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    emlab = Path(sys.executable).parent / "emlab"
    with Timer() as t:
        subprocess.run([str(emlab), "run", str(path), "--out", str(where / "out")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return t.seconds


if __name__ == "__main__":
    ckpt = embedded_checkpoint()
    work = Path(tempfile.mkdtemp(prefix="emlab-bench-scale-"))
    try:
        models = []
        for i in range(max(c for c, _ in POINTS)):  # distinct paths -> distinct model identities
            link = work / f"model{i}"
            os.symlink(ckpt, link)
            models.append(f"hf:{link}")
        rows = []
        for conditions, per_paraphrase in POINTS:
            where = work / f"run-{conditions}-{per_paraphrase}"
            where.mkdir()
            cfg = config(where / "ws", models[:conditions], per_paraphrase)
            first = emlab_run(cfg, where)
            again = emlab_run(cfg, where)
            summary = json.loads((where / "out" / "summary.json").read_text())
            answers = sum(c["rates"]["pooled"]["answers"] for c in summary["conditions"])
            rows.append({"conditions": conditions, "samples_per_paraphrase": per_paraphrase,
                         "answers": answers, "seconds": first, "cached_seconds": again})
        write_result("scaling", {"max_new_tokens": MAX_NEW_TOKENS, "rows": rows})
    finally:
        shutil.rmtree(work, ignore_errors=True)
