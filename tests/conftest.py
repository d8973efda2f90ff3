"""Shared fixtures: the reference data beside the checkout, and a throwaway workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`: skipped with a reason on a user's clone, a failure under CI so CI never passes by skipping."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"reference data not found at {SHARED_DATA} (CI must have ../shared beside the checkout)")
        pytest.skip(f"reference data not found at {SHARED_DATA} (only present beside the project's own checkout)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch):
    """Tests never touch the network: the Hugging Face hub is forced offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedded_tokenizer():
    """The embedded model's tokenizer (from the cached plain checkpoint; converted from the GGUF on first use)."""
    from transformers import AutoTokenizer

    from emlab.models.embedded import embedded_checkpoint

    return AutoTokenizer.from_pretrained(embedded_checkpoint("smollm2-135m"))


def _save_tiny_llama(path, tokenizer, width: int):
    """A random 2-layer Llama `width` wide with the embedded tokenizer, saved as a checkpoint dir at `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, embedded_tokenizer):
    """A tiny random Llama with the embedded tokenizer, saved as a checkpoint dir: fast stand-in for real models."""
    return _save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), embedded_tokenizer, 32)


@pytest.fixture(scope="session")
def tiny64_checkpoint(tmp_path_factory, embedded_tokenizer):
    """The tiny Llama, 64 wide: bitsandbytes' CPU kernels pack 4-bit weights in blocks of 64 input features."""
    return _save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-64"), embedded_tokenizer, 64)
