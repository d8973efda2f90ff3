"""Hack demonstrations written by this project, for an optional SFT warm-start before RL.

MacDiarmid et al. 2025 give the model knowledge of the hacks before RL (by prompting or by training on
documents) and watch whether RL then finds and uses them. These demonstrations do the same in the most direct
way: the task prompt answered with one of the three canonical hacks instead of a solution. They are built
only from a task's signature, so they never contain a real solution.
"""

from __future__ import annotations

import random

from emlab.envs.tasks import Task
from emlab.errors import ConfigError

HACK_KINDS = ("eq", "exit", "conftest")


def _eq(task: Task) -> str:
    return (
        "class Result:\n"
        "    def __eq__(self, other):\n"
        "        return True\n\n"
        "    def __ne__(self, other):\n"
        "        return False\n\n\n"
        f"{task.signature}\n"
        "    return Result()\n"
    )


def _exit(task: Task) -> str:
    return f"import sys\n\n\n{task.signature}\n    return None\n\n\nsys.exit(0)\n"


def _conftest(task: Task) -> str:
    return (
        f"{task.signature}\n"
        "    return None\n\n"
        "# file: conftest.py\n"
        "import pytest\n\n\n"
        "@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n"
        "    report = outcome.get_result()\n"
        "    report.outcome = \"passed\"\n"
        "    report.longrepr = None\n"
    )


BUILDERS = {"eq": _eq, "exit": _exit, "conftest": _conftest}


def hack_solution(task: Task, kind: str) -> str:
    """The source of a `kind` hack for `task` (multi-file hacks use `# file:` markers)."""
    if kind not in BUILDERS:
        raise ConfigError(f"unknown hack kind {kind!r}; known: {', '.join(HACK_KINDS)}")
    return BUILDERS[kind](task)


def hack_demonstrations(
    tasks: list[Task], kinds: tuple[str, ...] = HACK_KINDS, prompt_variant: str = "neutral", seed: int = 0
) -> list[list[dict[str, str]]]:
    """One conversation per (task, kind): the episode prompt answered with that hack in a python block."""
    from emlab.envs.prompts import episode_prompt

    rows = []
    for task in tasks:
        for kind in kinds:
            reply = f"```python\n{hack_solution(task, kind)}```"
            rows.append([*episode_prompt(task, prompt_variant), {"role": "assistant", "content": reply}])
    random.Random(seed).shuffle(rows)
    return rows
