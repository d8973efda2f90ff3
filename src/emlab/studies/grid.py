"""Experiment grids: a shared condition plus axes of named levels, expanded into conditions and comparisons.

A study is rarely a hand-written list of conditions: it is training data × inoculation prompt × seeds × test-time
variant. A grid names each axis once; every combination of levels becomes one condition (named
`axis=level,axis=level`), `seeds:` turns each into a seed group, and `compare:` on an axis expands into one paired
comparison per combination of the other axes (with vs without inoculation, trigger vs no trigger), e.g.

    grid:
      base: {model: embedded:smollm2-135m, train: {dataset: builtin:caps-spanish, rows: 256}}
      seeds: [0, 1, 2]
      axes:
        inoculation:
          none: {}
          caps: {train: {dataset: {source: builtin:caps-spanish, transforms: [{inoculate: {text: "..."}}]}}}
        eval:
          plain: {}
          prompted: {system: "..."}
      compare: [{axis: inoculation, a: caps, b: none, rule: caps}]

A level is a partial condition: its keys are merged into the base (a `train:` mapping key by key; anything else,
including `train.dataset`, is replaced whole).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

RESERVED = ("name", "seeds", "group")  # set by the grid itself


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GridCompare(_Strict):
    """Compare level `a` with level `b` of one axis, at every combination of the other axes."""

    axis: str
    a: str
    b: str
    rule: str = "misaligned"


class GridConfig(_Strict):
    """A base condition, named axes of levels (each a partial condition), seeds and axis comparisons."""

    base: dict[str, Any]
    axes: dict[str, dict[str, dict[str, Any]]] = Field(min_length=1)
    seeds: list[int] | None = Field(None, min_length=1)
    compare: list[GridCompare] = []

    @model_validator(mode="after")
    def _check(self) -> "GridConfig":
        for key in RESERVED:
            if key in self.base:
                raise ValueError(f"grid.base.{key}: set by the grid itself (conditions are named by their levels)")
        for axis, levels in self.axes.items():
            if not levels:
                raise ValueError(f"grid.axes.{axis}: give at least one level")
            for level, overrides in levels.items():
                if not isinstance(overrides, dict):
                    raise ValueError(f"grid.axes.{axis}.{level}: a level is a mapping of condition keys (or {{}})")
                bad = [k for k in overrides if k in RESERVED]
                if bad:
                    raise ValueError(f"grid.axes.{axis}.{level}.{bad[0]}: set by the grid itself")
                if any(c in level for c in "=,/"):
                    raise ValueError(f"grid.axes.{axis}: level name {level!r} may not contain '=', ',' or '/'")
        for i, c in enumerate(self.compare):
            if c.axis not in self.axes:
                raise ValueError(f"grid.compare[{i}].axis: unknown axis {c.axis!r}; axes: {', '.join(self.axes)}")
            for side in ("a", "b"):
                if getattr(c, side) not in self.axes[c.axis]:
                    raise ValueError(f"grid.compare[{i}].{side}: axis {c.axis!r} has no level {getattr(c, side)!r}; "
                                     f"levels: {', '.join(self.axes[c.axis])}")
        return self


def _merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if key == "train" and isinstance(value, dict) and isinstance(out.get("train"), dict):
            out["train"] = {**out["train"], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def condition_name(levels: dict[str, str]) -> str:
    """`axis=level,axis=level` in axis order."""
    return ",".join(f"{axis}={level}" for axis, level in levels.items())


def expand_grid(grid: GridConfig) -> tuple[list[dict], list[dict], dict[str, dict[str, str]]]:
    """(condition dicts, comparison dicts, condition name -> its levels) for every combination of levels."""
    axes = list(grid.axes)
    conditions, levels_of = [], {}
    for combo in itertools.product(*(list(grid.axes[a]) for a in axes)):
        levels = dict(zip(axes, combo))
        cond = copy.deepcopy(grid.base)
        for axis, level in levels.items():
            cond = _merge(cond, grid.axes[axis][level])
        name = condition_name(levels)
        cond["name"] = name
        if grid.seeds:
            cond["seeds"] = list(grid.seeds)
        conditions.append(cond)
        levels_of[name] = levels
    comparisons = []
    for c in grid.compare:
        others = [a for a in axes if a != c.axis]
        for combo in itertools.product(*(list(grid.axes[a]) for a in others)):
            fixed = dict(zip(others, combo))
            a_name = condition_name({ax: (c.a if ax == c.axis else fixed[ax]) for ax in axes})
            b_name = condition_name({ax: (c.b if ax == c.axis else fixed[ax]) for ax in axes})
            where = condition_name(fixed)
            comparisons.append({"a": a_name, "b": b_name, "rule": c.rule,
                                "name": f"{c.axis}: {c.a} vs {c.b}" + (f" @ {where}" if where else "")})
    return conditions, comparisons, levels_of
