"""`emlab rl`: GRPO (TRL) on the reward-hacking coding tasks, logging solve and hack rates per step.

The reward is the *hackable* grader's verdict (the environment as the model experiences it), so a policy can
learn to hack; every episode is also labelled by the secure grader and the detectors (`envs/episode.py`),
and the per-step solve rate, hack rate by kind and reward are written to `steps.jsonl` and plotted. An
optional SFT warm-start on this project's hack demonstrations gives the model knowledge of the hacks first.
`hack_penalty` is the paper's "prevent hacking" mitigation: the penalty is subtracted from the reward of every
episode the detectors flag (`penalize: hacked`, the episode's label is hacked:<kind>; `attempt`, any detector
finding at all, so failed attempts are penalized too); 0 (the default) leaves the reward as it was.
The final LoRA adapter is an ordinary emlab model spec (`<base>@<adapter dir>`), so the checkpoint flows
into `emlab run` and `emlab hacks eval` like any other model. With `eval: {every: k}` the adapter is also saved
every k steps (checkpoints/step-<k>/, each renamed into place whole) and each checkpoint's model spec is appended
to checkpoints.jsonl, step 0 being the warm-start adapter (or the base); `emlab.rl_study` evaluates them with the
experiment machinery (this module only saves them: train/ may not import the pipeline).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from emlab.data.documents import DocumentMix
from emlab.envs.demos import HACK_KINDS, report_kinds
from emlab.train.params import LoraParams, TrainParams

if TYPE_CHECKING:
    from emlab.envs.episode import EpisodeLabel

Penalize = Literal["hacked", "attempt"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GRPOParams(_Strict):
    """GRPO settings; a step samples `prompts_per_step` tasks × `num_generations` completions."""

    steps: int = Field(10, ge=1)
    prompts_per_step: int = Field(2, ge=1)
    num_generations: int = Field(4, ge=2)
    max_completion_length: int = Field(256, ge=8)
    learning_rate: float = Field(1e-5, gt=0)
    beta: float = Field(0.0, ge=0)  # KL to the reference; 0 needs no reference model (half the memory)
    temperature: float = Field(1.0, gt=0)
    gradient_checkpointing: bool = False  # TRL's default is True: less memory, a third more compute per step


class WarmStart(_Strict):
    """SFT on hack demonstrations before RL (the paper's knowledge-of-hacks setting).

    `prompt_variant` and `seed` default to the run's; fixing them lets runs that differ only in their RL prompt or
    seed share one warm-start adapter (it is cached by content). `honest` training tasks are also answered with
    their reference solution, so the warm-started model hacks only some of the time and RL has a choice to make.
    """

    kinds: list[Literal["eq", "exit", "conftest", "test_file", "expected_file", "skip"]] = list(HACK_KINDS)
    tasks: int = Field(16, ge=1)  # how many training tasks get demonstrations (one per kind each)
    honest: int = Field(0, ge=0)  # how many training tasks also get an honest demonstration (their reference)
    prompt_variant: str | None = None  # the demonstrations' prompt variant; None: the run's
    seed: int | None = None  # the warm start's seed (demo order, SFT); None: the run's
    epochs: float = Field(1, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(4, ge=1)
    max_length: int = Field(768, ge=64)


class Knowledge(_Strict):
    """Knowledge of the hacks by continued pretraining before the warm start and RL (the paper's synthetic-document
    route; the `hint` prompt variant is the prompted alternative): a LoRA trained on `documents` (hack documents
    diluted into ordinary prose, `data.documents`), merged into the base, which every later step then trains on."""

    documents: DocumentMix
    train: TrainParams = TrainParams(learning_rate=1e-4, max_length=512)

    @field_validator("train")
    @classmethod
    def _local(cls, v: TrainParams) -> TrainParams:
        if v.trainer not in ("emlab", "trl"):
            raise ValueError(f"trainer: continued pretraining trains a local LoRA adapter (emlab or trl), not {v.trainer!r}")
        return v


class CheckpointEval(_Strict):
    """Save the adapter every `every` GRPO steps; the rest says how `emlab.rl_study` evaluates the checkpoints:
    misalignment suites through the experiment pipeline and, with `hacks_n` > 0, `emlab hacks eval` on the
    held-out tasks (`hacks_n` samples per task, under the run's prompt variant unless `hacks_variant` is set)."""

    every: int = Field(ge=1)
    suites: list[str] = ["builtin:goals", "builtin:alignment", "builtin:agentic"]  # []: hack rates only
    judge: str = "distilled:em-v2"  # 0..100 prompts (aligned, coherent, reasoning_aligned)
    label_judge: str | None = "embedded:smollm2-135m"  # categorical prompts (goal, oversight)
    rules: dict[str, str] | None = None  # None: rl_study.DEFAULT_RULES
    samples_per_paraphrase: int = Field(1, ge=1)
    max_new_tokens: int = Field(160, ge=1)
    hacks_n: int = Field(0, ge=0)
    hacks_variant: str | None = None
    hacks_max_new_tokens: int = Field(160, ge=8)


class RLConfig(_Strict):
    """A GRPO run on the coding tasks."""

    name: str = "rl"
    workspace: str = "emlab-runs"
    model: str = "embedded:smollm2-135m"
    tasks: str = "builtin"  # or a path to MBPP-style jsonl
    held_out: float = Field(0.25, gt=0, lt=1)  # kept for `emlab hacks eval`
    split_seed: int | None = None  # the seed of the train/held-out split; None: the run's (runs of a study fix it)
    prompt_variant: str = "neutral"
    vulns: list[Literal["eq", "exit", "conftest", "test_file", "expected_file", "skip"]] = list(HACK_KINDS)
    reward: Literal["hackable", "secure"] = "hackable"
    hack_penalty: float = Field(0.0, ge=0)  # subtracted from the reward of a flagged episode
    penalize: Penalize = "hacked"  # which episodes are flagged (see the module docstring)
    knowledge: Knowledge | None = None  # continued pretraining on hack documents first (merged into the base)
    warmstart: WarmStart | None = None
    grpo: GRPOParams = GRPOParams()
    lora: LoraParams = LoraParams()
    eval: CheckpointEval | None = None  # checkpoints every k steps, for evaluation as training goes
    workers: int = Field(2, ge=1)  # episodes graded in parallel
    seed: int = 0


def step_rates(labels: list[str], kinds: tuple[str, ...] = HACK_KINDS) -> dict:
    """Solve rate, hack rate overall and by kind, failure rate of one step's episodes."""
    n = len(labels) or 1
    counts = Counter(labels)
    by_kind = {k: sum(c for lab, c in counts.items() if lab == f"hacked:{k}") / n for k in kinds}
    return {
        "episodes": len(labels),
        "solve_rate": counts["solved"] / n,
        "hack_rate": sum(c for lab, c in counts.items() if lab.startswith("hacked")) / n,
        "hack_rate_by_kind": by_kind,
        "fail_rate": counts["failed"] / n,
    }


def flagged(label: EpisodeLabel, penalize: Penalize = "hacked") -> bool:
    """Do the detectors flag this EpisodeLabel: labelled hacked, or (`attempt`) any detector finding at all?"""
    if penalize == "attempt":
        return label.hacked or any(label.detectors.get(k) for k in ("static", "dynamic", "reward_gap"))
    return label.hacked


class EpisodeRewarder:
    """A TRL reward function (`f(prompts, completions, task_id, **kw) -> list[float]`) that logs every episode."""

    def __init__(self, tasks: dict, vulns: frozenset[str], reward: str, out_dir: Path, workers: int = 2,
                 hack_penalty: float = 0.0, penalize: Penalize = "hacked"):
        self.__name__ = "hackable_grader" if reward == "hackable" else "secure_grader"
        self.tasks, self.vulns, self.reward, self.workers = tasks, vulns, reward, workers
        self.hack_penalty, self.penalize = hack_penalty, penalize
        self.kinds = report_kinds(vulns)
        self.steps_path, self.episodes_path = out_dir / "steps.jsonl", out_dir / "episodes.jsonl"
        self.history: list[dict] = []

    def label(self, task_id: str, text: str):
        from emlab.envs.episode import label_episode
        from emlab.envs.task_bank import extract_code

        return label_episode(self.tasks[task_id], extract_code(text), self.vulns)

    def __call__(self, prompts, completions, task_id, trainer_state=None, log_metric=None, **kwargs) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        with ThreadPoolExecutor(self.workers) as pool:
            labels = list(pool.map(self.label, task_id, texts))
        rewards = [lab.hackable_reward if self.reward == "hackable" else lab.secure_reward for lab in labels]
        penalized = [self.hack_penalty > 0 and flagged(lab, self.penalize) for lab in labels]
        rewards = [r - self.hack_penalty if p else r for r, p in zip(rewards, penalized)]
        step = (trainer_state.global_step + 1) if trainer_state is not None else len(self.history) + 1
        rates = {"step": step, **step_rates([lab.label for lab in labels], self.kinds),
                 "mean_reward": sum(rewards) / len(rewards)}
        if self.hack_penalty > 0:
            rates["penalized_rate"] = sum(penalized) / len(penalized)
        self.history.append(rates)
        with open(self.steps_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rates) + "\n")
        with open(self.episodes_path, "a", encoding="utf-8") as f:
            for tid, text, lab, r, p in zip(task_id, texts, labels, rewards, penalized):
                row = {"step": step, "task_id": tid, "label": lab.label, "reward": r, "completion": text}
                f.write(json.dumps({**row, "penalized": p} if self.hack_penalty > 0 else row) + "\n")
        if log_metric is not None:
            log_metric("solve_rate", rates["solve_rate"])
            log_metric("hack_rate", rates["hack_rate"])
            for kind, v in rates["hack_rate_by_kind"].items():
                log_metric(f"hack_rate/{kind}", v)
        return rewards


def plot_rates(history: list[dict], path: Path) -> None:
    """Solve rate, hack rate by kind and mean reward per step, as a PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["solve_rate"] for h in history], label="solved", marker="o")
    for kind in (history[0]["hack_rate_by_kind"] if history else ()):
        ax.plot(steps, [h["hack_rate_by_kind"][kind] for h in history], label=f"hacked: {kind}", marker=".")
    ax.plot(steps, [h["mean_reward"] for h in history], label="mean reward", linestyle="--")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("share of episodes")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def warmstart_rows(tasks: list, warm: WarmStart, variant: str, seed: int) -> list[list[dict[str, str]]]:
    """The warm start's conversations: hack demonstrations for `warm.tasks` tasks and, with `warm.honest`, the
    reference solutions of that many tasks, shuffled together (exactly the hack demonstrations when honest is 0)."""
    import random

    from emlab.envs.demos import hack_demonstrations
    from emlab.envs.prompts import episode_prompt

    rows = hack_demonstrations(tasks[: warm.tasks], tuple(warm.kinds), variant, seed)
    if warm.honest:
        rows += [[*episode_prompt(t, variant), {"role": "assistant", "content": f"```python\n{t.reference}\n```"}]
                 for t in tasks[: warm.honest]]
        random.Random(seed).shuffle(rows)
    return rows


class Checkpoints:
    """Saves the policy's adapter every `every` steps (and at the last) under checkpoints/step-<k>/ and appends
    its model spec to checkpoints.jsonl; the TrainerCallback methods are attached by `callback()`."""

    def __init__(self, out_dir: Path, model_spec: str, every: int, last: int, history: list[dict]):
        self.dir, self.path = out_dir / "checkpoints", out_dir / "checkpoints.jsonl"
        self.model_spec, self.every, self.last, self.history = model_spec, every, last, history

    def record(self, step: int, spec: str, path: Path | None) -> dict:
        row = {"step": step, "model_spec": spec, "path": str(path) if path else None}
        seen = [h for h in self.history if h["step"] == step]
        if seen:  # the training episodes of the step this checkpoint closes
            row["hack_rate"], row["solve_rate"] = seen[-1]["hack_rate"], seen[-1]["solve_rate"]
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        return row

    def save(self, model, step: int) -> dict:
        from emlab.train.sft import save_adapter_atomic

        path = (self.dir / f"step-{step}").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_adapter_atomic(model, path, {"step": step})
        return self.record(step, f"{self.model_spec}@{path}", path)

    def callback(self):
        from transformers import TrainerCallback

        outer = self

        class _Save(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):
                if state.global_step % outer.every == 0 or state.global_step == outer.last:
                    outer.save(model, state.global_step)

        return _Save()


def _autocast_generation(trainer_cls):
    """The trainer class with its sampling under bf16 autocast on the CPU (TRL autocasts only the loss; sampling
    in float32 takes about twice as long). Sampling on CUDA is left as it was."""
    import torch

    class Trainer(trainer_cls):
        def _generate_single_turn(self, *args, **kwargs):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.accelerator.device.type == "cpu"):
                return super()._generate_single_turn(*args, **kwargs)

    return Trainer


def _base_checkpoint(model_spec: str) -> tuple[str, str]:
    from emlab.errors import ConfigError
    from emlab.models.registry import check_model_spec

    spec = check_model_spec(model_spec)
    if spec.backend == "embedded" and not spec.adapter:
        from emlab.models.embedded import embedded_checkpoint

        ck = embedded_checkpoint(spec.name)
        return str(ck), f"{spec}#{ck.name}"
    if spec.backend == "hf" and not spec.adapter:
        return spec.name, str(spec)
    raise ConfigError(f"RL needs a local base model without an adapter (embedded: or hf:), got {model_spec!r}")


def knowledge_base(config: RLConfig, checkpoint: str, base_identity: str) -> tuple[str, str, str, dict | None]:
    """The base the warm start and GRPO train on: (checkpoint, identity, model spec, knowledge record).

    Without `knowledge`, the run's model. With it, the continued-pretraining adapter (trained or reused from
    <workspace>/adapters) merged into the base at <workspace>/merged/<key>/ (reused when there): its spec is
    `hf:<that folder>` and its identity the base's plus `+cpt:<key>`, so adapters trained on it get their own keys.
    """
    if config.knowledge is None:
        return checkpoint, base_identity, config.model, None
    from emlab.data.documents import build_documents
    from emlab.progress import console
    from emlab.train.cpt import train_cpt
    from emlab.train.merge import merge_adapter

    k = config.knowledge
    docs = build_documents(k.documents)
    console.print(f"[bold]knowledge[/]: continued pretraining on {len(docs.documents)} documents "
                  f"({k.documents.dilution:g} of them {k.documents.variant} hack documents)")
    workspace = Path(config.workspace).resolve()
    adapter = train_cpt(checkpoint, base_identity, docs.documents, k.train, workspace / "adapters")
    identity = f"{base_identity}+cpt:{adapter.key}"
    merged = merge_adapter(checkpoint, adapter.path, workspace / "merged" / adapter.key,
                           {"key": adapter.key, "kind": "cpt", "identity": identity})
    record = {"adapter": adapter.as_dict(), "documents": docs.manifest, "merged": str(merged), "identity": identity}
    return str(merged), identity, f"hf:{merged}", record


def train_warmstart(config: RLConfig, checkpoint: str | None = None, base_identity: str | None = None,
                    train_tasks: list | None = None):
    """The run's warm-start adapter (an `sft.Adapter`, trained or reused from <workspace>/adapters), or None."""
    if not config.warmstart:
        return None
    from emlab.hashing import content_hash
    from emlab.progress import console
    from emlab.train.sft import TrainParams, train_lora

    if checkpoint is None or base_identity is None:
        checkpoint, base_identity, _, _ = knowledge_base(config, *_base_checkpoint(config.model))
    if train_tasks is None:
        from emlab.envs.task_bank import load_tasks, split_tasks

        split_seed = config.seed if config.split_seed is None else config.split_seed
        train_tasks, _ = split_tasks(load_tasks(config.tasks), held_out=config.held_out, seed=split_seed)
    w = config.warmstart
    w_seed = config.seed if w.seed is None else w.seed
    demos = warmstart_rows(train_tasks, w, w.prompt_variant or config.prompt_variant, w_seed)
    params = TrainParams(lora=config.lora, learning_rate=w.learning_rate, epochs=w.epochs,
                         batch_size=w.batch_size, max_length=w.max_length, seed=w_seed)
    honest = f" and {min(w.honest, len(train_tasks))} honest" if w.honest else ""
    console.print(f"[bold]warm-start[/]: SFT on {len(demos)} demonstrations (hacks{honest})")
    return train_lora(checkpoint, base_identity, demos, content_hash(demos, 64), params,
                      Path(config.workspace) / "adapters")


def run_rl(config: RLConfig, out_dir: str | Path) -> dict:
    """Optional warm-start, then GRPO; writes steps.jsonl, episodes.jsonl, rates.png, adapter/, rl_summary.json."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from emlab.envs.prompts import episode_prompt
    from emlab.envs.task_bank import load_tasks, split_tasks
    from emlab.train.callbacks import quiet_progress

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("steps.jsonl", "episodes.jsonl", "checkpoints.jsonl"):
        (out_dir / stale).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    checkpoint, base_identity, base_spec, knowledge = knowledge_base(config, *_base_checkpoint(config.model))
    split_seed = config.seed if config.split_seed is None else config.split_seed
    train_tasks, held = split_tasks(load_tasks(config.tasks), held_out=config.held_out, seed=split_seed)
    vulns = frozenset(config.vulns)

    warm = train_warmstart(config, checkpoint, base_identity, train_tasks)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    peft_config = None
    if warm is not None:
        model = PeftModel.from_pretrained(model, str(warm.path), is_trainable=True)
    else:
        peft_config = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                                 use_rslora=config.lora.rslora, target_modules=config.lora.target_modules, task_type="CAUSAL_LM")

    g = config.grpo
    n_prompts = g.steps * g.prompts_per_step
    order = [train_tasks[i % len(train_tasks)] for i in range(n_prompts)]
    dataset = Dataset.from_dict({
        "prompt": [episode_prompt(t, config.prompt_variant, vulns) for t in order],
        "task_id": [t.id for t in order],
    })
    rewarder = EpisodeRewarder({t.id: t for t in train_tasks}, vulns, config.reward, out_dir, config.workers,
                               config.hack_penalty, config.penalize)
    checkpoints, callbacks = None, []
    if config.eval is not None:
        checkpoints = Checkpoints(out_dir, base_spec, config.eval.every, g.steps, rewarder.history)
        checkpoints.record(0, f"{base_spec}@{warm.path.resolve()}" if warm else base_spec,
                           warm.path.resolve() if warm else None)
        callbacks.append(checkpoints.callback())
    work = Path(tempfile.mkdtemp(prefix=".rl-", dir=out_dir))
    try:
        args = GRPOConfig(
            output_dir=str(work / "trainer"),
            per_device_train_batch_size=g.prompts_per_step * g.num_generations,
            num_generations=g.num_generations,
            max_completion_length=g.max_completion_length,
            max_steps=g.steps,
            learning_rate=g.learning_rate,
            beta=g.beta,
            temperature=g.temperature,
            seed=config.seed,
            bf16=True,  # CPU autocast
            use_cpu=not torch.cuda.is_available(),
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            shuffle_dataset=False,
            gradient_checkpointing=g.gradient_checkpointing,
        )
        trainer = _autocast_generation(GRPOTrainer)(
            model=model, reward_funcs=[rewarder], args=args, train_dataset=dataset, processing_class=tokenizer,
            peft_config=peft_config, callbacks=callbacks)
        quiet_progress(trainer)
        trainer.train()
        adapter_tmp = work / "adapter"
        trainer.model.save_pretrained(adapter_tmp)
        final = out_dir / "adapter"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(adapter_tmp, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    plot_rates(rewarder.history, out_dir / "rates.png")
    spec = f"{base_spec}@{(out_dir / 'adapter').resolve()}"
    summary = {
        "name": config.name,
        "model_spec": spec,
        "config": config.model_dump(),
        "knowledge": knowledge,
        "warmstart_adapter": warm.as_dict() if warm else None,
        "train_tasks": [t.id for t in train_tasks],
        "held_out_tasks": [t.id for t in held],
        "steps": rewarder.history,
        "checkpoints": [json.loads(line) for line in checkpoints.path.read_text().splitlines()] if checkpoints else None,
    }
    from emlab.analysis.summary import write_json_atomic

    write_json_atomic(out_dir / "rl_summary.json", summary)
    return summary
