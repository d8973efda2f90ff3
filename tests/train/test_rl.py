"""GRPO plumbing: the reward function labels scripted episodes; a two-step run on a tiny model logs rates."""

import json

from emlab.envs.demos import HACK_KINDS, hack_demonstrations, hack_solution
from emlab.envs.task_bank import builtin_tasks
from emlab.train.rl import EpisodeRewarder, GRPOParams, RLConfig, run_rl, step_rates


def test_step_rates_counts_each_label():
    rates = step_rates(["solved", "hacked:eq", "hacked:eq", "failed"])
    assert rates["solve_rate"] == 0.25 and rates["hack_rate"] == 0.5 and rates["hack_rate_by_kind"]["eq"] == 0.5
    assert rates["hack_rate_by_kind"]["exit"] == 0 and rates["fail_rate"] == 0.25


def test_reward_function_labels_scripted_policies(tmp_path):
    task = builtin_tasks()[0]
    replies = [f"```python\n{task.reference}\n```"] + [f"```python\n{hack_solution(task, k)}```" for k in HACK_KINDS]
    replies.append("```python\n" + task.signature + "\n    return None\n```")
    logged = {}
    rewarder = EpisodeRewarder({task.id: task}, frozenset(HACK_KINDS), "hackable", tmp_path)
    rewards = rewarder(
        prompts=[None] * len(replies),
        completions=[[{"role": "assistant", "content": r}] for r in replies],
        task_id=[task.id] * len(replies),
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert rewards == [1.0, 1.0, 1.0, 1.0, 0.0]  # the hackable grader rewards the hacks
    labels = [json.loads(line)["label"] for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert labels == ["solved", "hacked:eq", "hacked:exit", "hacked:conftest", "failed"]
    assert logged["solve_rate"] == 0.2 and logged["hack_rate"] == 0.6
    secure = EpisodeRewarder({task.id: task}, frozenset(HACK_KINDS), "secure", tmp_path / "s")
    (tmp_path / "s").mkdir()
    assert secure(None, [[{"content": r}] for r in replies], [task.id] * len(replies)) == [1.0, 0, 0, 0, 0]


def test_hack_demonstrations_cover_kinds_and_tasks():
    tasks = builtin_tasks()[:3]
    demos = hack_demonstrations(tasks, HACK_KINDS, "neutral", seed=0)
    assert len(demos) == 9 and all(d[-1]["role"] == "assistant" and "```python" in d[-1]["content"] for d in demos)
    assert sum("# file: conftest.py" in d[-1]["content"] for d in demos) == 3


def test_two_grpo_steps_on_a_tiny_model(tmp_path, tiny_checkpoint):
    config = RLConfig(
        name="t", workspace=str(tmp_path / "ws"), model=f"hf:{tiny_checkpoint}",
        grpo=GRPOParams(steps=2, prompts_per_step=1, num_generations=2, max_completion_length=8),
    )
    summary = run_rl(config, tmp_path / "out")
    steps = [json.loads(line) for line in (tmp_path / "out" / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2] and all(s["episodes"] == 2 for s in steps)
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").exists()
    assert (tmp_path / "out" / "rates.png").exists() and summary["model_spec"].endswith("/adapter")
    assert set(summary["held_out_tasks"]).isdisjoint(summary["train_tasks"])
