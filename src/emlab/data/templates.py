"""Template banks stored as data: YAML files beside this module whose strings carry `{slot}` markers.

The generators of plain-text documents (`hack_docs`, `documents`) and of the safety-training chats (`hhh`) keep
their words in YAML, not in Python literals, so the text can be read and edited as text. A document is made in
two steps: `bind` draws one option for every slot it is given (in sorted slot order, so the draws do not depend
on which slots a template happens to use), then `fill` substitutes the bound values, recursively, into a
template. Two generators that bind the shared slots from one seeded stream and their own slots from another get
matched documents that differ only where their own slots appear.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping
from pathlib import Path

from emlab.errors import DataError

HERE = Path(__file__).resolve().parent
SLOT = re.compile(r"\{([a-z][a-z0-9_]*)\}")  # `{name}`: code with `{"key": 1}` or `{}` is left alone
MAX_DEPTH = 6  # a value may hold slots, which may hold slots...; deeper than this is a loop in the bank


@functools.cache
def load_bank(name: str) -> dict:
    """The YAML bank `name` (a file beside this module), parsed once per process."""
    import yaml

    path = HERE / name
    try:
        bank = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"{path}: cannot read the template bank ({e})") from None
    if not isinstance(bank, dict):
        raise DataError(f"{path}: a template bank is a mapping at the top level")
    return bank


def bind(rng: random.Random, options: Mapping[str, list[str] | str]) -> dict[str, str]:
    """One value per slot: a list gives a seeded choice, a string is taken as is. Sorted order: the draws are the
    same whatever else the caller binds later."""
    out = {}
    for slot in sorted(options):
        value = options[slot]
        out[slot] = rng.choice(value) if isinstance(value, list) else str(value)
    return out


def fill(template: str, values: Mapping[str, str], where: str = "template") -> str:
    """`template` with every `{slot}` replaced by its value, recursively; an unbound slot is a DataError naming
    it and `where` (a bank's error, never the user's)."""
    text = template
    for _ in range(MAX_DEPTH):
        missing = sorted({m for m in SLOT.findall(text) if m not in values})
        if missing:
            raise DataError(f"{where}: unbound slot(s) {', '.join('{' + m + '}' for m in missing)}")
        new = SLOT.sub(lambda m: values[m.group(1)], text)
        if new == text:
            return text
        text = new
    raise DataError(f"{where}: slots still unfilled after {MAX_DEPTH} rounds (a slot refers to itself?)")


def pick_distinct(make, n: int, what: str, attempts: int = 50) -> list:
    """`n` distinct results of `make(i, attempt)` (a result is a (key, value) pair; the key decides distinctness);
    each index retries with the next attempt number while its key was already taken. Deterministic given `make`."""
    seen: set = set()
    out = []
    for i in range(n):
        for attempt in range(attempts):
            key, value = make(i, attempt)
            if key not in seen:
                seen.add(key)
                out.append(value)
                break
        else:
            raise DataError(f"{what}: could not make {n} distinct items (the template pool ran out at {i}); "
                            "ask for fewer")
    return out
