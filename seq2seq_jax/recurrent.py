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

``impl='fused_backward'`` computes the same forward pass (the same step, the same masking) but its
backward pass is written out (``jax.custom_vjp``), as fused RNN kernels do it. ``jax.grad`` of the scan
does, every step, four matmuls: the carry's gradient ``dA_t W_h^T``, the input's ``dA_t W_i^T``, and the
weights' ``h_{t-1}^T dA_t`` and ``x_t^T dA_t``, each added into a running ``[in | hidden, gates * hidden]``
sum. Here the reverse scan does only the first, the one the recurrence needs, and keeps each step's
pre-activation gradients ``dA_t``; after it ``dW_h``, ``dW_i`` and ``dX`` are one matmul each over
``time * batch`` rows, the biases' gradients one sum. Every cell (LSTM, GRU, RNN); ``remat`` stores only the
carries and recomputes the projections in the reverse scan. Measured on a shared 2-core AMD EPYC (AVX2,
load 5 to 7) at batch 64, time 32, input 128, hidden 256, one layer alone: the LSTM's forward + backward
took a median 86 ms against the scan's 116 (forward alone 28 ms both); the GRU's was slower (119 against
100: it keeps both projections a step, and both their gradients). In the whole LSTM train step, where the
decoder's scans are untouched, the gain was within that load's noise (bottleneck -4 % and -9 %, attention
+3 % and -2 %, paired runs). Projecting the inputs before the scan here too made no clear difference
(about -4 %, within noise), so the forward pass stays ``masked_scan``'s step for step. Not the default.

``impl='cudnn'`` runs each LSTM layer (both directions at once) through ``jax.experimental.rnn.lstm``, the
cuDNN kernel, on the same parameters: cuDNN's ``W_ih`` is our input kernel transposed, its ``W_hh`` the
recurrent one, ``b_ih = 0`` and ``b_hh`` our recurrent bias (forget bias included). It has no CPU lowering;
on CPU the tests check its weight layout through JAX's own reference of the kernel (``lstm_ref``) against
the scan, values and gradients. Not yet run on a GPU; sources must be at least one token long.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn
from flax.linen.recurrent import flip_sequences
from jax.experimental import rnn as jax_rnn

from seq2seq_jax import cells

IMPLS = ("scan", "fused_backward", "cudnn")


def check_impl(impl: str, cell: str) -> None:
    """One ValueError, naming ``model.recurrent_impl``, for an unknown ``impl`` or cuDNN with a non-LSTM cell."""
    if impl not in IMPLS:
        raise ValueError(f"model.recurrent_impl={impl!r} is not allowed; allowed: {list(IMPLS)}")
    if impl == "cudnn" and cell != "lstm":
        raise ValueError(f"model.recurrent_impl='cudnn' runs LSTMs only, not model.cell={cell!r}")


def _masked(cell: str, carry, projected_inputs, projected_hidden, real):
    """``cells.pointwise`` where ``real [batch]``; elsewhere the carry is held and the output is zero."""
    new_carry, y = cells.pointwise(cell, carry, projected_inputs, projected_hidden)
    keep = real[:, None]  # [batch, 1]
    new_carry = jax.tree_util.tree_map(lambda new, old: jnp.where(keep, new, old), new_carry, carry)
    return new_carry, jnp.where(keep, y, jnp.zeros_like(y))


def masked_scan(cell: str, p: cells.Projections, carry, x, is_real, remat: bool = False):
    """``x [batch, time, in]``, ``is_real [batch, time]`` -> ``(final_carry, outputs [batch, time, hidden])``;
    rows past their length keep their carry and output zeros. ``remat``: the backward pass recomputes each
    step's activations (gates, nonlinearities) from its carry instead of storing them for every step."""

    def body(carry, xs):
        x_t, real = xs  # [batch, in], [batch]
        return _masked(cell, carry, p.inputs(x_t), p.recurrent(cells.hidden_of(carry)), real)

    if remat:  # saves only the body's inputs (the carry; x_t is stored anyway); prevent_cse is moot in a scan
        body = jax.checkpoint(body, prevent_cse=False)
    # Time-major for the scan: [time, batch, ...].
    final, outputs = jax.lax.scan(body, carry, (jnp.swapaxes(x, 0, 1), jnp.swapaxes(is_real, 0, 1)))
    return final, jnp.swapaxes(outputs, 0, 1)


def fused_backward_scan(cell: str, p: cells.Projections, carry, x, is_real, remat: bool = False):
    """``masked_scan``'s function (the same forward, step for step) with a backward pass that takes every
    weight gradient as one matmul after the reverse scan instead of one small matmul a step; see the module
    docstring. ``remat``: store only the carries; the reverse scan recomputes each step's projections."""
    final, outputs = _fused((cell, p.dtype, remat),
                            (p.input_kernel, p.input_bias, p.recurrent_kernel, p.recurrent_bias), carry,
                            jnp.swapaxes(x, 0, 1), jnp.swapaxes(is_real, 0, 1))
    return final, jnp.swapaxes(outputs, 0, 1)


def _projections(static, weights, carry, x_t):
    """A step's input and recurrent projections, as ``cells.step`` computes them."""
    _, dtype, _ = static
    input_kernel, input_bias, recurrent_kernel, recurrent_bias = weights
    return (cells.dense(x_t, input_kernel, input_bias, dtype),
            cells.dense(cells.hidden_of(carry), recurrent_kernel, recurrent_bias, dtype))


def _reads_the_sum(cell: str) -> bool:
    """LSTM and RNN read only the sum of the two projections, the pre-activation (GRU's reset gate multiplies
    the recurrent one): the backward pass stores that one array, and its gradient is both projections'."""
    return cell != "gru"


def _pre_activations(cell, projected_inputs, projected_hidden) -> tuple:
    """What the backward pass keeps of a step's projections: the pre-activation, or both for the GRU."""
    # Float addition is commutative: this is the very sum cells.pointwise forms, and `0 + pre` is `pre`.
    return (projected_hidden + projected_inputs,) if _reads_the_sum(cell) else (projected_inputs, projected_hidden)


def _masked_from(cell, real, carry, *pre_activations):
    """``_masked`` of a step from ``_pre_activations``."""
    if _reads_the_sum(cell):
        return _masked(cell, carry, pre_activations[0], 0.0, real)
    return _masked(cell, carry, *pre_activations, real)


def _forward(static, weights, carry, xs, real, residuals: bool):
    """The masked scan over time-major ``xs [time, batch, in]``: ``(final, ys)``, and with ``residuals`` what
    the backward pass reads, per step: the carry it started from and, unless remat, its pre-activations."""
    cell, _, remat = static

    def body(carry, step_inputs):
        x_t, real_t = step_inputs  # [batch, in], [batch]
        projected = _projections(static, weights, carry, x_t)
        new_carry, y = _masked(cell, carry, *projected, real_t)
        saved = (carry,) if remat else (carry, *_pre_activations(cell, *projected))
        return new_carry, (y, saved if residuals else ())

    final, (ys, saved) = jax.lax.scan(body, carry, (xs, real))
    return (final, ys), saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused(static, weights, carry, xs, real):
    """``static = (cell, dtype, remat)``, ``weights`` the four arrays of ``cells.Projections`` (biases may be
    None) -> ``(final, ys [time, batch, hidden])``."""
    return _forward(static, weights, carry, xs, real, residuals=False)[0]


def _fused_fwd(static, weights, carry, xs, real):
    out, saved = _forward(static, weights, carry, xs, real, residuals=True)
    return out, (weights, xs, real, saved)


def _fused_bwd(static, residuals, cotangents):
    """One reverse scan computes, a step at a time, only what the recurrence needs: the gradients of the
    step's input and recurrent projections, ``dA^x_t`` and ``dA^h_t`` (the cell's elementwise derivative, by
    ``jax.vjp`` of ``cells.pointwise``), and the carry's, whose hidden part takes ``dA^h_t W_h^T``. The
    weights' gradients sum over steps, so after the scan each is one matmul over ``time * batch`` rows:
    ``dW_h = H_prev^T dA^h``, ``dW_i = X^T dA^x``, ``dX = dA^x W_i^T``; the biases' are sums."""
    cell, dtype, remat = static
    weights, xs, real, saved = residuals
    input_kernel, input_bias, recurrent_kernel, recurrent_bias = weights
    d_final, d_ys = cotangents
    # What the forward's dense() multiplied, in the same compute dtype.
    xs_c, input_kernel_c = cells.promote(dtype, xs, input_kernel, input_bias)[:2]
    recurrent_kernel_c = cells.promote(dtype, recurrent_kernel, recurrent_bias)[0]

    def body(d_carry, step):
        x_t, real_t, saved_t, d_y = step
        carry, *pre_activations = saved_t
        if remat:
            pre_activations = _pre_activations(cell, *_projections(static, weights, carry, x_t))
        _, pullback = jax.vjp(functools.partial(_masked_from, cell, real_t), carry, *pre_activations)
        d_prev, *d_pre = pullback((d_carry, d_y))
        d_hidden = d_pre[-1]  # dA^h_t (for the LSTM and RNN, dA^x_t too)
        d_h = jnp.dot(d_hidden, recurrent_kernel_c.T).astype(cells.hidden_of(d_prev).dtype)
        d_prev = (d_prev[0], d_prev[1] + d_h) if cell == "lstm" else d_prev + d_h
        return d_prev, tuple(d_pre)

    d_carry, d_pre = jax.lax.scan(body, d_final, (xs, real, saved, d_ys), reverse=True)
    d_inputs, d_hidden = d_pre[0], d_pre[-1]  # [time, batch, gates * hidden] each
    h_prev = cells.promote(dtype, cells.hidden_of(saved[0]), recurrent_kernel)[0]  # [time, batch, hidden]

    def weight_gradient(a, d, like):  # sum over time and batch of a_t^T d_t, accumulated in like's dtype
        return jnp.dot(a.reshape(-1, a.shape[-1]).T, d.reshape(-1, d.shape[-1]), preferred_element_type=like.dtype)

    def bias_gradient(d, bias):
        return None if bias is None else jnp.sum(d, axis=(0, 1), dtype=bias.dtype)

    d_weights = (weight_gradient(xs_c, d_inputs, input_kernel), bias_gradient(d_inputs, input_bias),
                 weight_gradient(h_prev, d_hidden, recurrent_kernel), bias_gradient(d_hidden, recurrent_bias))
    d_xs = jnp.dot(d_inputs, input_kernel_c.T).astype(xs.dtype)
    return d_weights, d_carry, d_xs, None


_fused.defvjp(_fused_fwd, _fused_bwd)


class Direction(nn.Module):
    """The parameters of one direction of one layer: Flax's ``cell``'s, named as the cell names them."""

    cell: str
    hidden_size: int
    init_scheme: str = "orthogonal"
    init_scale: float = 0.08
    forget_bias: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, in_features: int) -> cells.Projections:
        return cells.declare_projections(self.cell, self.hidden_size, in_features, forget_bias=self.forget_bias,
                                         dtype=self.dtype, **cells.initializers(self.init_scheme, self.init_scale))


def cudnn_weights(directions: list[cells.Projections]) -> jax.Array:
    """LSTM projections of one layer (forward, then backward) as cuDNN's flat weight vector: every
    direction's ``W_ih [4H, in]``, ``W_hh [4H, H]``, then every direction's ``b_ih``, ``b_hh`` (the layout of
    ``jax.experimental.rnn``; the gate order i, f, g, o is Flax's and cuDNN's alike)."""
    kernels = [w for p in directions for w in (p.input_kernel.T, p.recurrent_kernel.T)]
    biases = [b for p in directions for b in (jnp.zeros_like(p.recurrent_bias), p.recurrent_bias)]
    return jnp.concatenate([x.ravel() for x in kernels + biases])


def cudnn_lstm(directions: list[cells.Projections], x, lengths, lstm=jax_rnn.lstm):
    """One LSTM layer through cuDNN: ``x [batch, time, in]`` -> ``(finals, outputs [batch, time, hidden *
    directions])``, ``finals`` one ``(c, h)`` per direction; ``lstm`` is ``jax.experimental.rnn.lstm`` or a
    function of its signature (the tests pass JAX's reference)."""
    hidden = directions[0].recurrent_kernel.shape[0]
    zeros = jnp.zeros((len(directions), x.shape[0], hidden), jnp.float32)
    y, h_n, c_n = lstm(x.astype(jnp.float32), zeros, zeros, cudnn_weights(directions), lengths.astype(jnp.int32),
                       input_size=x.shape[-1], hidden_size=hidden, num_layers=1, dropout=0.0,
                       bidirectional=len(directions) == 2)
    return [(c_n[d], h_n[d]) for d in range(len(directions))], y


def cudnn_reference(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size, num_layers, dropout,
                    bidirectional):
    """``jax.experimental.rnn.lstm``'s signature computed by JAX's reference of the kernel (any backend)."""
    unpacked = jax_rnn.unpack_lstm_weights(weights, input_size, hidden_size, num_layers, bidirectional)
    return jax_rnn.lstm_ref(x, h_0, c_0, *unpacked, seq_lengths, input_size, hidden_size, num_layers, dropout,
                            bidirectional)


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
    impl: str = "scan"
    remat: bool = False  # impl='scan' and 'fused_backward': see `masked_scan`
    cudnn_lstm: Any = jax_rnn.lstm  # impl='cudnn' only; the tests pass `cudnn_reference`

    def _direction(self, name, x, lengths, is_real, reverse):
        if reverse:
            x = reverse_sequences(x, lengths)
        p = self._params(name, x.shape[-1])
        scan = fused_backward_scan if self.impl == "fused_backward" else masked_scan
        final, outputs = scan(self.cell, p, cells.zero_carry(self.cell, x.shape[:1], self.hidden_size), x, is_real,
                              self.remat)
        if reverse:
            outputs = reverse_sequences(outputs, lengths)
        return outputs, final

    def _params(self, name, in_features):
        return Direction(self.cell, self.hidden_size, init_scheme=self.init_scheme, init_scale=self.init_scale,
                         forget_bias=self.forget_bias, dtype=self.dtype, name=name)(in_features)

    @nn.compact
    def __call__(self, x: jax.Array, lengths: jax.Array, *, train: bool = False):
        check_impl(self.impl, self.cell)
        is_real = time_mask(lengths, x.shape[1])  # [batch, time]
        finals = []
        for layer in range(self.num_layers):
            if layer > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            if self.impl == "cudnn":
                names = [f"l{layer}_fwd"] + [f"l{layer}_bwd"] * self.bidirectional
                directions, outputs = cudnn_lstm([self._params(n, x.shape[-1]) for n in names], x, lengths,
                                                 self.cudnn_lstm)
                x = outputs.astype(x.dtype)  # cuDNN computes in float32
                finals.append(tuple(directions) if self.bidirectional else directions[0])
                continue
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
