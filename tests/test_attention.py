"""Attention: exact masking, and scores that match a hand computation of the papers' equations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax.attention import Attention, masked_softmax

BATCH, SRC, ANNOTATION, QUERY = 3, 5, 6, 4
MASK = np.arange(SRC)[None, :] < np.array([5, 2, 0])[:, None]


def _attend(kind, query_size=QUERY):
    annotations = jax.random.normal(jax.random.key(0), (BATCH, SRC, ANNOTATION))
    query = jax.random.normal(jax.random.key(1), (BATCH, query_size))
    module = Attention(kind=kind, attention_size=7, query_size=query_size)

    def run(module):
        keys = module.precompute_keys(annotations)
        return module(query, keys, annotations, jnp.asarray(MASK))

    variables = nn.init(run, module)(jax.random.key(2))
    context, weights = nn.apply(run, module)(variables)
    return variables.get("params", {}), np.asarray(annotations), np.asarray(query), context, weights


@pytest.mark.parametrize("kind", ["additive", "general"])
def test_weights_are_zero_on_padding_and_sum_to_one(kind):
    _, _, _, _, weights = _attend(kind)
    assert np.all(np.asarray(weights)[~MASK] == 0.0)
    np.testing.assert_allclose(np.asarray(weights).sum(-1), [1.0, 1.0, 0.0], rtol=1e-6)


def test_empty_source_gives_zero_weights_and_context_without_nans():
    _, _, _, context, weights = _attend("additive")
    assert np.all(np.isfinite(context)) and np.all(np.isfinite(weights))
    np.testing.assert_array_equal(weights[2], 0.0)
    np.testing.assert_array_equal(context[2], 0.0)


def _softmax_context(scores, annotations):
    out_w, out_c = np.zeros((BATCH, SRC)), np.zeros((BATCH, ANNOTATION))
    for b in range(2):  # the rows with real positions
        e = scores[b][MASK[b]]
        alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        out_w[b, MASK[b]] = alpha
        out_c[b] = alpha @ annotations[b][MASK[b]]
    return out_w, out_c


def test_additive_score_matches_bahdanau_eq_6_by_hand():
    params, h, s, context, weights = _attend("additive")
    W, b_W = np.asarray(params["W"]["kernel"]), np.asarray(params["W"]["bias"])
    U, v = np.asarray(params["U"]["kernel"]), np.asarray(params["v"]["kernel"])[:, 0]
    # e_ij = v^T tanh(W s_{i-1} + U h_j)
    scores = np.tanh((s @ W + b_W)[:, None, :] + h @ U) @ v
    expected_w, expected_c = _softmax_context(scores, h)
    np.testing.assert_allclose(weights, expected_w, atol=1e-6)
    np.testing.assert_allclose(context, expected_c, atol=1e-5)


def test_general_and_dot_scores_match_luong_eq_8_by_hand():
    params, h, s, _, weights = _attend("general")
    scores = np.einsum("bq,bsq->bs", s, h @ np.asarray(params["W_a"]["kernel"]))  # s^T W_a h_j
    np.testing.assert_allclose(weights, _softmax_context(scores, h)[0], atol=1e-6)
    _, h, s, _, weights = _attend("dot", query_size=ANNOTATION)
    np.testing.assert_allclose(weights, _softmax_context(np.einsum("bq,bsq->bs", s, h), h)[0], atol=1e-6)


def test_recomputing_the_additive_tanh_gives_the_same_outputs_and_gradients():
    annotations = jax.random.normal(jax.random.key(0), (BATCH, SRC, ANNOTATION))
    query = jax.random.normal(jax.random.key(1), (BATCH, QUERY))

    def loss(remat, params, query, annotations):
        module = Attention(attention_size=7, query_size=QUERY, remat=remat)

        def run(module):
            context, weights = module(query, module.precompute_keys(annotations), annotations, jnp.asarray(MASK))
            return jnp.sum(jnp.sin(context)) + jnp.sum(jnp.cos(weights))

        return nn.apply(run, module)({"params": params})

    params = _attend("additive")[0]
    plain = jax.value_and_grad(lambda *a: loss(False, *a), argnums=(0, 1, 2))(params, query, annotations)
    remat = jax.jit(jax.value_and_grad(lambda *a: loss(True, *a), argnums=(0, 1, 2)))(params, query, annotations)
    jax.tree_util.tree_map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6), remat, plain)


def test_masked_softmax_ignores_the_values_at_padding():
    scores = jax.random.normal(jax.random.key(4), (BATCH, SRC))
    noisy = jnp.where(MASK, scores, 1e9)
    np.testing.assert_array_equal(masked_softmax(scores, MASK), masked_softmax(noisy, MASK))


def test_unknown_score_names_the_field():
    with pytest.raises(ValueError, match=r"model.attention='cosine'.*additive.*dot.*general"):
        Attention(kind="cosine").init(jax.random.key(0), jnp.zeros((1, 4)), jnp.zeros((1, 2, 4)),
                                      jnp.zeros((1, 2, 4)), jnp.ones((1, 2), bool))
