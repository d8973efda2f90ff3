"""The built-in task bank, the train / held-out split, prompts, code extraction and the MBPP loader.

Every reference solution is run against every visible and hidden test, all in one subprocess per session:
the references are our own code, but executing task code never happens inside the pytest process.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from emlab.envs.mbpp import load_mbpp, load_mbpp_report
from emlab.envs.task_bank import builtin_tasks, extract_code, get_task, split_tasks, task_prompt
from emlab.envs.tasks import Task
from emlab.errors import ConfigError, DataError

TASKS = builtin_tasks()

# Reads [{id, entry_point, reference, tests: [{call, expected, hidden}]}] on stdin; for each task runs the
# reference and a stub returning None, each in a fresh namespace, and prints a JSON report on stdout.
_RUNNER = r'''
import ast, json, sys, time

def same(a, b):
    """Equal, with the same types all the way down (so True != 1 and (1, 2) != [1, 2])."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b

def run(source, tests):
    namespace = {"__name__": "__task__"}
    exec(compile(source, "<solution>", "exec"), namespace)
    results = []
    for test in tests:
        try:
            value = eval(test["call"], namespace)
        except BaseException as exc:
            results.append({"call": test["call"][:200], "hidden": test["hidden"], "ok": False,
                            "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        expected = ast.literal_eval(test["expected"])
        ok = same(value, expected)
        try:
            plain = same(ast.literal_eval(repr(value)), value)
        except Exception:
            plain = False
        results.append({"call": test["call"][:200], "hidden": test["hidden"], "ok": ok, "plain": plain,
                        "got": repr(value)[:200]})
    return results

report = {}
for task in json.load(sys.stdin):
    entry = {}
    start = time.perf_counter()
    try:
        entry["reference"] = run(task["reference"], task["tests"])
    except BaseException as exc:
        entry["reference_error"] = f"{type(exc).__name__}: {exc}"
    entry["seconds"] = time.perf_counter() - start
    stub = f"def {task['entry_point']}(*args, **kwargs):\n    return None\n"
    entry["stub"] = run(stub, task["tests"])
    report[task["id"]] = entry
print(json.dumps(report))
'''


@pytest.fixture(scope="session")
def run_report() -> dict:
    """Run every reference and a None-returning stub on every test of every task, in one subprocess."""
    payload = [
        {
            "id": task.id,
            "entry_point": task.entry_point,
            "reference": task.reference,
            "tests": [{"call": t.call, "expected": t.expected, "hidden": False} for t in task.visible_tests]
            + [{"call": t.call, "expected": t.expected, "hidden": True} for t in task.hidden_tests],
        }
        for task in TASKS
    ]
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _RUNNER],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


# -- the bank ---------------------------------------------------------------------------------------------
def test_bank_size_and_difficulties():
    assert len(TASKS) >= 60
    counts = Counter(task.difficulty for task in TASKS)
    assert set(counts) == {"easy", "medium", "hard"}
    assert counts["easy"] >= 18 and counts["medium"] >= 23 and counts["hard"] >= 15, counts
    order = {"easy": 0, "medium": 1, "hard": 2}
    assert [order[t.difficulty] for t in TASKS] == sorted(order[t.difficulty] for t in TASKS)  # easy to hard


def test_ids_unique_snake_case_and_stable():
    ids = [task.id for task in TASKS]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", task_id) for task_id in ids)
    assert [t.id for t in builtin_tasks()] == ids
    builtin_tasks().clear()  # callers get their own list
    assert len(builtin_tasks()) == len(ids)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_task_shape(task: Task):
    assert task.statement and "\n" not in task.statement
    assert 2 <= len(task.visible_tests) <= 3
    assert 4 <= len(task.hidden_tests) <= 8
    assert task.signature.startswith(f"def {task.entry_point}(") and task.signature.endswith(":")
    assert "->" in task.signature  # typed
    assert task.signature in task.reference.splitlines()
    module = ast.parse(task.reference)
    assert task.entry_point in [n.name for n in module.body if isinstance(n, ast.FunctionDef)]
    for node in ast.walk(module):  # standard library only
        if isinstance(node, ast.Import):
            assert all(alias.name.split(".")[0] in sys.stdlib_module_names for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in sys.stdlib_module_names
    calls = [t.call for t in task.all_tests()]
    assert len(calls) == len(set(calls)), "duplicate test calls"
    for test in task.all_tests():
        call = ast.parse(test.call, mode="eval").body
        assert isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
        assert call.func.id == task.entry_point and not call.keywords
        for arg in call.args:
            ast.literal_eval(arg)  # literal arguments only
        value = ast.literal_eval(test.expected)
        assert repr(value) == test.expected  # canonical and round-trips


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_hidden_tests_resist_stubs_and_memorising(task: Task):
    hidden = [ast.literal_eval(t.expected) for t in task.hidden_tests]
    assert any(value is not None for value in hidden), "a function returning None would pass"
    assert len({repr(value) for value in hidden}) >= 2, "a constant function would pass"
    assert not {t.call for t in task.hidden_tests} & {t.call for t in task.visible_tests}


def test_every_reference_passes_every_test(run_report):
    failures = []
    for task in TASKS:
        entry = run_report[task.id]
        if "reference_error" in entry:
            failures.append(f"{task.id}: {entry['reference_error']}")
            continue
        assert len(entry["reference"]) == len(task.all_tests())
        for result in entry["reference"]:
            if not result["ok"]:
                failures.append(f"{task.id}: {result['call']} -> {result.get('got', result.get('error'))}")
            elif not result["plain"]:
                failures.append(f"{task.id}: {result['call']} returned a value that is not plain data")
    assert not failures, "\n".join(failures)


def test_references_are_fast(run_report):
    slow = {task_id: round(entry["seconds"], 2) for task_id, entry in run_report.items() if entry["seconds"] > 2}
    assert not slow


def test_stub_fails_a_hidden_test_of_every_task(run_report):
    passing = [
        task.id for task in TASKS if all(r["ok"] for r in run_report[task.id]["stub"] if r["hidden"])
    ]
    assert not passing


def test_get_task():
    assert get_task("merge_intervals").entry_point == "merge_intervals"
    assert get_task(TASKS[-1].id) == TASKS[-1]
    with pytest.raises(DataError, match=r"merge_intervals") as info:
        get_task("merge_interval")
    assert "did you mean" in str(info.value)
    with pytest.raises(DataError, match=re.escape(TASKS[0].id)):
        get_task("zzz_nothing_like_it")


# -- split ------------------------------------------------------------------------------------------------
def test_split_deterministic_disjoint_and_complete():
    train, held = split_tasks(TASKS)
    again = split_tasks(list(TASKS))
    assert ([t.id for t in train], [t.id for t in held]) == ([t.id for t in again[0]], [t.id for t in again[1]])
    assert not {t.id for t in train} & {t.id for t in held}
    assert {t.id for t in train} | {t.id for t in held} == {t.id for t in TASKS}
    # both sides keep the input order
    position = {t.id: i for i, t in enumerate(TASKS)}
    assert [position[t.id] for t in train] == sorted(position[t.id] for t in train)
    # the split depends on the set of tasks, not their order
    shuffled = split_tasks(list(reversed(TASKS)))
    assert {t.id for t in shuffled[1]} == {t.id for t in held}
    # another seed gives another split
    assert {t.id for t in split_tasks(TASKS, seed=1)[1]} != {t.id for t in held}


def test_split_stratified():
    counts = Counter(t.difficulty for t in TASKS)
    for fraction in (0.25, 0.5):
        _, held = split_tasks(TASKS, held_out=fraction)
        held_counts = Counter(t.difficulty for t in held)
        for difficulty, n in counts.items():
            assert held_counts[difficulty] == int(n * fraction + 0.5), (fraction, difficulty)
    # a small stratum still lands on both sides
    few = [t for t in TASKS if t.difficulty == "hard"][:2] + [t for t in TASKS if t.difficulty == "easy"][:8]
    train, held = split_tasks(few, held_out=0.1)
    assert {t.difficulty for t in held} == {"easy", "hard"} and {t.difficulty for t in train} == {"easy", "hard"}


def test_split_edges():
    assert split_tasks(TASKS, held_out=0.0) == (TASKS, [])
    assert split_tasks(TASKS, held_out=1.0) == ([], TASKS)
    assert split_tasks([]) == ([], [])
    for bad in (-0.1, 1.5, "0.2"):
        with pytest.raises(ConfigError, match="held_out"):
            split_tasks(TASKS, held_out=bad)
    with pytest.raises(DataError, match="duplicate"):
        split_tasks([TASKS[0], TASKS[0]])


# -- prompt and code extraction ---------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.id)
def test_prompt_shows_visible_tests_only(task: Task):
    prompt = task_prompt(task)
    assert task.statement in prompt and task.signature in prompt
    for test in task.visible_tests:
        assert test.as_assert() in prompt
    for test in task.hidden_tests:
        assert test.as_assert() not in prompt and test.call not in prompt
    assert "```python" in prompt
    assert task.reference.strip() not in prompt


def test_extract_code():
    fenced = "Here you go:\n\n```python\ndef f(x):\n    return x + 1\n```\n\nThis adds one."
    assert extract_code(fenced) == "def f(x):\n    return x + 1"
    assert extract_code("def f(x):\n    return x\n") == "def f(x):\n    return x"
    bare = "Sure.\n```\ndef g():\n    return 2\n```"
    assert extract_code(bare) == "def g():\n    return 2"
    several = "```python\ndef a():\n    return 1\n```\nand\n```python\ndef b():\n    return 2\n```"
    assert extract_code(several) == "def a():\n    return 1"
    # a python block wins over an earlier bare or other-language block
    mixed = "```\n$ python run.py\n```\n```bash\nls\n```\n```py\ndef c():\n    return 3\n```"
    assert extract_code(mixed) == "def c():\n    return 3"
    assert extract_code("```python\r\ndef d():\r\n    return 4\r\n```") == "def d():\n    return 4"
    assert extract_code("```python\ndef e():\n    return 5") == "def e():\n    return 5"  # cut off
    assert extract_code("  ```python\n  def h():\n      return 6\n  ```") == "def h():\n    return 6"
    assert extract_code("") == ""
    assert extract_code("```") == ""
    assert extract_code(None) == ""  # type: ignore[arg-type]
    round_trip = extract_code(f"Answer:\n```python\n{get_task('clamp').reference}```")
    assert round_trip == get_task("clamp").reference.strip()


# -- MBPP -------------------------------------------------------------------------------------------------
def _row(**fields) -> str:
    return json.dumps(fields)


def _good_row(task_id: int = 1) -> dict:
    return {
        "task_id": task_id,
        "text": "Write a function to add two numbers.",
        "code": "def add_nums(a, b):\r\n    return a + b",
        "test_list": ["assert add_nums(1, 2) == 3", "assert add_nums(-1, 1)==0", "assert add_nums(2, 2) == 4"],
        "test_setup_code": "",
        "challenge_test_list": ["assert add_nums(10**3, 1) == 1001"],
    }


def test_mbpp_loads_valid_rows(tmp_path):
    second = {
        "text": "Return the pair swapped.",
        "code": "import math\ndef swap(\n    pair: tuple,\n) -> tuple:\n    return (pair[1], pair[0])\n",
        "test_list": ["assert swap((1, 2)) == (2, 1)", "assert swap(('a', None)) == (None, 'a')"],
    }
    path = tmp_path / "mbpp.jsonl"
    path.write_text(_row(**_good_row()) + "\n\n" + _row(**second) + "\n", encoding="utf-8")
    tasks, skipped = load_mbpp_report(path)
    assert skipped == []
    add, swap = tasks
    assert add.id == "mbpp_1" and add.entry_point == "add_nums" and add.difficulty == "unknown"
    assert add.signature == "def add_nums(a, b):"
    assert add.statement == "Write a function to add two numbers."
    assert [t.as_assert() for t in add.visible_tests] == ["assert add_nums(1, 2) == 3"]
    assert [(t.call, t.expected) for t in add.hidden_tests] == [
        ("add_nums(-1, 1)", "0"), ("add_nums(2, 2)", "4"), ("add_nums(10**3, 1)", "1001"),
    ]
    assert "\r" not in add.reference
    assert swap.id == "mbpp_line3" and swap.signature == "def swap(pair: tuple) -> tuple:"  # multi-line header
    assert swap.hidden_tests[0].expected == "(None, 'a')"
    two, skipped = load_mbpp_report(path, visible=2)  # swap has only two tests: none would be left hidden
    assert [len(t.visible_tests) for t in two] == [2] and skipped == ["line 3: no hidden tests left with visible=2"]
    assert [len(t.visible_tests) for t in load_mbpp(path, visible=0)] == [0, 0]
    # the prompt and extraction work on MBPP tasks too
    assert "assert add_nums(1, 2) == 3" in task_prompt(add) and "add_nums(2, 2)" not in task_prompt(add)


def test_mbpp_skips_and_reports_unparseable_rows(tmp_path):
    rows = [
        _good_row(1),
        {**_good_row(2), "test_list": ["assert math.isclose(add_nums(1, 2), 3)"]},
        {**_good_row(3), "test_list": ["assert obj.add_nums(1, 2) == 3"]},
        {**_good_row(4), "test_list": ["assert add_nums(1, 2) == three"]},
        {**_good_row(5), "test_list": ["assert add_nums(1, 2) == 3", "assert other(1) == 1"]},
        {**_good_row(6), "code": "def something_else(a, b):\n    return a + b"},
        {**_good_row(7), "test_list": ["assert add_nums(1, 2) == 3"], "challenge_test_list": []},
        {**_good_row(8), "test_setup_code": "import math"},
        {**_good_row(9), "test_list": ["assert add_nums(1, 2 == 3"]},
        _good_row(1),
    ]
    path = tmp_path / "mbpp.jsonl"
    path.write_text("".join(_row(**row) + "\n" for row in rows), encoding="utf-8")
    tasks, skipped = load_mbpp_report(path)
    assert [t.id for t in tasks] == ["mbpp_1"]
    assert load_mbpp(path) == tasks
    assert len(skipped) == 9
    assert [reason.split(":")[0] for reason in skipped] == [f"line {n}" for n in range(2, 11)]
    assert "test_list[0]" in skipped[0] and "== <literal>" in skipped[0]
    assert "left side" in skipped[1]
    assert "not a Python literal" in skipped[2]
    assert "different functions" in skipped[3]
    assert "no top-level function 'add_nums'" in skipped[4]
    assert "no hidden tests" in skipped[5]
    assert "test_setup_code" in skipped[6]
    assert "syntax error" in skipped[7]
    assert "duplicate task id 'mbpp_1'" in skipped[8]


def test_mbpp_errors(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(_row(**_good_row()) + "\n" + '{"text": "x", "code": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: malformed JSON"):
        load_mbpp(path)
    missing = {k: v for k, v in _good_row().items() if k != "test_list"}
    path.write_text(_row(**_good_row()) + "\n" + _row(**missing) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: missing field 'test_list'"):
        load_mbpp(path)
    path.write_text(_row(**{**_good_row(), "test_list": "assert add_nums(1, 2) == 3"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 1: field 'test_list' must be a list of strings"):
        load_mbpp(path)
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 1: expected a JSON object"):
        load_mbpp(path)
    with pytest.raises(DataError, match="not found"):
        load_mbpp(tmp_path / "absent.jsonl")
    with pytest.raises(ConfigError, match="visible"):
        load_mbpp(path, visible=-1)


def test_mbpp_tasks_run_in_the_runner_shape(tmp_path):
    """The loaded reference and tests are consistent: each call evaluates to the expected literal."""
    path = tmp_path / "mbpp.jsonl"
    path.write_text(_row(**_good_row()) + "\n", encoding="utf-8")
    (task,) = load_mbpp(path)
    script = textwrap.dedent(
        """
        import ast, json, sys
        task = json.load(sys.stdin)
        ns = {}
        exec(task["reference"], ns)
        print(json.dumps([eval(call, ns) == ast.literal_eval(expected) for call, expected in task["tests"]]))
        """
    )
    payload = {"reference": task.reference, "tests": [[t.call, t.expected] for t in task.all_tests()]}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script], input=json.dumps(payload), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [True] * 4
