"""parallel_text reads the user's files faithfully: lines split at '\\n' only, one clear error for a bad
file, blank pairs counted, and validation/test lines sharing a source scored as one multi-reference example."""

import logging

import hypothesis
import pytest
from hypothesis import strategies as st

from seq2seq_jax import metrics
from seq2seq_jax.data import config as config_lib
from seq2seq_jax.data import datasets
from seq2seq_jax.data import pipeline
from seq2seq_jax.data.datasets import parallel_text

# Characters `str.splitlines` breaks a line at, besides '\n' and '\r'.
SPLITLINES_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def write_bytes(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def write(path, lines) -> str:
    return write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))


def prepared_splits(tmp_path, **files) -> dict[str, list[dict]]:
    """Prepares a parallel_text builder on `files` and reads every split back as str dicts."""
    builder = datasets.get_builder("parallel_text", str(tmp_path / "tfds"), **files)
    builder.download_and_prepare()
    def text(x):
        return x.decode() if isinstance(x, bytes) else x
    return {split: [{"source": text(r["source"]), "target": text(r["target"]),
                     "references": [text(x) for x in r["references"]]}
                    for r in builder.as_data_source(split=split)]
            for split in builder.info.splits}


def test_two_file_corpus_with_line_separators_inside_lines_stays_aligned(tmp_path):
    pairs = [(f"s{i}{c}x", f"t{i}{c}y") for i, c in enumerate(SPLITLINES_BREAKS)] + [("last", "end")]
    src = write(tmp_path / "train.src", [s for s, _ in pairs])
    tgt = write(tmp_path / "train.tgt", [t for _, t in pairs])
    splits = prepared_splits(tmp_path, train_file=f"{src},{tgt}")
    assert sorted((e["source"], e["target"]) for e in splits["train"]) == sorted(pairs)


def test_crlf_and_a_byte_order_mark_are_not_part_of_the_text(tmp_path):
    train = write_bytes(tmp_path / "train.tsv", b"\xef\xbb\xbfhello\tbonjour\r\ncat\tchat\r\n")
    assert parallel_text.read_pairs(train, "train") == [("hello", "bonjour"), ("cat", "chat")]


def test_a_lone_carriage_return_stays_inside_its_line(tmp_path):
    train = write_bytes(tmp_path / "train.tsv", b"a\rb\tc\n")
    assert parallel_text.read_pairs(train, "train") == [("a\rb", "c")]


@pytest.mark.parametrize("data, expected", [
    (b"a\tb\nc\xff\td\n", r"train\.tsv' for the train split, line 2: not valid UTF-8"),
    (b"a\tb\n\nc\0\td\n", r"train\.tsv' for the train split, line 3: contains a NUL byte"),
    (b"a\tb\nc\td\te\n", r"train\.tsv' line 2: expected 'source<TAB>target' \(exactly one tab\), found 2 tabs"),
    (b"\n\t\n \n", r"train\.tsv' has no line with both a source and a target"),
    (b"", r"train\.tsv' for the train split is empty"),
])
def test_a_bad_file_is_one_error_naming_file_and_line(tmp_path, data, expected):
    train = write_bytes(tmp_path / "train.tsv", data)
    with pytest.raises(parallel_text.DataFileError, match=r"^data\.train_file: .*" + expected):
        datasets.get_builder("parallel_text", str(tmp_path), train_file=train)


def test_blank_pairs_are_skipped_counted_and_logged(tmp_path, caplog):
    src = write(tmp_path / "train.src", ["a", "", "c", "d", " "])
    tgt = write(tmp_path / "train.tgt", ["x", "y", "", "w", "v"])
    with caplog.at_level(logging.WARNING, logger="absl"):
        pairs = parallel_text.read_pairs(f"{src},{tgt}", "train")
    assert pairs == [("a", "x"), ("d", "w")]
    assert "skipped 3 of 5 lines whose source or target is blank (first: line 2)" in caplog.text


def test_validation_and_test_lines_with_one_source_are_one_example_with_several_references(tmp_path, caplog):
    train = write(tmp_path / "train.tsv", ["read\tR IY D", "read\tR EH D", "cat\tK AE T"])
    test = write(tmp_path / "test.tsv", ["read\tR IY D", "cat\tK AE T", "read\tR EH D", "read\tR IY D"])
    with caplog.at_level(logging.INFO, logger="absl"):
        merged = prepared_splits(tmp_path / "merged", train_file=train, validation_file=test, test_file=test)
    assert "data.test_file: 2 lines merged into examples with several references (2 examples from 4 lines)" \
        in caplog.text
    by_source = sorted(merged["test"], key=lambda e: e["source"])  # TFDS stores examples in its own order
    assert by_source == [{"source": "cat", "target": "K AE T", "references": ["K AE T"]},
                         {"source": "read", "target": "R IY D", "references": ["R IY D", "R EH D"]}]
    assert sorted(merged["validation"], key=lambda e: e["source"]) == by_source
    assert len(merged["train"]) == 3  # training lines are never merged
    apart = prepared_splits(tmp_path / "apart", train_file=train, test_file=test, merge_references=False)
    assert sorted((e["source"], e["references"]) for e in apart["test"]) == [
        ("cat", ["K AE T"]), ("read", ["R EH D"]), ("read", ["R IY D"]), ("read", ["R IY D"])]


def test_a_hypothesis_matching_either_reference_scores_as_correct(tmp_path):
    train = write(tmp_path / "train.tsv", ["read\tR IY D", "read\tR EH D", "cat\tK AE T", "dog\tD AO G"])
    test = write(tmp_path / "test.tsv", ["read\tR IY D", "read\tR EH D"])
    c = config_lib.get_data_config()
    c.update(dataset="parallel_text", data_dir=str(tmp_path / "tfds"), train_file=train, validation_file=test,
             test_file=test, target_vocab="word")
    data = pipeline.get_data(c, batch_size=2, seed=0, vocab_dir=str(tmp_path / "vocab"))
    refs = [e["references"] for e in data.examples("test")]
    assert refs == [["R IY D", "R EH D"]]
    for hyp in ("R IY D", "R EH D"):
        assert metrics.compute_metrics([hyp], refs, names=["seq_acc", "wer", "per", "token_acc"]) == {
            "seq_acc": 1.0, "wer": 0.0, "per": 0.0, "token_acc": 1.0}
        assert metrics.corpus_chrf([hyp], refs) == pytest.approx(100.0)  # (3 tokens: too short for BLEU)
    assert metrics.sequence_accuracy(["R AY D"], refs) == 0.0


# --- bad files, generated ---

# Text a line must keep as it is: characters `str.splitlines` would break at, a lone CR, a 5000-character run.
TEXT = st.lists(st.sampled_from(["a", "bc", "\u00e9", " ", "\r", "x" * 5000, *SPLITLINES_BREAKS]),
                min_size=1, max_size=4).map("".join)
# Bytes that break a file when put anywhere (inside a multi-byte character too): invalid UTF-8, a NUL, a tab,
# a newline (a shifted line or a TSV line without a tab), a BOM.
CORRUPTIONS = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\0", b"\t", b"\n", b"\xef\xbb\xbf"]


@st.composite
def data_files(draw, num_files: int):
    """`num_files` line-aligned files' bytes, the pairs they hold (`None` if corrupted: bytes inserted at a
    random place of one file) and the corruption."""
    line = st.tuples(TEXT, TEXT).map("\t".join) if num_files == 1 else TEXT
    rows = draw(st.lists(st.tuples(*[line] * num_files), min_size=1, max_size=8))
    ends = draw(st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(rows), max_size=len(rows)))
    files = [b"".join(row[k].encode() + end for row, end in zip(rows, ends)) for k in range(num_files)]
    corruption = draw(st.none() | st.sampled_from(CORRUPTIONS))
    if corruption is not None:
        k = draw(st.integers(0, num_files - 1))
        at = draw(st.integers(0, len(files[k])))
        files[k] = files[k][:at] + corruption + files[k][at:]
        return files, None, corruption
    # A line as read: one CR before its newline dropped (the CRLF's own, or else one that ends the text).
    read = [[(text + ("\r" if end == b"\r\n" else "")).removesuffix("\r") for text in row]
            for row, end in zip(rows, ends)]
    pairs = [tuple(row[0].split("\t")) if num_files == 1 else tuple(row) for row in read]
    return files, [(s, t) for s, t in pairs if s.strip() and t.strip()], None


@hypothesis.settings(max_examples=80, deadline=None, derandomize=True,  # the same files on every CI run
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(num_files=st.sampled_from([1, 2]), data=st.data(), second_missing=st.booleans())
def test_any_file_gives_its_pairs_or_one_error_naming_the_file(tmp_path, num_files, data, second_missing):
    files, expected, corruption = data.draw(data_files(num_files))
    paths = [tmp_path / f"data{k}.txt" for k in range(num_files)]
    for path, content in zip(paths, files):
        write_bytes(path, content)
    if num_files == 2 and second_missing and corruption is None:
        paths[1].unlink()
    spec = ",".join(map(str, paths))
    try:
        builder = datasets.get_builder("parallel_text", str(tmp_path / "tfds"), train_file=spec)
    except parallel_text.DataFileError as error:
        message = str(error)
        hypothesis.event(f"refused: ...{message[-45:]}")
        assert message.startswith("data.train_file: ") and "\n" not in message
        assert any(str(path) in message for path in paths)
        assert corruption is not None or not expected or not paths[-1].exists()
        return
    hypothesis.event("read")
    pairs = parallel_text.read_pairs(spec, "train")
    if corruption is None:
        assert pairs == expected
    for source, target in pairs:
        assert source.strip() and target.strip() and "\n" not in source + target and "\0" not in source + target
        assert num_files == 2 or "\t" not in source + target
    builder.download_and_prepare()  # what was read is what TFDS stores
    stored = [(r["source"].decode(), r["target"].decode()) for r in builder.as_data_source(split="train")]
    assert sorted(stored) == sorted(pairs)
