"""Recurrent cells by name, with the initialisation schemes of the papers.

The cells are flax.linen's own (``SimpleCell``, ``GRUCell``, ``OptimizedLSTMCell``) and keep Flax's cell
contract: ``initialize_carry(rng, input_shape)`` and ``__call__(carry, x) -> (carry, y)``.

Initialisation schemes (``model.init``):
  * ``'uniform'``: every weight and bias drawn from U(-s, s), s = ``model.init_scale`` (Sutskever et al.
    2014, sec. 3.4 use s = 0.08).
  * ``'orthogonal'``: LeCun-normal input kernels, orthogonal recurrent kernels (Saxe et al. 2014), zero
    biases: Flax's defaults.
The LSTM's forget gate gets a constant ``forget_bias`` added to its pre-activation, as TensorFlow's
``BasicLSTMCell`` does (Gers et al. 2000; Jozefowicz et al. 2015 recommend 1.0). The stored parameter
stays the learnt offset, so a forget bias of 0 is exactly Flax's LSTM.
"""

import functools

import jax
import flax.linen as nn

CELLS = {"rnn": nn.SimpleCell, "gru": nn.GRUCell, "lstm": nn.OptimizedLSTMCell}
INIT_SCHEMES = ("uniform", "orthogonal")


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


def _add_forget_bias(variables, forget_bias):
    """Adds the constant to the LSTM's forget-gate bias ``hf`` as it is read (absent during init)."""
    params = variables["params"]
    if "hf" not in params:
        return variables
    hf = dict(params["hf"], bias=params["hf"]["bias"] + forget_bias)
    return dict(variables, params=dict(params, hf=hf))


@functools.cache
def _lstm_with_forget_bias(forget_bias: float):
    return nn.map_variables(
        nn.OptimizedLSTMCell,
        "params",
        trans_in_fn=functools.partial(_add_forget_bias, forget_bias=forget_bias),
        init=True,
    )


def make_cell(
    cell: str,
    features: int,
    *,
    init: str = "orthogonal",
    init_scale: float = 0.08,
    forget_bias: float = 0.0,
    dtype=None,
    name: str | None = None,
) -> nn.RNNCellBase:
    """Returns an unbound Flax cell: ``'rnn'`` (h' = tanh(W x + U h + b)), ``'gru'`` or ``'lstm'``."""
    if cell not in CELLS:
        raise ValueError(f"model.cell={cell!r} is not a known cell; allowed: {sorted(CELLS)}")
    kwargs = dict(features=features, dtype=dtype, name=name, **initializers(init, init_scale))
    if cell == "lstm" and forget_bias:
        return _lstm_with_forget_bias(float(forget_bias))(**kwargs)
    return CELLS[cell](**kwargs)


def hidden_of(carry):
    """The cell's output-side hidden state: ``h`` of an LSTM's ``(c, h)``, the carry itself otherwise."""
    return carry[1] if isinstance(carry, tuple) else carry
