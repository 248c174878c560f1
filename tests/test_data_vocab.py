"""Vocabularies: exact round trips, UNK for the unseen, robust decoding, identical after save/load."""

import os

import pytest

from seq2seq_jax.data import vocab as vocab_lib
from seq2seq_jax.data.vocab import BOS, EOS, PAD, UNK, UNK_SYMBOL

TEXTS = [
    "one thousand, two hundred and thirty-four",
    "quatre-vingt-dix-sept",
    "HH AH0 L OW1",
    "mardi 14 juillet 1789",
] * 20


@pytest.fixture(scope="module", params=["char", "word", "sentencepiece"])
def vocab(request):
    return vocab_lib.build_vocab(request.param, TEXTS, vocab_size=60 if request.param == "sentencepiece" else None)


def test_round_trip_is_exact_for_in_vocabulary_text(vocab):
    for text in set(TEXTS):
        ids = vocab.encode(text)
        assert all(UNK < i < vocab.size for i in ids), "no specials inside encoded text"
        assert vocab.decode(ids) == text


def test_decode_stops_at_eos_and_skips_pad_and_bos(vocab):
    ids = vocab.encode("quatre-vingt-dix-sept")
    assert vocab.decode([BOS, *ids, EOS, *vocab.encode("HH AH0"), PAD]) == "quatre-vingt-dix-sept"
    assert vocab.decode([BOS, *ids, PAD, PAD]) == "quatre-vingt-dix-sept"


def test_each_id_without_a_token_decodes_as_one_unk_symbol_among_the_text(vocab):
    out = vocab.decode([vocab.size, vocab.size + 1000, -5, UNK, 10**9])
    assert out.count(UNK_SYMBOL) == 5 and out.replace(UNK_SYMBOL, "").strip() == ""
    between = vocab.decode([*vocab.encode("HH"), vocab.size, *vocab.encode("AH0")])
    assert between.startswith("HH") and between.endswith("AH0") and between.count(UNK_SYMBOL) == 1


@pytest.mark.parametrize("kind, text", [("char", "zz\u00e9"), ("word", "seven zebras")])
def test_unknown_tokens_map_to_unk(kind, text):
    v = vocab_lib.build_vocab(kind, TEXTS)
    assert UNK in v.encode(text)
    assert UNK_SYMBOL in v.decode(v.encode(text))


def test_min_count_and_vocab_size_limit_char_and_word_vocabularies():
    v = vocab_lib.build_vocab("word", ["a b c", "a b", "a"], min_count=2)
    assert v.encode("a b c") == [v.encode("a")[0], v.encode("b")[0], UNK]
    assert vocab_lib.build_vocab("char", TEXTS, vocab_size=10).size == 10


def test_word_decode_joins_with_single_spaces():
    v = vocab_lib.build_vocab("word", TEXTS)
    assert v.decode(v.encode("  HH   AH0 L  ")) == "HH AH0 L"


def test_save_and_load_give_identical_encodings(vocab, tmp_path):
    path = os.path.join(tmp_path, vocab_lib.vocab_filename(vocab.kind, "source_vocab"))
    vocab.save(path)
    loaded = vocab_lib.load_vocab(path)
    assert (loaded.kind, loaded.size) == (vocab.kind, vocab.size)
    for text in set(TEXTS) | {"unseen words ~"}:
        assert loaded.encode(text) == vocab.encode(text)
        assert loaded.decode(loaded.encode(text)) == vocab.decode(vocab.encode(text))


def test_bad_kind_and_missing_sentencepiece_size_are_errors():
    with pytest.raises(ValueError, match="Unknown vocabulary kind 'bpe'"):
        vocab_lib.build_vocab("bpe", TEXTS)
    with pytest.raises(ValueError, match="data.vocab_size"):
        vocab_lib.build_vocab("sentencepiece", TEXTS)
