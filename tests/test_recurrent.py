"""The scanned, masked stack equals a plain Python loop over Flax's own cell, example by example."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax import cells
from seq2seq_jax import recurrent
from seq2seq_jax.recurrent import StackedRNN, reverse_sequences

BATCH, TIME, FEATURES, HIDDEN = 3, 6, 5, 4
LENGTHS = np.array([6, 2, 0])


def _inputs(seed=0):
    return jax.random.normal(jax.random.key(seed), (BATCH, TIME, FEATURES))


def _loop(cell, params, xs):
    """Reference: run Flax's ``cell`` step by step over the unpadded ``xs [time, features]`` of one example."""
    carry = cell.initialize_carry(jax.random.key(0), (1, xs.shape[-1]))
    outputs = []
    for x in xs:
        carry, y = cell.apply({"params": params}, carry, x[None])
        outputs.append(y[0])
    return carry, jnp.stack(outputs) if outputs else jnp.zeros((0, HIDDEN))


def _reference(stack, params, x, lengths):
    """Per example, per layer, per direction: a Python loop over exactly the real positions."""
    outputs = np.zeros((BATCH, TIME, HIDDEN * (2 if stack.bidirectional else 1)), np.float32)
    finals = []
    for b, length in enumerate(lengths):
        layer_input, example_finals = x[b, :length], []
        for layer in range(stack.num_layers):
            cell = cells.CELLS[stack.cell](HIDDEN)  # flax.linen's own cell
            fwd_final, fwd = _loop(cell, params[f"l{layer}_fwd"], layer_input)
            if stack.bidirectional:
                bwd_final, bwd = _loop(cell, params[f"l{layer}_bwd"], layer_input[::-1])
                layer_input = jnp.concatenate([fwd, bwd[::-1]], axis=-1)
                example_finals.append((fwd_final, bwd_final))
            else:
                layer_input = fwd
                example_finals.append(fwd_final)
        outputs[b, :length] = layer_input
        finals.append(example_finals)
    return outputs, finals


def _run(stack, x, lengths):
    variables = stack.init(jax.random.key(3), x, lengths)
    return variables["params"], stack.apply(variables, x, lengths)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [LENGTHS, np.full(BATCH, TIME)], ids=["lengths", "full"])
def test_scanned_stack_equals_python_loop(cell, bidirectional, lengths):
    stack = StackedRNN(cell=cell, hidden_size=HIDDEN, num_layers=2, bidirectional=bidirectional)
    x = _inputs()
    params, (outputs, finals) = _run(stack, x, jnp.asarray(lengths))
    expected_outputs, expected_finals = _reference(stack, params, x, lengths)
    np.testing.assert_allclose(outputs, expected_outputs, atol=1e-5)  # zeros at padding included
    for b in range(BATCH):
        for layer in range(2):
            actual = jax.tree_util.tree_map(lambda leaf: leaf[b], finals[layer])
            expected = jax.tree_util.tree_map(lambda leaf: leaf[0], expected_finals[b][layer])
            jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, atol=1e-5), actual, expected)


def test_padding_values_change_nothing():
    stack = StackedRNN(cell="lstm", hidden_size=HIDDEN, num_layers=2, bidirectional=True)
    x = _inputs()
    real = np.arange(TIME)[None, :, None] < LENGTHS[:, None, None]
    noisy = jnp.where(real, x, 100.0 * _inputs(seed=9))
    _, (outputs, finals) = _run(stack, x, jnp.asarray(LENGTHS))
    _, (noisy_outputs, noisy_finals) = _run(stack, noisy, jnp.asarray(LENGTHS))
    np.testing.assert_array_equal(outputs, noisy_outputs)
    jax.tree_util.tree_map(np.testing.assert_array_equal, finals, noisy_finals)


def test_empty_sequence_keeps_the_initial_carry_and_outputs_zeros():
    stack = StackedRNN(cell="gru", hidden_size=HIDDEN)
    _, (outputs, finals) = _run(stack, _inputs(), jnp.asarray(LENGTHS))
    np.testing.assert_array_equal(outputs[2], 0.0)
    np.testing.assert_array_equal(finals[0][2], 0.0)


def test_reverse_sequences_reverses_only_the_real_part():
    x = jnp.array([[1, 2, 3, 0], [4, 5, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(
        reverse_sequences(x, jnp.array([3, 2, 0])), [[3, 2, 1, 0], [5, 4, 0, 0], [0, 0, 0, 0]]
    )


# --- The cuDNN path (model.recurrent_impl='cudnn') --------------------------------------------------------


ON_GPU = jax.default_backend() == "gpu"
# On a GPU the kernel itself, in full float32 (TF32 off): its sums run in another order than the scan's.
KERNELS = [("reference", recurrent.cudnn_reference, 1e-5),
           pytest.param("cudnn", recurrent.jax_rnn.lstm, 1e-4,
                        marks=pytest.mark.skipif(not ON_GPU, reason="cuDNN's kernel needs a CUDA GPU"))]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kernel,lstm,atol", KERNELS)
def test_cudnn_layout_equals_the_scan_in_values_and_gradients(kernel, lstm, atol, bidirectional):
    """Without a GPU, JAX's reference of cuDNN's LSTM (`lstm_ref`, on its flat weight layout) stands in for
    the kernel, so what is checked is our packing of the weights and the reading of its outputs and final
    carries; on a GPU, the kernel itself is checked too."""
    del kernel  # the test's id
    lengths = jnp.asarray([6, 2, 1])  # cuDNN needs at least one token
    kwargs = dict(cell="lstm", hidden_size=HIDDEN, num_layers=2, bidirectional=bidirectional, forget_bias=1.0)
    scan = StackedRNN(**kwargs)
    cudnn = StackedRNN(**kwargs, impl="cudnn", cudnn_lstm=lstm)
    x = _inputs()
    params = scan.init(jax.random.key(3), x, lengths)["params"]
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # non-zero biases, so each one's place counts
    assert jax.tree_util.tree_structure(cudnn.init(jax.random.key(3), x, lengths)["params"]) == \
        jax.tree_util.tree_structure(params)  # the same parameters: checkpoints move between the two

    def loss(stack, params):
        outputs, finals = stack.apply({"params": params}, x, lengths)
        return jnp.sum(outputs ** 2) + sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree_util.tree_leaves(finals))

    with jax.default_matmul_precision("float32"):
        expected, actual = scan.apply({"params": params}, x, lengths), cudnn.apply({"params": params}, x, lengths)
        grads = [jax.grad(loss, argnums=1)(stack, params) for stack in (scan, cudnn)]
    jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, atol=atol), actual, expected)
    jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, atol=atol), grads[1], grads[0])


def test_cudnn_path_refuses_other_cells_and_names_the_field():
    with pytest.raises(ValueError, match=r"recurrent_impl='cudnn' runs LSTMs only, not model.cell='gru'"):
        StackedRNN(cell="gru", hidden_size=HIDDEN, impl="cudnn").init(jax.random.key(0), _inputs(), jnp.asarray(LENGTHS))


# --- The written-out backward pass (model.recurrent_impl='fused_backward') ---------------------------------
# The forward pass is masked_scan's, step for step. The backward pass sums each weight gradient over time in
# one matmul over time * batch rows instead of a running sum of one matmul a step: the same terms added in
# another order, so in float32 the two differ by rounding. The tolerance, 1e-5 absolute and relative, is
# ~100 ulps of these O(1) values (float32's epsilon is 1.2e-7); a gradient that missed a step, a row's mask
# or the carry's path through one gate would be off by O(0.01) or more.
FUSED_TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def _random_problem(cell, seed=0):
    """Random projections (non-zero biases), inputs, initial carry and cotangents of outputs and final carry."""
    keys = iter(jax.random.split(jax.random.key(seed), 12))

    def normal(shape):
        return 0.5 * jax.random.normal(next(keys), shape)

    gates = HIDDEN * len(cells.GATES[cell][0])
    p = cells.Projections(
        input_kernel=normal((FEATURES, gates)), input_bias=None if cell == "lstm" else normal((gates,)),
        recurrent_kernel=normal((HIDDEN, gates)), recurrent_bias=None if cell == "rnn" else normal((gates,)),
        dtype=None)
    carry = jax.tree_util.tree_map(lambda z: normal(z.shape), cells.zero_carry(cell, (BATCH,), HIDDEN))
    d_final = jax.tree_util.tree_map(lambda z: normal(z.shape), carry)
    return p, carry, normal((BATCH, TIME, FEATURES)), (d_final, normal((BATCH, TIME, HIDDEN)))


@pytest.mark.parametrize("remat", [False, True], ids=["stored", "remat"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fused_backward_scan_equals_the_scan_and_its_autodiff(cell, remat):
    """Outputs and final carry, then the pullback of a random cotangent: the gradients of every projection,
    of the inputs and of the initial carry, with LENGTHS' full-length, partial and length-0 rows."""
    p, carry, x, cotangent = _random_problem(cell)
    is_real = recurrent.time_mask(jnp.asarray(LENGTHS), TIME)

    @functools.partial(jax.jit, static_argnums=0)
    def outputs_and_gradients(scan, p, carry, x, cotangent):
        outputs, pullback = jax.vjp(lambda p, carry, x: scan(cell, p, carry, x, is_real, remat), p, carry, x)
        return outputs, pullback(cotangent)

    expected, actual = (outputs_and_gradients(scan, p, carry, x, cotangent)
                        for scan in (recurrent.masked_scan, recurrent.fused_backward_scan))
    jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, **FUSED_TOLERANCE), actual, expected)
    np.testing.assert_array_equal(actual[0][1][2], 0.0)  # the length-0 row outputs zeros


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_backward_stack_equals_the_scan_bidirectional_and_stacked(cell):
    kwargs = dict(cell=cell, hidden_size=HIDDEN, num_layers=2, bidirectional=True, forget_bias=1.0)
    scan, fused = StackedRNN(**kwargs), StackedRNN(**kwargs, impl="fused_backward")
    x, lengths = _inputs(), jnp.asarray(LENGTHS)
    params = scan.init(jax.random.key(3), x, lengths)["params"]
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # non-zero biases
    assert jax.tree_util.tree_structure(fused.init(jax.random.key(3), x, lengths)["params"]) == \
        jax.tree_util.tree_structure(params)  # the same parameters: a run may switch impl on resume

    def loss(stack, params, x):
        outputs, finals = stack.apply({"params": params}, x, lengths)
        return jnp.sum(jnp.sin(outputs)) + sum(jnp.sum(jnp.cos(leaf)) for leaf in jax.tree_util.tree_leaves(finals))

    expected, actual = (jax.jit(jax.value_and_grad(functools.partial(loss, stack), argnums=(0, 1)))(params, x)
                        for stack in (scan, fused))
    jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, **FUSED_TOLERANCE), actual, expected)


def test_fused_backward_model_has_the_scan_s_loss_and_gradients():
    """Through the whole model: a bidirectional LSTM encoder under attention, the training loss."""
    from seq2seq_jax import train
    from seq2seq_jax.configs.model import get_model_config
    from seq2seq_jax.model import ModelConfig, Seq2Seq, shift_right

    def model(recurrent_impl):
        m = get_model_config()
        m.update(dict(cell="lstm", decoder="attention", bidirectional=True, embedding_size=6, hidden_size=8,
                      attention_size=5, recurrent_impl=recurrent_impl))
        return Seq2Seq(ModelConfig.from_config(m, source_vocab_size=11, target_vocab_size=13))

    keys = jax.random.split(jax.random.key(0), 2)
    inputs, lengths = jax.random.randint(keys[0], (3, 7), 4, 11), jnp.asarray([7, 3, 1])
    targets, target_lengths = jax.random.randint(keys[1], (3, 5), 4, 13), jnp.asarray([5, 2, 4])
    params = model("scan").init(jax.random.key(1), inputs, lengths, shift_right(targets))["params"]

    def loss(recurrent_impl, params):
        logits = model(recurrent_impl).apply({"params": params}, inputs, lengths, shift_right(targets))
        sums = train.token_losses(logits, targets, target_lengths)
        return sums["loss_sum"] / sums["token_count"]

    expected, actual = (jax.jit(jax.value_and_grad(functools.partial(loss, impl)))(params)
                        for impl in ("scan", "fused_backward"))
    jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, **FUSED_TOLERANCE), actual, expected)
