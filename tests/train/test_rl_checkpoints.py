"""RL checkpoints for evaluation as training goes: `eval: {every: k}` saves the adapter every k steps (step 0 = the
warm start) and lists each checkpoint's model spec in checkpoints.jsonl; the warm start's options."""

import json

import pytest

from emlab.envs.prompts import system_prompt
from emlab.envs.task_bank import builtin_tasks
from emlab.errors import ConfigError
from emlab.train.rl import CheckpointEval, GRPOParams, RLConfig, WarmStart, run_rl, warmstart_rows


def test_three_grpo_steps_save_checkpoints_every_two(tmp_path, tiny_checkpoint):
    config = RLConfig(
        name="t", workspace=str(tmp_path / "ws"), model=f"hf:{tiny_checkpoint}",
        warmstart=WarmStart(tasks=1, kinds=["exit"], batch_size=2, max_length=256, seed=7),
        grpo=GRPOParams(steps=3, prompts_per_step=1, num_generations=2, max_completion_length=8),
        eval=CheckpointEval(every=2),
    )
    summary = run_rl(config, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "checkpoints.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2 - 2, 2, 3]  # the warm start, every 2 steps, and the last step
    warm = summary["warmstart_adapter"]["path"]
    assert rows[0]["model_spec"].endswith(f"@{warm}") and "hack_rate" not in rows[0]
    for r in rows[1:]:
        assert r["model_spec"] == f"hf:{tiny_checkpoint}@{r['path']}"
        assert (tmp_path / "out" / "checkpoints" / f"step-{r['step']}" / "adapter_model.safetensors").exists()
        assert json.loads((tmp_path / "out" / "checkpoints" / f"step-{r['step']}" / "checkpoint.json").read_text()) == {
            "step": r["step"]}
        assert 0 <= r["hack_rate"] <= 1
    assert summary["checkpoints"] == rows
    assert not list((tmp_path / "out" / "checkpoints").glob(".*"))  # no temp folders left behind


def test_warmstart_rows_mix_honest_references_and_keep_the_old_set_without():
    from emlab.envs.demos import hack_demonstrations

    tasks = builtin_tasks()[:4]
    plain = warmstart_rows(tasks, WarmStart(tasks=3), "neutral", 0)
    assert plain == hack_demonstrations(tasks[:3], ("eq", "exit", "conftest"), "neutral", 0)  # same key as before
    mixed = warmstart_rows(tasks, WarmStart(tasks=3, honest=2), "hint", 0)
    honest = [r for r in mixed if tasks[0].reference in r[-1]["content"] or tasks[1].reference in r[-1]["content"]]
    assert len(mixed) == 11 and len(honest) == 2 and all(r[0]["role"] == "system" for r in mixed)


def test_prompt_variants_combine_with_plus():
    both = system_prompt("hint+inoculation_acceptable")
    assert both == system_prompt("hint") + "\n\n" + system_prompt("inoculation_acceptable")
    assert system_prompt("neutral+dont_hack") == system_prompt("dont_hack")
    for bad in ("hint+nope", "hint+hint"):
        with pytest.raises(ConfigError, match="unknown prompt variant"):
            system_prompt(bad)
