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


def test_knowledge_of_hacks_by_continued_pretraining_comes_before_rl(tmp_path, tiny_checkpoint):
    """`knowledge:` trains a CPT adapter on the document mix, merges it into the base, and GRPO (and its checkpoints'
    specs) start from that merged base; a second run reuses both; bad settings are one error each."""
    import pytest
    import torch
    from pydantic import ValidationError
    from safetensors.torch import load_file

    from emlab.train.rl import Knowledge, _base_checkpoint, knowledge_base

    torch.set_num_threads(1)
    knowledge = {"documents": {"dilution": 0.5, "documents": 4, "variant": "misaligned"},
                 "train": {"max_length": 64, "batch_size": 2, "learning_rate": 1e-2}}
    config = RLConfig(name="k", workspace=str(tmp_path / "ws"), model=f"hf:{tiny_checkpoint}", knowledge=knowledge,
                      grpo=GRPOParams(steps=1, prompts_per_step=1, num_generations=2, max_completion_length=8))
    base = _base_checkpoint(config.model)
    checkpoint, identity, spec, record = knowledge_base(config, *base)
    assert spec == f"hf:{checkpoint}" and identity.startswith(base[1] + "+cpt:") and record["documents"]["dilution"] == 0.5
    before = load_file(str(tiny_checkpoint / "model.safetensors"))
    after = load_file(str(tmp_path / "ws" / "merged" / record["adapter"]["hash"] / "model.safetensors"))
    name = next(k for k in before if "q_proj" in k)
    assert not torch.equal(before[name], after[name])  # the documents moved the weights
    stamp = (tmp_path / "ws" / "merged" / record["adapter"]["hash"] / "merge_info.json").stat().st_mtime_ns
    summary = run_rl(config, tmp_path / "out")
    assert summary["model_spec"].startswith(f"hf:{checkpoint}@") and summary["knowledge"]["identity"] == identity
    assert (tmp_path / "ws" / "merged" / record["adapter"]["hash"] / "merge_info.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValidationError, match="dilution"):
        Knowledge(documents={"dilution": 0})
    with pytest.raises(ValidationError, match="continued pretraining trains a local LoRA adapter"):
        Knowledge(documents={"dilution": 0.1}, train={"trainer": "openai"})
