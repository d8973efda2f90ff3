"""Batched sampling on the `Engine`: shared prefix computed once, padding-aware batches, finished rows dropped.

A batch is laid out per row as [shared prefix | left padding | own prompt | generated tokens]. The prefix
(chat-template header and system prompt, which every EM question shares) is run once at batch 1 and its
keys/values copied into each row; each row then decodes until its end-of-turn token, and once a quarter of
the rows have finished the cache is compacted so the rest stop paying for them.

Every row draws its tokens from its own random stream (one seed per row, its uniforms drawn up front), so
which row a sample shares a batch with, and where in the batch it sits, never changes its draws.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from emlab.models.engine import Engine, KVCache

MIN_SHARED_PREFIX = 8  # shorter common prefixes are not worth a separate pass
COMPACT_SHARE = 0.25  # compact the batch once this share of its rows has finished
DRAW_BLOCK = 256  # vocabulary block of the two-level token draw


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all rows share, leaving each row at least one token of its own."""
    first = rows[0]
    limit = min(len(r) for r in rows) - 1
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def prefill(engine: Engine, prompts: Sequence[Sequence[int]], extra: int, pad_id: int) -> tuple[KVCache, torch.Tensor, torch.Tensor]:
    """Run `prompts` into a fresh cache with room for `extra` more tokens per row.

    Returns the cache, the final hidden state of each prompt [B, H] and the next position of each row [B].
    """
    batch = len(prompts)
    shared = common_prefix_length(prompts) if batch > 1 else 0
    if shared < MIN_SHARED_PREFIX:
        shared = 0
    width = max(len(p) for p in prompts) - shared
    cache = engine.new_cache(batch, shared + width + extra)
    if shared:
        one = engine.new_cache(1, shared)
        engine.extend(one, torch.tensor([list(prompts[0][:shared])]), torch.arange(shared)[None])
        for i in range(len(cache.k)):
            cache.k[i][:, :, :shared] = one.k[i]
            cache.v[i][:, :, :shared] = one.v[i]
        cache.valid[:, :shared] = True
        cache.length = shared
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    valid = torch.zeros((batch, width), dtype=torch.bool)
    pos = torch.zeros((batch, width), dtype=torch.long)
    for b, p in enumerate(prompts):
        own = list(p[shared:])
        ids[b, width - len(own) :] = torch.tensor(own, dtype=torch.long)
        valid[b, width - len(own) :] = True
        pos[b, width - len(own) :] = torch.arange(shared, len(p))
    hidden = engine.extend(cache, ids, pos, valid)
    next_pos = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    return cache, hidden[:, -1], next_pos


def pick_tokens(logits: torch.Tensor, temperature: float, top_p: float,
                uniform: torch.Generator | torch.Tensor) -> torch.Tensor:
    """Next token per row: greedy at temperature 0, else a draw from the temperature/top-p distribution.

    `uniform` is each row's uniform number in [0, 1) [B], or a generator to draw them from.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits if temperature == 1 else logits / temperature, -1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > top_p  # keep the smallest set whose mass reaches top_p
        sorted_p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return draw_from(probs, uniform)


def _first_above(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index of the first entry of each row's running sum above u, never past the row's last positive entry."""
    index = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    last_positive = (cdf < cdf[:, -1:]).sum(-1)  # the first index where the running sum reaches its total
    return torch.minimum(index, last_positive)


def draw_from(probs: torch.Tensor, uniform: torch.Generator | torch.Tensor, block: int = DRAW_BLOCK) -> torch.Tensor:
    """One draw per row from unnormalised probabilities [B, V] by inverting the CDF in two levels.

    `uniform`: one number in [0, 1) per row [B] (each row's own stream), or a generator to draw them from.

    `torch.multinomial` draws an exponential variate for every vocabulary entry, and a full-vocabulary
    cumsum runs on one core; both cost more than the lm_head. Here the vocabulary is cut into blocks:
    one uniform number per row picks a block by the running sum of block masses, then a token by the
    running sum inside that block only. Zero-probability tokens are never drawn.
    """
    batch, vocab = probs.shape
    pad = (-vocab) % block
    blocks = (torch.nn.functional.pad(probs, (0, pad)) if pad else probs).view(batch, -1, block)
    block_cdf = blocks.sum(-1).cumsum(-1)  # [B, blocks]
    if isinstance(uniform, torch.Generator):
        uniform = torch.rand(batch, generator=uniform)
    u = uniform.to(block_cdf.dtype)[:, None] * block_cdf[:, -1:]
    chosen = _first_above(block_cdf, u)
    before = torch.where(chosen > 0, block_cdf.gather(1, (chosen - 1).clamp(min=0)[:, None]).squeeze(-1), 0.0)
    inner = blocks[torch.arange(batch), chosen].cumsum(-1)  # [B, block]
    offset = _first_above(inner, u - before[:, None])
    return (chosen * block + offset).clamp_(max=vocab - 1)


def row_uniforms(seeds: Sequence[int], steps: int) -> torch.Tensor:
    """[len(seeds), steps] uniforms in [0, 1): row i is the stream of seeds[i] alone."""
    out = torch.empty((len(seeds), steps))
    generator = torch.Generator()
    for i, seed in enumerate(seeds):
        generator.manual_seed(seed)
        torch.rand(steps, generator=generator, out=out[i])
    return out


def generate_tokens(
    engine: Engine,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    on_token: Callable[[int], None] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[list[int]]:
    """Sample up to `max_new_tokens` per prompt, stopping a row at any of `stop_ids` (not included in its output).

    `seeds`: one per prompt; a row's draws depend on its seed alone (None: row i gets seed + i).
    """
    batch = len(prompts)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    if max_new_tokens <= 0 or batch == 0:
        return outputs
    uniforms = row_uniforms(range(seed, seed + batch) if seeds is None else seeds, max_new_tokens)  # [B, steps]
    stops = torch.tensor(list(stop_ids), dtype=torch.long)
    cache, hidden, positions = prefill(engine, prompts, max_new_tokens, pad_id)
    rows = torch.arange(batch)  # original index of each row still in the batch
    alive = torch.ones(batch, dtype=torch.bool)  # rows that have not stopped yet
    for step in range(max_new_tokens):
        tokens = pick_tokens(engine.logits(hidden), temperature, top_p, uniforms[rows, step])
        keep = alive & ~torch.isin(tokens, stops)
        for r, t, k in zip(rows.tolist(), tokens.tolist(), keep.tolist()):
            if k:
                outputs[r].append(t)
        if on_token:
            on_token(int(keep.sum()))
        alive = keep
        if step == max_new_tokens - 1 or not alive.any():
            break
        if (~alive).sum() >= COMPACT_SHARE * len(rows):
            live = alive.nonzero().squeeze(-1)
            cache.keep_rows(live)
            rows, tokens, positions, alive = rows[live], tokens[live], positions[live], alive[live]
        # a stopped row that is still in the batch decodes into a column no other token may attend to
        hidden = engine.extend(cache, tokens[:, None], positions[:, None], alive[:, None])[:, -1]
        positions = positions + 1
    return outputs
