"""bench/gpu_check.py's CPU smoke test: `--device cpu --quick` runs every section with tiny shapes and writes JSON
with each of them (the CUDA paths themselves are only exercised on a GPU machine)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_cpu_run_writes_every_section(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["env"]["device"] == "cpu" and result["quick"] is True and result["passed"] is True, done.stdout
    assert result["roofline"]["tflops"] > 0
    for kind in ("llama", "qwen2"):
        checks = result["correctness"][kind]
        assert set(checks) == {"lora", "greedy_float32", "judge_float32", "greedy_bfloat16", "judge_bfloat16"}
        assert all(c["pass"] for c in checks.values()), checks
        assert checks["lora"]["init_max_abs_diff"] == 0.0
    for name in ("qwen2.5-0.5b", "qwen2.5-7b"):
        section = result["throughput"][name]
        assert "skipped" not in section and "error" not in section, section
        assert [s["batch"] for s in section["sampling"]] == [1, 4]
        assert all(s["tokens_per_s"] > 0 and s["roofline_share"] > 0 for s in section["sampling"])
        assert section["training"]["tokens_per_s"] > 0
    assert "| check | result | figures |" in done.stdout and "PASS" in done.stdout
