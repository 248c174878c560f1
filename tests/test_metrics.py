"""Metrics: sacrebleu's scores, multi-reference accuracies and error rates, and the by-length breakdown."""

import math

import pytest
import sacrebleu

from seq2seq_jax import metrics
from seq2seq_jax.data import vocab as vocab_lib

# Three G2P words with several acceptable pronunciations each; no distance ties, so the choice of the
# closest reference decides every number below.
G2P_HYPS = ["K AE T", "D EY T AH", "N UW"]
G2P_REFS = [
    ["K AH T S", "K AE T"],  # matches the 2nd reference exactly: distance 0 to it (2 to the 1st)
    ["D AE T ER", "D EY T"],  # 1 insertion from the 2nd (length 3); 2 substitutions from the 1st
    ["N Y UW Z", "N UW Z"],  # 1 deletion from the 2nd (length 3); 2 from the 1st
]

TEXT_HYPS = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the dog",
    "he did not go to the market today",
]
TEXT_REFS = [
    ["the cat sat on the mat", "a cat sat on the mat"],
    ["the quick brown fox jumps over the lazy dog"],
    ["he went not to the market today", "he did not go to market today", "today he stayed home"],
]


def test_bleu_and_chrf_equal_sacrebleu_with_a_variable_number_of_references():
    # A short 4th output with one long reference: padding the missing references with "" instead of None
    # would make "" its closest reference length and change BLEU's brevity penalty.
    hyps = TEXT_HYPS + ["home"]
    refs = TEXT_REFS + [["he stayed at home"]]
    # sacrebleu's stream format: stream k holds every example's k-th reference, None where there is none.
    streams = [
        [refs[0][0], refs[1][0], refs[2][0], refs[3][0]],
        [refs[0][1], None, refs[2][1], None],
        [None, None, refs[2][2], None],
    ]
    assert metrics.corpus_bleu(hyps, refs) == sacrebleu.corpus_bleu(hyps, streams).score
    assert metrics.corpus_chrf(hyps, refs) == sacrebleu.corpus_chrf(hyps, streams).score


def test_bleu_with_one_reference_each_equals_sacrebleu():
    refs = [r[0] for r in TEXT_REFS]
    expected = sacrebleu.corpus_bleu(TEXT_HYPS, [refs]).score
    assert metrics.corpus_bleu(TEXT_HYPS, [[r] for r in refs]) == pytest.approx(expected)
    assert 0 < expected < 100


def test_bleu_is_100_for_exact_output():
    assert metrics.corpus_bleu([r[0] for r in TEXT_REFS], TEXT_REFS) == pytest.approx(100.0)


def test_per_uses_the_closest_reference_per_example():
    # Distances to the closest references: 0 + 1 + 1 = 2; their lengths: 3 + 3 + 3 = 9.
    assert metrics.per(G2P_HYPS, G2P_REFS) == pytest.approx(2 / 9)
    assert metrics.error_rate(G2P_HYPS, G2P_REFS, unit="token") == pytest.approx(2 / 9)


def test_per_breaks_distance_ties_with_the_first_listed_reference():
    # "A B" is 1 edit from both "A C" (length 2) and "A B D" (length 3): the first is chosen -> 1/2.
    assert metrics.per(["A B"], [["A C", "A B D"]]) == pytest.approx(1 / 2)
    assert metrics.per(["A B"], [["A B D", "A C"]]) == pytest.approx(1 / 3)


def test_cer_counts_characters_including_spaces():
    # "ab c" vs "ab cd": 1 insertion over 5 characters.
    assert metrics.error_rate(["ab c"], [["ab cd"]], unit="char") == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="unit"):
        metrics.error_rate(["a"], [["a"]], unit="phone")


def test_g2p_wer_counts_a_word_right_if_it_matches_any_reference():
    # Only "K AE T" matches a reference (its 2nd one).
    assert metrics.sequence_accuracy(G2P_HYPS, G2P_REFS) == pytest.approx(1 / 3)
    assert metrics.wer(G2P_HYPS, G2P_REFS) == pytest.approx(2 / 3)


def test_text_wer_is_word_edit_distance_over_reference_words():
    # "a quick brown fox jumps over the dog" vs "the quick brown fox jumps over the lazy dog":
    # 1 substitution + 1 deletion over 9 words.
    values = metrics.compute_metrics([TEXT_HYPS[1]], [TEXT_REFS[1]], names=["text_wer"])
    assert values == {"text_wer": pytest.approx(2 / 9)}


def test_token_accuracy_is_positionwise_with_the_best_reference():
    # Best references: "K AE T" 3/3, "D EY T" 3/3 (vs 2/4 for "D AE T ER"), "N UW Z" 2/3 (vs 1/4).
    assert metrics.token_accuracy(G2P_HYPS, G2P_REFS) == pytest.approx((3 + 3 + 2) / (3 + 3 + 3))


def test_perplexity():
    assert metrics.perplexity(total_nll=10 * math.log(4.0), total_tokens=10) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="token count"):
        metrics.perplexity(1.0, 0)


def test_compute_metrics_returns_the_requested_names():
    values = metrics.compute_metrics(G2P_HYPS, G2P_REFS, names=["per", "wer", "seq_acc"])
    assert values == {"per": pytest.approx(2 / 9), "wer": pytest.approx(2 / 3), "seq_acc": pytest.approx(1 / 3)}
    assert set(metrics.compute_metrics(G2P_HYPS, G2P_REFS)) == set(metrics.METRICS)
    with pytest.raises(ValueError, match="unknown metric names"):
        metrics.compute_metrics(G2P_HYPS, G2P_REFS, names=["accuracy"])


@pytest.mark.parametrize("name", sorted(metrics.METRICS))
def test_empty_and_mismatched_inputs_are_rejected(name):
    with pytest.raises(ValueError, match="empty"):
        metrics.compute_metrics([], [], names=[name])
    with pytest.raises(ValueError, match="3 vs 2"):
        metrics.compute_metrics(G2P_HYPS, G2P_REFS[:2], names=[name])
    with pytest.raises(ValueError, match=r"refs_lists\[0\] is a string"):
        metrics.compute_metrics(G2P_HYPS, ["K AE T", "D EY T", "N UW"], names=[name])
    with pytest.raises(ValueError, match=r"refs_lists\[2\] is empty"):
        metrics.compute_metrics(G2P_HYPS, [["K AE T"], ["D EY T"], []], names=[name])


def test_metrics_by_length_partitions_examples_and_scores_each_bucket_alone():
    hyps = G2P_HYPS + [r[0] for r in TEXT_REFS] + TEXT_HYPS
    refs = G2P_REFS + TEXT_REFS + TEXT_REFS
    lengths = [3, 12, 25, 7, 45, 19, 0, 30, 9]
    edges = [0, 10, 20, 40, math.inf]
    names = ["bleu", "per", "seq_acc"]

    rows = metrics.metrics_by_length(hyps, refs, lengths, edges, names)

    buckets = [(r["lo"], r["hi"], r["count"]) for r in rows]
    assert buckets == [(0, 10, 4), (10, 20, 2), (20, 40, 2), (40, math.inf, 1)]
    assert sum(r["count"] for r in rows) == len(hyps)
    for row in rows:
        idx = [i for i, n in enumerate(lengths) if row["lo"] <= n < row["hi"]]
        alone = metrics.compute_metrics([hyps[i] for i in idx], [refs[i] for i in idx], names)
        assert {k: row[k] for k in names} == alone


def test_metrics_by_length_skips_empty_buckets_and_rejects_lengths_outside_the_edges():
    rows = metrics.metrics_by_length(G2P_HYPS, G2P_REFS, [1, 2, 50], [0, 10, 20, 100], ["seq_acc"])
    assert [(r["lo"], r["hi"], r["count"]) for r in rows] == [(0, 10, 2), (20, 100, 1)]
    with pytest.raises(ValueError, match=r"\[100\] fall outside"):
        metrics.metrics_by_length(G2P_HYPS, G2P_REFS, [1, 2, 100], [0, 10, 100], ["seq_acc"])
    with pytest.raises(ValueError, match="strictly increasing"):
        metrics.metrics_by_length(G2P_HYPS, G2P_REFS, [1, 2, 3], [0, 10, 10], ["seq_acc"])
    with pytest.raises(ValueError, match="2 vs 3"):
        metrics.metrics_by_length(G2P_HYPS, G2P_REFS, [1, 2], [0, 10], ["seq_acc"])


def test_length_buckets_are_integer_quantiles_covering_every_length():
    lengths = list(range(1, 11))
    # The 0.25, 0.5, 0.75 quantiles of 1..10 are 3.25, 5.5, 7.75 -> rounded up: 4, 6, 8.
    assert metrics.length_buckets(lengths, 4) == [1, 4, 6, 8, math.inf]
    edges = metrics.length_buckets(lengths, 4)
    rows = metrics.metrics_by_length(["a"] * 10, [["a"]] * 10, lengths, edges, ["wer"])
    assert [r["count"] for r in rows] == [3, 2, 2, 3]
    # Tied lengths merge edges rather than make empty buckets.
    assert metrics.length_buckets([5, 5, 5, 9, 9], 4) == [5, 9, math.inf]


# --- tokens of the target vocabulary, and sacrebleu's signatures ---


def test_token_accuracy_differs_from_sequence_accuracy_with_one_wrong_character():
    char_vocab = vocab_lib.build_vocab("char", ["abcd"])
    tokenize = metrics.vocab_tokenizer(char_vocab)
    values = metrics.compute_metrics(["abd"], [["abc"]], names=["seq_acc", "token_acc", "wer"], tokenize=tokenize)
    assert values == {"seq_acc": 0.0, "token_acc": pytest.approx(2 / 3), "wer": 1.0}
    # Whitespace tokens would make the whole output one token: token_acc would equal seq_acc.
    assert metrics.token_accuracy(["abd"], [["abc"]]) == metrics.sequence_accuracy(["abd"], [["abc"]]) == 0.0


def test_a_character_vocabulary_counts_spaces_as_characters():
    tokenize = metrics.vocab_tokenizer(vocab_lib.build_vocab("char", ["a b"]))
    assert tokenize("a b") == ["a", " ", "b"]
    assert metrics.sequence_accuracy(["a  b"], [["a b"]], tokenize) == 0.0
    assert metrics.sequence_accuracy(["a  b"], [["a b"]]) == 1.0  # whitespace tokens ignore the extra space


def test_a_word_vocabulary_counts_words():
    tokenize = metrics.vocab_tokenizer(vocab_lib.build_vocab("word", ["the cat sat"]))
    assert metrics.token_accuracy(["the dog sat"], [["the cat sat"]], tokenize) == pytest.approx(2 / 3)


def test_a_sentencepiece_vocabulary_counts_pieces():
    text = "the cat sat on the mat with the other cat"
    sp = vocab_lib.build_vocab("sentencepiece", [text] * 20, vocab_size=30)
    tokenize = metrics.vocab_tokenizer(sp)
    pieces = tokenize(text)
    assert "".join(pieces).replace("\u2581", " ").strip() == text
    assert len(pieces) == len(sp.encode(text)) and len(pieces) != len(text) and len(pieces) != len(text.split())
    hyp = text[:-len(" cat")]  # the last word dropped: one piece fewer, the others equal
    assert tokenize(hyp) == pieces[:-1]
    assert metrics.token_accuracy([hyp], [[text]], tokenize) == pytest.approx((len(pieces) - 1) / len(pieces))


def test_sacrebleu_signatures_are_sacrebleus_own():
    signatures = metrics.sacrebleu_signatures(TEXT_HYPS, TEXT_REFS, ["bleu", "chrf", "seq_acc"])
    assert set(signatures) == {"bleu", "chrf"}
    streams = metrics._reference_streams(TEXT_REFS)
    for name, metric in (("bleu", sacrebleu.BLEU()), ("chrf", sacrebleu.CHRF())):
        metric.corpus_score(TEXT_HYPS, streams)
        assert signatures[name] == str(metric.get_signature())
    assert signatures["bleu"].startswith("nrefs:var|") and "tok:13a" in signatures["bleu"]
    assert f"version:{sacrebleu.__version__}" in signatures["chrf"]
