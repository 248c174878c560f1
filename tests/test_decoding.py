"""Specification of seq2seq_jax.decoding: greedy and beam search against plain Python references.

The toy model is a small recurrent decoder with Bahdanau-like attention over a random source, written
as the model-agnostic step function decoding expects: its memory holds source keys [N, src_len, dim] and
a bool mask, its state an int step counter and an (LSTM-like) float32/bfloat16 carry, and its outputs
depend on the whole history, so a beam that is reordered without its state would show.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax import decoding

jax.config.update("jax_numpy_rank_promotion", "raise")

V, S, D = 5, 3, 4  # vocab (PAD, BOS, EOS, two words), source length, hidden size
PAD, BOS, EOS = 0, 1, 2
MAX_LEN = 6


def make_params(seed, max_len):
    """Shared weights: transition table [V, V], per-step bias [max_len, V], embed [V, D], output [D, V].
    PAD and BOS are unlikely (yet possible) outputs; EOS grows likelier with the step."""
    rng = np.random.default_rng(seed)
    table = rng.normal(0, 1, (V, V))
    table[:, [PAD, BOS]] -= 3.0
    bias = rng.normal(0, 0.5, (max_len, V))
    bias[:, EOS] += np.linspace(-2.0, 1.0, max_len)
    return dict(table=table, bias=bias, embed=rng.normal(0, 1, (V, D)), out=rng.normal(0, 1.5, (D, V)))


def make_state(seed, batch):
    """Per-example ``(memory, state)``: memory keys [batch, S, D] and mask [batch, S] (example 0 masks its
    last source position); state a step counter [batch] and a carry."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, S), bool)
    mask[0, -1] = False
    carry = (jnp.asarray(rng.normal(0, 1, (batch, D)), jnp.float32), jnp.zeros((batch, D), jnp.bfloat16))
    memory = dict(keys=jnp.asarray(rng.normal(0, 1.5, (batch, S, D)), jnp.float32), mask=jnp.asarray(mask))
    return memory, dict(step=jnp.zeros((batch,), jnp.int32), carry=carry)


def toy_step(params, memory, state, tokens):
    """c' = c + embed[y_{i-1}], h' = tanh(c'); e_j = keys_j . h' + i * j; alpha = masked softmax(e);
    logits = table[y_{i-1}] + bias[i] + (h' + sum_j alpha_j keys_j) @ out."""
    p = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), params)
    c = state["carry"][0] + p["embed"][tokens]  # [N, D]
    h = jnp.tanh(c).astype(jnp.bfloat16)
    step = state["step"]
    scores = jnp.einsum("nsd,nd->ns", memory["keys"], h.astype(jnp.float32))  # [N, S]
    scores = scores + step[:, None].astype(jnp.float32) * jnp.arange(S, dtype=jnp.float32)[None, :]
    attention = jax.nn.softmax(jnp.where(memory["mask"], scores, -jnp.inf), axis=-1)  # [N, S]
    context = jnp.einsum("ns,nsd->nd", attention, memory["keys"])  # [N, D]
    bias = p["bias"][jnp.minimum(step, p["bias"].shape[0] - 1)]  # [N, V]
    logits = p["table"][tokens] + bias + (h.astype(jnp.float32) + context) @ p["out"]
    new_state = dict(step=step + 1, carry=(c, h))
    return logits, new_state, attention


# Compiled once for the module: params, memory and state traced, sizes static (as a caller wraps decoding).
@functools.partial(jax.jit, static_argnames=("batch_size", "max_len", "with_attention"))
def greedy(params, inputs, *, batch_size, max_len=MAX_LEN, with_attention=True, max_lengths=None):
    return decoding.greedy_search(functools.partial(toy_step, params), *inputs, batch_size=batch_size,
                                  max_len=max_len, src_len=S, bos_id=BOS, eos_id=EOS, with_attention=with_attention,
                                  max_lengths=max_lengths)


@functools.partial(jax.jit, static_argnames=("batch_size", "beam_size", "max_len", "with_attention", "nbest"))
def beam(params, inputs, alpha, *, batch_size, beam_size, max_len=MAX_LEN, with_attention=True, nbest=None,
         max_lengths=None):
    return decoding.beam_search(functools.partial(toy_step, params), *inputs, batch_size=batch_size,
                                beam_size=beam_size, max_len=max_len, src_len=S, alpha=alpha,
                                bos_id=BOS, eos_id=EOS, with_attention=with_attention, nbest=nbest,
                                max_lengths=max_lengths)


_step = jax.jit(toy_step)


def example(state, b):
    return jax.tree_util.tree_map(lambda x: x[b:b + 1], state)


def teacher_force(params, inputs_1, sequences):
    """Feeds every row of ``sequences [M, T]`` to the model of one example: (log p of each token [M, T],
    attention at each step [M, T, S])."""
    m, t = sequences.shape
    memory, state = jax.tree_util.tree_map(lambda x: jnp.repeat(x, m, axis=0), inputs_1)
    prev, log_probs, attention = np.full((m,), BOS), [], []
    for i in range(t):
        logits, state, att = _step(params, memory, state, jnp.asarray(prev, jnp.int32))
        step_log_probs = np.asarray(jax.nn.log_softmax(logits))  # [M, V]
        log_probs.append(step_log_probs[np.arange(m), sequences[:, i]])
        attention.append(np.asarray(att))
        prev = sequences[:, i]
    return np.stack(log_probs, 1), np.stack(attention, 1)


def lp(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


def reference_greedy(params, inputs_1, max_len):
    """Python loop: argmax at each step until EOS -> (tokens, log p, attention [len, S])."""
    (memory, state), tokens, score, attention, prev = inputs_1, [], 0.0, [], BOS
    for _ in range(max_len):
        logits, state, att = _step(params, memory, state, jnp.array([prev], jnp.int32))
        log_probs = np.asarray(jax.nn.log_softmax(logits[0]))
        prev = int(np.argmax(log_probs))
        tokens.append(prev)
        attention.append(np.asarray(att[0]))
        score += log_probs[prev]
        if prev == EOS:
            break
    return tokens, score, np.stack(attention)


def reference_best(params, inputs_1, max_len, alpha):
    """Enumerates every sequence up to max_len: the complete one (ending at its first EOS) that maximises
    log p(Y|X) / lp(Y) -> (tokens, log p, attention [len, S])."""
    sequences = np.array(list(itertools.product(range(V), repeat=max_len)))  # [V**T, T]
    log_probs, attention = teacher_force(params, inputs_1, sequences)
    best, best_score = None, -np.inf
    for row, seq in enumerate(sequences):
        ends = np.flatnonzero(seq == EOS)
        if ends.size:  # the hypothesis seq[:n]; each one is met (V ** (T - n) times) with the same score
            n = ends[0] + 1
            log_p = log_probs[row, :n].sum()
            if log_p / lp(n, alpha) > best_score:
                best, best_score = (list(seq[:n]), log_p, attention[row, :n]), log_p / lp(n, alpha)
    return best


def padded(tokens, attention, max_len):
    n = len(tokens)
    return (np.array(tokens + [PAD] * (max_len - n)),
            np.concatenate([attention, np.zeros((max_len - n, S), np.float32)]))


def assert_matches(out, b, tokens, score, attention, max_len):
    want_tokens, want_attention = padded(tokens, attention, max_len)
    np.testing.assert_array_equal(out.tokens[b], want_tokens)
    assert int(out.lengths[b]) == len(tokens)
    np.testing.assert_allclose(out.scores[b], score, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.attention[b], want_attention, rtol=1e-5, atol=1e-6)


PARAMS = make_params(4, MAX_LEN)  # examples that end at different steps, or not at all
INPUTS = make_state(1, batch=3)


def test_greedy_is_the_argmax_at_each_step():
    out = greedy(PARAMS, INPUTS, batch_size=3)
    for b in range(3):
        assert_matches(out, b, *reference_greedy(PARAMS, example(INPUTS, b), MAX_LEN), MAX_LEN)
    np.testing.assert_array_equal(out.normalized_scores, out.scores)
    assert len(set(map(tuple, np.asarray(out.tokens)))) > 1  # the examples really differ


def test_beam_size_one_is_greedy():
    want = greedy(PARAMS, INPUTS, batch_size=3)
    got = beam(PARAMS, INPUTS, 0.0, batch_size=3, beam_size=1)
    np.testing.assert_array_equal(got.tokens, want.tokens)
    np.testing.assert_array_equal(got.lengths, want.lengths)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
    np.testing.assert_allclose(got.normalized_scores, want.normalized_scores, rtol=1e-6)
    np.testing.assert_allclose(got.attention, want.attention, rtol=1e-6)


SMALL_LEN = 4  # V**4 = 625 sequences to enumerate
WIDE = (V - 1) ** (SMALL_LEN - 1) * V  # every extension of every unfinished prefix fits the beam
SMALL_PARAMS = make_params(4, SMALL_LEN)
SMALL_INPUTS = make_state(0, batch=2)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_finds_the_best_enumerated_sequence(alpha):
    out = beam(SMALL_PARAMS, SMALL_INPUTS, alpha, batch_size=2, beam_size=WIDE, max_len=SMALL_LEN)
    for b in range(2):
        tokens, score, attention = reference_best(SMALL_PARAMS, example(SMALL_INPUTS, b), SMALL_LEN, alpha)
        assert_matches(out, b, tokens, score, attention, SMALL_LEN)
        np.testing.assert_allclose(out.normalized_scores[b], score / lp(len(tokens), alpha), rtol=1e-5)
    # The search is not vacuous: greedy decoding misses the best sequence for some example.
    assert np.any(out.tokens != greedy(SMALL_PARAMS, SMALL_INPUTS, batch_size=2, max_len=SMALL_LEN).tokens)


def test_length_penalty_changes_the_winner():
    """So that the alpha > 0 case above tests the penalty: lp favours longer hypotheses (eq. 14)."""
    plain, penalised = (reference_best(SMALL_PARAMS, example(SMALL_INPUTS, 0), SMALL_LEN, alpha)
                        for alpha in (0.0, 1.0))
    assert len(penalised[0]) > len(plain[0])


@pytest.mark.parametrize("beam_size", [None, 4])
def test_batch_equals_each_example_alone(beam_size):
    run = greedy if beam_size is None else functools.partial(beam, alpha=0.6, beam_size=beam_size)
    together = run(PARAMS, INPUTS, batch_size=3)
    for b in range(3):
        alone = run(PARAMS, example(INPUTS, b), batch_size=1)
        for got, want in zip(jax.tree_util.tree_leaves(alone), jax.tree_util.tree_leaves(together)):
            np.testing.assert_allclose(got[0], want[b], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_returns_the_attention_and_score_of_its_tokens(alpha):
    out = beam(PARAMS, INPUTS, alpha, batch_size=3, beam_size=4)
    assert np.any(np.asarray(out.tokens) != np.asarray(greedy(PARAMS, INPUTS, batch_size=3).tokens))
    for b in range(3):
        n = int(out.lengths[b])
        log_probs, attention = teacher_force(PARAMS, example(INPUTS, b), np.asarray(out.tokens[b:b + 1]))
        assert_matches(out, b, list(np.asarray(out.tokens[b, :n])), log_probs[0, :n].sum(), attention[0, :n],
                       MAX_LEN)
        np.testing.assert_allclose(out.normalized_scores[b], out.scores[b] / lp(n, alpha), rtol=1e-5)


@pytest.mark.parametrize("beam_size, alpha", [(1, 0.0), (4, 0.6), (WIDE, 1.0)])
def test_attention_history_changes_no_hypothesis_or_score(beam_size, alpha):
    """Keeping the attention history (for plots) is an output only: tokens, lengths and scores are the
    same bits without it, and the search is the same one."""
    sizes = dict(batch_size=2, beam_size=beam_size, max_len=SMALL_LEN)
    with_history = beam(SMALL_PARAMS, SMALL_INPUTS, alpha, with_attention=True, **sizes)
    without = beam(SMALL_PARAMS, SMALL_INPUTS, alpha, with_attention=False, **sizes)
    assert without.attention is None and with_history.attention.shape == (2, SMALL_LEN, S)
    for field in ("tokens", "lengths", "scores", "normalized_scores"):
        np.testing.assert_array_equal(getattr(without, field), getattr(with_history, field))
    greedy_without = greedy(SMALL_PARAMS, SMALL_INPUTS, batch_size=2, max_len=SMALL_LEN, with_attention=False)
    greedy_with = greedy(SMALL_PARAMS, SMALL_INPUTS, batch_size=2, max_len=SMALL_LEN)
    assert greedy_without.attention is None
    np.testing.assert_array_equal(greedy_without.tokens, greedy_with.tokens)
    np.testing.assert_array_equal(greedy_without.scores, greedy_with.scores)


def reference_ranking(params, inputs_1, max_len, alpha):
    """Every complete sequence up to max_len (ending at its first EOS), best first by log p / lp:
    [(tokens, log p)]."""
    sequences = np.array(list(itertools.product(range(V), repeat=max_len)))  # [V**T, T]
    log_probs, _ = teacher_force(params, inputs_1, sequences)
    found = {}
    for row, seq in enumerate(sequences):
        ends = np.flatnonzero(seq == EOS)
        if ends.size:
            n = ends[0] + 1
            found[tuple(seq[:n])] = log_probs[row, :n].sum()
    return sorted(found.items(), key=lambda item: -item[1] / lp(len(item[0]), alpha))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_nbest_are_the_best_enumerated_sequences_in_order(alpha):
    out = beam(SMALL_PARAMS, SMALL_INPUTS, alpha, batch_size=2, beam_size=WIDE, max_len=SMALL_LEN, nbest=5)
    assert out.tokens.shape == (2, 5, SMALL_LEN) and out.attention.shape == (2, 5, SMALL_LEN, S)
    for b in range(2):
        want = reference_ranking(SMALL_PARAMS, example(SMALL_INPUTS, b), SMALL_LEN, alpha)[:5]
        for rank, (tokens, log_p) in enumerate(want):
            n = len(tokens)
            np.testing.assert_array_equal(out.tokens[b, rank], list(tokens) + [PAD] * (SMALL_LEN - n))
            assert int(out.lengths[b, rank]) == n
            np.testing.assert_allclose(out.scores[b, rank], log_p, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out.normalized_scores[b, rank], log_p / lp(n, alpha), rtol=1e-5, atol=1e-5)


def test_nbest_of_a_beam_ranks_distinct_hypotheses_with_their_own_scores():
    best = beam(PARAMS, INPUTS, 0.6, batch_size=3, beam_size=4)
    out = beam(PARAMS, INPUTS, 0.6, batch_size=3, beam_size=4, nbest=4)
    one = beam(PARAMS, INPUTS, 0.6, batch_size=3, beam_size=4, nbest=1)
    for field in ("tokens", "lengths", "scores", "normalized_scores", "attention"):
        np.testing.assert_array_equal(getattr(out, field)[:, 0], getattr(best, field))  # the best comes first
        np.testing.assert_array_equal(getattr(one, field)[:, 0], getattr(best, field))
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    ended = tokens[np.arange(3)[:, None], np.arange(4)[None, :], lengths - 1] == EOS  # [batch, nbest]
    assert not np.all(ended)  # an example where the places were filled by unfinished hypotheses
    for b in range(3):
        # Finished hypotheses first, each group best first.
        assert list(ended[b]) == sorted(ended[b], reverse=True)
        for group in (ended[b], ~ended[b]):
            assert np.all(np.diff(np.asarray(out.normalized_scores[b])[group]) <= 0)
        assert len({tuple(t) for t in np.asarray(out.tokens[b])}) == 4
        log_probs, attention = teacher_force(PARAMS, example(INPUTS, b), np.asarray(out.tokens[b]))
        for rank in range(4):
            n = int(out.lengths[b, rank])
            np.testing.assert_allclose(out.scores[b, rank], log_probs[rank, :n].sum(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out.attention[b, rank, :n], attention[rank, :n], rtol=1e-5, atol=1e-6)


def test_nbest_fills_with_live_hypotheses_after_every_finished_one():
    """Only [EOS] can end (at step 0): the other places hold the best unfinished hypotheses of max_len."""
    start, on = logits_for(eos=-1.0, a=0.0, b=-0.5), logits_for(a=0.0, b=-0.2)
    out = beam_direct(scripted_step, *script(start, on), beam_size=3, nbest=3, alpha=0.0, **SIZES)
    np.testing.assert_array_equal(out.lengths, [[1, MAX_LEN, MAX_LEN]] * 2)
    np.testing.assert_array_equal(out.tokens[:, 0], [[EOS] + [PAD] * (MAX_LEN - 1)] * 2)
    np.testing.assert_array_equal(out.tokens[:, 1], [[3] * MAX_LEN] * 2)  # a a a a a a
    np.testing.assert_array_equal(np.sort(out.tokens[:, 2]), [[3] * (MAX_LEN - 1) + [4]] * 2)  # one b (ties)
    assert np.all(out.scores[:, 1] > out.scores[:, 2])


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_each_example_stops_at_its_own_limit_as_if_decoded_alone(search):
    """With per-example limits, example b gets what it gets alone with max_len = limit b (then PAD); for
    beam search, each of its 3 best."""
    run = dict(greedy=greedy, beam=functools.partial(beam, alpha=0.6, beam_size=4, nbest=3))[search]
    limits = [2, 4, 3]
    together = run(PARAMS, INPUTS, batch_size=3, max_lengths=jnp.array(limits))
    unlimited = run(PARAMS, INPUTS, batch_size=3)
    assert np.any(np.asarray(together.lengths) != np.asarray(unlimited.lengths))  # the limits bite
    for b, limit in enumerate(limits):
        alone = run(PARAMS, example(INPUTS, b), batch_size=1, max_len=limit)
        for field in ("tokens", "attention"):  # [batch, (nbest,) max_len, ...]: PAD / 0 past the limit
            got, want = np.asarray(getattr(together, field)[b]), np.asarray(getattr(alone, field)[0])
            np.testing.assert_allclose(got[..., :limit, :] if field == "attention" else got[..., :limit], want,
                                       rtol=1e-5, atol=1e-6)
            assert not np.any(got[..., limit:, :] if field == "attention" else got[..., limit:])
        for field in ("lengths", "scores", "normalized_scores"):
            np.testing.assert_allclose(getattr(together, field)[b], getattr(alone, field)[0], rtol=1e-5, atol=1e-6)


def assert_well_formed(out, max_len):
    """EOS ends a hypothesis (and only there); PAD, and zero attention, after it."""
    for tokens, n, attention in zip(np.asarray(out.tokens), np.asarray(out.lengths), np.asarray(out.attention)):
        assert 1 <= n <= max_len
        assert EOS not in tokens[:n - 1]
        assert tokens[n - 1] == EOS or n == max_len
        assert np.all(tokens[n:] == PAD) and np.all(attention[n:] == 0)
        np.testing.assert_allclose(attention[:n].sum(-1), 1.0, rtol=1e-5)


def test_hypotheses_end_at_eos():
    outs = [greedy(PARAMS, INPUTS, batch_size=3), beam(PARAMS, INPUTS, 0.6, batch_size=3, beam_size=4)]
    for out in outs:
        assert_well_formed(out, MAX_LEN)
    lengths = np.concatenate([out.lengths for out in outs])
    assert np.any(lengths == MAX_LEN) and np.any(lengths < MAX_LEN)  # both kinds of ending are checked


# A model that reads its logits from a script [N, max_len, V] in its memory; it counts the loop's
# iterations on the host.
CALLS = []


def scripted_step(memory, state, tokens):
    jax.debug.callback(lambda: CALLS.append(1))
    logits = jnp.take_along_axis(memory["script"], state["step"][:, None, None], axis=1)[:, 0]  # [N, V]
    attention = jax.nn.one_hot(state["step"] % S, S)  # [N, S]
    return logits, dict(step=state["step"] + 1), attention


def script(*steps, batch=2):
    """``(memory, state)``: one row of logits per step (the last one repeated to MAX_LEN), the same for
    every example."""
    rows = [steps[min(i, len(steps) - 1)] for i in range(MAX_LEN)]
    return (dict(script=jnp.tile(jnp.array(rows, jnp.float32), (batch, 1, 1))),
            dict(step=jnp.zeros((batch,), jnp.int32)))


def logits_for(**logits):
    """[V] logits, -30 (possible but unlikely) for every token not named."""
    row = np.full(V, -30.0)
    for token, value in logits.items():
        row[dict(pad=PAD, bos=BOS, eos=EOS, a=3, b=4)[token]] = value
    return row


# jitted directly, step_fn and sizes static, as decoding's docstring shows.
greedy_direct = jax.jit(decoding.greedy_search,
                        static_argnames=("step_fn", "batch_size", "max_len", "src_len", "with_attention"))
beam_direct = jax.jit(decoding.beam_search, static_argnames=(
    "step_fn", "batch_size", "beam_size", "max_len", "src_len", "with_attention", "nbest"))
SIZES = dict(batch_size=2, max_len=MAX_LEN, src_len=S)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_decoding_stops_as_soon_as_every_hypothesis_ended(search):
    sure_to_end = script(logits_for(eos=10.0, a=0.0, b=0.0))
    jax.effects_barrier()
    CALLS.clear()
    if search == "greedy":
        out = greedy_direct(scripted_step, *sure_to_end, with_attention=True, **SIZES)
    else:
        out = beam_direct(scripted_step, *sure_to_end, beam_size=4, alpha=0.6, with_attention=True, **SIZES)
    jax.effects_barrier()
    assert len(CALLS) == 1  # one step of the while_loop, not max_len
    np.testing.assert_array_equal(out.lengths, [1, 1])
    np.testing.assert_array_equal(out.tokens, [[EOS] + [PAD] * (MAX_LEN - 1)] * 2)
    np.testing.assert_allclose(out.attention[:, 0], [[1.0, 0.0, 0.0]] * 2)
    assert_well_formed(out, MAX_LEN)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_stops_only_when_no_live_hypothesis_can_win(alpha):
    """[EOS] (p = 0.57) against [a a a a a EOS] (p = 0.43): with alpha = 1 the long one wins (lp = 11/6),
    though after step 1 [EOS] beats [a] / lp(2); only the bound log p / lp(max_len) keeps searching."""
    step0, on, end = logits_for(eos=0.3, a=0.0), logits_for(a=0.0), logits_for(eos=0.0)
    out = beam_direct(scripted_step, *script(step0, on, on, on, on, end), beam_size=2, alpha=alpha, **SIZES)
    want = [EOS] if alpha == 0.0 else [3] * (MAX_LEN - 1) + [EOS]
    log_p = jax.nn.log_softmax(jnp.array([0.3, 0.0]))[0 if alpha == 0.0 else 1]
    np.testing.assert_array_equal(out.tokens, [want + [PAD] * (MAX_LEN - len(want))] * 2)
    np.testing.assert_allclose(out.scores, [log_p] * 2, rtol=1e-5)
    np.testing.assert_allclose(out.normalized_scores, [log_p / lp(len(want), alpha)] * 2, rtol=1e-5)
    assert out.attention is None  # not asked for


def test_greedy_runs_as_long_as_its_longest_sequence():
    def step(memory, state, tokens):
        jax.debug.callback(lambda: CALLS.append(1))
        return toy_step(PARAMS, memory, state, tokens)

    jax.effects_barrier()
    CALLS.clear()
    out = greedy_direct(step, *INPUTS, batch_size=3, max_len=MAX_LEN, src_len=S, bos_id=BOS, eos_id=EOS)
    jax.effects_barrier()
    assert len(CALLS) == int(np.max(out.lengths))


def test_rejects_bad_sizes_and_states():
    inputs = script(logits_for(eos=0.0))
    with pytest.raises(ValueError, match="beam_size"):
        decoding.beam_search(scripted_step, *inputs, **(SIZES | dict(beam_size=0)))
    with pytest.raises(ValueError, match=r"nbest must be in \[1, beam_size=2\], got 3"):
        decoding.beam_search(scripted_step, *inputs, **(SIZES | dict(beam_size=2, nbest=3)))
    with pytest.raises(ValueError, match="max_len"):
        decoding.greedy_search(scripted_step, *inputs, **(SIZES | dict(max_len=0)))
    with pytest.raises(ValueError, match="init_state leaf .* leading dimension"):
        decoding.greedy_search(scripted_step, inputs[0], script(logits_for(eos=0.0), batch=3)[1], **SIZES)
    with pytest.raises(ValueError, match="memory leaf .* leading dimension"):
        decoding.greedy_search(scripted_step, script(logits_for(eos=0.0), batch=3)[0], inputs[1], **SIZES)
    with pytest.raises(ValueError, match="src_len"):
        decoding.greedy_search(scripted_step, *inputs, **(SIZES | dict(src_len=S + 1)))


def test_argmax_is_jnp_argmax_on_ties_infinities_and_nans():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(64, 7, 50)).astype(np.float32)  # many ties: the first maximum wins
    x[0, 0] = -np.inf
    x[0, 1, :3] = np.inf
    x[0, 2, [5, 9]] = np.nan  # a NaN counts as the maximum, the first one
    x[0, 3, 4] = np.nan
    x[0, 3, 6] = np.inf
    np.testing.assert_array_equal(decoding.argmax(jnp.asarray(x)), jnp.argmax(jnp.asarray(x), axis=-1))
    y = rng.normal(size=(3, 1000)).astype(np.float32)
    np.testing.assert_array_equal(jax.jit(decoding.argmax)(y), np.argmax(y, axis=-1))


def test_tile_and_gather_beams():
    tree = (jnp.arange(2), jnp.arange(2 * 3 * 2).reshape(2, 3, 2))  # leaves [batch=2, ...]
    tiled = decoding.tile_beams(tree, 3)  # [batch * beam = 6, ...], each example's beams adjacent
    np.testing.assert_array_equal(tiled[0], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(tiled[1][3], tree[1][1])
    flat = jnp.arange(6) * 10  # [batch * beam]: example b, beam k at row 3 * b + k
    picked = decoding.gather_beams(flat, jnp.array([[2, 2], [0, 1]]))  # [batch * new_beam = 4]
    np.testing.assert_array_equal(picked, [20, 20, 30, 40])


def test_beam_search_compiles_its_top_k_without_a_full_sort():
    """XLA's CPU TopK becomes a full sort of [batch, beam * vocab] when its slices fuse into their users (20x
    slower a step); the search keeps them apart. Checked on the compiled program, not by timing."""
    batch, vocab, src_len, hidden = 4, 300, 3, 8
    kernel = jax.random.normal(jax.random.key(0), (hidden, vocab))

    def step_fn(memory, state, tokens):
        state = jnp.tanh(state + memory[:, 0] + tokens[:, None] * 1e-3)  # [N, hidden]
        return state @ kernel, state, jnp.zeros((tokens.shape[0], src_len))

    search = jax.jit(functools.partial(decoding.beam_search, step_fn, batch_size=batch, beam_size=3, max_len=5,
                                       src_len=src_len))
    compiled = search.lower(jnp.zeros((batch, src_len, hidden)), jnp.zeros((batch, hidden))).compile().as_text()
    assert " sort(" not in compiled


def test_backtrack_reads_back_the_hypotheses_a_search_would_carry():
    """Random histories: backtracking from the backpointers gives the tokens and attention that carrying every
    live beam's whole prefix, reordered at each step, gives, for live hypotheses and EOS-ended ones of every
    length (PAD and zeros after their end)."""
    rng = np.random.default_rng(0)
    steps, batch, beam, src_len, k = 7, 3, 4, 5, 40
    tokens = rng.integers(3, 50, (steps, batch, beam))
    parents = rng.integers(0, beam, (steps, batch, beam))
    attention = rng.random((steps, batch, beam, src_len)).astype(np.float32)
    rows = np.arange(batch)[:, None]
    # carried[i]: every beam's (tokens [batch, beam, steps], attention [batch, beam, steps, src_len]) after step i.
    carried = []
    live_tokens, live_attention = np.full((batch, beam, steps), PAD), np.zeros((batch, beam, steps, src_len))
    for i in range(steps):
        before = (live_tokens, live_attention)  # the beams step i was fed
        live_tokens, live_attention = live_tokens[rows, parents[i]], live_attention[rows, parents[i]]
        live_tokens[:, :, i], live_attention[:, :, i] = tokens[i], attention[i][rows, parents[i]]
        carried.append((before, (live_tokens, live_attention)))
    lengths = rng.integers(1, steps + 1, (batch, k))
    ended = rng.random((batch, k)) < 0.5
    beams = rng.integers(0, beam, (batch, k))

    got_tokens, got_attention = decoding.backtrack(
        jnp.asarray(tokens), jnp.asarray(parents), jnp.asarray(beams), jnp.asarray(lengths), jnp.asarray(ended),
        eos_id=EOS, attention=jnp.asarray(attention))
    assert got_tokens.shape == (batch, k, steps) and got_attention.shape == (batch, k, steps, src_len)
    for b, r in itertools.product(range(batch), range(k)):
        last = lengths[b, r] - 1
        before, after = carried[last]
        if ended[b, r]:  # beam `beams` of step last - 1, extended by EOS at step `last`
            want_tokens, want_attention = before[0][b, beams[b, r]].copy(), before[1][b, beams[b, r]].copy()
            want_tokens[last], want_attention[last] = EOS, attention[last, b, beams[b, r]]
        else:
            want_tokens, want_attention = after[0][b, beams[b, r]], after[1][b, beams[b, r]]
        np.testing.assert_array_equal(got_tokens[b, r], want_tokens)
        np.testing.assert_array_equal(got_attention[b, r], want_attention)
    without = decoding.backtrack(jnp.asarray(tokens), jnp.asarray(parents), jnp.asarray(beams), jnp.asarray(lengths),
                                 jnp.asarray(ended), eos_id=EOS)
    np.testing.assert_array_equal(without[0], got_tokens)
    assert without[1] is None
