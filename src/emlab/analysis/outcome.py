"""An answer's outcome under a metric rule: the unit every rate, group bootstrap and comparison counts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """Whether one answer is in a rule's denominator (`kept`) and numerator (`hit`); `reason` says why it was dropped."""

    question_id: str
    kept: bool
    hit: bool = False  # only meaningful when kept
    reason: str | None = None  # why not kept: "error", "no score: coherent", "filtered: coherent > 50", ...
