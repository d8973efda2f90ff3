"""Progress bars for anything long (the TRL trainers keep their own bar).

Inside `overall_bar` (one `emlab run`), every step's bar joins one display under an overall bar whose total is
the run's estimated seconds (`emlab.estimate`): a step of estimated `seconds` moves it by its share as it goes,
so the overall ETA is the estimate corrected by how fast the work actually runs.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)

_ACTIVE: dict = {}  # while an overall bar is shown: {"progress": Progress, "overall": TaskID}


def _columns() -> tuple:
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )


@contextlib.contextmanager
def overall_bar(description: str, total_seconds: float) -> Iterator[None]:
    """One bar for a whole run (total = estimated seconds); step bars opened inside join its display."""
    with Progress(*_columns(), console=console, transient=False) as bar:
        task = bar.add_task(description, total=max(total_seconds, 1.0), count="", status="overall")
        _ACTIVE.update(progress=bar, overall=task)
        try:
            yield
            bar.update(task, completed=bar.tasks[task].total)
        finally:
            _ACTIVE.clear()


def advance_overall(seconds: float) -> None:
    """Move the overall bar by `seconds` of estimated work (a step that had no bar of its own, e.g. a reused adapter)."""
    if _ACTIVE and seconds > 0:
        _ACTIVE["progress"].update(_ACTIVE["overall"], advance=seconds)


@contextlib.contextmanager
def progress_bar(description: str, total: int, seconds: float = 0.0) -> Iterator[Callable[..., None]]:
    """A bar on stderr; yields `advance(k, status=None)`; `status` (e.g. the current loss) shows after the bar.

    `seconds` is the step's estimated share of an enclosing overall bar, moved as the step advances.
    """
    shared = _ACTIVE.get("progress")
    own = None if shared is not None else Progress(*_columns(), console=console, transient=False)
    bar = shared if shared is not None else own
    if own is not None:
        own.start()
    task: TaskID = bar.add_task(description, total=total, count=f"0/{total}", status="")
    done = [0]
    per_item = seconds / total if total else 0.0

    def advance(k: int = 1, status: str | None = None) -> None:
        done[0] += k
        fields = {"count": f"{done[0]}/{total}"} | ({} if status is None else {"status": status})
        bar.update(task, advance=k, **fields)
        if shared is not None and per_item:
            advance_overall(k * per_item)

    try:
        yield advance
    finally:
        if shared is not None:
            advance_overall(max(0.0, seconds - done[0] * per_item))  # a step that was cached moves it all at once
            bar.remove_task(task)
        if own is not None:
            own.stop()
