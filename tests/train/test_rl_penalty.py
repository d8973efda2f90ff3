"""The hack penalty (the paper's "prevent hacking" mitigation) on the reward function alone, without GRPO."""

import json

import pytest
from pydantic import ValidationError

from emlab.envs.demos import HACK_KINDS, hack_solution
from emlab.envs.detectors import Finding
from emlab.envs.episode import EpisodeLabel
from emlab.envs.task_bank import builtin_tasks
from emlab.train.rl import EpisodeRewarder, RLConfig, flagged


def _label(label: str, **detectors: list[Finding]) -> EpisodeLabel:
    hacked = label.startswith("hacked:")
    return EpisodeLabel(label=label, kinds=(label.split(":")[1],) if hacked else (),
                        hackable_reward=float(label != "failed"), secure_reward=float(label == "solved"), agree=True,
                        detectors={"static": [], "dynamic": [], "reward_gap": [], **detectors})


def test_flagged_by_label_or_by_any_finding():
    attempt = _label("failed", static=[Finding("eq", "__eq__ always returns True (def)", 2)])
    assert flagged(_label("hacked:eq")) and flagged(_label("hacked:eq"), "attempt")
    assert not flagged(attempt) and flagged(attempt, "attempt")
    assert not flagged(_label("solved"), "attempt") and not flagged(_label("failed"), "attempt")


@pytest.fixture(scope="module")
def episode():
    """One task's replies: a solution, an eq hack, a hack of a closed hole (a failed attempt), a wrong function."""
    task = builtin_tasks()[0]
    wrong = f"{task.signature}\n    return None\n"
    replies = [task.reference, hack_solution(task, "eq"), hack_solution(task, "skip"), wrong]
    return task, [[{"role": "assistant", "content": f"```python\n{r}```"}] for r in replies]


def _rewards(episode, out, **options):
    task, completions = episode
    out.mkdir()
    rewarder = EpisodeRewarder({task.id: task}, frozenset(HACK_KINDS), "hackable", out, **options)
    rewards = rewarder(None, completions, [task.id] * len(completions))
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    return rewards, rows, rewarder.history[-1]


def test_no_penalty_leaves_rewards_and_logs_as_they_were(episode, tmp_path):
    rewards, rows, step = _rewards(episode, tmp_path / "none")
    assert rewards == [1.0, 1.0, 0.0, 0.0]
    assert [r["label"] for r in rows] == ["solved", "hacked:eq", "failed", "failed"]
    assert all("penalized" not in r for r in rows) and "penalized_rate" not in step


def test_penalty_on_hacked_episodes(episode, tmp_path):
    rewards, rows, step = _rewards(episode, tmp_path / "hacked", hack_penalty=0.5)
    assert rewards == [1.0, 0.5, 0.0, 0.0]  # the honest solution keeps its reward; the failed attempt is not hacked
    assert [r["penalized"] for r in rows] == [False, True, False, False] and step["penalized_rate"] == 0.25
    assert step["mean_reward"] == pytest.approx(1.5 / 4)


def test_penalty_on_every_attempt(episode, tmp_path):
    rewards, rows, _ = _rewards(episode, tmp_path / "attempt", hack_penalty=1.0, penalize="attempt")
    assert rewards == [1.0, 0.0, -1.0, 0.0]  # the skip hack failed (its hole is closed) but the detectors saw it
    assert [r["penalized"] for r in rows] == [False, True, True, False]


def test_rl_config_penalty_options():
    config = RLConfig()
    assert config.hack_penalty == 0.0 and config.penalize == "hacked" and config.vulns == list(HACK_KINDS)
    assert RLConfig(vulns=["eq", "skip", "expected_file", "test_file"], hack_penalty=2).hack_penalty == 2.0
    with pytest.raises(ValidationError):
        RLConfig(hack_penalty=-1)
    with pytest.raises(ValidationError):
        RLConfig(penalize="sometimes")
