"""Greedy and batched beam search over a model-agnostic step function (after flax examples/wmt decode.py).

The model supplies a pure step function, a per-sentence memory and an initial decoder state; nothing here
imports the model::

    step_fn(memory, state, tokens [N] int32) -> (logits [N, vocab], new_state, attention [N, src_len])

``memory`` is what every step reads of the source and never changes (e.g. the encoder's annotations,
projected keys and mask); ``state`` is what a hypothesis carries from step to step. Both are pytrees whose
leaves have leading dimension ``N``, and ``step_fn`` computes row ``n`` of its outputs from row ``n`` of
its inputs only. ``new_state`` must have the structure, shapes and dtypes of ``state``.

The searches are given ``memory`` once per sentence (leaves ``[batch, ...]``) and ``init_state`` per
sentence too. Beam search keeps ``beam`` decoder states per sentence (``[batch * beam, ...]``, a
sentence's beams adjacent) and reorders only those (`gather_beams`); the memory is neither tiled nor
reordered: ``step_fn`` is mapped (``jax.vmap``) over the beams, the memory broadcast to each of them.
Step ``i`` (0-based) is fed ``y_{i-1}`` (``BOS`` at step 0) and its output ``y_i`` is written at position
``i``: sequences hold no ``BOS`` and end with the ``EOS`` they emitted, then ``PAD``.

Beam search keeps each step's choices (token and parent beam of every live beam) and reads the hypotheses
back once at the end (`backtrack`), so no step copies their prefixes. The attention weights of the chosen
hypotheses (``[batch, max_len, src_len]``, e.g. for heatmaps) are kept only with ``with_attention=True``:
their history, ``[max_len, batch * beam, src_len]``, is otherwise never stored.

Both searches run a ``jax.lax.while_loop`` that stops as soon as the result is decided (every greedy
sequence has ended; no live beam can beat the finished hypotheses kept) or ``max_len`` steps have run.
Compile them inside your own jitted function that builds ``step_fn`` from traced parameters (as the wmt
example's ``predict_step`` does), or jit them directly with the sizes and ``step_fn`` static::

    beam = jax.jit(beam_search, static_argnames=(
        "step_fn", "batch_size", "beam_size", "max_len", "src_len", "with_attention", "nbest"))

``alpha``, ``bos_id`` and ``eos_id`` may be static or traced.
"""

from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp

PAD_ID = 0  # seq2seq_jax.data.vocab.PAD: fills every position after a hypothesis ended

StepFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, Any, jax.Array]]
ChooseFn = Callable[[jax.Array, jax.Array], jax.Array]  # (log_probs [N, vocab], step []) -> tokens [N]


@flax.struct.dataclass
class DecodeOutput:
    """The best hypothesis per example (with ``nbest=N``: the N best, an axis ``[batch, N, ...]`` on
    every field, best first).

    tokens: ``[batch, max_len]`` int32, ``EOS`` included where emitted, ``PAD`` after it.
    lengths: ``[batch]`` int32, tokens including the ``EOS`` (the example's limit if it never ended).
    scores: ``[batch]`` float32, total log-probability ``log p(Y|X)`` of ``tokens``.
    normalized_scores: ``[batch]`` float32, ``scores / lp(Y)`` (`length_penalty`; greedy: ``scores``).
    attention: ``[batch, max_len, src_len]`` float32, the weights of each chosen step (zeros after the
        end); None unless the search ran ``with_attention``.
    """

    tokens: jax.Array
    lengths: jax.Array
    scores: jax.Array
    normalized_scores: jax.Array
    attention: jax.Array | None


def length_penalty(length, alpha):
    """GNMT length penalty ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016, eq. 14); 1 at alpha=0."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def argmax(x: jax.Array) -> jax.Array:
    """``jnp.argmax(x, axis=-1)`` (the first maximum; a NaN counts as the maximum), as two vectorised
    reductions: XLA's CPU argmax is a scalar loop over (value, index) pairs, ~4x slower over a vocabulary."""
    nan = jnp.isnan(x)
    is_top = jnp.where(jnp.any(nan, axis=-1, keepdims=True), nan, x == jnp.max(x, axis=-1, keepdims=True))
    index = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    return jnp.min(jnp.where(is_top, index, x.shape[-1]), axis=-1)


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


def _per_beam(step_fn: StepFn, batch_size: int, beam_size: int) -> StepFn:
    """``step_fn`` over ``[batch * beam]`` hypotheses reading the ``[batch]`` memory of their sentence:
    vmapped over the beam axis, so the memory is broadcast, never copied per beam."""
    split = lambda x: x.reshape(batch_size, beam_size, *x.shape[1:])  # [batch * beam, ...] -> [batch, beam, ...]
    merge = lambda x: x.reshape(batch_size * beam_size, *x.shape[2:])  # and back
    mapped = jax.vmap(step_fn, in_axes=(None, 1, 1), out_axes=1)

    def step(memory, state, tokens):
        outputs = mapped(memory, jax.tree_util.tree_map(split, state), split(tokens))
        return jax.tree_util.tree_map(merge, outputs)

    return step


def _check_args(step_fn, memory, init_state, batch_size, max_len, src_len):
    """Fails fast, at trace time, on sizes and step functions that do not fit the contract."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    for name, tree in (("memory", memory), ("init_state", init_state)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != batch_size:
                raise ValueError(
                    f"{name} leaf {jax.tree_util.keystr(path)} has shape {jnp.shape(leaf)}; every leaf "
                    f"needs leading dimension batch_size={batch_size}")
    tokens = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    logits, new_state, attention = jax.eval_shape(step_fn, memory, init_state, tokens)
    if logits.ndim != 2 or logits.shape[0] != batch_size:
        raise ValueError(f"step_fn logits must be [N={batch_size}, vocab], got {logits.shape}")
    if attention.shape != (batch_size, src_len):
        raise ValueError(f"step_fn attention must be [N, src_len]={(batch_size, src_len)}, got {attention.shape}")
    state_spec = jax.tree_util.tree_map(lambda x: (jnp.shape(x), jnp.result_type(x)), init_state)
    new_spec = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), new_state)
    if new_spec != state_spec:
        raise ValueError(f"step_fn must return a state like init_state: {new_spec} != {state_spec}")
    return logits.shape[1]


def _limits(max_lengths, batch_size: int, max_len: int) -> jax.Array:
    """``[batch]`` int32: each example's longest output, ``max_lengths`` clipped to ``[1, max_len]``."""
    if max_lengths is None:
        return jnp.full((batch_size,), max_len, jnp.int32)
    return jnp.clip(jnp.asarray(max_lengths, jnp.int32), 1, max_len)


class _GreedyState(NamedTuple):
    step: jax.Array  # [] int32: steps run
    last: jax.Array  # [batch] int32: y_{i-1}
    finished: jax.Array  # [batch] bool
    tokens: jax.Array  # [batch, max_len] int32
    attention: jax.Array | None  # [batch, max_len, src_len] float32, with_attention only
    scores: jax.Array  # [batch] float32
    lengths: jax.Array  # [batch] int32
    model: Any


def greedy_search(step_fn: StepFn, memory, init_state, *, batch_size: int, max_len: int, src_len: int,
                  bos_id=1, eos_id=2, with_attention: bool = False, max_lengths=None,
                  choose_token: ChooseFn | None = None) -> DecodeOutput:
    """Greedy decoding ``y_i = argmax_y log p(y | y_<i, X)``, until every sequence emitted EOS or reached
    its longest output (``max_lengths [batch]``, at most ``max_len``; default ``max_len``).

    ``choose_token(log_probs [batch, vocab] float32, step [] int32) -> tokens [batch] int32`` replaces the
    argmax, e.g. to draw each token (``sampling.sample_search``); ``scores`` stay the model's
    ``log p(Y|X)`` of the tokens chosen. It is a trace-time choice: ``None`` compiles the greedy program
    itself, unchanged."""
    _check_args(step_fn, memory, init_state, batch_size, max_len, src_len)
    limits = _limits(max_lengths, batch_size, max_len)  # [batch]

    def cond(s):
        return (s.step < max_len) & ~jnp.all(s.finished)

    def body(s):
        logits, model, attention = step_fn(memory, s.model, s.last)
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))  # [batch, vocab]
        token = argmax(log_probs) if choose_token is None else choose_token(log_probs, s.step)  # [batch] int32
        token_log_prob = jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]  # [batch]
        live = ~s.finished
        if with_attention:
            attention = s.attention.at[:, s.step].set(jnp.where(live[:, None], attention.astype(jnp.float32), 0.0))
        return _GreedyState(
            step=s.step + 1,
            last=token,
            finished=s.finished | (token == eos_id) | (s.step + 1 >= limits),
            tokens=s.tokens.at[:, s.step].set(jnp.where(live, token, PAD_ID)),
            attention=attention if with_attention else None,
            scores=s.scores + jnp.where(live, token_log_prob, 0.0),
            lengths=s.lengths + live.astype(jnp.int32),
            model=model,
        )

    s = jax.lax.while_loop(cond, body, _GreedyState(
        step=jnp.array(0, jnp.int32),
        last=jnp.full((batch_size,), bos_id, jnp.int32),
        finished=jnp.zeros((batch_size,), bool),
        tokens=jnp.full((batch_size, max_len), PAD_ID, jnp.int32),
        attention=jnp.zeros((batch_size, max_len, src_len), jnp.float32) if with_attention else None,
        scores=jnp.zeros((batch_size,), jnp.float32),
        lengths=jnp.zeros((batch_size,), jnp.int32),
        model=init_state,
    ))
    return DecodeOutput(tokens=s.tokens, lengths=s.lengths, scores=s.scores, normalized_scores=s.scores,
                        attention=s.attention)


def backtrack(tokens, parents, beams, lengths, ended, *, eos_id, attention=None):
    """Reads hypotheses back from a beam search's history (as fairseq and OpenNMT do), so that no step copies
    the hypotheses' whole prefixes.

    History, row ``i`` written by step ``i``: ``tokens [max_len, batch, beam]`` int32, the token live beam
    ``j`` emitted; ``parents [max_len, batch, beam]`` int32, the live beam of step ``i - 1`` it extends (at
    ``i = 0``: one of the initial copies); ``attention [max_len, batch, beam, src_len]`` (optional), the
    weights of step ``i`` of the beams it was fed, indexed like ``parents``' values. The hypotheses,
    ``[batch, k]``: ``lengths`` (>= 1) tokens; ``ended`` False: live beam ``beams`` of step ``lengths - 1``;
    True: it ends in an EOS emitted at step ``lengths - 1`` after beam ``beams`` of the step before.

    Returns ``(tokens [batch, k, max_len], attention [batch, k, max_len, src_len] | None)``, ``PAD`` and
    zeros after each hypothesis's end. Rows past a hypothesis's last step are never read."""
    last = lengths - 1  # [batch, k]

    def step(beam, i):  # beam [batch, k]: the hypothesis's live beam of step i (i <= last)
        own = i <= last
        closing = ended & (i == last)  # an EOS here: `beam` is already the beam it extends
        parent = jnp.where(closing, beam, jnp.take_along_axis(parents[i], beam, axis=1))
        token = jnp.where(closing, eos_id, jnp.take_along_axis(tokens[i], beam, axis=1))
        weights = None
        if attention is not None:
            weights = jnp.where(own[..., None], jnp.take_along_axis(attention[i], parent[..., None], axis=1), 0.0)
        return jnp.where(own, parent, beam), (jnp.where(own, token, PAD_ID), weights)

    _, (out_tokens, out_attention) = jax.lax.scan(step, beams, jnp.arange(tokens.shape[0]), reverse=True)
    out_tokens = jnp.moveaxis(out_tokens, 0, -1)  # [max_len, batch, k] -> [batch, k, max_len]
    return out_tokens, None if attention is None else jnp.moveaxis(out_attention, 0, 2)


class _Finished(NamedTuple):
    """The best finished hypotheses of each example, ``[batch, keep]``, best first; their tokens and
    attention are read back from the history at the end (`backtrack`)."""

    scores: jax.Array  # [batch, keep] float32: log p(Y|X) / lp(Y); -inf: an empty slot
    log_probs: jax.Array  # [batch, keep] float32
    lengths: jax.Array  # [batch, keep] int32, the EOS included
    beams: jax.Array  # [batch, keep] int32: the live beam (of step lengths - 2) that EOS ended


class _BeamState(NamedTuple):
    step: jax.Array  # [] int32: steps run = length of every live hypothesis
    live_log_probs: jax.Array  # [batch, beam] float32, sorted best first; -inf: no hypothesis
    last: jax.Array  # [batch * beam] int32: each live beam's last token, y_{i-1}
    tokens: jax.Array  # [max_len, batch, beam] int32: `backtrack`'s history, row i written by step i
    parents: jax.Array  # [max_len, batch, beam] int32
    attention: jax.Array | None  # [max_len, batch, beam, src_len] float32, with_attention only
    model: Any  # decoder state, leaves [batch * beam, ...]
    finished: _Finished


def beam_search(step_fn: StepFn, memory, init_state, *, batch_size: int, beam_size: int, max_len: int,
                src_len: int, alpha=0.0, bos_id=1, eos_id=2, with_attention: bool = False,
                nbest: int | None = None, max_lengths=None) -> DecodeOutput:
    """Batched beam search ranking finished hypotheses by ``log p(Y|X) / lp(Y)`` (Wu et al. 2016, eq. 14).

    Each step extends the ``beam`` live hypotheses by every token and keeps the ``2 * beam`` best
    (as wmt); those among the first ``beam`` that end in EOS are finished, and the ``beam`` best
    that do not stay live. Only one copy of each example is live at step 0 (the others at -inf), so
    no hypothesis is found twice. ``init_state`` is per example (``[batch, ...]``); it is tiled here.

    The ``k`` best finished hypotheses are kept (``k = nbest``, 1 by default), and the search stops once
    the ``k``-th of them beats the best any live hypothesis could still reach,
    ``log p / max_{|Y| <= max_len} lp(|Y|)`` (live log-probabilities only fall). No later hypothesis
    could enter the ``k`` best, so the result is the one a search to ``max_len`` would return, but a model
    that ends at once stops after one step. Taking finished hypotheses from the first ``beam`` candidates
    only (as fairseq does) makes ``beam_size=1`` exactly greedy decoding. Where fewer than ``k`` finished
    by max_len, the best live hypotheses fill the remaining places (ranked after every finished one).

    ``nbest=None`` returns the best hypothesis per example; ``nbest=N`` (``1 <= N <= beam``) the ``N``
    best, with an axis ``[batch, N, ...]`` on every output field.

    ``max_lengths [batch]`` (at most ``max_len``; default ``max_len``) is each example's longest output:
    an example stops there, and its result is the one it would get alone with ``max_len`` at its limit, so
    one sentence that never ends does not keep the others' search going.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if nbest is not None and not 1 <= nbest <= beam_size:
        raise ValueError(f"nbest must be in [1, beam_size={beam_size}], got {nbest}")
    vocab_size = _check_args(step_fn, memory, init_state, batch_size, max_len, src_len)
    flat_size = batch_size * beam_size
    num_kept = nbest or 1
    keep = 2 * beam_size  # Live beams can only end by EOS, so >= beam of these do not.
    if keep > beam_size * vocab_size:
        raise ValueError(f"beam search needs vocab >= 2, got {vocab_size}")
    beam_step = _per_beam(step_fn, batch_size, beam_size)
    limits = _limits(max_lengths, batch_size, max_len)  # [batch]

    def cond(s):
        # The largest lp a live hypothesis can still get (lengths step+1..limit; lp is monotone).
        max_penalty = jnp.maximum(length_penalty(s.step + 1, alpha), length_penalty(limits, alpha))  # [batch]
        best_live = s.live_log_probs[:, 0] / max_penalty  # [batch]; -inf stays -inf
        done = (s.step >= limits) | (s.finished.scores[:, -1] >= best_live)  # [batch]
        return (s.step < max_len) & ~jnp.all(done)

    def body(s):
        logits, model, attention = beam_step(memory, s.model, s.last)
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))  # [batch * beam, vocab]
        # [batch * beam, vocab] -> [batch, beam * vocab]: every one-token extension of every live beam.
        candidates = (s.live_log_probs[:, :, None] + log_probs.reshape(batch_size, beam_size, vocab_size))
        # The barrier keeps XLA from fusing top_k's slices into their users, which turns its CPU TopK into a
        # full sort of [batch, beam * vocab] (~20x slower a step); values and order are unchanged.
        top_log_probs, top_indices = jax.lax.optimization_barrier(
            jax.lax.top_k(candidates.reshape(batch_size, -1), keep))  # [batch, 2*beam]
        top_beams, top_tokens = top_indices // vocab_size, (top_indices % vocab_size).astype(jnp.int32)

        # Finished: EOS among the first `beam` candidates; their k best compete with the k kept so far.
        ended = (top_tokens[:, :beam_size] == eos_id) & (top_log_probs[:, :beam_size] > -jnp.inf)
        ended_scores = jnp.where(ended, top_log_probs[:, :beam_size] / length_penalty(s.step + 1, alpha),
                                 -jnp.inf)  # [batch, beam]
        new_scores, j = jax.lax.top_k(ended_scores, num_kept)  # [batch, k]
        new = _Finished(
            scores=new_scores,
            log_probs=jnp.take_along_axis(top_log_probs, j, axis=1),
            lengths=jnp.broadcast_to(s.step + 1, new_scores.shape),
            beams=jnp.take_along_axis(top_beams, j, axis=1),
        )
        # Kept ones first: on equal scores top_k keeps the earlier (shorter) hypothesis.
        pooled = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b], axis=1), s.finished, new)
        order = jax.lax.top_k(pooled.scores, num_kept)[1]  # [batch, k]
        finished = jax.tree_util.tree_map(lambda x: jnp.take_along_axis(x, order, axis=1), pooled)

        # Live: the best `beam` candidates that did not end, sorted best first.
        not_ended = jnp.where(top_tokens == eos_id, -jnp.inf, top_log_probs)  # [batch, 2*beam]
        live_log_probs, picked = jax.lax.top_k(not_ended, beam_size)  # [batch, beam]
        parents = jnp.take_along_axis(top_beams, picked, axis=1)  # [batch, beam]
        tokens = jnp.take_along_axis(top_tokens, picked, axis=1)  # [batch, beam]

        # An example past its limit keeps its hypotheses as they were: what its later steps write in the
        # history and its decoder state are never read again.
        active = s.step < limits  # [batch]
        unless_done = lambda new, old: jnp.where(active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)
        return _BeamState(
            step=s.step + 1,
            live_log_probs=unless_done(live_log_probs, s.live_log_probs),
            last=tokens.reshape(flat_size),
            # Only the step's row of the history is written; only the per-hypothesis state moves with its
            # beam, the memory stays per example.
            tokens=s.tokens.at[s.step].set(tokens),
            parents=s.parents.at[s.step].set(parents),
            attention=s.attention.at[s.step].set(
                attention.astype(jnp.float32).reshape(batch_size, beam_size, src_len)) if with_attention else None,
            model=gather_beams(model, parents),
            finished=jax.tree_util.tree_map(unless_done, finished, s.finished),
        )

    # [batch, beam]: beam 0 of each example at log p = 0, the copies at -inf until step 0 spreads them.
    first_only = jnp.where(jnp.arange(beam_size) == 0, 0.0, -jnp.inf).astype(jnp.float32)
    pool_shape = (batch_size, num_kept)
    history_shape = (max_len, batch_size, beam_size)
    s = jax.lax.while_loop(cond, body, _BeamState(
        step=jnp.array(0, jnp.int32),
        live_log_probs=jnp.broadcast_to(first_only, (batch_size, beam_size)),
        last=jnp.full((flat_size,), bos_id, jnp.int32),
        tokens=jnp.full(history_shape, PAD_ID, jnp.int32),
        parents=jnp.zeros(history_shape, jnp.int32),
        attention=jnp.zeros((*history_shape, src_len), jnp.float32) if with_attention else None,
        model=tile_beams(init_state, beam_size),
        finished=_Finished(
            scores=jnp.full(pool_shape, -jnp.inf, jnp.float32),
            log_probs=jnp.full(pool_shape, -jnp.inf, jnp.float32),
            lengths=jnp.zeros(pool_shape, jnp.int32),
            beams=jnp.zeros(pool_shape, jnp.int32),
        ),
    ))

    # Place j: the j-th finished hypothesis if there is one, else live beam j - (number finished).
    f = s.finished
    num_finished = jnp.sum(f.scores > -jnp.inf, axis=1, keepdims=True)  # [batch, 1]
    place = jnp.arange(num_kept)[None, :]  # [1, k]
    found = place < num_finished  # [batch, k]
    beams = jnp.clip(place - num_finished, 0, beam_size - 1)  # [batch, k]
    live_log_probs = jnp.take_along_axis(s.live_log_probs, beams, axis=1)  # [batch, k]
    live_lengths = jnp.minimum(s.step, limits)[:, None]  # [batch, 1]
    lengths = jnp.where(found, f.lengths, live_lengths)  # [batch, k]
    tokens, attention = backtrack(s.tokens, s.parents, jnp.where(found, f.beams, beams), lengths, found,
                                  eos_id=eos_id, attention=s.attention)
    out = DecodeOutput(
        tokens=tokens,
        lengths=lengths,
        scores=jnp.where(found, f.log_probs, live_log_probs),
        normalized_scores=jnp.where(found, f.scores, live_log_probs / length_penalty(live_lengths, alpha)),
        attention=attention,
    )
    return out if nbest else jax.tree_util.tree_map(lambda x: x[:, 0], out)
