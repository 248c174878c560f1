"""Cells by name: Flax's own cells, the papers' initialisation schemes, the LSTM forget bias."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax import cells


def _init(cell, batch=2, features_in=3):
    x = jax.random.normal(jax.random.key(1), (batch, features_in))
    carry = cell.initialize_carry(jax.random.key(0), x.shape)
    return cell.init(jax.random.key(2), carry, x), carry, x


@pytest.mark.parametrize("dtype", [None, jnp.bfloat16])
@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_every_cell_has_flax_parameters_and_computes_flax_outputs(name, dtype):
    ours, flax_cell = cells.make_cell(name, 4, dtype=dtype), cells.CELLS[name](4, dtype=dtype)
    variables, carry, x = _init(ours)
    flax_variables, _, _ = _init(flax_cell)
    jax.tree_util.tree_map(np.testing.assert_array_equal, variables, flax_variables)  # names, shapes, values
    carry = jax.tree_util.tree_map(lambda c: c + 0.3, carry)
    actual, expected = ours.apply(variables, carry, x), flax_cell.apply(variables, carry, x)
    assert jax.tree_util.tree_map(lambda a: a.dtype, actual) == jax.tree_util.tree_map(lambda e: e.dtype, expected)
    tolerance = 1e-6 if dtype is None else 1e-2
    close = lambda a, e: np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance)  # noqa: E731
    jax.tree_util.tree_map(close, actual, expected)

    def loss(cell, params, carry, x):  # every output and carry leaf, weighted
        new_carry, y = cell.apply({"params": params}, carry, x)
        return sum(jnp.sum(jnp.sin(leaf.astype(jnp.float32))) for leaf in jax.tree_util.tree_leaves((new_carry, y)))

    grads = [jax.grad(functools.partial(loss, cell), argnums=(0, 1, 2))(variables["params"], carry, x)
             for cell in (ours, flax_cell)]
    jax.tree_util.tree_map(close, *grads)


def test_uniform_init_draws_every_parameter_from_the_interval():
    variables, _, _ = _init(cells.make_cell("lstm", 16, init="uniform", init_scale=0.08))
    leaves = jax.tree_util.tree_leaves(variables)
    assert all(float(jnp.abs(leaf).max()) <= 0.08 for leaf in leaves)
    assert all(float(jnp.abs(leaf).max()) > 0.04 for leaf in leaves)  # biases too, not zeros


def test_orthogonal_init_makes_recurrent_kernels_orthogonal():
    variables, _, _ = _init(cells.make_cell("rnn", 8, init="orthogonal"))
    u = np.asarray(variables["params"]["h"]["kernel"])
    np.testing.assert_allclose(u.T @ u, np.eye(8), atol=1e-5)


def test_forget_bias_is_added_to_the_forget_gate_pre_activation():
    cell = cells.make_cell("lstm", 4, forget_bias=1.0)
    variables, carry, x = _init(cell)
    carry = jax.tree_util.tree_map(lambda c: c + 0.5, carry)  # f multiplies c: make it matter
    shifted = jax.tree_util.tree_map(lambda p: p, variables["params"])
    shifted["hf"] = dict(shifted["hf"], bias=shifted["hf"]["bias"] + 1.0)
    expected = nn.OptimizedLSTMCell(4).apply({"params": shifted}, carry, x)
    unshifted = nn.OptimizedLSTMCell(4).apply(variables, carry, x)
    actual = cell.apply(variables, carry, x)
    np.testing.assert_allclose(actual[1], expected[1], rtol=1e-6)
    assert not np.allclose(actual[1], unshifted[1])


def test_forget_bias_is_not_stored_in_the_initial_parameters():
    """The constant is added where the gate reads its bias, once: the parameter starts at its init (the old
    map_variables wrapper also stored it at init, so a forget bias of 1 acted as 2)."""
    variables, _, _ = _init(cells.make_cell("lstm", 4, forget_bias=1.0, init="uniform", init_scale=0.08))
    assert np.all(np.abs(np.asarray(variables["params"]["hf"]["bias"])) <= 0.08)


def test_unknown_cell_or_scheme_names_the_field_and_the_choices():
    with pytest.raises(ValueError, match=r"model.cell='tanh'.*\['gru', 'lstm', 'rnn'\]"):
        cells.make_cell("tanh", 4)
    with pytest.raises(ValueError, match=r"model.init='xavier'.*uniform.*orthogonal"):
        cells.make_cell("rnn", 4, init="xavier")
