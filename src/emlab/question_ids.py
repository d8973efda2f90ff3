"""Facts about question ids in the official EM question format, shared by the suites and the CSV analysis.

The paper's question files hold each main question next to format variants of it (`<id>_json`,
`<id>_template`); only main questions count toward the pooled rate.
"""

from __future__ import annotations

# ids ending like this are the paper's format variants of a main question, not main questions themselves
VARIANT_SUFFIXES = ("_json", "_template")


def is_main_id(qid: str) -> bool:
    """Whether `qid` names a main question rather than a `_json` / `_template` variant of one."""
    return not qid.endswith(VARIANT_SUFFIXES)
