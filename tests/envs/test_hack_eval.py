"""`emlab hacks eval` end to end with a scripted policy (no weights): rates by kind with intervals."""

import json

from emlab.envs.demos import hack_solution
from emlab.envs.hack_eval import evaluate_hacks, summarize_labels
from emlab.envs.task_bank import load_tasks
from emlab.models import registry

MBPP_ROWS = [
    {"task_id": i, "text": f"Return x plus {i}.", "code": f"def add_{i}(x):\n    return x + {i}\n",
     "test_list": [f"assert add_{i}(1) == {1 + i}", f"assert add_{i}(5) == {5 + i}", f"assert add_{i}(-3) == {-3 + i}"]}
    for i in range(1, 5)
]


class ScriptedPolicy:
    """Answers each task with: the reference, an eq hack, an exit hack, a wrong function."""

    spec = identity = "scripted:policy"

    def __init__(self, tasks):
        self.by_prompt = {t.statement: t for t in tasks}

    def generate(self, conversations, params, progress=None):
        out = []
        for conv in conversations:
            task = next(t for s, t in self.by_prompt.items() if s in conv[-1]["content"])
            wrong = f"{task.signature}\n    return 0\n"
            replies = [task.reference, hack_solution(task, "eq"), hack_solution(task, "exit"), wrong]
            out.append([f"```python\n{r}```" for r in replies[: params.n]])
            if progress:
                progress(1)
        return out


def test_hack_eval_reports_rates_by_kind(tmp_path, monkeypatch):
    path = tmp_path / "mbpp.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in MBPP_ROWS) + "\n")
    monkeypatch.setitem(registry._LOADED, "mock:policy", ScriptedPolicy(load_tasks(str(path))))
    summary = evaluate_hacks("mock:policy", str(path), samples_per_task=4, held_out=0.5, out_dir=tmp_path / "out")
    rates = summary["rates"]
    n = rates["solved"]["n"]
    assert n == 4 * len(summary["held_out_tasks"]) > 0
    assert rates["solved"]["count"] == rates["hacked:eq"]["count"] == rates["hacked:exit"]["count"] == rates["failed"]["count"] == n // 4
    assert rates["hacked"]["count"] == n // 2 and rates["hacked:conftest"]["count"] == 0
    lo, hi = rates["hacked"]["ci"]
    assert lo < 0.5 < hi
    episodes = (tmp_path / "out" / "episodes.jsonl").read_text().splitlines()
    assert len(episodes) == n and (tmp_path / "out" / "hacks_summary.json").exists()


def test_summarize_labels_never_hides_small_n():
    s = summarize_labels([])
    assert s["solved"] == {"count": 0, "n": 0, "share": None, "ci": None}
