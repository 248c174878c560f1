"""Evaluation metrics on decoded strings, overall and by source length.

Every metric takes `hyps: list[str]` (one decoded output per example) and `refs_lists: list[list[str]]`
(per example, every acceptable reference; G2P words often have several pronunciations).

Tokens: `seq_acc`, `token_acc` and `wer` compare the tokens a `tokenize` function splits a string into;
evaluation passes the target vocabulary's (`vocab_tokenizer`: characters for a character vocabulary,
words for a word vocabulary, pieces for SentencePiece), and the default is whitespace-separated pieces
(phones for G2P, words for text). `per` and `text_wer` always count whitespace-separated tokens and `cer`
characters, whatever the vocabulary.

Scales: `bleu` and `chrf` are sacrebleu's 0-100 scores; every other metric is a fraction in [0, 1]
(error rates can exceed 1 when outputs are much longer than references).
"""

from collections.abc import Callable, Sequence
import functools
import math

import numpy as np
from rapidfuzz.distance import Levenshtein
import sacrebleu

from seq2seq_jax.data.vocab import Vocab

Tokenizer = Callable[[str], list[str]]


def vocab_tokenizer(vocab: Vocab) -> Tokenizer:
    """The tokens `vocab` splits a string into, as strings: characters, words or SentencePiece pieces."""
    return vocab.split  # TokenVocab: characters or words; SentencePieceVocab: pieces such as '▁le'


def _check(hyps: Sequence[str], refs_lists: Sequence[Sequence[str]]) -> None:
    """Raises ValueError unless there is at least one example and one reference per example."""
    if len(hyps) != len(refs_lists):
        raise ValueError(
            f"hyps and refs_lists differ in length: {len(hyps)} vs {len(refs_lists)}"
        )
    if not hyps:
        raise ValueError("no examples: hyps and refs_lists are empty")
    for i, refs in enumerate(refs_lists):
        if isinstance(refs, str):
            raise ValueError(f"refs_lists[{i}] is a string; each example needs a list of reference strings")
        if not refs:
            raise ValueError(f"refs_lists[{i}] is empty; each example needs at least one reference")


def _reference_streams(refs_lists: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-example reference lists -> sacrebleu's streams; missing references are None (which it skips)."""
    num_streams = max(len(refs) for refs in refs_lists)
    return [[refs[k] if k < len(refs) else None for refs in refs_lists] for k in range(num_streams)]


# The sacrebleu metric of each score computed by sacrebleu, with its default settings.
_SACREBLEU = {"bleu": sacrebleu.BLEU, "chrf": sacrebleu.CHRF}


def _sacrebleu_score(name: str, hyps: Sequence[str], refs_lists: Sequence[Sequence[str]]):
    """sacrebleu's `name` metric object after scoring `hyps` (its signature needs a scored corpus)."""
    _check(hyps, refs_lists)
    metric = _SACREBLEU[name]()
    return metric, metric.corpus_score(list(hyps), _reference_streams(refs_lists)).score


def corpus_bleu(hyps: Sequence[str], refs_lists: Sequence[Sequence[str]]) -> float:
    """sacrebleu corpus BLEU (default 13a tokenizer, exp smoothing), 0-100, multi-reference."""
    return _sacrebleu_score("bleu", hyps, refs_lists)[1]


def corpus_chrf(hyps: Sequence[str], refs_lists: Sequence[Sequence[str]]) -> float:
    """sacrebleu corpus chrF (character 6-grams, beta 2), 0-100, multi-reference."""
    return _sacrebleu_score("chrf", hyps, refs_lists)[1]


def sacrebleu_signatures(hyps: Sequence[str], refs_lists: Sequence[Sequence[str]],
                         names: Sequence[str]) -> dict[str, str]:
    """sacrebleu's own reproducibility signature (`get_signature()`) of each of `names` it computes
    (`bleu`, `chrf`) on these references, e.g. 'nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'."""
    return {name: str(_sacrebleu_score(name, hyps, refs_lists)[0].get_signature())
            for name in names if name in _SACREBLEU}


def sequence_accuracy(hyps: Sequence[str], refs_lists: Sequence[Sequence[str]],
                      tokenize: Tokenizer = str.split) -> float:
    """Fraction of examples whose tokens equal those of any reference."""
    _check(hyps, refs_lists)
    correct = sum(any(tokenize(h) == tokenize(r) for r in refs) for h, refs in zip(hyps, refs_lists))
    return correct / len(hyps)


def wer(hyps: Sequence[str], refs_lists: Sequence[Sequence[str]], tokenize: Tokenizer = str.split) -> float:
    """G2P word error rate: 1 - sequence accuracy (a word is wrong if it matches none of its references)."""
    return 1.0 - sequence_accuracy(hyps, refs_lists, tokenize)


def token_accuracy(hyps: Sequence[str], refs_lists: Sequence[Sequence[str]],
                   tokenize: Tokenizer = str.split) -> float:
    """Position-wise token accuracy: sum of matches / sum of reference lengths.

    For an example with hypothesis tokens h and reference tokens r, matches = #{i < min(|h|, |r|):
    h[i] = r[i]}. Per example the reference with the highest matches / |r| is used (ties: the first
    listed). Extra hypothesis tokens beyond |r| are not penalised; use `per` or `sequence_accuracy` for that.
    """
    _check(hyps, refs_lists)
    total_matches = total_length = 0
    for hyp, refs in zip(hyps, refs_lists):
        h = tokenize(hyp)
        best = None
        for ref in refs:
            r = tokenize(ref)
            matches = sum(a == b for a, b in zip(h, r))
            if best is None or matches * best[1] > best[0] * len(r):  # matches/|r| > best ratio, without 0/0
                best = (matches, len(r))
        total_matches += best[0]
        total_length += best[1]
    if total_length == 0:
        raise ValueError("token_accuracy is undefined: all chosen references are empty")
    return total_matches / total_length


def _units(text: str, unit: str) -> list[str]:
    if unit == "token":
        return text.split()
    if unit == "char":
        return list(text)
    raise ValueError(f"unit must be 'token' or 'char', got {unit!r}")


def error_rate(hyps: Sequence[str], refs_lists: Sequence[Sequence[str]], unit: str = "token") -> float:
    """Multi-reference edit-distance error rate: sum_n min_r d(h_n, r) / sum_n |r_n*|.

    d is the Levenshtein distance (insertions, deletions and substitutions cost 1) over units: tokens
    (`unit='token'`, whitespace-separated: phones -> PER, words -> text WER) or characters (`unit='char'`,
    spaces included -> CER). Per example, r_n* is the reference with the smallest distance (ties: the first
    listed), and the denominator is the total length of those chosen references.
    """
    _check(hyps, refs_lists)
    total_distance = total_length = 0
    for hyp, refs in zip(hyps, refs_lists):
        h = _units(hyp, unit)
        candidates = [(Levenshtein.distance(h, r), len(r)) for r in (_units(x, unit) for x in refs)]
        distance, length = min(candidates, key=lambda pair: pair[0])  # min keeps the first of ties
        total_distance += distance
        total_length += length
    if total_length == 0:
        raise ValueError("error_rate is undefined: all chosen references are empty")
    return total_distance / total_length


per = functools.partial(error_rate, unit="token")
per.__doc__ = "Phone error rate for G2P: `error_rate` over whitespace-separated phones."


def perplexity(total_nll: float, total_tokens: int) -> float:
    """exp(total_nll / total_tokens), with the negative log-likelihood in nats summed over real tokens."""
    if total_tokens <= 0:
        raise ValueError(f"perplexity needs a positive token count, got {total_tokens}")
    return math.exp(total_nll / total_tokens)


METRICS: dict[str, Callable[[Sequence[str], Sequence[Sequence[str]]], float]] = {
    "bleu": corpus_bleu,
    "chrf": corpus_chrf,
    "seq_acc": sequence_accuracy,
    "token_acc": token_accuracy,
    "per": per,
    "wer": wer,
    "text_wer": per,  # the same computation as PER, over words instead of phones
    "cer": functools.partial(error_rate, unit="char"),
}
# The metrics that take a `tokenize` function.
TOKENIZED = ("seq_acc", "token_acc", "wer")


def compute_metrics(
    hyps: Sequence[str], refs_lists: Sequence[Sequence[str]], names: Sequence[str] = tuple(METRICS),
    tokenize: Tokenizer = str.split,
) -> dict[str, float]:
    """{name: value} for each of `names`, which are keys of `METRICS`; `tokenize` goes to `TOKENIZED` ones."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric names {unknown}; available: {sorted(METRICS)}")
    _check(hyps, refs_lists)
    return {name: METRICS[name](hyps, refs_lists, **({"tokenize": tokenize} if name in TOKENIZED else {}))
            for name in names}


def length_buckets(lengths: Sequence[int], num_buckets: int) -> list[float]:
    """Bucket edges for `metrics_by_length` with about equally many examples per bucket (quantiles).

    Returns [min(lengths), q_1, ..., q_{k-1}, inf] where q_j is the j/k quantile of `lengths` rounded up to
    an integer; repeated edges are merged, so heavily tied lengths can give fewer than k buckets.
    """
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    if len(lengths) == 0:
        raise ValueError("length_buckets needs at least one length")
    lo = float(min(lengths))
    inner = np.ceil(np.quantile(np.asarray(lengths, float), np.arange(1, num_buckets) / num_buckets))
    return [lo] + sorted({float(q) for q in inner if q > lo}) + [math.inf]


def metrics_by_length(
    hyps: Sequence[str],
    refs_lists: Sequence[Sequence[str]],
    source_lengths: Sequence[int],
    bucket_edges: Sequence[float],
    names: Sequence[str] = tuple(METRICS),
    tokenize: Tokenizer = str.split,
) -> list[dict[str, float]]:
    """Metrics per source-length bucket [edges[k], edges[k+1]) (Bahdanau et al. 2014, fig. 2).

    Returns one dict per non-empty bucket, in order: {'lo', 'hi', 'count', <metric>: value, ...}; each
    bucket's metrics are those of `compute_metrics` (with `tokenize`) on its examples alone. Every length must
    fall in a bucket.
    """
    _check(hyps, refs_lists)
    if len(source_lengths) != len(hyps):
        raise ValueError(
            f"source_lengths and hyps differ in length: {len(source_lengths)} vs {len(hyps)}"
        )
    edges = list(bucket_edges)
    if len(edges) < 2 or any(a >= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"bucket_edges must be at least two strictly increasing values, got {edges}")
    lengths = np.asarray(source_lengths)
    outside = lengths[(lengths < edges[0]) | (lengths >= edges[-1])]
    if outside.size:
        raise ValueError(f"source lengths {sorted(set(outside.tolist()))} fall outside bucket_edges {edges}")
    rows = []
    for lo, hi in zip(edges, edges[1:]):
        idx = np.flatnonzero((lengths >= lo) & (lengths < hi))
        if idx.size:
            subset = compute_metrics([hyps[i] for i in idx], [refs_lists[i] for i in idx], names, tokenize)
            rows.append({"lo": lo, "hi": hi, "count": int(idx.size), **subset})
    return rows
