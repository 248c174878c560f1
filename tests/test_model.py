"""The Seq2Seq model: masking, the bottleneck's isolation, decode_step == teacher forcing, every option."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax.configs.model import get_model_config
from seq2seq_jax.model import ModelConfig, Seq2Seq, shift_right

SRC_VOCAB, TGT_VOCAB = 11, 13
SOURCE_LENGTHS, TARGET_LENGTHS = np.array([7, 3, 1]), np.array([5, 2, 4])


def make_model(**overrides):
    m = get_model_config()
    m.update(dict(embedding_size=6, hidden_size=8, attention_size=5))
    m.update(overrides)
    return Seq2Seq(ModelConfig.from_config(m, source_vocab_size=SRC_VOCAB, target_vocab_size=TGT_VOCAB))


def make_batch(seed=0, src_len=7, tgt_len=5):
    k1, k2 = jax.random.split(jax.random.key(seed))
    inputs = jax.random.randint(k1, (3, src_len), 4, SRC_VOCAB)
    targets = jax.random.randint(k2, (3, tgt_len), 4, TGT_VOCAB)
    inputs = jnp.where(jnp.arange(src_len)[None, :] < SOURCE_LENGTHS[:, None], inputs, 0)
    targets = jnp.where(jnp.arange(tgt_len)[None, :] < TARGET_LENGTHS[:, None], targets, 0)
    return inputs, jnp.asarray(SOURCE_LENGTHS), shift_right(targets)


_VARIABLES = {}


def init(model):
    key = model.config
    if key not in _VARIABLES:
        _VARIABLES[key] = model.init(jax.random.key(0), *make_batch())
    return _VARIABLES[key]


MASKING_VARIANTS = [
    dict(decoder="attention", cell="lstm", bidirectional=True, num_layers=2, input_feeding=True),
    dict(decoder="bottleneck", cell="gru", reverse_source=True, feed_encoder_vector=True),
]


@pytest.mark.parametrize("options", MASKING_VARIANTS, ids=["attention", "bottleneck"])
def test_padding_tokens_change_no_logit_at_real_positions(options):
    model = make_model(**options)
    variables = init(model)
    inputs, lengths, decoder_inputs = make_batch()
    noisy_inputs = jnp.where(jnp.arange(7)[None, :] < lengths[:, None], inputs, 9)
    real_target = np.arange(5)[None, :] < TARGET_LENGTHS[:, None]
    noisy_decoder_inputs = jnp.where(real_target, decoder_inputs, 7)
    logits = model.apply(variables, inputs, lengths, decoder_inputs)
    noisy = model.apply(variables, noisy_inputs, lengths, noisy_decoder_inputs)
    np.testing.assert_array_equal(np.asarray(logits)[real_target], np.asarray(noisy)[real_target])


@pytest.mark.parametrize("options", MASKING_VARIANTS, ids=["attention", "bottleneck"])
def test_padded_batch_equals_each_example_alone(options):
    model = make_model(**options)
    variables = init(model)
    inputs, lengths, decoder_inputs = make_batch()
    logits = model.apply(variables, inputs, lengths, decoder_inputs)
    for b, (s, t) in enumerate(zip(SOURCE_LENGTHS, TARGET_LENGTHS)):
        alone = model.apply(variables, inputs[b:b + 1, :s], lengths[b:b + 1], decoder_inputs[b:b + 1, :t])
        np.testing.assert_allclose(alone[0], logits[b, :t], atol=1e-5)


def test_attention_weights_are_sown_and_masked():
    model = make_model(decoder="attention")
    inputs, lengths, decoder_inputs = make_batch()
    _, state = model.apply(init(model), inputs, lengths, decoder_inputs, mutable=["intermediates"])
    (weights,) = state["intermediates"]["attention_weights"]
    assert weights.shape == (3, 5, 7)
    padding = np.broadcast_to(np.arange(7)[None, None, :] >= SOURCE_LENGTHS[:, None, None], weights.shape)
    np.testing.assert_array_equal(np.asarray(weights)[padding], 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


def _logits_with_annotations_replaced(model, variables):
    inputs, lengths, decoder_inputs = make_batch()
    encoded = model.apply(variables, inputs, lengths, method=Seq2Seq.encode)
    scrambled = encoded.replace(annotations=jax.random.normal(jax.random.key(5), encoded.annotations.shape))
    decode = lambda e: model.apply(variables, e, decoder_inputs, method=Seq2Seq.decode)  # noqa: E731
    return decode(encoded), decode(scrambled)


def test_bottleneck_reads_the_source_only_through_the_final_state():
    model = make_model(decoder="bottleneck", bidirectional=True, feed_encoder_vector=True)
    original, scrambled = _logits_with_annotations_replaced(model, init(model))
    np.testing.assert_array_equal(original, scrambled)


def test_attention_decoder_reads_the_annotations():
    model = make_model(decoder="attention")
    original, scrambled = _logits_with_annotations_replaced(model, init(model))
    assert not np.allclose(original, scrambled)


@pytest.mark.parametrize("options", MASKING_VARIANTS, ids=["attention", "bottleneck"])
def test_decode_step_by_step_equals_teacher_forcing(options):
    model = make_model(**options)
    variables = init(model)
    inputs, lengths, decoder_inputs = make_batch()
    logits = model.apply(variables, inputs, lengths, decoder_inputs)
    encoded = model.apply(variables, inputs, lengths, method=Seq2Seq.encode)
    memory, state = model.apply(variables, encoded, method=Seq2Seq.init_decoding)
    for t in range(decoder_inputs.shape[1]):
        step_logits, state, _ = model.apply(variables, memory, state, decoder_inputs[:, t],
                                            method=Seq2Seq.decode_step)
        np.testing.assert_allclose(step_logits, logits[:, t], atol=1e-5)


def test_reverse_source_equals_encoding_the_reversed_source():
    model, plain = make_model(reverse_source=True, decoder="bottleneck"), make_model(decoder="bottleneck")
    variables = init(model)
    inputs, lengths, _ = make_batch()
    reversed_inputs = jnp.stack([jnp.concatenate([inputs[b, :n][::-1], inputs[b, n:]])
                                 for b, n in enumerate(SOURCE_LENGTHS)])
    a = model.apply(variables, inputs, lengths, method=Seq2Seq.encode)
    b = plain.apply(variables, reversed_inputs, lengths, method=Seq2Seq.encode)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.finals, b.finals)


def test_dropout_is_active_only_in_training():
    model = make_model(dropout=0.5)
    variables = init(model)
    batch = make_batch()
    rngs = lambda seed: {"dropout": jax.random.key(seed)}  # noqa: E731
    eval_logits = model.apply(variables, *batch)
    np.testing.assert_array_equal(eval_logits, model.apply(variables, *batch, rngs=rngs(1)))
    train_1 = model.apply(variables, *batch, train=True, rngs=rngs(1))
    assert not np.allclose(train_1, eval_logits)
    np.testing.assert_array_equal(train_1, model.apply(variables, *batch, train=True, rngs=rngs(1)))


def _assert_remat_changes_no_loss_or_gradient(options, dropout_key=None):
    """The jitted loss and gradients of ``make_model(**options)`` with and without ``remat``, on the same
    parameters; with ``dropout_key``, in training mode with that key."""
    from seq2seq_jax import train

    inputs, lengths, decoder_inputs = make_batch()
    targets = jnp.concatenate([decoder_inputs[:, 1:], decoder_inputs[:, :1]], axis=1)  # any labels will do
    plain, remat = make_model(**options), make_model(**options, remat=True)
    params = jax.jit(plain.init)(jax.random.key(0), inputs, lengths, decoder_inputs)["params"]

    def loss(model, params):
        logits = model.apply({"params": params}, inputs, lengths, decoder_inputs, train=dropout_key is not None,
                             rngs=None if dropout_key is None else {"dropout": dropout_key})
        return train.token_losses(logits, targets, jnp.asarray(TARGET_LENGTHS))["loss_sum"]

    value, grads = jax.jit(jax.value_and_grad(functools.partial(loss, plain)))(params)
    remat_value, remat_grads = jax.jit(jax.value_and_grad(functools.partial(loss, remat)))(params)
    np.testing.assert_allclose(remat_value, value, rtol=1e-6)
    assert jax.tree_util.tree_structure(remat_grads) == jax.tree_util.tree_structure(grads)
    jax.tree_util.tree_map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7), remat_grads, grads)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("decoder", ["attention", "bottleneck"])
def test_remat_gives_the_same_loss_and_gradients(cell, decoder):
    """model.remat recomputes the encoder's and the decoder's per-step activations in the backward pass:
    nothing else changes."""
    _assert_remat_changes_no_loss_or_gradient(dict(cell=cell, decoder=decoder))


def test_remat_redraws_the_same_dropout_masks_inside_the_decoder_step():
    """Two decoder layers: dropout between them is drawn inside the rematerialised step, and recomputed with
    the same key. (An 'rbg' key compiles in half the time of the default; the property is how nn.remat
    threads the key, whatever its implementation.)"""
    _assert_remat_changes_no_loss_or_gradient(dict(cell="gru", decoder="bottleneck", num_layers=2, dropout=0.3),
                                              jax.random.key(3, impl="rbg"))


# Every combination: 3 cells x 2 decoders x 3 scores x bidirectional x reverse x 1-2 layers.
GRID = [dict(cell=c, decoder=d, attention=a, bidirectional=bi, reverse_source=r, num_layers=n)
        for c, d, a, bi, r, n in itertools.product(["rnn", "gru", "lstm"], ["bottleneck", "attention"],
                                                    ["additive", "dot", "general"], [False, True],
                                                    [False, True], [1, 2])]
INCONSISTENT = [o for o in GRID if o["decoder"] == "attention" and o["attention"] == "dot" and o["bidirectional"]]
VALID = [o for o in GRID if o not in INCONSISTENT]


def test_every_valid_combination_initializes_to_the_right_shapes():
    """Traced (not compiled) for all 132 valid combinations: shapes and parameter trees."""
    batch = make_batch()
    for options in VALID:
        model = make_model(**options)
        logits, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), *batch)
        assert logits.shape == (3, 5, TGT_VOCAB) and logits.dtype == jnp.float32, options
        assert ("bridge_l0" in variables["params"]) == (options["decoder"] == "attention" or options["bidirectional"])


def test_dot_attention_with_a_bidirectional_encoder_is_rejected_for_every_cell():
    for options in INCONSISTENT:
        with pytest.raises(ValueError, match=r"model.attention='dot' needs annotations \(size 16"):
            make_model(**options)


# Pairwise covering of the grid, run for real with and without jit: every pair of option values appears.
COVERING = [
    dict(cell="rnn", decoder="bottleneck", attention="additive", bidirectional=False, reverse_source=False, num_layers=1),
    dict(cell="rnn", decoder="attention", attention="general", bidirectional=True, reverse_source=True, num_layers=2),
    dict(cell="rnn", decoder="attention", attention="dot", bidirectional=False, reverse_source=True, num_layers=1),
    dict(cell="gru", decoder="attention", attention="additive", bidirectional=True, reverse_source=False, num_layers=2),
    dict(cell="gru", decoder="bottleneck", attention="general", bidirectional=False, reverse_source=True, num_layers=1),
    dict(cell="gru", decoder="attention", attention="dot", bidirectional=False, reverse_source=False, num_layers=2),
    dict(cell="lstm", decoder="attention", attention="additive", bidirectional=False, reverse_source=True, num_layers=2),
    dict(cell="lstm", decoder="bottleneck", attention="dot", bidirectional=True, reverse_source=False, num_layers=2),
    dict(cell="lstm", decoder="attention", attention="general", bidirectional=False, reverse_source=False, num_layers=1),
    dict(cell="lstm", decoder="bottleneck", attention="additive", bidirectional=True, reverse_source=True, num_layers=1),
]


def test_covering_set_covers_every_pair_of_option_values():
    keys = list(COVERING[0])
    for k1, k2 in itertools.combinations(keys, 2):
        needed = {(o[k1], o[k2]) for o in VALID}
        assert needed <= {(o[k1], o[k2]) for o in COVERING}, (k1, k2)


@pytest.mark.parametrize("options", COVERING, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_covering_combinations_give_finite_logits_with_and_without_jit(options):
    model = make_model(**options)
    batch = make_batch()
    variables = model.init(jax.random.key(0), *batch)
    jitted = jax.jit(model.apply)(variables, *batch)
    with jax.disable_jit():
        eager = model.apply(variables, *batch)
    assert jitted.shape == (3, 5, TGT_VOCAB) and np.all(np.isfinite(jitted))
    np.testing.assert_allclose(jitted, eager, atol=1e-5)


@pytest.mark.parametrize("field, value, message", [
    ("cell", "transformer", r"model.cell='transformer' is not allowed; allowed: \['gru', 'lstm', 'rnn'\]"),
    ("decoder", "pointer", r"model.decoder='pointer' is not allowed; allowed: \['bottleneck', 'attention'\]"),
    ("attention", "cosine", r"model.attention='cosine' is not allowed; allowed: \['additive', 'dot', 'general'\]"),
    ("hidden_size", 0, r"model.hidden_size=0 must be a positive integer"),
    ("num_layers", -1, r"model.num_layers=-1 must be a positive integer"),
    ("dropout", 1.0, r"model.dropout=1.0 must be in \[0, 1\)"),
    ("input_feeding", True, r"model.input_feeding=True needs model.decoder='attention'"),
    ("recurrent_impl", "pallas", r"model.recurrent_impl='pallas' is not allowed; allowed: \['scan', 'fused_backward', 'cudnn'\]"),
])
def test_bad_options_raise_one_clear_error_before_compiling(field, value, message):
    overrides = {field: value}
    if field == "input_feeding":
        overrides["decoder"] = "bottleneck"
    with pytest.raises(ValueError, match=message):
        make_model(**overrides)


def test_the_cudnn_encoder_runs_lstms_only_and_on_gpus_only():
    with pytest.raises(ValueError, match=r"recurrent_impl='cudnn' runs LSTMs only, not model.cell='gru'"):
        make_model(cell="gru", recurrent_impl="cudnn")
    if jax.default_backend() != "gpu":
        with pytest.raises(ValueError, match=r"recurrent_impl='cudnn' needs a CUDA GPU .* set model.recurrent_impl='scan'"):
            make_model(recurrent_impl="cudnn").init(jax.random.key(0), *make_batch())


def test_unknown_model_field_is_named():
    m = get_model_config()
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['hidden'\]"):
        ModelConfig.from_config({**m.to_dict(), "hidden": 3}, source_vocab_size=5, target_vocab_size=5)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_bfloat16_compute_runs_with_float32_parameters_and_logits(cell):
    model = make_model(cell=cell, dtype="bfloat16", decoder="attention", input_feeding=True, num_layers=2)
    batch = make_batch()
    variables = model.init(jax.random.key(0), *batch)
    logits = jax.jit(model.apply)(variables, *batch)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(variables))
    assert logits.dtype == jnp.float32 and np.all(np.isfinite(logits))


# --- The train step's loss ------------------------------------------------------------------------------


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_integer_label_loss_equals_one_hot_cross_entropy_in_value_and_gradient(label_smoothing):
    import optax

    from seq2seq_jax import train

    logits = 3.0 * jax.random.normal(jax.random.key(0), (3, 5, TGT_VOCAB))
    targets = jax.random.randint(jax.random.key(1), (3, 5), 0, TGT_VOCAB)
    lengths = jnp.asarray(TARGET_LENGTHS)

    def one_hot_loss(logits):  # the textbook form: smoothed one-hot labels, full cross-entropy
        labels = optax.smooth_labels(jax.nn.one_hot(targets, TGT_VOCAB), label_smoothing)
        mask = jnp.arange(5)[None, :] < lengths[:, None]
        return jnp.sum(optax.softmax_cross_entropy(logits, labels) * mask)

    def loss(logits):
        return train.token_losses(logits, targets, lengths, label_smoothing)["loss_sum"]

    np.testing.assert_allclose(loss(logits), one_hot_loss(logits), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(loss)(logits), jax.grad(one_hot_loss)(logits), rtol=1e-5, atol=1e-7)
    sums = train.token_losses(logits, targets, lengths, label_smoothing)
    assert float(sums["token_count"]) == TARGET_LENGTHS.sum()
