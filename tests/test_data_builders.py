"""TFDS builders: prepare offline to array_record, read without TensorFlow, disjoint non-empty splits."""

import os
import sys

import pytest
import tensorflow_datasets as tfds

from seq2seq_jax.data import datasets
from seq2seq_jax.data.datasets import _common, cmudict_g2p, number_words

SMALL = {"num_train": 300, "num_validation": 30, "num_test": 30}
GENERATED = {
    "number_words/digits_en": SMALL,
    "number_words/en_fr": SMALL,
    "number_words/en_de": SMALL,
    "dates": SMALL,
    "synthetic/copy": SMALL,
    "synthetic/reverse": SMALL,
    "synthetic/sort": SMALL,
    "synthetic/addition": {**SMALL, "max_length": 6},
    "cmudict_g2p/no_stress": {},
}


def read(builder) -> dict[str, list[dict]]:
    """Every split as a list of str dicts (Text features come back from array_record as bytes)."""
    def text(x):
        return x.decode() if isinstance(x, bytes) else x

    def records(split):
        source = builder.as_data_source(split=split)
        return source.__getitems__(range(len(source)))  # One batched read: much faster than item by item.

    return {
        split: [{"source": text(r["source"]), "target": text(r["target"]),
                 "references": [text(x) for x in r["references"]]} for r in records(split)]
        for split in builder.info.splits
    }


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def prepared(data_dir):
    """Every local builder prepared once, read back as {name: {split: examples}}."""
    out = {}
    for name, kwargs in GENERATED.items():
        builder = datasets.get_builder(name, data_dir, **kwargs)
        builder.download_and_prepare()
        out[name] = read(builder)
    return out


@pytest.mark.parametrize("name", GENERATED)
def test_builder_prepares_non_empty_disjoint_splits(prepared, name):
    splits = prepared[name]
    assert set(splits) == {"train", "validation", "test"}
    sources = {split: {e["source"] for e in examples} for split, examples in splits.items()}
    assert all(sources.values())
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]
    for examples in splits.values():
        assert all(e["target"] in e["references"] for e in examples)


@pytest.mark.parametrize("name", [n for n in GENERATED if n != "cmudict_g2p/no_stress"])
def test_generated_split_sizes_come_from_the_config(prepared, name):
    assert {s: len(e) for s, e in prepared[name].items()} == {"train": 300, "validation": 30, "test": 30}


def test_tasks_map_sources_to_the_right_targets(prepared):
    for e in prepared["synthetic/reverse"]["train"]:
        assert e["target"] == e["source"][::-1]
    for e in prepared["synthetic/sort"]["train"]:
        assert e["target"] == "".join(sorted(e["source"]))
    for e in prepared["synthetic/addition"]["train"]:
        left, right = e["source"].split("+")
        assert int(e["target"]) == int(left) + int(right)
    for e in prepared["number_words/digits_en"]["train"]:
        assert e["target"] == number_words.write(int(e["source"]), "en")
    assert {len(e["source"]) for e in prepared["synthetic/copy"]["train"]} == set(range(1, 21))


def test_number_words_is_real_translation_with_spread_lengths(prepared):
    assert number_words.write(97, "en") == "ninety-seven"
    assert number_words.write(97, "fr") == "quatre-vingt-dix-sept"
    lengths = [len(e["source"]) for e in prepared["number_words/en_fr"]["train"]]
    assert min(lengths) < 25 and max(lengths) > 80


def test_splits_share_the_few_short_numbers_in_proportion_to_their_sizes():
    # Digit counts are uniform in 1..9, so a fifth of the draws are among just 100 one- and two-digit numbers:
    # dealt in draw order, the split filled first would take them all and training would see none.
    sizes = {"train": 50_000, "validation": 1000, "test": 2000}
    splits = _common.fill_splits(lambda rng: number_words.draw_number(rng, 9), sizes, seed=0)
    assert {split: len(items) for split, items in splits.items()} == sizes
    assert len(set().union(*splits.values())) == sum(sizes.values())  # distinct, so no number in two splits
    short = {split: sum(n < 100 for n in items) for split, items in splits.items()}
    assert sum(short.values()) == 100
    assert short["train"] >= 85 and short["validation"] <= 8 and short["test"] <= 12  # expected 94, 2, 4
    assert splits == _common.fill_splits(lambda rng: number_words.draw_number(rng, 9), sizes, seed=0)


def test_dates_are_iso_targets_and_disjoint_by_date(prepared):
    splits = prepared["dates"]
    dates = {split: {e["target"] for e in examples} for split, examples in splits.items()}
    assert not dates["train"] & (dates["validation"] | dates["test"])
    assert all(len(d) == 10 and d[4] == d[7] == "-" for d in dates["train"])
    assert len({e["source"] for e in splits["train"]}) == len(splits["train"])


def test_cmudict_puts_each_word_in_one_split_with_all_its_pronunciations(prepared):
    splits = prepared["cmudict_g2p/no_stress"]
    assert len(splits["train"]) >= 100_000
    words = {split: {e["source"] for e in examples} for split, examples in splits.items()}
    assert not words["train"] & words["validation"] and not words["train"] & words["test"]
    assert not words["validation"] & words["test"]
    assert len(words["validation"]) == len(splits["validation"]), "one example per evaluation word"
    multi = [e for e in splits["test"] if len(e["references"]) > 1]
    assert multi and all(e["target"] == e["references"][0] for e in multi)
    assert not any(ch.isdigit() for e in splits["train"][:1000] for ch in e["target"])


def test_cmudict_stress_config_keeps_digits_and_no_stress_dedupes():
    assert cmudict_g2p.pronunciations([["HH", "AH0"], ["HH", "AH1"]], stress=True) == ["HH AH0", "HH AH1"]
    assert cmudict_g2p.pronunciations([["HH", "AH0"], ["HH", "AH1"]], stress=False) == ["HH AH"]


def test_size_overrides_get_their_own_prepared_directory(data_dir):
    default = datasets.get_builder("synthetic/copy", data_dir)
    small = datasets.get_builder("synthetic/copy", data_dir, **SMALL)
    assert default.builder_config.name == "copy"
    assert small.builder_config.name.startswith("copy-") and small.data_dir != default.data_dir


def test_building_and_reading_never_imports_tensorflow(prepared):
    assert "tensorflow" not in sys.modules


# --- parallel_text ---


def write(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return str(path)


def test_parallel_text_reads_tsv_and_aligned_files(tmp_path):
    train = write(tmp_path / "train.tsv", ["hello\tbonjour", "cat\tchat"])
    src = write(tmp_path / "valid.en", ["dog"])
    tgt = write(tmp_path / "valid.fr", ["chien"])
    builder = datasets.get_builder("parallel_text", str(tmp_path / "tfds"), train_file=train,
                                   validation_file=f"{src},{tgt}")
    builder.download_and_prepare()
    splits = read(builder)
    assert sorted((e["source"], e["target"]) for e in splits["train"]) == [("cat", "chat"), ("hello", "bonjour")]
    assert splits["validation"] == [{"source": "dog", "target": "chien", "references": ["chien"]}]
    assert "test" not in splits


def test_parallel_text_config_changes_when_a_file_changes(tmp_path):
    train = write(tmp_path / "train.tsv", ["a\tb"])
    before = datasets.get_builder("parallel_text", str(tmp_path), train_file=train).builder_config.name
    write(tmp_path / "train.tsv", ["a\tb", "c\td"])
    after = datasets.get_builder("parallel_text", str(tmp_path), train_file=train).builder_config.name
    assert before != after


def test_tsv_line_without_tab_names_file_and_line(tmp_path):
    train = write(tmp_path / "train.tsv", ["a\tb", "no tab here"])
    with pytest.raises(ValueError, match=r"data\.train_file: .*train\.tsv' line 2: expected 'source<TAB>target'"):
        datasets.get_builder("parallel_text", str(tmp_path), train_file=train)


def test_missing_file_names_path_and_split(tmp_path):
    train = write(tmp_path / "train.tsv", ["a\tb"])
    with pytest.raises(ValueError, match=r"data\.test_file: file '.*nope\.tsv' for the test split does not exist"):
        datasets.get_builder("parallel_text", str(tmp_path), train_file=train, test_file=str(tmp_path / "nope.tsv"))


def test_empty_file_is_named(tmp_path):
    train = write(tmp_path / "train.tsv", [])
    with pytest.raises(ValueError, match=r"data\.train_file: file '.*train\.tsv' for the train split is empty"):
        datasets.get_builder("parallel_text", str(tmp_path), train_file=train)


def test_aligned_files_with_different_line_counts_name_both(tmp_path):
    src = write(tmp_path / "train.en", ["a", "b"])
    tgt = write(tmp_path / "train.fr", ["a"])
    with pytest.raises(ValueError, match=r"'.*train\.en' has 2 lines but '.*train\.fr' has 1"):
        datasets.get_builder("parallel_text", str(tmp_path), train_file=f"{src},{tgt}")


# --- registry and catalog datasets ---


@pytest.mark.parametrize("name", ["no_such_dataset", "synthetic/nope", "number_words/xx_yy"])
def test_unknown_dataset_names_the_field_value_and_allowed_names(tmp_path, name):
    with pytest.raises(ValueError, match=rf"data\.dataset: unknown dataset '{name}'.*allowed: .*number_words/en_fr"):
        datasets.get_builder(name, str(tmp_path))


def test_option_that_does_not_apply_names_the_field(tmp_path):
    with pytest.raises(ValueError, match=r"data\.num_train does not apply to dataset 'cmudict_g2p/stress'"):
        datasets.get_builder("cmudict_g2p/stress", str(tmp_path), num_train=10)


def test_catalog_translation_set_reads_through_data_source_with_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        builder = datasets.get_builder("wmt14_translate/fr-en", str(tmp_path))
        builder.download_and_prepare()
        records = list(builder.as_data_source(split="train"))
    assert builder.info.supervised_keys == ("fr", "en")
    assert len(records) == 5 and set(records[0]) == {"fr", "en"}
    assert "tensorflow" not in sys.modules
    assert not os.path.exists(os.path.join(tmp_path, "wmt14_translate")), "mocking prepares nothing"
