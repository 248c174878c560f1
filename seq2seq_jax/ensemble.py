"""Decoding with several trained runs at once: an ensemble that averages their per-step log-probabilities.

At every step each member ``k`` gives ``log p_k(y | y_<i, X)`` and the ensemble decodes with their mean,
renormalised over the vocabulary:

    log p(y | y_<i, X) = log_softmax_y( (1/K) sum_k log p_k(y | y_<i, X) )

(a normalised geometric mean of the members' distributions). This is the combination OpenNMT-py uses by
default (``onmt/decoders/ensemble.py``, ``EnsembleGenerator``: the mean of the members' log-softmax outputs;
its ``avg_raw_probs`` option takes the log of the mean of probabilities instead), renormalised here so
that scores, beams and samples see a distribution. Since ``log_softmax(z) = z - logsumexp(z)`` moves each
row by one constant, and ``log_softmax`` ignores such constants, the mean of the members' log-probabilities
renormalises to ``log_softmax`` of the mean of their logits: `combine`'s step returns that mean as its
logits and the search's own ``log_softmax`` renormalises it. An ensemble of one run is that run exactly.

Nothing in ``decoding`` knows about ensembles: `combine` turns the members' ``(step_fn, memory, state)``
into one of the same contract (memories and states are tuples, one entry per member), so greedy and beam
search (and sampling) run on it unchanged, and a single model's programs are not touched.

Members must tokenise alike: the same kinds of source and target vocabulary with the same tokens (or
SentencePiece models), checked by `check_compatible` before any checkpoint is read. Their architectures
may differ (e.g. an attention and a bottleneck decoder). The attention an ensemble step reports is the
mean of the members' (zeros for a member without attention); ``Translator`` does not show it.
"""

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from seq2seq_jax.data import vocab as vocab_lib
from seq2seq_jax.model import Seq2Seq


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """The members' models, in order; their parameters travel beside it as a tuple, one entry per member
    (``inference.search_inputs`` and ``predict_fn`` take ``(Ensemble, params tuple)`` where they take
    ``(Seq2Seq, params)``). Hashable, so compiled programs are cached per ensemble like per model."""

    models: tuple[Seq2Seq, ...]

    def __post_init__(self):
        if not self.models:
            raise ValueError("an ensemble needs at least one model")


def mean_logits(logits: Sequence[jax.Array]) -> jax.Array:
    """The members' logits ``[..., vocab]`` -> ``[..., vocab]`` float32 whose ``log_softmax`` is the
    renormalised mean of the members' log-probabilities (see the module docstring)."""
    return _mean([x.astype(jnp.float32) for x in logits])


def _mean(arrays):
    """The mean of same-shaped arrays: their sum in order, divided by their number (one array: itself)."""
    total = arrays[0]
    for x in arrays[1:]:
        total = total + x
    return total / len(arrays)


def combine(parts):
    """``(step_fn, memory, state)`` of each member (``inference.search_inputs``) -> one for ``decoding``.

    The step runs every member on its own memory and state and returns ``(mean_logits, new states,
    mean attention)``; its memory and state are tuples of the members'."""
    step_fns, memories, states = zip(*parts)

    def step_fn(memory, state, tokens):
        outputs = [f(m, s, tokens) for f, m, s in zip(step_fns, memory, state)]
        logits, new_states, attention = zip(*outputs)
        mean_attention = _mean([a.astype(jnp.float32) for a in attention])  # [N, src_len]
        return mean_logits(logits), tuple(new_states), mean_attention

    return step_fn, tuple(memories), tuple(states)


def teacher_forced_logits(ensemble: Ensemble, params, inputs, input_lengths, decoder_inputs) -> jax.Array:
    """``[batch, tgt_len, vocab]`` float32 whose ``log_softmax`` is the ensemble's teacher-forced
    log-probabilities (``decoder_inputs = shift_right(targets)``): what ``train.token_losses`` and
    ``Translator.score`` read."""
    return mean_logits([model.apply({"params": p}, inputs, input_lengths, decoder_inputs)
                        for model, p in zip(ensemble.models, params)])


def _vocab_difference(a: vocab_lib.Vocab, b: vocab_lib.Vocab) -> str | None:
    """How two vocabularies of one kind differ, in a few words; None if they encode and decode alike."""
    if isinstance(a, vocab_lib.TokenVocab) and isinstance(b, vocab_lib.TokenVocab):
        if a.tokens == b.tokens:
            return None
        first = next((i for i, (x, y) in enumerate(zip(a.tokens, b.tokens)) if x != y), None)
        if first is None:
            return f"{a.size} ids vs {b.size}"
        return (f"{a.size} ids vs {b.size}, id {first + len(vocab_lib.SPECIALS)} is {a.tokens[first]!r} vs "
                f"{b.tokens[first]!r}")
    if isinstance(a, vocab_lib.SentencePieceVocab) and isinstance(b, vocab_lib.SentencePieceVocab):
        return None if a.model_proto == b.model_proto else f"different SentencePiece models ({a.size} vs {b.size} ids)"
    return f"{type(a).__name__} vs {type(b).__name__}"


def check_compatible(workdirs: Sequence[str], configs, source_vocabs, target_vocabs) -> None:
    """A ``ValueError`` of one line naming the first run and the first other run that tokenises differently
    (the kind of vocabulary, ``data.source_vocab``/``data.target_vocab``, or the vocabulary itself), and
    what differs. Runs of other datasets or architectures are accepted: only what decoding shares matters."""
    first = workdirs[0]
    for workdir, config, source_vocab, target_vocab in zip(workdirs[1:], configs[1:], source_vocabs[1:],
                                                          target_vocabs[1:]):
        for side, vocab, first_vocab in (("source", source_vocab, source_vocabs[0]),
                                         ("target", target_vocab, target_vocabs[0])):
            field = f"data.{side}_vocab"
            kinds = configs[0].data[f"{side}_vocab"], config.data[f"{side}_vocab"]
            if kinds[0] != kinds[1]:
                raise ValueError(f"cannot ensemble {first} and {workdir}: {field} is {kinds[0]!r} in {first} and "
                                 f"{kinds[1]!r} in {workdir}")
            if difference := _vocab_difference(first_vocab, vocab):
                raise ValueError(f"cannot ensemble {first} and {workdir}: their {side} vocabularies differ "
                                 f"({difference}); an ensemble decodes one token sequence for all its runs")
