"""Attention over encoder annotations: additive (Bahdanau) and multiplicative (Luong) scores.

Keys are computed once per source sentence by ``precompute_keys`` (outside the decoder's scan); each
decoder step then does only the query side, the score, the masked softmax and the context. With ``remat``
the additive score's ``tanh(W s + U h)`` ``[batch, src_len, attn]`` is recomputed in the backward pass
(``jax.checkpoint``) instead of being stored for every decoder step: the same numbers, less memory traffic.

  additive  e_ij = v^T tanh(W s_{i-1} + U h_j)     Bahdanau et al. 2014, eq. (6), appendix A.1.2
  dot       e_ij = s^T h_j                          Luong et al. 2015, eq. (8)
  general   e_ij = s^T W_a h_j                      Luong et al. 2015, eq. (8)

  alpha_ij = exp(e_ij) / sum_k exp(e_ik)   over real source positions only (eq. 6)
  c_i      = sum_j alpha_ij h_j            (eq. 5)
"""

from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn
from flax.linen.dtypes import promote_dtype
from flax.linen.recurrent import DenseParams

SCORES = ("additive", "dot", "general")


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis of ``scores [batch, src_len]`` where ``mask`` is True.

    Weights are exactly 0 at masked positions and sum to 1 over the real ones; a row with no real
    position (an empty source) gets all-zero weights.
    """
    weights = jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=-1)
    return jnp.where(mask, weights, 0.0)


def additive_scores(keys, query, v, dtype=None):
    """``v^T tanh(U h_j + W s)``: ``keys [batch, src_len, attn]`` (``U h_j``), ``query [batch, attn]``
    (``W s + b``), ``v [attn, 1]`` -> ``[batch, src_len]``, computed in ``dtype`` as ``nn.Dense`` does."""
    hidden = jnp.tanh(keys + query[:, None, :])  # [batch, src_len, attn]
    hidden, v = promote_dtype(hidden, v, dtype=dtype)
    return jnp.einsum("bsa,ao->bso", hidden, v)[..., 0]


class Attention(nn.Module):
    """Attention with score ``kind`` in ``SCORES``.

    ``attention_size`` is the output size of additive attention's ``W`` and ``U``; ``query_size`` is the
    decoder state's size, which ``general``'s ``W_a`` maps the annotations to.
    """

    kind: str = "additive"
    attention_size: int = 128
    query_size: int = 128
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = None
    remat: bool = False

    def setup(self):
        dense = lambda features, use_bias, name: nn.Dense(  # noqa: E731
            features, use_bias=use_bias, kernel_init=self.kernel_init, dtype=self.dtype, name=name
        )
        if self.kind == "additive":
            self.key_projection = dense(self.attention_size, False, "U")  # U h_j
            self.query_projection = dense(self.attention_size, True, "W")  # W s_{i-1} + b
            self.score_vector = DenseParams(1, use_bias=False, kernel_init=self.kernel_init, name="v")  # v^T
        elif self.kind == "general":
            self.key_projection = dense(self.query_size, False, "W_a")  # W_a h_j
        elif self.kind != "dot":
            raise ValueError(f"model.attention={self.kind!r} is not a known score; allowed: {list(SCORES)}")

    def precompute_keys(self, annotations: jax.Array) -> jax.Array:
        """``annotations [batch, src_len, annotation]`` -> keys ``[batch, src_len, key]``, once a sentence.

        Additive: ``U h_j`` (key = attention_size); general: ``W_a h_j`` (key = query_size), since
        ``s^T W_a h_j = s . (W_a h_j)``; dot: ``h_j`` itself.
        """
        if self.kind == "dot":
            return annotations
        return self.key_projection(annotations)

    def __call__(self, query, keys, values, mask):
        """One decoder step.

        Args:
          query: ``[batch, query]``, the decoder state s_{i-1}.
          keys: ``[batch, src_len, key]`` from ``precompute_keys``.
          values: ``[batch, src_len, annotation]``, the annotations h_j.
          mask: ``[batch, src_len]`` bool, True at real source positions.

        Returns:
          ``(context [batch, annotation], weights [batch, src_len])``.
        """
        if self.kind == "additive":
            v, _ = self.score_vector(keys)  # [attn, 1]
            score = jax.checkpoint(additive_scores, static_argnums=3) if self.remat else additive_scores
            scores = score(keys, self.query_projection(query), v, self.dtype)  # [batch, src_len]
        else:
            scores = jnp.einsum("bk,bsk->bs", query, keys)  # [batch, src_len]
        weights = masked_softmax(scores.astype(jnp.float32), mask)
        context = jnp.einsum("bs,bsd->bd", weights.astype(values.dtype), values)  # [batch, annotation]
        return context, weights
