"""Load MBPP-style jsonl files (Austin et al. 2021) as `Task`s for the reward-hacking environments.

Each line is a JSON object with `text` (the statement), `code` (a reference solution) and `test_list`
(`assert f(...) == <literal>` strings), and optionally `task_id`, `test_setup_code` and `challenge_test_list`.
The graders need structured tests (a call and an expected literal) rather than assert strings, so each assert is
parsed with `ast`; a row whose asserts do not have that shape (`assert math.isclose(...)`,
`assert set(f(x)) == set(...)`, a non-literal right side...) is skipped and reported rather than graded
loosely. A malformed line or a missing field is an error naming the file, line and field.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from emlab.envs.tasks import Task, TestCase
from emlab.errors import ConfigError, DataError

REQUIRED_FIELDS: tuple[str, ...] = ("text", "code", "test_list")


class _Skip(Exception):
    """A row that is well-formed JSON but cannot become a Task; the message says why."""


def _parse_assert(source: str) -> tuple[str, TestCase]:
    """(called function name, TestCase) from `assert f(...) == <literal>`; _Skip if it has another shape."""
    source = source.strip()
    try:
        module = ast.parse(source)
    except SyntaxError as exc:
        raise _Skip(f"syntax error ({exc.msg})") from None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.Assert):
        raise _Skip("not a single assert statement")
    test = module.body[0].test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        raise _Skip("not of the form `assert f(...) == <literal>`")
    left, right = test.left, test.comparators[0]
    if not (isinstance(left, ast.Call) and isinstance(left.func, ast.Name)):
        raise _Skip("the left side is not a call of a named function")
    try:
        ast.literal_eval(right)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _Skip("the right side is not a Python literal") from None
    call = ast.get_source_segment(source, left)
    expected = ast.get_source_segment(source, right)
    if call is None or expected is None:  # pragma: no cover - ast always has positions for parsed source
        raise _Skip("cannot recover the source of the assert")
    return left.func.id, TestCase(call=call, expected=expected)


def _signature(code: str, name: str) -> str:
    """The `def` line of top-level function `name` in `code`; _Skip if the code does not define it."""
    try:
        module = ast.parse(code)
    except SyntaxError as exc:
        raise _Skip(f"the reference code does not parse ({exc.msg}, line {exc.lineno})") from None
    node = next(
        (n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name),
        None,
    )
    if node is None:
        raise _Skip(f"the reference code defines no top-level function {name!r}")
    line = code.splitlines()[node.lineno - 1].strip()
    try:  # the header fits on its one line (and the body is not on it too)
        header = ast.parse(line + "\n    pass").body
        if len(header) == 1 and isinstance(header[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
            return line
    except SyntaxError:
        pass
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{prefix} {name}({ast.unparse(node.args)}){returns}:"


def _string_list(row: dict, field: str, where: str, required: bool) -> list[str]:
    value = row.get(field)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError(f"{where}: field {field!r} must be a list of strings, got {type(value).__name__}")
    return value


def _row_task(row: dict, where: str, lineno: int, visible: int) -> Task:
    """A Task from one validated row; _Skip when its asserts or code do not have the expected shape."""
    setup = row.get("test_setup_code") or ""
    if not isinstance(setup, str):
        raise DataError(f"{where}: field 'test_setup_code' must be a string, got {type(setup).__name__}")
    tests = _string_list(row, "test_list", where, required=True)
    challenge = _string_list(row, "challenge_test_list", where, required=False)
    if setup.strip():
        raise _Skip("test_setup_code is not supported (the tests would depend on code outside the function)")
    if not tests:
        raise _Skip("test_list is empty")
    names: list[str] = []
    cases: list[TestCase] = []
    for kind, asserts in (("test_list", tests), ("challenge_test_list", challenge)):
        for index, source in enumerate(asserts):
            try:
                name, case = _parse_assert(source)
            except _Skip as exc:
                raise _Skip(f"{kind}[{index}]: {exc}") from None
            names.append(name)
            cases.append(case)
    if len(set(names)) != 1:
        raise _Skip(f"the asserts call different functions ({', '.join(sorted(set(names)))})")
    entry_point = names[0]
    reference = row["code"].replace("\r\n", "\n").replace("\r", "\n").strip("\n") + "\n"
    signature = _signature(reference, entry_point)
    visible_tests = tuple(cases[: min(visible, len(tests))])
    hidden_tests = tuple(cases[len(visible_tests):])
    if not hidden_tests:
        raise _Skip(f"no hidden tests left with visible={visible}")
    statement = row["text"].strip()
    if not statement:
        raise _Skip("text is empty")
    task_id = row.get("task_id")
    return Task(
        id=f"mbpp_{task_id}" if task_id is not None else f"mbpp_line{lineno}",
        difficulty="unknown",
        statement=statement,
        signature=signature,
        entry_point=entry_point,
        visible_tests=visible_tests,
        hidden_tests=hidden_tests,
        reference=reference,
        tags=("mbpp",),
    )


def load_mbpp_report(path: str | Path, visible: int = 1) -> tuple[list[Task], list[str]]:
    """Tasks from an MBPP-style jsonl, and one reason (with its line number) per row that was skipped."""
    if isinstance(visible, bool) or not isinstance(visible, int) or visible < 0:
        raise ConfigError(f"visible must be a non-negative integer, got {visible!r}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: MBPP file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read MBPP file ({exc})") from None
    tasks: list[Task] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        for field in REQUIRED_FIELDS:
            if field not in row:
                raise DataError(f"{where}: missing field {field!r}")
        for field in ("text", "code"):
            if not isinstance(row[field], str):
                raise DataError(f"{where}: field {field!r} must be a string, got {type(row[field]).__name__}")
        task_id = row.get("task_id")
        if task_id is not None and (isinstance(task_id, bool) or not isinstance(task_id, (int, str))):
            raise DataError(f"{where}: field 'task_id' must be an integer or a string, got {type(task_id).__name__}")
        try:
            task = _row_task(row, where, lineno, visible)
        except _Skip as exc:
            skipped.append(f"line {lineno}: {exc}")
            continue
        if task.id in seen:
            skipped.append(f"line {lineno}: duplicate task id {task.id!r} (first on line {seen[task.id]})")
            continue
        seen[task.id] = lineno
        tasks.append(task)
    return tasks, skipped


def load_mbpp(path: str | Path, visible: int = 1) -> list[Task]:
    """Tasks from an MBPP-style jsonl: the first `visible` asserts shown, the rest (and challenge tests) hidden."""
    return load_mbpp_report(path, visible=visible)[0]
