"""The exact 0..100 judge over an OpenAI-compatible API when the server's tokenizer writes numbers digit by digit.

The papers' judge reads one token: right for OpenAI's tokenizers (every number up to 100 is one token), wrong
for the open-weight ones a vLLM or llama.cpp server runs (Qwen, Mistral, Llama 2, SmolLM split "85" into "8",
"5"), where the first token alone turns "85" into 8. `classify` tells the two apart from the first-token top
logprobs; `walk` then computes the distribution the local judge computes (`number_tree.py`), P("85") =
P(8) · P(5 | 8) · P(number ends | 85), from requests that continue the reply after a prefilled prefix.

Detection (`classify`, applied to the first-token top-20 lists of a batch of judge prompts, until it decides):
- some token holds two digits in a row ("85", " 100", "10.")   -> "tokens": numbers are single tokens; read them
  as before. No digit-splitting tokenizer can produce such a token, so this is proof;
- else, some list puts at least SPLIT_MIN_DIGIT_MASS (half) of its probability on single-digit tokens -> "digits":
  the judge answers with numbers, yet none above 9 is a token. A one-token-per-number judge that puts half its
  mass on single digits also shows "10", "20", "100" ... among its 20 likeliest tokens;
- else undecided: the batch is read as before (its lists hold no multi-digit token and under half their mass on
  digits, so the judge answered those prompts with few numbers either way), and the next batch decides.
The model keeps the first decision for the rest of the process.

The tree (`walk`): nodes are the strings "0".."100"; reaching a node has probability `reach` (the product of
digit probabilities down its path); each response gives, at every position it generated, the top-20 tokens,
hence P(next digit | node) (tokens that are exactly one digit) and P(number ends | node) = 1 - the mass on
tokens that start with a digit, as in the local judge. A request continues the reply from the prefix of one node
and, generating greedily up to depth 3, also reads the nodes along its own path (a sure judge's "85" comes with
the first request after the prompt). Nodes are requested likeliest first, until the reach left unread is at
most `tolerance` (TREE_TOLERANCE = 1e-3) or `max_requests` (MAX_TREE_REQUESTS = 40) continuations were made.

What is left out, as a bound on sum_k |P_returned(k) - P_exact(k)|:
- the reach of the nodes never read: at most `tolerance` unless the request cap stopped the walk first
  (a judge spread over more than ~40 numbers); every number of a subtree lies inside its root's reach;
- top-20 truncation: a digit outside a node's 20 likeliest tokens counts as probability 0, and a digit-starting
  token outside them counts as "ends"; each adds at most the mass outside that node's top 20 (on the order of
  the 20th token's probability times the vocabulary's tail; negligible where a judge has made up its mind).
The mean score moves by at most 100 * (that bound) / (number mass): under 0.4 points at the 0.25 mass cut.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Sequence

TOKENS, DIGITS = "tokens", "digits"
SPLIT_MIN_DIGIT_MASS = 0.5
TREE_TOLERANCE = 1e-3  # reach left unread per judgment
MAX_TREE_REQUESTS = 40  # continuation requests per judgment (the full tree has 101 nodes)
TREE_DEPTH = 3  # "100" is the longest number; its node needs the position after its third digit

TREE_NODES = frozenset(str(k) for k in range(101))
_MULTI_DIGIT = re.compile(r"[0-9]{2}")
_ONE_DIGIT = re.compile(r"\s*[0-9]\s*")

TopList = Sequence[tuple[str, float]]  # (token, logprob), likeliest first
Position = tuple[str, TopList]  # the token a response generated at a position, and that position's top list


def classify(top_lists: Sequence[TopList]) -> str | None:
    """TOKENS, DIGITS or None (undecided) for a batch of first-token top lists (see the module docstring)."""
    if any(_MULTI_DIGIT.search(token) for top in top_lists for token, _ in top):
        return TOKENS
    for top in top_lists:
        if sum(math.exp(lp) for token, lp in top if _ONE_DIGIT.fullmatch(token)) >= SPLIT_MIN_DIGIT_MASS:
            return DIGITS
    return None


def next_digits(top: TopList) -> dict[str, float]:
    """P(next token is exactly the digit d), d in "0".."9", from one position's top list."""
    probs: dict[str, float] = {}
    for token, lp in top:
        if len(token) == 1 and token.isascii() and token.isdigit():
            probs[token] = probs.get(token, 0.0) + math.exp(lp)
    return probs


def end_probability(top: TopList) -> float:
    """P(the number stops here): 1 - the mass on tokens whose text starts with a digit (unseen tokens count as ends)."""
    continues = sum(math.exp(lp) for token, lp in top if token[:1].isdigit())
    return min(1.0, max(0.0, 1.0 - continues))


def walk(
    root: Sequence[Position],
    continue_from: Callable[[str], Sequence[Position]],
    tolerance: float = TREE_TOLERANCE,
    max_requests: int = MAX_TREE_REQUESTS,
) -> dict[int, float]:
    """P(reply is "k") for the k in 0..100 that hold any, from the positions of the first response (`root`, at least
    the first) and `continue_from(prefix)`, which returns the positions of a response continuing after `prefix`."""
    reach: dict[str, float] = {"": 1.0}
    read: dict[str, TopList] = {}

    def learn(node: str, positions: Sequence[Position]) -> None:
        for token, top in positions:
            if node not in read:
                read[node] = top
                for digit, p in next_digits(top).items():
                    if node + digit in TREE_NODES and p > 0:
                        reach[node + digit] = reach[node] * p
            node += token
            if node not in TREE_NODES or node not in reach:  # the reply left the tree (a word, "05", "101")
                return

    learn("", root)
    requests = 0
    while requests < max_requests:
        unread = [n for n in reach if n not in read]
        if not unread or sum(reach[n] for n in unread) <= tolerance:
            break
        node = max(unread, key=lambda n: (reach[n], -len(n), n))
        learn(node, continue_from(node))
        requests += 1
        if node not in read:  # the response carried no position at all: nothing more to learn here
            read[node] = []
    probs = {int(n): reach[n] * end_probability(top) for n, top in read.items() if n and top}
    return {k: p for k, p in sorted(probs.items()) if p > 0}
