"""Stacked, optionally bidirectional recurrence over time with exact masking by length.

Shapes follow Flax-style docstrings: ``[batch, time, features]``, batch-major throughout.

Each direction of each layer is one ``jax.lax.scan`` over time of ``cells.step`` (Flax's cell equations on
the cell's own parameters, one input and one recurrent matmul a step). Projecting the inputs of all steps
in one matmul before the scan was measured too (issue 9's lever): on a 2-core CPU at batch 64, hidden 256
it cost more CPU time than the per-step matmul, so it is not done.

Past a sequence's length the carry is held (``where(t < length, new, old)``) and the output is zero, so the
final carry is the carry at each sequence's own last real position (the initial carry for a length-0
sequence) and padding never reaches a real position. ``nn.RNN`` with ``seq_lengths`` instead stacks every
carry over time to pick the last one, which costs ``time x carry`` memory and picks the wrong carry for
length-0 rows; the per-step select is as cheap and exact for both.
"""

from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn
from flax.linen.recurrent import flip_sequences

from seq2seq_jax import cells


def masked_scan(cell: str, p: cells.Projections, carry, x, is_real):
    """``x [batch, time, in]``, ``is_real [batch, time]`` -> ``(final_carry, outputs [batch, time, hidden])``;
    rows past their length keep their carry and output zeros."""

    def body(carry, xs):
        x_t, real = xs  # [batch, in], [batch]
        new_carry, y = cells.step(cell, p, carry, p.inputs(x_t))
        keep = real[:, None]  # [batch, 1]
        new_carry = jax.tree_util.tree_map(lambda new, old: jnp.where(keep, new, old), new_carry, carry)
        return new_carry, jnp.where(keep, y, jnp.zeros_like(y))

    # Time-major for the scan: [time, batch, ...].
    final, outputs = jax.lax.scan(body, carry, (jnp.swapaxes(x, 0, 1), jnp.swapaxes(is_real, 0, 1)))
    return final, jnp.swapaxes(outputs, 0, 1)


class Direction(nn.Module):
    """One direction of one layer, its parameters those of Flax's ``cell`` (named as the cell would be)."""

    cell: str
    hidden_size: int
    init_scheme: str = "orthogonal"
    init_scale: float = 0.08
    forget_bias: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x, is_real):
        """``x [batch, time, in]``, ``is_real [batch, time]`` -> ``(final_carry, outputs [batch, time, hidden])``."""
        p = cells.declare_projections(self.cell, self.hidden_size, x.shape[-1], forget_bias=self.forget_bias,
                                      dtype=self.dtype, **cells.initializers(self.init_scheme, self.init_scale))
        carry = cells.zero_carry(self.cell, x.shape[:1], self.hidden_size)
        return masked_scan(self.cell, p, carry, x, is_real)


def time_mask(lengths: jax.Array, max_len: int) -> jax.Array:
    """``[batch, max_len]`` bool: True at real positions ``t < length``."""
    return jnp.arange(max_len)[None, :] < lengths[:, None]


def reverse_sequences(x: jax.Array, lengths: jax.Array) -> jax.Array:
    """Reverses the real part of each row of ``x [batch, time, ...]``, leaving padding at the end."""
    return flip_sequences(x, lengths, num_batch_dims=1, time_major=False)


class StackedRNN(nn.Module):
    """``num_layers`` recurrent layers, dropout between them, optionally bidirectional.

    Returns ``(outputs [batch, time, hidden * directions], finals)`` where ``finals[l]`` is layer ``l``'s
    final carry, or the pair ``(forward, backward)`` of final carries when bidirectional. The backward
    direction reads each sequence from its last real token to its first, so its final carry is
    ``h_1^<-`` of Bahdanau et al. (2014, sec. 3.2).
    """

    cell: str
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    dropout_rate: float = 0.0
    init_scheme: str = "orthogonal"
    init_scale: float = 0.08
    forget_bias: float = 0.0
    dtype: Any = None

    def _direction(self, name, x, lengths, is_real, reverse):
        if reverse:
            x = reverse_sequences(x, lengths)
        final, outputs = Direction(self.cell, self.hidden_size, init_scheme=self.init_scheme,
                                   init_scale=self.init_scale, forget_bias=self.forget_bias, dtype=self.dtype,
                                   name=name)(x, is_real)
        if reverse:
            outputs = reverse_sequences(outputs, lengths)
        return outputs, final

    @nn.compact
    def __call__(self, x: jax.Array, lengths: jax.Array, *, train: bool = False):
        is_real = time_mask(lengths, x.shape[1])  # [batch, time]
        finals = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            forward, forward_final = self._direction(f"l{layer}_fwd", x, lengths, is_real, reverse=False)
            if self.bidirectional:
                backward, backward_final = self._direction(
                    f"l{layer}_bwd", x, lengths, is_real, reverse=True
                )
                x = jnp.concatenate([forward, backward], axis=-1)  # [batch, time, 2 * hidden]
                finals.append((forward_final, backward_final))
            else:
                x = forward
                finals.append(forward_final)
        return x, tuple(finals)
