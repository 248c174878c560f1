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


def search(decoder, beam_size, inputs, lengths, max_len=7, **options):
    """Greedy decoding for ``beam_size=None``, else beam search; the attention history kept by default."""
    model, params = model_and_params(decoder)
    step_fn, memory, state = inference.search_inputs(model, params, inputs, lengths)
    sizes = dict(batch_size=inputs.shape[0], max_len=max_len, src_len=inputs.shape[1])
    options = dict(with_attention=True) | options
    if beam_size is None:
        return decoding.greedy_search(step_fn, memory, state, **sizes, **options)
    return decoding.beam_search(step_fn, memory, state, beam_size=beam_size, **sizes, **options)


@pytest.mark.parametrize("decoder", ["attention", "bottleneck"])
def test_beam_of_one_equals_greedy_on_the_model(decoder):
    greedy, beam = search(decoder, None, *source_batch()), search(decoder, 1, *source_batch())
    np.testing.assert_array_equal(greedy.tokens, beam.tokens)
    np.testing.assert_allclose(greedy.scores, beam.scores, rtol=1e-5)
    np.testing.assert_allclose(greedy.attention, beam.attention, atol=1e-6)


@pytest.mark.parametrize("decoder, beam_size", [("attention", None), ("attention", 3), ("bottleneck", 3)])
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


def test_beam_without_attention_history_finds_the_same_hypotheses_on_the_model():
    inputs, lengths = source_batch()
    with_history = search("attention", 3, inputs, lengths, alpha=0.6, nbest=2)
    without = search("attention", 3, inputs, lengths, alpha=0.6, nbest=2, with_attention=False)
    assert without.attention is None
    for field in ("tokens", "lengths", "scores", "normalized_scores"):
        np.testing.assert_array_equal(getattr(without, field), getattr(with_history, field))


def vocabs():
    return build_vocab("char", ["abcdefgh"]), build_vocab("char", ["xyzuv"])


def test_translate_lines_equals_decoding_each_line_alone_in_input_order():
    """Sorting by length, bucketing and padding rows change no hypothesis or score; N-best in beam order."""
    model, params = model_and_params("attention")
    source_vocab, target_vocab = vocabs()
    eval_config = default.get_config().eval
    lines = ["abcdefgh" * 3, "ab", "", "hgf", "a", "abcdefghabcdefgha"]
    got = inference.translate_lines(model, params, source_vocab, target_vocab, lines, eval_config,
                                    batch_size=2, beam_size=3, nbest=3, max_len=9)
    assert [t.hypotheses for t in got][2] == [""] and got[2].scores == [None]
    for line, t in zip(lines, got):
        if not line:
            continue
        ids = source_vocab.encode(line)
        inputs = np.zeros((1, 32), np.int32)  # one width for every line alone: one compilation
        inputs[0, : len(ids)] = ids
        alone = inference.decode_batch(model, params, {"inputs": inputs, "input_lengths": np.array([len(ids)])},
                                       eval_config, beam_size=3, nbest=3, max_len=9)
        assert t.source_ids == ids and not t.truncated
        assert t.target_ids == [list(alone.tokens[0, k, : alone.lengths[0, k]]) for k in range(3)]
        assert t.hypotheses == [target_vocab.decode(ids) for ids in t.target_ids]
        np.testing.assert_allclose(t.scores, alone.normalized_scores[0], rtol=1e-5, atol=1e-6)


def test_translate_lines_compiles_one_program_per_source_width():
    model, params = model_and_params("attention")
    source_vocab, target_vocab = vocabs()
    eval_config = default.get_config().eval
    lines = ["a" * n for n in range(1, 30)]  # widths 16 and 32
    inference.predict_fn.cache_clear()
    got = inference.translate_lines(model, params, source_vocab, target_vocab, lines, eval_config, batch_size=8,
                                    beam_size=2)
    assert len(got) == len(lines)
    programs = {n: inference.predict_fn(model, 2, inference.max_output_length(n, eval_config))._cache_size()
                for n in (16, 32, 64)}
    assert programs == {16: 1, 32: 1, 64: 0}
    assert [inference.source_width(n, 16) for n in (1, 16, 17, 33, 64, 65)] == [16, 16, 32, 64, 64, 128]


def test_translate_lines_cuts_sources_longer_than_the_limit():
    model, params = model_and_params("attention")
    source_vocab, target_vocab = vocabs()
    t, = inference.translate_lines(model, params, source_vocab, target_vocab, ["abc" * 1000],
                                   default.get_config().eval, batch_size=2, max_source_len=20)
    assert t.truncated and t.input_length == 3000 and t.source_ids == source_vocab.encode("abc" * 7)[:20]


def test_translate_gives_one_output_per_line_including_empty_and_unknown():
    model, params = model_and_params("attention")
    source_vocab, target_vocab = vocabs()
    eval_config = default.get_config().eval
    lines = ["abc", "", "héllo€", "h" * 40]
    outputs = list(inference.translate(model, params, source_vocab, target_vocab, lines, eval_config, batch_size=2,
                                       with_target_ids=True))
    assert len(outputs) == 4
    assert outputs[1][0] == ""  # the empty line is not decoded
    for (hypothesis, attention, ids, target_ids), line in zip(outputs, lines):
        assert len(ids) == len(line) and attention.shape == (len(target_ids), len(line))
        assert hypothesis == target_vocab.decode(target_ids)
    assert all(target_ids for _, _, ids, target_ids in outputs if ids)  # every real line was decoded


def test_decode_batch_limits_each_output_by_its_own_source_length():
    model, params = model_and_params("attention")
    inputs, lengths = source_batch()
    eval_config = default.get_config().eval
    eval_config.max_output_ratio, eval_config.max_output_extra = 1.0, 1
    for beam_size in (1, 2):
        out = inference.decode_batch(model, params, {"inputs": inputs, "input_lengths": lengths}, eval_config,
                                     beam_size=beam_size)
        assert out.tokens.shape == (4, 8 + 1)  # the program's size: the width's limit
        assert np.all(out.lengths <= LENGTHS + 1) and np.any(out.lengths == LENGTHS + 1)
        assert not np.any(np.asarray(out.tokens)[np.arange(9)[None, :] >= (LENGTHS + 1)[:, None]])


def test_evaluation_keeps_real_rows_among_the_first_max_examples():
    index = np.array([3, 0, -1, 7, 5, -1])  # -1: padding rows
    assert inference.kept_rows(index, num_examples=8).tolist() == [True, True, False, True, True, False]
    assert inference.kept_rows(index, num_examples=8, max_examples=4).tolist() == [True, True, False, False, False, False]
    assert inference.kept_rows(index, num_examples=6, max_examples=100).tolist() == [True, True, False, False, True, False]


def test_length_buckets_are_fixed_edges_or_quantiles_counted_in_tokens_or_words():
    config = default.get_config().eval
    config.num_length_buckets = 2
    assert inference.length_buckets([1, 2, 3, 4], config) == [1.0, 3.0, float("inf")]  # quantiles
    config.length_edges = (0, 10, 20)  # Bahdanau's fig. 2: [0, 10), [10, 20), [20, inf)
    assert inference.length_buckets([1, 2, 3, 4], config) == [0.0, 10.0, 20.0, float("inf")]
    source = "En el principio  crió Dios"  # 5 words, whatever the vocabulary makes of them
    assert inference.source_length(source, 9, config) == 9
    config.length_unit = "words"
    assert inference.source_length(source, 9, config) == 5
