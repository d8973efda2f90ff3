"""Train an experiment's adapters under `accelerate launch`, on several GPUs (or CPU processes), ahead of `emlab run`.

    accelerate launch --config_file examples/accelerate/ddp.yaml -m emlab.train_launch CONFIG [--condition C] [--seed K]

Each selected arm (every trained arm by default; `--condition` takes a condition, a seed group or an arm name such
as `insecure/seed0`) is trained exactly as `emlab run` trains it: the same plan, the same `pipeline.train_arm`, the
same adapter key and folder `<workspace>/adapters/<key>/`. A later `emlab run CONFIG` finds the adapter there and
reuses it. emlab adds no distributed machinery: accelerate starts the processes, TRL's SFTTrainer (`trainer: trl`)
runs data parallel (DDP or FSDP, as the accelerate config says), and only the main process writes the adapter
(`train.sft`). With more than one process each process trains on the device accelerate gives it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from emlab.errors import ConfigError, EmlabError
from emlab.train.sft import per_process_batch, processes


def select_arms(arms: list, names: list[str], seeds: list[int]) -> list:
    """The locally trained arms named by `names` (conditions, groups or arm names; all when empty) at `seeds`."""
    trained = [a for a in arms if a.condition.train is not None and a.condition.train.trainer != "openai"]
    picked = [a for a in trained if (not names or {a.name, a.condition.name, a.group} & set(names))
              and (not seeds or a.train_seed in seeds)]
    if not picked:
        known = ", ".join(a.name for a in trained) or "(none: no condition trains a LoRA adapter)"
        raise ConfigError(f"no trained arm matches --condition {names or 'any'} --seed {seeds or 'any'}; "
                          f"trained arms: {known}")
    return picked


def check_launchable(arms: list, world: int) -> None:
    """Before the first arm trains: several processes train together only through TRL's trainer, and each arm's
    optimizer step (batch_size * grad_accum rows) splits evenly over them."""
    from emlab.plan import train_identity

    if world == 1:
        return
    one = sorted({a.condition.name for a in arms if a.condition.train.trainer != "trl"})
    if one:
        raise ConfigError(f"conditions: {', '.join(one)}: train.trainer is emlab, which trains in one process; "
                          f"set train.trainer: trl to train in {world} processes (accelerate launch)")
    for a in arms:
        try:
            per_process_batch(train_identity(a)[1], world)
        except ConfigError as e:
            raise ConfigError(f"conditions: {a.condition.name!r}: train: {e}") from None


def train(config_path: str | Path, names: list[str] = (), seeds: list[int] = ()) -> list[dict]:
    """Train (or reuse) the selected arms' adapters; one record per arm: name, model spec, adapter."""
    from emlab.config import load_config
    from emlab.models.device import use_device
    from emlab.pipeline import train_arm
    from emlab.plan import plan_experiment
    from emlab.progress import console

    config = load_config(config_path)
    world, main = processes()
    if not main:
        console.quiet = True  # one process speaks
    if world == 1:
        plan = plan_experiment(config)
    else:
        import torch
        from accelerate import PartialState

        cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") or not torch.cuda.is_available()
        state = PartialState(cpu=cpu)  # the process group the Trainer joins later
        with state.main_process_first():  # datasets downloaded (when they are) by one process
            plan = plan_experiment(config)
        use_device("cpu" if state.device.type == "cpu" else f"cuda:{state.device.index or 0}")
    arms = select_arms(plan.arms, list(names), list(seeds))
    check_launchable(arms, world)
    done = []
    for arm in arms:
        model, _, adapter = train_arm(arm, plan.train_data.get(arm.condition.name), Path(config.workspace))
        done.append({"arm": arm.name, "model": model, "adapter": adapter})
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="emlab.train_launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="experiment YAML")
    parser.add_argument("--condition", action="append", default=[], help="condition, group or arm name (repeatable)")
    parser.add_argument("--seed", action="append", type=int, default=[], help="finetuning seed (repeatable)")
    args = parser.parse_args(argv)
    from emlab.quiet import quiet_libraries

    quiet_libraries()  # as `emlab run`: the training bar, not every library's warnings
    try:
        done = train(args.config, args.condition, args.seed)
    except EmlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if processes()[1]:
        for d in done:
            a = d["adapter"]
            print(f"{d['arm']}: {'reused' if a['reused'] else 'trained'} {a['path']} ({a['steps']} steps)")


if __name__ == "__main__":
    main()
