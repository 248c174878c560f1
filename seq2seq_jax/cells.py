"""Recurrent cells by name, with the initialisation schemes of the papers.

Each name computes a flax.linen cell (``CELLS``: ``SimpleCell``, ``GRUCell``, ``OptimizedLSTMCell``), with
the same parameters (names, shapes, initialisers) and equations, through ``FusedCell``: its projections
concatenated gate by gate, one input and one recurrent matmul a step (Flax's ``GRUCell`` does six).
Tested equal to Flax's cells, values and gradients. Cells keep Flax's cell contract:
``initialize_carry(rng, input_shape)`` and ``__call__(carry, x) -> (carry, y)``; ``declare_projections``,
``step`` and its elementwise part ``pointwise`` serve the scans of ``recurrent.py``.

Initialisation schemes (``model.init``):
  * ``'uniform'``: every weight and bias drawn from U(-s, s), s = ``model.init_scale`` (Sutskever et al.
    2014, sec. 3.4 use s = 0.08).
  * ``'orthogonal'``: LeCun-normal input kernels, orthogonal recurrent kernels (Saxe et al. 2014), zero
    biases: Flax's defaults.
The LSTM's forget gate gets a constant ``forget_bias`` added to its pre-activation, as TensorFlow's
``BasicLSTMCell`` does (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1.0). The stored parameter
stays the learnt offset, so a forget bias of 0 is exactly Flax's LSTM.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import flax.linen as nn
from flax.linen.dtypes import promote_dtype
from flax.linen.recurrent import DenseParams

CELLS = {"rnn": nn.SimpleCell, "gru": nn.GRUCell, "lstm": nn.OptimizedLSTMCell}  # what each name computes
INIT_SCHEMES = ("uniform", "orthogonal")
# Per cell, as in Flax: gate names (parameters i<gate>, h<gate>), whether the input projections carry the
# bias, and which recurrent projections carry one.
GATES = {
    "rnn": (("",), True, (False,)),
    "gru": (("r", "z", "n"), True, (False, False, True)),
    "lstm": (("i", "f", "g", "o"), False, (True, True, True, True)),
}


def symmetric_uniform(scale: float) -> nn.initializers.Initializer:
    """U(-scale, scale) for any shape: Sutskever et al. (2014) sec. 3.4."""

    def init(key, shape, dtype=jax.numpy.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def initializers(scheme: str, scale: float) -> dict:
    """Keyword arguments ``kernel_init``, ``recurrent_kernel_init``, ``bias_init`` for a scheme."""
    if scheme == "uniform":
        uniform = symmetric_uniform(scale)
        return dict(kernel_init=uniform, recurrent_kernel_init=uniform, bias_init=uniform)
    if scheme == "orthogonal":
        return dict(
            kernel_init=nn.initializers.lecun_normal(),
            recurrent_kernel_init=nn.initializers.orthogonal(),
            bias_init=nn.initializers.zeros_init(),
        )
    raise ValueError(f"model.init={scheme!r} is not a known scheme; allowed: {list(INIT_SCHEMES)}")


def promote(dtype, *arrays):
    """``arrays`` in the dtype ``dense`` computes in: ``dtype``, or their common one if None (Nones stay)."""
    return promote_dtype(*arrays, dtype=dtype)


def dense(x, kernel, bias, dtype):
    """``x @ kernel (+ bias)`` over the last axis, computed in ``dtype`` as ``nn.Dense`` does."""
    x, kernel, bias = promote(dtype, x, kernel, bias)
    y = jnp.dot(x, kernel)  # [..., in] x [in, gates * features]
    return y if bias is None else y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))


class Projections(NamedTuple):
    """A cell's kernels and biases concatenated gate by gate (``[in | features, gates * features]``)."""

    input_kernel: jax.Array
    input_bias: Any  # None for the LSTM (its biases are on the recurrent side)
    recurrent_kernel: jax.Array
    recurrent_bias: Any  # zeros for the gates without one (adding 0 is exact); None if no gate has one
    dtype: Any

    def inputs(self, x):
        """``x [..., in]`` -> the input projections ``[..., gates * features]``."""
        return dense(x, self.input_kernel, self.input_bias, self.dtype)

    def recurrent(self, h):
        return dense(h, self.recurrent_kernel, self.recurrent_bias, self.dtype)


def declare_projections(cell: str, features: int, in_features: int, *, kernel_init, recurrent_kernel_init,
                        bias_init, forget_bias=0.0, dtype=None, param_dtype=jnp.float32) -> Projections:
    """Declares Flax's parameters of ``cell`` in the calling module (call it from a compact method)."""
    gates, input_bias, recurrent_biases = GATES[cell]
    shape_in, shape_h = jax.ShapeDtypeStruct((in_features,), param_dtype), jax.ShapeDtypeStruct((features,), param_dtype)
    ik, ib, hk, hb = [], [], [], []
    for gate, recurrent_bias in zip(gates, recurrent_biases):
        kernel, bias = DenseParams(features, use_bias=input_bias, param_dtype=param_dtype, kernel_init=kernel_init,
                                   bias_init=bias_init, name=f"i{gate}")(shape_in)
        ik.append(kernel)
        ib.append(bias)
        kernel, bias = DenseParams(features, use_bias=recurrent_bias, param_dtype=param_dtype,
                                   kernel_init=recurrent_kernel_init, bias_init=bias_init, name=f"h{gate}")(shape_h)
        hk.append(kernel)
        if gate == "f" and forget_bias:  # the LSTM's: TensorFlow's constant, added as the parameter is read
            bias = bias + forget_bias
        hb.append(bias if bias is not None else jnp.zeros((features,), param_dtype))
    return Projections(
        input_kernel=jnp.concatenate(ik, axis=-1), input_bias=jnp.concatenate(ib) if input_bias else None,
        recurrent_kernel=jnp.concatenate(hk, axis=-1), recurrent_bias=jnp.concatenate(hb) if any(recurrent_biases)
        else None, dtype=dtype)


def step(cell: str, p: Projections, carry, projected_inputs):
    """One step of Flax's ``cell`` from its input projection ``p.inputs(x)``: ``(carry', y)``."""
    return pointwise(cell, carry, projected_inputs, p.recurrent(hidden_of(carry)))


def pointwise(cell: str, carry, projected_inputs, projected_hidden):
    """The elementwise rest of a step, given both projections (``p.inputs(x)``, ``p.recurrent(h)``):
    ``(carry', y)``. Flax's equations:

      * LSTM (``OptimizedLSTMCell``; Hochreiter & Schmidhuber 1997, with a forget gate): ``i, f, g, o`` =
        the four quarters of ``W_i x + W_h h + b``; ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``,
        ``h' = sigmoid(o) tanh(c')``.
      * RNN (``SimpleCell``): ``h' = tanh(W_i x + b + W_h h)``.
      * GRU (``GRUCell``; Cho et al. 2014): ``r = sigmoid(W_ir x + b_ir + W_hr h)``, ``z`` alike,
        ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``, ``h' = (1 - z) n + z h``: the reset gate multiplies
        the recurrent projection of ``n``, so that projection is needed gate by gate, not only summed.
    """
    if cell == "lstm":  # OptimizedLSTMCell
        c, h = carry
        i, f, g, o = jnp.split(projected_hidden + projected_inputs, 4, axis=-1)
        new_c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
        new_h = nn.sigmoid(o) * jnp.tanh(new_c)
        return (new_c, new_h), new_h
    h = carry
    if cell == "rnn":  # SimpleCell
        new_h = jnp.tanh(projected_inputs + projected_hidden)
        return new_h, new_h
    xr, xz, xn = jnp.split(projected_inputs, 3, axis=-1)  # GRUCell
    hr, hz, hn = jnp.split(projected_hidden, 3, axis=-1)
    r, z = nn.sigmoid(xr + hr), nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    new_h = (1.0 - z) * n + z * h
    return new_h, new_h


def zero_carry(cell: str, batch_shape: tuple, features: int, dtype=jnp.float32):
    """The initial carry of every Flax cell: zeros, ``(c, h)`` for an LSTM."""
    zeros = jnp.zeros(batch_shape + (features,), dtype)
    return (zeros, zeros) if cell == "lstm" else zeros


class FusedCell(nn.RNNCellBase):
    """Flax's cell ``cell`` (see the module docstring): same parameters, one input and one recurrent matmul."""

    cell: str
    features: int
    kernel_init: Any = nn.initializers.lecun_normal()
    recurrent_kernel_init: Any = nn.initializers.orthogonal()
    bias_init: Any = nn.initializers.zeros_init()
    forget_bias: float = 0.0
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def _projections(self, in_features: int) -> Projections:
        return declare_projections(
            self.cell, self.features, in_features, kernel_init=self.kernel_init,
            recurrent_kernel_init=self.recurrent_kernel_init, bias_init=self.bias_init,
            forget_bias=self.forget_bias, dtype=self.dtype, param_dtype=self.param_dtype)

    @nn.compact
    def __call__(self, carry, inputs):
        p = self._projections(inputs.shape[-1])
        return step(self.cell, p, carry, p.inputs(inputs))

    @nn.nowrap
    def initialize_carry(self, rng, input_shape):
        del rng
        return zero_carry(self.cell, tuple(input_shape[:-1]), self.features, self.param_dtype)

    @property
    def num_feature_axes(self) -> int:
        return 1


def make_cell(
    cell: str,
    features: int,
    *,
    init: str = "orthogonal",
    init_scale: float = 0.08,
    forget_bias: float = 0.0,
    dtype=None,
    name: str | None = None,
) -> FusedCell:
    """An unbound cell: ``'rnn'`` (h' = tanh(W x + U h + b)), ``'gru'`` or ``'lstm'``, as Flax computes it."""
    if cell not in CELLS:
        raise ValueError(f"model.cell={cell!r} is not a known cell; allowed: {sorted(CELLS)}")
    return FusedCell(cell, features, forget_bias=float(forget_bias), dtype=dtype,
                     name=name, **initializers(init, init_scale))


def hidden_of(carry):
    """The cell's output-side hidden state: ``h`` of an LSTM's ``(c, h)``, the carry itself otherwise."""
    return carry[1] if isinstance(carry, tuple) else carry
