"""Reward-hacking coding environments: tasks, hackable and secure graders, hack detectors, sandbox."""
