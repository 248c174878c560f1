"""Temperature and top-k sampling: greedy search with its argmax replaced by a seeded draw.

At step ``i`` the token ``y_i`` is drawn from ``p(y | y_<i, X) ** (1 / T)``, renormalised, over the ``k``
most likely tokens (``top_k=k``; 0: the whole vocabulary), as fairseq's ``--sampling --sampling-topk K
--temperature T`` and OpenNMT-py's ``random_sampling_topk`` / ``random_sampling_temp`` do. ``top_k=1`` is
greedy decoding exactly, and a temperature near 0 approaches it. The search is ``decoding.greedy_search``
with its ``choose_token`` hook: it stops when every sample has ended or reached its limit, and a sample's
score is the model's own ``log p(Y|X)`` of its tokens (untempered, over the whole vocabulary).

Keys are per line, never per batch: sample ``j`` of line ``n`` (its 0-based number in the whole input) draws
step ``t`` with ``fold_in(fold_in(fold_in(key(seed), n), j), t)``. A line's samples depend on the seed, its
number, the model and its own source only, not on the lines decoded beside it, the batch size or the order
lines are decoded in; the same seed reproduces them.
"""

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp

from seq2seq_jax import decoding


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How to sample: ``temperature`` (> 0), ``top_k`` (>= 0; 0 = no restriction), ``num_samples`` per
    line (>= 1) and ``seed`` (in ``[0, 2**32)``). A bad value is one ``ValueError`` naming it."""

    temperature: float = 1.0
    top_k: int = 0
    num_samples: int = 1
    seed: int = 0

    def __post_init__(self):
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature={t!r} must be a number > 0 (near 0 samples the most likely token, as "
                             "greedy decoding does)")
        checks = (("top_k", 0, "an integer >= 0 (0: the whole vocabulary)"),
                  ("num_samples", 1, "a positive integer"), ("seed", 0, "an integer in [0, 2**32)"))
        for name, low, allowed in checks:
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low
                    or (name == "seed" and value >= 2**32)):
                raise ValueError(f"{name}={value!r} must be {allowed}")
        object.__setattr__(self, "temperature", float(t))
        for name in ("top_k", "num_samples", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))


def sample_tokens(log_probs: jax.Array, keys: jax.Array, temperature, top_k: int) -> jax.Array:
    """One token per row: ``log_probs [N, vocab]``, ``keys [N]`` (typed PRNG keys) -> ``[N]`` int32, drawn
    from ``softmax(log_probs / temperature)`` restricted to the row's ``top_k`` largest entries (0, or
    ``top_k >= vocab``: all of them; ties ranked by lower index, as ``jax.lax.top_k`` ranks them)."""
    scaled = log_probs / temperature  # [N, vocab]
    draw = jax.vmap(jax.random.categorical)  # (keys [N], logits [N, n]) -> [N]
    if not top_k or top_k >= log_probs.shape[-1]:
        return draw(keys, scaled).astype(jnp.int32)
    values, indices = jax.lax.top_k(scaled, top_k)  # [N, k] each, largest first
    choice = draw(keys, values)  # [N] in [0, k)
    return jnp.take_along_axis(indices, choice[:, None], axis=1)[:, 0].astype(jnp.int32)


def sample_keys(seed, line_numbers, num_samples: int) -> jax.Array:
    """``[batch * num_samples]`` keys: ``fold_in(fold_in(key(seed), line_numbers[b]), j)`` at row
    ``b * num_samples + j``."""
    line_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.key(seed), line_numbers)  # [batch]
    per_sample = jax.vmap(jax.random.fold_in, in_axes=(None, 0))
    keys = jax.vmap(per_sample, in_axes=(0, None))(line_keys, jnp.arange(num_samples))  # [batch, num_samples]
    return keys.reshape(-1)


def sample_search(step_fn: decoding.StepFn, memory, init_state, *, line_numbers, seed, temperature, top_k: int,
                  num_samples: int, batch_size: int, max_len: int, src_len: int, bos_id=1, eos_id=2,
                  with_attention: bool = False, max_lengths=None) -> decoding.DecodeOutput:
    """``num_samples`` samples of each example (``decoding``'s contract for ``step_fn``, ``memory`` and
    ``init_state``), every field ``[batch, num_samples, ...]``: ``scores`` (and ``normalized_scores``) the
    model's ``log p(Y|X)`` of each sample. ``line_numbers [batch]`` int32 are the examples' line numbers
    and ``seed`` a uint32 scalar (both may be traced), as the module docstring says; ``temperature`` may be
    traced, ``top_k`` and ``num_samples`` are static. The memory and state are repeated per sample."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    rows = batch_size * num_samples
    keys = sample_keys(seed, line_numbers, num_samples)  # [rows]

    def choose_token(log_probs, step):
        step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, step)  # [rows]
        return sample_tokens(log_probs, step_keys, temperature, top_k)

    repeat = lambda tree: decoding.tile_beams(tree, num_samples)  # [batch, ...] -> [rows, ...]
    out = decoding.greedy_search(step_fn, repeat(memory), repeat(init_state), batch_size=rows, max_len=max_len,
                                 src_len=src_len, bos_id=bos_id, eos_id=eos_id, with_attention=with_attention,
                                 max_lengths=None if max_lengths is None else repeat(max_lengths),
                                 choose_token=choose_token)
    return jax.tree_util.tree_map(lambda x: x.reshape(batch_size, num_samples, *x.shape[1:]), out)
