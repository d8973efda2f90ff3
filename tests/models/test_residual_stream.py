"""Engine.residual_stream: the activations it collects are transformers' hidden states, layer by layer."""

import pytest
import torch


@pytest.fixture(scope="module")
def four_layer_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval()


def test_residual_stream_equals_the_hidden_states_of_a_plain_forward(four_layer_model):
    from emlab.models.engine import Engine

    tokens = [5, 9, 13, 2, 40, 41, 7]
    with torch.inference_mode():
        hidden = four_layer_model(input_ids=torch.tensor([tokens]), output_hidden_states=True).hidden_states
    stream = Engine(four_layer_model, torch.float32).residual_stream(tokens, (1, 3))
    assert stream.shape == (2, len(tokens), 32)
    torch.testing.assert_close(stream[0], hidden[1][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(stream[1], hidden[3][0], atol=1e-5, rtol=1e-4)
    again = Engine(four_layer_model, torch.bfloat16).residual_stream(tokens, (3,))
    torch.testing.assert_close(again[0], hidden[3][0], atol=0.05, rtol=0.05)  # bf16 weights: rounding only


def test_residual_stream_refuses_layers_it_cannot_give(four_layer_model):
    from emlab.models.engine import Engine

    engine = Engine(four_layer_model, torch.float32)
    with pytest.raises(ValueError, match="layers must lie in 1..3"):
        engine.residual_stream([1, 2, 3], (0, 2))
    with pytest.raises(ValueError, match="layers must lie in 1..3"):
        engine.residual_stream([1, 2, 3], (4,))  # the last layer's output is normalized by transformers
