"""The exact 0..100 judge on the `Engine`: prompts run once into a KV cache, then the digit tree branches off it.

`number_tree.py` explains the tree. Here the prompt pass fills the cache (a prefix shared by every judge
prompt in the batch, such as the chat header and the start of the judge template, runs only once), and the
tree is then walked one depth at a time over that cache: first digits, then second digits, then the last 0
of "100". Each tree node costs a full lm_head, and a judge that is sure of its answer puts almost no
probability on most first digits, so a node is skipped when the probability of reaching it is negligible.

The skipped probability is bounded, not estimated: reaching a node has probability p, and every number in
its subtree lies inside that p, so skipping it changes each P(k) of that subtree by at most p, and
together by at most p. Each prompt skips the least likely nodes while their summed p stays within
`tolerance` (default TREE_TOLERANCE = 1e-4): the returned P(k) then differ from the full tree's by at most
1e-4 in total (so the mass on numbers by at most 1e-4 and the mean score by at most 100 * 1e-4 / mass,
under 0.04 points at the 0.25 mass cut). `tolerance=0` evaluates every node of nonzero probability.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from emlab.models.engine import Engine
from emlab.models.fast_sampling import prefill
from emlab.models.number_tree import DigitTree, log_number_ends

TREE_TOLERANCE = 1e-4  # total probability the judge may leave out of its digit tree, per prompt


def prompt_last_logits(engine: Engine, prompts: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Float32 logits after each prompt [B, V]: the prompt pass alone (what a one-token judge needs)."""
    _, hidden, _ = prefill(engine, prompts, 0, pad_id)
    return engine.logits(hidden)


def skip_unlikely(path_probs: dict[int, float], budget: float) -> tuple[list[int], float]:
    """Nodes to evaluate, given each candidate's probability of being reached; the least likely are skipped
    while their summed probability stays within `budget`. Returns the kept nodes and the budget left."""
    kept = []
    for node, p in sorted(path_probs.items(), key=lambda item: item[1]):
        if p <= budget:
            budget -= p
        else:
            kept.append(node)
    return sorted(kept), budget


def number_probs(
    engine: Engine,
    prompts: Sequence[Sequence[int]],
    tree: DigitTree,
    digits: list[int],
    continues: torch.Tensor,
    pad_id: int,
    tolerance: float = TREE_TOLERANCE,
) -> list[dict[int, float]]:
    """P(reply is "k") for k in 0..100 for each prompt, within `tolerance` in total of the full digit tree."""
    batch = len(prompts)
    cache, hidden, next_pos = prefill(engine, prompts, tree.size, pad_id)
    prompt_columns = cache.length
    first = torch.log_softmax(engine.logits(hidden), -1)
    digit_of = {token: d for d, token in enumerate(digits)}
    children: dict[int, list[int]] = {}
    for node, parent in enumerate(tree.parents):
        children.setdefault(parent, []).append(node)

    # per prompt: log P(reaching node) for nodes whose parent is evaluated, log P(number ends at node), cache column
    reach = [{n: float(first[b, tree.tokens[n]]) for n in children[-1]} for b in range(batch)]
    log_end: list[dict[int, float]] = [{} for _ in range(batch)]
    column: list[dict[int, int]] = [{} for _ in range(batch)]
    budget = [tolerance] * batch
    frontier = [list(children[-1]) for _ in range(batch)]  # candidates at the current depth
    while any(frontier):
        chosen = []
        for b in range(batch):
            probs = {n: math.exp(reach[b][n]) for n in frontier[b]}
            kept, budget[b] = skip_unlikely(probs, budget[b])
            chosen.append(kept)
        width = max(len(c) for c in chosen)
        if width == 0:
            break
        tokens, positions, valid, sees = _node_inputs(
            chosen, tree, column, next_pos, prompt_columns, cache.length, pad_id
        )
        node_hidden = engine.extend(
            cache, tokens, positions, valid, self_mask=torch.eye(width, dtype=torch.bool), sees_cached=sees
        )
        log_probs = torch.log_softmax(engine.logits(node_hidden[valid]), -1)  # [evaluated nodes, V]
        ends = log_number_ends(log_probs, continues).tolist()
        next_digit = log_probs[:, digits].tolist()  # [evaluated nodes, 10]
        row = 0
        for b, nodes in enumerate(chosen):
            frontier[b] = []
            for n in nodes:
                log_end[b][n] = ends[row]
                for child in children.get(n, []):
                    reach[b][child] = reach[b][n] + next_digit[row][digit_of[tree.tokens[child]]]
                    frontier[b].append(child)
                row += 1
    return [
        {k: _prob(reach[b], log_end[b], n) for k, n in tree.number_nodes.items()} for b in range(batch)
    ]


def _node_inputs(
    chosen: list[list[int]],
    tree: DigitTree,
    column: list[dict[int, int]],
    next_pos: torch.Tensor,
    prompt_columns: int,
    cached: int,
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens, positions, valid mask and which cached columns each node sees (its prompt and its ancestors) for
    one depth of the tree; records where each chosen node will sit in the cache."""
    batch, width = len(chosen), max(len(c) for c in chosen)
    tokens = torch.full((batch, width), pad_id, dtype=torch.long)
    positions = torch.zeros((batch, width), dtype=torch.long)
    valid = torch.zeros((batch, width), dtype=torch.bool)
    sees = torch.zeros((batch, width, cached), dtype=torch.bool)
    sees[:, :, :prompt_columns] = True
    for b, nodes in enumerate(chosen):
        for t, n in enumerate(nodes):
            tokens[b, t], positions[b, t], valid[b, t] = tree.tokens[n], next_pos[b] + tree.depths[n], True
            ancestor = tree.parents[n]
            while ancestor >= 0:
                sees[b, t, column[b][ancestor]] = True
                ancestor = tree.parents[ancestor]
            column[b][n] = cached + t
    return tokens, positions, valid, sees


def _prob(reach: dict[int, float], log_end: dict[int, float], node: int) -> float:
    """P(the number ending at `node`); 0 for a skipped node (its probability is inside the tolerance)."""
    if node not in log_end:
        return 0.0
    return math.exp(reach[node] + log_end[node])
