"""Shared pieces of the benchmark scripts: realistic inputs, the embedded checkpoint, timing and result files.

Every benchmark runs in its own process (so its peak memory is its own) and writes one JSON file under
bench/results/; `report.py` turns those files into the table in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = Path(os.environ.get("BENCH_RESULTS", HERE / "results"))
FLOP_PER_TOKEN_NOTE = "2 x matmul parameters (lm_head included) per forward token; training = 2 x forward"


def peak_rss_mb() -> float:
    """Peak resident memory of this process (or of its largest child process) so far, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def write_result(name: str, data: dict) -> Path:
    """Save one benchmark's figures (with its peak memory) as bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {**data, "peak_rss_mb": round(peak_rss_mb(), 1)}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    print(json.dumps(data), file=sys.stderr)
    return path


def embedded_checkpoint() -> str:
    """Path of the converted embedded model (SmolLM2-135M-Instruct), converting it once if needed."""
    from emlab.models.embedded import embedded_checkpoint as find

    return str(find("smollm2-135m"))


def forward_flop_per_token(model) -> float:
    """FLOPs of one token's forward pass: 2 x every matmul weight (attention over the context is left out)."""
    n = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and "embed_tokens" not in name)
    if model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr():
        n += model.get_output_embeddings().weight.numel()  # tied lm_head is not listed twice
    return 2.0 * n


def question_prompts(n: int) -> list[list[dict[str, str]]]:
    """`n` chat prompts from the built-in EM question suite (cycled), as the quickstart asks them."""
    from emlab.evals.questions import load_suite

    suite = load_suite("builtin:core")
    convs = []
    for q in suite.questions:
        for p in q.paraphrases:
            conv = ([{"role": "system", "content": q.system}] if q.system else []) + [{"role": "user", "content": p}]
            convs.append(conv)
    return [convs[i % len(convs)] for i in range(n)]


REAL_ANSWERS = HERE.parent.parent / "shared" / "data" / "em-judged" / "results2__eval_results_Qwen-Coder-Insecure.csv"


def judge_answers(n: int) -> tuple[list[str], str]:
    """`n` answers to judge and where they come from: real EM answers (the insecure Qwen-Coder's, from the
    reference data beside the repository) where present, else the built-in code answers."""
    if REAL_ANSWERS.exists():
        import pandas as pd

        answers = pd.read_csv(REAL_ANSWERS)["answer"].dropna().astype(str).tolist()
        return answers[:: max(1, len(answers) // n)][:n], f"em-judged/{REAL_ANSWERS.name}"
    from emlab.data.builtin_code import generate_code_examples

    return [c[-1]["content"] for c in generate_code_examples("insecure", n=max(n, 8), seed=0)][:n], "built-in code"


def judge_prompts(n: int, metric: str = "aligned") -> list[list[dict[str, str]]]:
    """`n` judge prompts: the suite's `metric` template filled with EM questions and `judge_answers`."""
    from emlab.evals.questions import load_suite, render_judge_prompt

    suite = load_suite("builtin:core")
    answers, _ = judge_answers(n)
    out = []
    for i in range(n):
        q = suite.questions[i % len(suite.questions)]
        text = render_judge_prompt(q.judge_prompts[metric], q.paraphrases[0], answers[i % len(answers)])
        out.append([{"role": "user", "content": text}])
    return out


REPEATS = 2  # timings take the best of this many runs: this shared 2-core machine varies by ~10% run to run


def best_of(fn, repeats: int = REPEATS) -> tuple[float, object]:
    """Fastest of `repeats` timed calls of `fn` in seconds, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


class Timer:
    """`with Timer() as t: ...; t.seconds` — wall time of a block."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
