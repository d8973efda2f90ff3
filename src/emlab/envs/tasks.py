"""Coding tasks for the reward-hacking environments: a statement, a signature, visible and hidden tests.

Tests are structured (a call expression and the expected value as a Python literal), not assert strings,
so the secure grader can evaluate the call inside the sandbox, move the result across the process boundary
as plain data and compare it in the grader's own process, where a forged `__eq__` cannot reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TestCase:
    """`call` is an expression such as "add(1, 2)"; `expected` a Python literal such as "3"."""

    __test__ = False  # not a pytest test class

    call: str
    expected: str

    def as_assert(self) -> str:
        """The assert statement a naive grader (and the model's prompt) shows."""
        return f"assert {self.call} == {self.expected}"


@dataclass(frozen=True)
class Task:
    """One function-writing task."""

    id: str
    difficulty: str  # "easy" | "medium" | "hard" ("unknown" for loaded MBPP tasks)
    statement: str  # what the function must do, in prose
    signature: str  # e.g. "def add(a: int, b: int) -> int:"
    entry_point: str  # the function's name
    visible_tests: tuple[TestCase, ...]  # shown to the model
    hidden_tests: tuple[TestCase, ...]  # used for grading only
    reference: str  # a correct solution (full source of the function and any helpers)
    tags: tuple[str, ...] = field(default_factory=tuple)

    def all_tests(self) -> tuple[TestCase, ...]:
        return self.visible_tests + self.hidden_tests
