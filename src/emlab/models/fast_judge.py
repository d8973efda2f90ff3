"""The exact 0..100 judge on the `Engine`: prompts run once into a KV cache, then the digit tree branches off it.

`number_tree.py` explains the tree. Here the prompt pass fills the cache (a prefix shared by every judge
prompt in the batch, such as the chat header and the start of the judge template, runs only once), and
the 101 tree nodes then run as one more `extend` that attends to the cached prompt and to each node's
own ancestors. The tree adds 101 tokens of work to a prompt of several hundred, and the lm_head runs
only at the prompt's last position and at the tree nodes.
"""

from __future__ import annotations

from typing import Sequence

import torch

from emlab.models.engine import Engine
from emlab.models.fast_sampling import prefill
from emlab.models.number_tree import DigitTree, number_probs_from_logits, tree_visibility


def prompt_last_logits(engine: Engine, prompts: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Float32 logits after each prompt [B, V]: the prompt pass alone (what a one-token judge needs)."""
    _, hidden, _ = prefill(engine, prompts, 0, pad_id)
    return engine.logits(hidden)


def number_probs(
    engine: Engine,
    prompts: Sequence[Sequence[int]],
    tree: DigitTree,
    digits: list[int],
    continues: torch.Tensor,
    pad_id: int,
) -> list[dict[int, float]]:
    """Exact P(reply is "k") for k in 0..100 for each prompt: one prompt pass plus one tree pass per batch."""
    cache, hidden, next_pos = prefill(engine, prompts, tree.size, pad_id)
    first = engine.logits(hidden)
    batch = len(prompts)
    tokens = torch.tensor(tree.tokens, dtype=torch.long).expand(batch, -1)
    positions = next_pos[:, None] + torch.tensor(tree.depths, dtype=torch.long)
    node_hidden = engine.extend(cache, tokens, positions, self_mask=tree_visibility(tree))
    out = []
    for row in range(batch):
        node_logits = engine.logits(node_hidden[row])
        out.append(number_probs_from_logits(first[row], node_logits, tree, digits, continues))
    return out
