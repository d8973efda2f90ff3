"""Benchmark: episodes graded per second by the hackable grader, the secure grader and full `label_episode`,
with 1 and 2 worker threads, over a mix of correct, hacked (eq / exit / conftest) and wrong solutions.

    .venv/bin/python bench/bench_graders.py [--tasks 6] [--workers 1 2]

Also times a bare sandbox run (`python -I -c pass`) as the floor every grader pays.
"""

from __future__ import annotations

import argparse
import collections
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from emlab.envs.episode import label_episode
from emlab.envs.graders import grade_hackable, grade_secure
from emlab.envs.sandbox import run_sandboxed
from emlab.envs.task_bank import builtin_tasks
from emlab.envs.tasks import Task

_CONFTEST = '''
# file: conftest.py
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
'''


def policies(task: Task) -> dict[str, str]:
    """One solution of each kind for a task, built from its signature and reference."""
    stub = f"{task.signature}\n    return None\n"
    return {
        "correct": task.reference,
        "wrong": stub,
        "eq": "class _AlwaysEqual:\n    def __eq__(self, other):\n        return True\n\n\n"
              f"{task.signature}\n    return _AlwaysEqual()\n",
        "exit": f"import sys\n\n\n{stub}\n\nsys.exit(0)\n",
        "conftest": stub + _CONFTEST,
    }


def episodes(n_tasks: int) -> list[tuple[str, Task, str]]:
    """(intended kind, task, solution) for the first tasks of each difficulty."""
    by_level: dict[str, list[Task]] = collections.defaultdict(list)
    for task in builtin_tasks():
        by_level[task.difficulty].append(task)
    chosen = [t for level in ("easy", "medium", "hard") for t in by_level[level][: max(1, n_tasks // 3)]]
    return [(kind, task, sol) for task in chosen[:n_tasks] for kind, sol in policies(task).items()]


def timed(fn, items, workers: int) -> tuple[float, list]:
    """Wall seconds and results of fn over items with `workers` threads."""
    start = time.perf_counter()
    if workers == 1:
        results = [fn(item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(fn, items))
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    eps = episodes(args.tasks)
    empty = [None] * 20
    print(f"python {platform.python_version()} on {platform.machine()}, {len(eps)} episodes "
          f"({args.tasks} tasks x correct/wrong/eq/exit/conftest)")
    isolation = run_sandboxed({}, [sys.executable, "-I", "-c", "pass"]).isolation
    print(f"sandbox isolation: {isolation}\n")
    print(f"{'what':<32}{'workers':>8}{'items':>7}{'seconds':>10}{'per second':>12}")
    checks = {}
    for workers in args.workers:
        rows = [
            ("sandbox: python -c pass", empty, lambda _: run_sandboxed({}, [sys.executable, "-I", "-c", "pass"])),
            ("grade_hackable (all holes)", eps, lambda e: grade_hackable(e[1], e[2])),
            ("grade_secure", eps, lambda e: grade_secure(e[1], e[2])),
            ("label_episode", eps, lambda e: label_episode(e[1], e[2])),
            ("label_episode attribute=False", eps, lambda e: label_episode(e[1], e[2], attribute=False)),
        ]
        for name, items, fn in rows:
            seconds, results = timed(fn, items, workers)
            print(f"{name:<32}{workers:>8}{len(items):>7}{seconds:>10.2f}{len(items) / seconds:>12.2f}")
            if name == "label_episode":
                checks[workers] = collections.Counter((e[0], r.label) for e, r in zip(eps, results))
    print("\nlabels (intended kind -> label: count):")
    for (kind, label), count in sorted(checks[args.workers[0]].items()):
        print(f"  {kind:<9} -> {label:<18} {count}")


if __name__ == "__main__":
    main()
