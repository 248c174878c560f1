"""Decoding the real model: beam 1 is greedy, batching and padding change nothing, raw text decodes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax import decoding, inference
from seq2seq_jax.configs import default
from seq2seq_jax.data.vocab import build_vocab
from seq2seq_jax.model import ModelConfig, Seq2Seq

LENGTHS = np.array([6, 1, 4, 0])


@functools.cache
def model_and_params(decoder):
    m = default.get_config().model
    m.update(dict(decoder=decoder, cell="lstm", embedding_size=8, hidden_size=16, attention_size=8,
                  bidirectional=decoder == "attention"))
    model = Seq2Seq(ModelConfig.from_config(m, source_vocab_size=12, target_vocab_size=9))
    inputs, lengths = source_batch()
    params = model.init(jax.random.key(1), inputs, lengths, jnp.ones((4, 3), jnp.int32))["params"]
    # Scale the output layer so the untrained model is confident and varied, not uniform.
    params = jax.tree_util.tree_map(lambda p: 3.0 * p, params)
    return model, params


def source_batch(width=8):
    tokens = jax.random.randint(jax.random.key(0), (4, width), 4, 12)
    return jnp.where(jnp.arange(width)[None, :] < LENGTHS[:, None], tokens, 0), jnp.asarray(LENGTHS)


def search(decoder, beam_size, inputs, lengths, max_len=7):
    model, params = model_and_params(decoder)
    step_fn, state = inference.search_inputs(model, params, inputs, lengths)
    sizes = dict(batch_size=inputs.shape[0], max_len=max_len, src_len=inputs.shape[1])
    if beam_size == 0:
        return decoding.greedy_search(step_fn, state, **sizes)
    return decoding.beam_search(step_fn, state, beam_size=beam_size, **sizes)


@pytest.mark.parametrize("decoder", ["attention", "bottleneck"])
def test_beam_of_one_equals_greedy_on_the_model(decoder):
    greedy, beam = search(decoder, 0, *source_batch()), search(decoder, 1, *source_batch())
    np.testing.assert_array_equal(greedy.tokens, beam.tokens)
    np.testing.assert_allclose(greedy.scores, beam.scores, rtol=1e-5)
    np.testing.assert_allclose(greedy.attention, beam.attention, atol=1e-6)


@pytest.mark.parametrize("decoder, beam_size", [("attention", 0), ("attention", 3), ("bottleneck", 3)])
def test_batched_decoding_equals_one_example_at_a_time(decoder, beam_size):
    inputs, lengths = source_batch()
    batched = search(decoder, beam_size, inputs, lengths)
    for b, n in enumerate(LENGTHS):
        alone = search(decoder, beam_size, inputs[b:b + 1, :max(n, 1)], lengths[b:b + 1])
        np.testing.assert_array_equal(alone.tokens[0], batched.tokens[b])
        np.testing.assert_allclose(alone.scores[0], batched.scores[b], rtol=1e-5)
        np.testing.assert_allclose(alone.attention[0, :, :n], batched.attention[b, :, :n], atol=1e-6)


def test_returned_attention_is_a_distribution_over_the_real_source():
    out = search("attention", 3, *source_batch())
    for b, n in enumerate(LENGTHS):
        steps = int(out.lengths[b])
        np.testing.assert_array_equal(out.attention[b, :, n:], 0.0)
        expected = 1.0 if n else 0.0
        np.testing.assert_allclose(out.attention[b, :steps].sum(-1), expected, rtol=1e-5)


def test_translate_gives_one_output_per_line_including_empty_and_unknown():
    model, params = model_and_params("attention")
    source_vocab = build_vocab("char", ["abcdefgh"])
    target_vocab = build_vocab("char", ["xyzuv"])
    eval_config = default.get_config().eval
    lines = ["abc", "", "héllo€", "h" * 40]
    outputs = list(inference.translate(model, params, source_vocab, target_vocab, lines, eval_config, batch_size=2))
    assert len(outputs) == 4
    for (hypothesis, attention, ids), line in zip(outputs, lines):
        assert isinstance(hypothesis, str) and len(ids) == len(line)
        assert attention.shape[1] == len(line)
