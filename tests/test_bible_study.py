"""The Bible study (Bahdanau et al. 2014, fig. 2 on Spanish→English verses): two models of the same cell, size
and budget with parameter counts within 10%; BLEU of short and long sources from the test predictions."""

import jax
import jax.numpy as jnp
import pytest

from experiments import bible_es_en
from experiments import study
from experiments import sweep
from seq2seq_jax import metrics
from seq2seq_jax.model import ModelConfig, Seq2Seq

STUDY = bible_es_en.STUDY


def configs(setting):
    base = study.base_config(STUDY, setting)
    return {v.name: sweep.apply_overrides(base, v.overrides) for v in STUDY.variants}


def num_params(config) -> int:
    vocab = config.data.vocab_size  # sentencepiece vocabularies of this size on either side
    model = Seq2Seq(ModelConfig.from_config(config.model, source_vocab_size=vocab, target_vocab_size=vocab))
    x = jnp.ones((1, 3), jnp.int32)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, jnp.array([3]), x))["params"]
    return sum(leaf.size for leaf in jax.tree.leaves(shapes))


@pytest.mark.parametrize("setting", study.SETTINGS)
def test_both_models_have_the_same_cell_size_and_budget_and_parameters_within_ten_percent(setting):
    bottleneck, attention = configs(setting)["bottleneck"], configs(setting)["attention"]
    for field in ("model.cell", "model.embedding_size", "model.hidden_size", "train.num_steps",
                  "train.batch_size", "data.vocab_size"):
        assert sweep.flat_config(bottleneck)[field] == sweep.flat_config(attention)[field], field
    assert (bottleneck.model.reverse_source, bottleneck.model.bidirectional) == (True, False)  # Sutskever
    assert (attention.model.reverse_source, attention.model.bidirectional) == (False, True)  # Bahdanau
    sizes = num_params(bottleneck), num_params(attention)
    assert max(sizes) / min(sizes) <= 1.1, sizes


def test_short_and_long_bleu_come_from_the_verses_of_those_source_lengths():
    predictions = [
        ("uno dos tres cuatro cinco seis siete ocho nueve diez", "one two three four five six seven eight nine ten",
         "one two three four five six seven eight nine ten"),  # 10 words: short, translated perfectly
        (" ".join(["palabra"] * 30), "a word a word a word", " ".join(["word"] * 30)),  # 30 words: long
        ("cinco palabras nada más aquí", "five words", "five words only here"),  # 5 words: neither
    ]
    got = bible_es_en.length_metrics(predictions)
    long_bleu = metrics.corpus_bleu(["a word a word a word"], [[" ".join(["word"] * 30)]])
    assert got == {"test/bleu_10_19_words": pytest.approx(100.0), "test/bleu_30plus_words": pytest.approx(long_bleu),
                   "test/bleu_drop_10_19_to_30plus": pytest.approx(100.0 - long_bleu)}
    assert bible_es_en.length_metrics(predictions[2:]) == {}  # no short or long verse: no number


def test_example_and_heatmap_verses_are_the_first_of_each_length():
    sources = ["a b c", "a b", "a b c d e", "a b c"]
    assert bible_es_en.first_of_lengths(sources, (3, 4, 9)) == [0, 2]  # 4 words: the nearest longer; 9: none
