"""Greedy and batched beam search over a model-agnostic step function (after flax examples/wmt decode.py).

The model supplies a pure step function and an initial state; nothing here imports the model::

    step_fn(state, tokens [N] int32) -> (logits [N, vocab], new_state, attention [N, src_len])

``state`` is any pytree whose leaves all have leading dimension ``N`` (``N = batch``, or ``batch * beam``
inside beam search: the state is tiled with `tile_beams` and reordered with `gather_beams`).
``new_state`` must have the structure, shapes and dtypes of ``state``. Step ``i`` (0-based) is fed
``y_{i-1}`` (``BOS`` at step 0) and its output ``y_i`` is written at position ``i``: sequences hold
no ``BOS`` and end with the ``EOS`` they emitted, then ``PAD``.

Both searches run a ``jax.lax.while_loop`` that stops as soon as the result is decided (every greedy
sequence has ended; no live beam can beat the best finished hypothesis) or ``max_len`` steps have run.
Compile them inside your own jitted function that builds ``step_fn`` from traced parameters (as the wmt
example's ``predict_step`` does), or jit them directly with the sizes and ``step_fn`` static::

    beam = jax.jit(beam_search, static_argnames=(
        "step_fn", "batch_size", "beam_size", "max_len", "src_len"))

``alpha``, ``bos_id`` and ``eos_id`` may be static or traced.
"""

from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp

PAD_ID = 0  # seq2seq_jax.data.vocab.PAD: fills every position after a hypothesis ended

StepFn = Callable[[Any, jax.Array], tuple[jax.Array, Any, jax.Array]]


@flax.struct.dataclass
class DecodeOutput:
    """The best hypothesis per example.

    tokens: ``[batch, max_len]`` int32, ``EOS`` included where emitted, ``PAD`` after it.
    lengths: ``[batch]`` int32, tokens including the ``EOS`` (``max_len`` if it never ended).
    scores: ``[batch]`` float32, total log-probability ``log p(Y|X)`` of ``tokens``.
    normalized_scores: ``[batch]`` float32, ``scores / lp(Y)`` (`length_penalty`; greedy: ``scores``).
    attention: ``[batch, max_len, src_len]`` float32, the weights of each chosen step (zeros after the end).
    """

    tokens: jax.Array
    lengths: jax.Array
    scores: jax.Array
    normalized_scores: jax.Array
    attention: jax.Array


def length_penalty(length, alpha):
    """GNMT length penalty ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016, eq. 14); 1 at alpha=0."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def tile_beams(tree, beam_size: int):
    """Repeats every leaf ``[batch, ...]`` to ``[batch * beam, ...]``, each example's beams adjacent."""
    return jax.tree_util.tree_map(lambda x: jnp.repeat(x, beam_size, axis=0), tree)


def gather_beams(tree, beam_indices):
    """Picks beams per example: leaves ``[batch * beam, ...]``, ``beam_indices [batch, new_beam]`` (in
    ``[0, beam)``) -> leaves ``[batch * new_beam, ...]``; row ``b * new_beam + j`` is beam
    ``beam_indices[b, j]`` of example ``b``."""
    batch_size = beam_indices.shape[0]

    def gather(x):
        beam_size = x.shape[0] // batch_size
        # [batch, new_beam] -> flat rows [batch * new_beam] of x's [batch * beam] rows.
        rows = jnp.arange(batch_size, dtype=beam_indices.dtype)[:, None] * beam_size + beam_indices
        return jnp.take(x, rows.reshape(-1), axis=0)

    return jax.tree_util.tree_map(gather, tree)


def _check_args(step_fn, init_state, batch_size, max_len, src_len):
    """Fails fast, at trace time, on sizes and step functions that do not fit the contract."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    for path, leaf in jax.tree_util.tree_leaves_with_path(init_state):
        if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != batch_size:
            raise ValueError(
                f"init_state leaf {jax.tree_util.keystr(path)} has shape {jnp.shape(leaf)}; every leaf "
                f"needs leading dimension batch_size={batch_size}")
    tokens = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    logits, new_state, attention = jax.eval_shape(step_fn, init_state, tokens)
    if logits.ndim != 2 or logits.shape[0] != batch_size:
        raise ValueError(f"step_fn logits must be [N={batch_size}, vocab], got {logits.shape}")
    if attention.shape != (batch_size, src_len):
        raise ValueError(f"step_fn attention must be [N, src_len]={(batch_size, src_len)}, got {attention.shape}")
    state_spec = jax.tree_util.tree_map(lambda x: (jnp.shape(x), jnp.result_type(x)), init_state)
    new_spec = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), new_state)
    if new_spec != state_spec:
        raise ValueError(f"step_fn must return a state like init_state: {new_spec} != {state_spec}")
    return logits.shape[1]


class _GreedyState(NamedTuple):
    step: jax.Array  # [] int32: steps run
    last: jax.Array  # [batch] int32: y_{i-1}
    finished: jax.Array  # [batch] bool
    tokens: jax.Array  # [batch, max_len] int32
    attention: jax.Array  # [batch, max_len, src_len] float32
    scores: jax.Array  # [batch] float32
    lengths: jax.Array  # [batch] int32
    model: Any


def greedy_search(step_fn: StepFn, init_state, *, batch_size: int, max_len: int, src_len: int,
                  bos_id=1, eos_id=2) -> DecodeOutput:
    """Greedy decoding ``y_i = argmax_y log p(y | y_<i, X)``, until every sequence emitted EOS or max_len."""
    _check_args(step_fn, init_state, batch_size, max_len, src_len)

    def cond(s):
        return (s.step < max_len) & ~jnp.all(s.finished)

    def body(s):
        logits, model, attention = step_fn(s.model, s.last)
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))  # [batch, vocab]
        token = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)  # [batch]
        token_log_prob = jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]  # [batch]
        live = ~s.finished
        return _GreedyState(
            step=s.step + 1,
            last=token,
            finished=s.finished | (token == eos_id),
            tokens=s.tokens.at[:, s.step].set(jnp.where(live, token, PAD_ID)),
            attention=s.attention.at[:, s.step].set(jnp.where(live[:, None], attention.astype(jnp.float32), 0.0)),
            scores=s.scores + jnp.where(live, token_log_prob, 0.0),
            lengths=s.lengths + live.astype(jnp.int32),
            model=model,
        )

    s = jax.lax.while_loop(cond, body, _GreedyState(
        step=jnp.array(0, jnp.int32),
        last=jnp.full((batch_size,), bos_id, jnp.int32),
        finished=jnp.zeros((batch_size,), bool),
        tokens=jnp.full((batch_size, max_len), PAD_ID, jnp.int32),
        attention=jnp.zeros((batch_size, max_len, src_len), jnp.float32),
        scores=jnp.zeros((batch_size,), jnp.float32),
        lengths=jnp.zeros((batch_size,), jnp.int32),
        model=init_state,
    ))
    return DecodeOutput(tokens=s.tokens, lengths=s.lengths, scores=s.scores, normalized_scores=s.scores,
                        attention=s.attention)


class _BeamState(NamedTuple):
    step: jax.Array  # [] int32: steps run = length of every live hypothesis
    live_log_probs: jax.Array  # [batch, beam] float32, sorted best first; -inf: no hypothesis
    live_tokens: jax.Array  # [batch * beam, max_len] int32
    live_attention: jax.Array  # [batch * beam, max_len, src_len] float32
    model: Any  # leaves [batch * beam, ...]
    best_scores: jax.Array  # [batch] float32: best finished log p(Y|X) / lp(Y); -inf: none yet
    best_log_probs: jax.Array  # [batch] float32
    best_lengths: jax.Array  # [batch] int32
    best_tokens: jax.Array  # [batch, max_len] int32
    best_attention: jax.Array  # [batch, max_len, src_len] float32


def beam_search(step_fn: StepFn, init_state, *, batch_size: int, beam_size: int, max_len: int, src_len: int,
                alpha=0.0, bos_id=1, eos_id=2) -> DecodeOutput:
    """Batched beam search ranking finished hypotheses by ``log p(Y|X) / lp(Y)`` (Wu et al. 2016, eq. 14).

    Each step extends the ``beam`` live hypotheses by every token and keeps the ``2 * beam`` best
    (as wmt); those among the first ``beam`` that end in EOS are finished, and the ``beam`` best
    that do not stay live. Only one copy of each example is live at step 0 (the others at -inf), so
    no hypothesis is found twice. ``init_state`` is per example (``[batch, ...]``); it is tiled here.

    Unlike wmt, which keeps a pool of ``beam`` finished hypotheses and stops when the *worst* of them
    beats every live one, only the best finished hypothesis is kept, and the search stops once it beats
    the best any live hypothesis could still reach, ``log p / max_{|Y| <= max_len} lp(|Y|)`` (live
    log-probabilities only fall). No later hypothesis could win, so the result is the one the worst-of-k
    test would return, but a model that ends at once stops after one step instead of running to max_len
    until ``beam`` hypotheses have ended. Taking finished hypotheses from the first ``beam`` candidates
    only (as fairseq does) makes ``beam_size=1`` exactly greedy decoding. If none finished by max_len,
    the best live hypothesis is returned.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    vocab_size = _check_args(step_fn, init_state, batch_size, max_len, src_len)
    flat_size = batch_size * beam_size
    keep = 2 * beam_size  # Live beams can only end by EOS, so >= beam of these do not.
    if keep > beam_size * vocab_size:
        raise ValueError(f"beam search needs vocab >= 2, got {vocab_size}")

    def cond(s):
        # The largest lp a live hypothesis can still get (lengths step+1..max_len; lp is monotone).
        max_penalty = jnp.maximum(length_penalty(s.step + 1, alpha), length_penalty(max_len, alpha))
        best_live = s.live_log_probs[:, 0] / max_penalty  # [batch]; -inf stays -inf
        return (s.step < max_len) & ~jnp.all(s.best_scores >= best_live)

    def body(s):
        last = s.live_tokens[:, jnp.maximum(s.step - 1, 0)]
        logits, model, attention = step_fn(s.model, jnp.where(s.step == 0, bos_id, last))
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))  # [batch * beam, vocab]
        # [batch * beam, vocab] -> [batch, beam * vocab]: every one-token extension of every live beam.
        candidates = (s.live_log_probs[:, :, None] + log_probs.reshape(batch_size, beam_size, vocab_size))
        top_log_probs, top_indices = jax.lax.top_k(candidates.reshape(batch_size, -1), keep)  # [batch, 2*beam]
        top_beams, top_tokens = top_indices // vocab_size, (top_indices % vocab_size).astype(jnp.int32)
        # Histories up to this step, this step's attention included: [batch * beam, max_len, src_len].
        live_attention = s.live_attention.at[:, s.step].set(attention.astype(jnp.float32))

        # Finished: EOS among the first `beam` candidates; the best of them may replace the best so far.
        ended = (top_tokens[:, :beam_size] == eos_id) & (top_log_probs[:, :beam_size] > -jnp.inf)
        ended_scores = jnp.where(ended, top_log_probs[:, :beam_size] / length_penalty(s.step + 1, alpha),
                                 -jnp.inf)  # [batch, beam]
        j = jnp.argmax(ended_scores, axis=1)[:, None]  # [batch, 1]
        new_score = jnp.take_along_axis(ended_scores, j, axis=1)[:, 0]  # [batch]
        better = new_score > s.best_scores  # [batch]; ties keep the earlier, shorter one
        parent = jnp.take_along_axis(top_beams, j, axis=1)  # [batch, 1]
        ended_tokens = gather_beams(s.live_tokens, parent).at[:, s.step].set(eos_id)  # [batch, max_len]
        ended_attention = gather_beams(live_attention, parent)  # [batch, max_len, src_len]

        # Live: the best `beam` candidates that did not end, sorted best first.
        not_ended = jnp.where(top_tokens == eos_id, -jnp.inf, top_log_probs)  # [batch, 2*beam]
        live_log_probs, picked = jax.lax.top_k(not_ended, beam_size)  # [batch, beam]
        parents = jnp.take_along_axis(top_beams, picked, axis=1)  # [batch, beam]
        tokens = jnp.take_along_axis(top_tokens, picked, axis=1).reshape(flat_size)  # [batch * beam]
        live_tokens, live_attention, model = gather_beams((s.live_tokens, live_attention, model), parents)
        return _BeamState(
            step=s.step + 1,
            live_log_probs=live_log_probs,
            live_tokens=live_tokens.at[:, s.step].set(tokens),
            live_attention=live_attention,
            model=model,
            best_scores=jnp.where(better, new_score, s.best_scores),
            best_log_probs=jnp.where(better, jnp.take_along_axis(top_log_probs, j, axis=1)[:, 0],
                                     s.best_log_probs),
            best_lengths=jnp.where(better, s.step + 1, s.best_lengths),
            best_tokens=jnp.where(better[:, None], ended_tokens, s.best_tokens),
            best_attention=jnp.where(better[:, None, None], ended_attention, s.best_attention),
        )

    # [batch, beam]: beam 0 of each example at log p = 0, the copies at -inf until step 0 spreads them.
    first_only = jnp.where(jnp.arange(beam_size) == 0, 0.0, -jnp.inf).astype(jnp.float32)
    s = jax.lax.while_loop(cond, body, _BeamState(
        step=jnp.array(0, jnp.int32),
        live_log_probs=jnp.broadcast_to(first_only, (batch_size, beam_size)),
        live_tokens=jnp.full((flat_size, max_len), PAD_ID, jnp.int32),
        live_attention=jnp.zeros((flat_size, max_len, src_len), jnp.float32),
        model=tile_beams(init_state, beam_size),
        best_scores=jnp.full((batch_size,), -jnp.inf, jnp.float32),
        best_log_probs=jnp.full((batch_size,), -jnp.inf, jnp.float32),
        best_lengths=jnp.zeros((batch_size,), jnp.int32),
        best_tokens=jnp.full((batch_size, max_len), PAD_ID, jnp.int32),
        best_attention=jnp.zeros((batch_size, max_len, src_len), jnp.float32),
    ))

    found = s.best_scores > -jnp.inf  # [batch]
    first = jnp.zeros((batch_size, 1), jnp.int32)
    live_tokens, live_attention = gather_beams((s.live_tokens, s.live_attention), first)  # beam 0: [batch, ...]
    live_log_prob = s.live_log_probs[:, 0]
    return DecodeOutput(
        tokens=jnp.where(found[:, None], s.best_tokens, live_tokens),
        lengths=jnp.where(found, s.best_lengths, s.step),
        scores=jnp.where(found, s.best_log_probs, live_log_prob),
        normalized_scores=jnp.where(found, s.best_scores, live_log_prob / length_penalty(s.step, alpha)),
        attention=jnp.where(found[:, None, None], s.best_attention, live_attention),
    )
