"""Trainer callbacks shared by SFT and RL."""

from __future__ import annotations


def quiet_progress(trainer) -> None:
    """Keep the trainer's progress bar but show the loss (or reward) on it instead of printing a dict per step."""
    from transformers.trainer_callback import ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.training_bar is None or not logs:
                return
            shown = {k: f"{logs[k]:.3f}" for k in ("loss", "reward", "hack_rate", "solve_rate") if isinstance(logs.get(k), (int, float))}
            if shown:
                self.training_bar.set_postfix(shown)

    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(BarOnly)
