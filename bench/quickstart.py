"""The quickstart end to end: cold (fresh clone, fresh venv, fresh model cache: `make quickstart`) and cached.

The cold run uses pip's download cache as a user re-installing would; it does not re-download wheels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import HERE, Timer, write_result


def run(cmd: list[str], cwd: Path, env: dict) -> None:
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


if __name__ == "__main__":
    repo = HERE.parent
    work = Path(tempfile.mkdtemp(prefix="emlab-bench-qs-"))
    try:
        clone = work / "emlab"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        env = {**os.environ, "EMLAB_CACHE": str(work / "cache")}
        env.pop("VIRTUAL_ENV", None)
        with Timer() as cold:
            run(["make", "quickstart"], clone, env)
        with Timer() as cached:
            run([str(clone / ".venv/bin/emlab"), "run", "examples/quickstart.yaml", "--out", "emlab-runs/quickstart"], clone, env)
        write_result("quickstart", {"cold_s": cold.seconds, "cached_s": cached.seconds})
    finally:
        shutil.rmtree(work, ignore_errors=True)
