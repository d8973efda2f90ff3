"""Chat conversations -> (input_ids, labels) with the loss on assistant tokens only.

Why our own: TRL's `assistant_only_loss` needs `{% generation %}` markers in the chat template, which most
templates (SmolLM2's included) lack. We render with the model's own template and mark the characters each
assistant turn occupies (prefix rendering), then map characters to tokens through offsets, which works
for any template that renders prefixes consistently.
"""

from __future__ import annotations

from dataclasses import dataclass

from emlab.data.conversations import Conversation


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # -100 where the loss is off (everything but assistant turns)


def assistant_char_spans(tokenizer, conversation: Conversation) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the [start, end) character span of each assistant turn (its end-of-turn included)."""
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    spans = []
    for i, m in enumerate(conversation):
        if m["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(conversation[:i], tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(conversation[: i + 1], tokenize=False)
        if not text.startswith(before) or not text.startswith(through):
            raise ValueError("chat template does not render prefixes consistently; cannot mask assistant tokens")
        spans.append((len(before), len(through.rstrip("\n"))))
    return text, spans


def tokenize_conversation(tokenizer, conversation: Conversation, max_length: int) -> TokenizedExample | None:
    """Token ids and assistant-only labels, cut at `max_length`; None when no assistant token survives the cut."""
    text, spans = assistant_char_spans(tokenizer, conversation)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"][:max_length], enc["offset_mapping"][:max_length]
    labels = [
        tok if any(s <= start and end <= e and end > start for s, e in spans) else -100
        for tok, (start, end) in zip(ids, offsets)
    ]
    if all(label == -100 for label in labels):
        return None
    return TokenizedExample(ids, labels)
