"""bible/es-en: Spanish → English verse pairs from two installed SWORD modules.

Cleaning turns a verse's OSIS markup into plain text without gluing words; pairs are split by whole
chapters; filters drop empty, misaligned, too long and lopsided pairs and count them; a missing module is one
clear error before anything is written; preparation writes the splits as line-aligned text files too. The
last tests prepare the real modules (installed in CI by .ci/run) and check the numbers the module docstring
states.
"""

import collections
import logging
import os
import subprocess
import sys
import time

import pytest

from seq2seq_jax.data import datasets
from seq2seq_jax.data.datasets import bible
from seq2seq_jax.data.datasets import osis

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W = '<w lemma="strong:H0430">'  # how the modules open a word: the lemma is dropped with the tag


# ---------------------------------------------------------------------------------------------------------
# Cleaning one verse.

def test_a_footnote_goes_with_its_text_and_the_words_around_it_stay_apart():
    # The WEB's Gen 1:1 as the module stores it: pysword's own cleaning makes "Godcreated" of it.
    raw = (f'{W}In</w> {W}the</w> {W}beginning</w>, {W}God</w><note placement="foot"><reference '
           'type="annotateRef">1:1 </reference>The Hebrew word rendered “God” is “אֱלֹהִ֑ים” (Elohim).'
           f'</note>{W}created</w> {W}the</w> {W}heavens</w> {W}and</w> {W}the</w> {W}earth</w>. ')
    assert osis.clean_verse(raw) == "In the beginning, God created the heavens and the earth."


def test_a_note_before_punctuation_leaves_no_space():
    raw = f'{W}gerahs</w><note type="crossReference">Exod 30:13</note>); half a shekel'
    assert osis.clean_verse(raw) == "gerahs); half a shekel"


def test_word_tags_are_stripped_without_touching_punctuation():
    raw = (f'{W}EN el principio</w> {W}crió</w> {W}Dios</w>: ¿{W}Conque</w> (<transChange type="added">dijo '
           'ella</transChange>) <div eID="gen25" type="x-p"/>')
    assert osis.clean_verse(raw) == "EN el principio crió Dios: ¿Conque (dijo ella)"


def test_a_tag_between_two_words_separates_them():
    raw = (f'{W}hay allí</w><transChange type="added">también</transChange>{W}bdelio</w>. '
           f'<q who="Jesus">{W}all righteousness</w>.”</q>{W}Then</w> he')
    assert osis.clean_verse(raw) == "hay allí también bdelio. all righteousness.” Then he"


def test_poetry_lines_titles_and_milestones_leave_their_text():
    raw = ('<div type="x-milestone" subType="x-preverse" sID="pv4877"/><title canonical="true" type="psalm">'
           'A Psalm by David.</title> <lg sID="gen7860"/> <l level="1" sID="gen7861"/><div type="x-milestone" '
           'subType="x-preverse" eID="pv4877"/>Yahweh, how my adversaries have increased!<l eID="gen7861" '
           'level="1"/> <l level="2" sID="gen7862"/>Many rise up against me. <l eID="gen7862" level="2"/>')
    assert osis.clean_verse(raw) == ("A Psalm by David. Yahweh, how my adversaries have increased! "
                                      "Many rise up against me.")


def test_a_speaker_label_is_not_part_of_the_verse():
    raw = '<speaker>Beloved</speaker> <lg sID="g1"/> <l level="1" sID="g2"/>Let him kiss me'
    assert osis.clean_verse(raw) == "Let him kiss me"


def test_the_text_after_a_books_end_is_dropped():
    # The WEB's Rev 22:21 continues with its whole glossary.
    raw = ('saints. Amen. <chapter eID="Rev.22"/> <div canonical="true" eID="gen35575" osisID="Rev" type="book"/> '
           '<div sID="gen35837" type="glossary"/> <title level="1" type="main">World English Bible Glossary</title>')
    assert osis.clean_verse(raw) == "saints. Amen."


def test_entities_are_unescaped_and_whitespace_normalised():
    raw = f'  {W}Salt</w> &amp;\n\t{W}light</w> &lt;sic&gt;   , {W}end</w>  ?  '
    assert osis.clean_verse(raw) == "Salt & light <sic>, end?"


def test_spanish_enclitic_pronouns_join_the_verb_they_follow():
    raw = (f'{W}sáca</w><transChange type="added">lo</transChange> {W}de</w> aquí; {W}Y no</w>'
           f'<transChange type="added">lo</transChange>{W}hizo saber</w>; {W}di</w><transChange type="added">'
           'les</transChange>: paz')
    assert osis.clean_verse(raw, "es") == "sácalo de aquí; Y no lo hizo saber; diles: paz"
    assert osis.clean_verse(raw, "en") == "sáca lo de aquí; Y no lo hizo saber; di les: paz"


# ---------------------------------------------------------------------------------------------------------
# The capitals opening a chapter.

COUNTS = osis.mid_sentence_counts([
    "y aconteció que Abraham vino, y Abraham dijo: y aconteció que",  # "aconteció" and "Abraham" mid-sentence
    "le dijo á ti, y á ti",
])


@pytest.mark.parametrize("text, expected", [
    ("EN el principio crió Dios", "En el principio crió Dios"),  # the first word: capitalised
    ("Y ACONTECIÓ que", "Y aconteció que"),  # inside the sentence: as the word is usually written there
    ("Y ABRAHAM era viejo", "Y Abraham era viejo"),  # a name is usually capitalised
    ("Salmo de David. ¡OH Jehová", "Salmo de David. ¡Oh Jehová"),  # after a psalm's title: a new sentence
    ("Salmo de David. A TI, oh Jehová", "Salmo de David. A ti, oh Jehová"),  # the capitals run on
    ("ESTE ES EL REY", "ESTE ES EL REY"),  # a verse all in capitals is left alone
    ("Y el ángel subió", "Y el ángel subió"),  # no capitals: nothing to do
])
def test_a_chapters_opening_capitals_are_written_in_ordinary_case(text, expected):
    assert osis.recase_opening(text, COUNTS) == expected


def test_only_a_chapters_first_verse_is_recased():
    raw = {("Exod", 3, 1): "Y APACENTANDO Moisés", ("Exod", 3, 14): "respondió Dios: YO SOY EL QUE SOY"}
    assert osis.clean_module(raw, "es") == {("Exod", 3, 1): "Y apacentando Moisés",
                                            ("Exod", 3, 14): "respondió Dios: YO SOY EL QUE SOY"}


def test_a_letters_subscription_is_dropped_from_its_last_verse_only():
    raw = {("Eph", 6, 23): "Paz sea á los hermanos. Amén. Escrita de Roma.",
           ("Eph", 6, 24): "La gracia sea con todos. Amén. Escrita de Roma á los Efesios por Tichîco."}
    assert osis.clean_module(raw, "es") == {("Eph", 6, 23): "Paz sea á los hermanos. Amén. Escrita de Roma.",
                                            ("Eph", 6, 24): "La gracia sea con todos. Amén."}


# ---------------------------------------------------------------------------------------------------------
# Splits by chapter.

def test_a_chapters_split_depends_on_its_book_and_number_only():
    # Every verse of a chapter shares its split (the builder test below checks it on prepared data); chapters
    # of one number in different books, and different chapters of one book, are spread over the splits.
    assert {bible.chapter_split(f"Book{b}", 1, 0.04, 0.055) for b in range(200)} == {"train", "validation", "test"}
    assert {bible.chapter_split("Ps", c, 0.04, 0.055) for c in range(1, 151)} == {"train", "validation", "test"}


def test_the_split_is_deterministic():
    # A stable hash of "Book.chapter", the same on every machine and Python run: these values never change.
    genesis = {c: bible.chapter_split("Gen", c, 0.04, 0.055) for c in range(1, 51)}
    assert {c: s for c, s in genesis.items() if s != "train"} == {17: "test", 33: "validation", 39: "test",
                                                                  43: "test"}


def test_the_split_fractions_hold_over_many_chapters():
    counts = collections.Counter(bible.chapter_split(f"Book{b}", c, 0.04, 0.055) for b in range(100)
                                 for c in range(1, 101))
    assert abs(counts["validation"] / 10_000 - 0.04) < 0.008
    assert abs(counts["test"] / 10_000 - 0.055) < 0.008


# ---------------------------------------------------------------------------------------------------------
# Filters.

LIMITS = {"max_words": 60, "max_ratio": 2.5, "ratio_min_words": 10}


def words(n: int) -> str:
    return " ".join(["palabra"] * n)


@pytest.mark.parametrize("source, target, reason", [
    ("", "In the beginning", "empty"),
    ("En el principio", "", "empty"),
    (words(61), words(55), "too_long"),
    (words(40), words(61), "too_long"),
    (words(26), words(10), "ratio"),  # 2.6 times, the longer side over 10 words
    (words(25), words(10), None),  # 2.5 times: kept
    ("Y á Gath, y á Maresa, y á Ziph,", "Gath, Mareshah, Ziph,", None),  # 3 times but short: a real pair
    (words(60), words(60), None),
])
def test_each_filter_drops_what_it_says(source, target, reason):
    assert bible.drop_reason(source, target, **LIMITS) == reason


def test_misaligned_chapters_are_those_ending_in_a_verse_empty_on_one_side():
    source = {("Num", 12, 15): "a", ("Num", 12, 16): "", ("Num", 13, 1): "b", ("Num", 14, 1): "c",
              ("Acts", 8, 36): "d", ("Acts", 8, 37): "e", ("Acts", 8, 38): "f"}
    target = {**{ref: "x" for ref in source}, ("Acts", 8, 37): ""}  # a verse the target omits mid-chapter
    assert bible.misaligned_chapters(source, target) == {("Num", 12), ("Num", 13)}


def test_align_and_filter_counts_every_dropped_pair_once():
    source = {("Gen", 1, 1): "En el principio", ("Gen", 1, 2): "", ("Gen", 1, 3): words(61),
              ("Gen", 1, 4): words(30), ("Gen", 1, 5): "Y fué la tarde", ("Gen", 2, 1): "Y fueron acabados",
              ("Gen", 2, 2): "", ("Gen", 3, 1): "Y la serpiente", ("Gen", 4, 1): "Y conoció Adam"}
    target = {("Gen", 1, 1): "In the beginning", ("Gen", 1, 2): "The earth", ("Gen", 1, 3): words(50),
              ("Gen", 1, 4): words(11), ("Gen", 1, 5): "There was evening", ("Gen", 2, 1): "The heavens",
              ("Gen", 2, 2): "On the seventh day", ("Gen", 3, 1): "Now the serpent",
              ("Exod", 1, 1): "Now these are the names"}  # Gen 4:1 is only in the source: not a pair
    kept, dropped = bible.align_and_filter(source, target, **LIMITS, exclude=("Gen.1.5",))
    assert kept == [(("Gen", 1, 1), "En el principio", "In the beginning")]
    # Gen 2 ends in a verse the source leaves empty: Gen 2 and 3 are misaligned ("versification").
    assert dropped == {"empty": 2, "versification": 3, "too_long": 1, "ratio": 1}


def test_verse_ranges_are_parsed():
    assert bible.parse_verses("1Kgs.22.43-53") == ("1Kgs", 22, 43, 53)
    assert bible.parse_verses("Gen.1.1") == ("Gen", 1, 1, 1)
    with pytest.raises(ValueError, match="1Kgs 22:43"):
        bible.parse_verses("1Kgs 22:43")


# ---------------------------------------------------------------------------------------------------------
# The builder on made-up modules: text files, splits, and nothing half-written.

FAKE_SOURCE = {(book, chapter, verse): f"{book} {chapter} {verse} en español" for book in ("Gen", "Exod")
               for chapter in range(1, 41) for verse in range(1, 6)}
FAKE_TARGET = {ref: text.replace("en español", "in English") for ref, text in FAKE_SOURCE.items()}


@pytest.fixture
def fake_modules(monkeypatch):
    """The builder reads these dicts instead of the installed modules."""
    modules = {"spaRV1909eb": (FAKE_SOURCE, {"lang": "es"}), "engWEB2015eb": (FAKE_TARGET, {"lang": "en"})}
    monkeypatch.setattr(bible.Bible, "_open_modules", lambda self: modules)
    monkeypatch.setattr(bible, "read_module", lambda raw: raw)


def read(builder) -> dict[str, list[tuple[str, str]]]:
    def text(x):
        return x.decode() if isinstance(x, bytes) else x

    out = {}
    for split in builder.info.splits:
        source = builder.as_data_source(split=split)
        out[split] = [(text(r["source"]), text(r["target"])) for r in source.__getitems__(range(len(source)))]
    return out


def read_text(directory: str, split: str) -> list[tuple[str, str]]:
    lines = {}
    for lang in ("es", "en"):
        with open(os.path.join(directory, f"{split}.{lang}"), encoding="utf-8") as f:
            lines[lang] = f.read().split("\n")
        assert lines[lang].pop() == ""  # every line ends with a newline
    assert len(lines["es"]) == len(lines["en"])
    return list(zip(lines["es"], lines["en"]))


def test_the_splits_are_written_as_line_aligned_text_files_too(tmp_path, fake_modules):
    builder = datasets.get_builder("bible/es-en", str(tmp_path))
    builder.download_and_prepare()
    directory = bible.text_dir(builder)
    assert directory == str(tmp_path / "bible" / "es-en" / "1.0.0" / "text")
    assert sorted(os.listdir(directory)) == sorted(f"{s}.{lang}" for s in ("train", "validation", "test")
                                                   for lang in ("es", "en"))
    splits = read(builder)
    for split, examples in splits.items():
        assert collections.Counter(read_text(directory, split)) == collections.Counter(examples)
        assert all(s.replace("en español", "in English") == t for s, t in examples)
    # Whole chapters per split: "Gen 3 2 en español" is verse 2 of Gen 3.
    chapters = {split: {tuple(s.split()[:2]) for s, _ in examples} for split, examples in splits.items()}
    assert not chapters["train"] & chapters["validation"] and not chapters["train"] & chapters["test"]
    assert not chapters["validation"] & chapters["test"]
    assert sum(map(len, splits.values())) == len(FAKE_SOURCE)


def test_a_failed_preparation_leaves_no_text_files(tmp_path, fake_modules, monkeypatch):
    def fail(self, pairs):
        raise RuntimeError("disk full")
        yield

    monkeypatch.setattr(bible.Bible, "_generate_examples", fail)
    builder = datasets.get_builder("bible/es-en", str(tmp_path))
    with pytest.raises(RuntimeError, match="disk full"):
        builder.download_and_prepare()
    written = [os.path.relpath(os.path.join(d, f), tmp_path) for d, _, files in os.walk(tmp_path) for f in files]
    assert not [path for path in written if "text" in path or "array_record" in path], written
    assert not os.path.exists(tmp_path / "bible" / "es-en" / "1.0.0")


def test_the_builder_logs_what_each_filter_dropped(tmp_path, fake_modules, caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        datasets.get_builder("bible/es-en", str(tmp_path)).download_and_prepare()
    assert "dropped 0 empty, 0 versification, 0 too_long, 0 ratio" in caplog.text


# ---------------------------------------------------------------------------------------------------------
# A missing module: one clear error, nothing written.

@pytest.mark.parametrize("sword", ["empty", "absent"])
def test_a_missing_module_is_one_clear_error_and_nothing_is_written(tmp_path, monkeypatch, sword):
    sword_dir = tmp_path / "sword"
    if sword == "empty":
        sword_dir.mkdir()
    data_dir = tmp_path / "tfds"
    monkeypatch.setenv(bible.SWORD_DIR_ENV, str(sword_dir))
    builder = datasets.get_builder("bible/es-en", str(data_dir))
    with pytest.raises(bible.MissingModuleError) as error:
        builder.download_and_prepare()
    message = str(error.value)
    assert isinstance(error.value, ValueError) and "\n" not in message
    for part in ("spaRV1909eb", "engWEB2015eb", str(sword_dir), "SEQ2SEQ_JAX_SWORD_DIR",
                 "apt-get install sword-text-sparv sword-text-web", "CrossWire"):
        assert part in message
    assert not data_dir.exists() or not list(data_dir.rglob("*"))


def test_the_cli_reports_a_missing_module_in_one_error_line(tmp_path):
    data_dir = tmp_path / "tfds"
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq_jax.main", "--config=seq2seq_jax/configs/default.py", "--dry_run",
         "--config.data.dataset=bible/es-en", f"--config.data.data_dir={data_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", bible.SWORD_DIR_ENV: str(tmp_path)})
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "spaRV1909eb" in errors[0] and "apt-get install" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (data_dir / "bible").exists()  # (the pipeline's own lock file may be there)


# ---------------------------------------------------------------------------------------------------------
# The real modules.

def _installed() -> bool:
    try:
        bible.open_modules("es-en", ["spaRV1909eb", "engWEB2015eb"], bible.DEFAULT_SWORD_DIR)
    except bible.MissingModuleError:
        return False
    return True


real_modules = pytest.mark.skipif(
        not _installed(), reason=f"the SWORD modules spaRV1909eb and engWEB2015eb are not in "
                                 f"{bible.DEFAULT_SWORD_DIR} (apt-get install sword-text-sparv sword-text-web)")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """bible/es-en prepared once from the installed modules: (builder, splits read back, seconds taken)."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(bible.SWORD_DIR_ENV, raising=False)  # the default directory, where apt installs them
        start = time.perf_counter()
        builder = datasets.get_builder("bible/es-en", data_dir)
        builder.download_and_prepare()
        seconds = time.perf_counter() - start
    return builder, read(builder), seconds


@real_modules
def test_real_preparation_is_quick(real):
    _, _, seconds = real
    print(f"bible/es-en prepared in {seconds:.1f} s")
    assert seconds < 90  # about 6 s on a busy 2-core machine


def documented_versions() -> bool:
    """Whether the installed modules are the versions the module docstring's numbers were measured with."""
    confs = {name: conf for name, (_, conf) in bible.open_modules(
            "es-en", ["spaRV1909eb", "engWEB2015eb"], bible.DEFAULT_SWORD_DIR).items()}
    return confs["spaRV1909eb"].get("version") == "2.60" and confs["engWEB2015eb"].get("version") == "426.0"


@real_modules
def test_real_split_sizes(real):
    _, splits, _ = real
    sizes = {split: len(examples) for split, examples in splits.items()}
    assert 27_000 <= sizes["train"] <= 28_500 and all(1_000 <= sizes[s] <= 1_500 for s in ("validation", "test"))
    if documented_versions():
        assert sizes == {"train": 27_825, "validation": 1_423, "test": 1_088}  # as the module docstring states


@real_modules
def test_real_splits_hold_whole_chapters(real):
    # The examples carry no reference, so rebuild the pairs and check each split holds its chapters' pairs.
    builder, splits, _ = real
    config = builder.builder_config
    modules = bible.open_modules(config.name, [config.source_module, config.target_module], bible.DEFAULT_SWORD_DIR)
    texts = [osis.clean_module(bible.read_module(b), conf.get("lang")) for b, conf in modules.values()]
    pairs, dropped = bible.align_and_filter(*texts, max_words=config.max_words, max_ratio=config.max_ratio,
                                            ratio_min_words=config.ratio_min_words, exclude=config.exclude)
    if documented_versions():
        assert dropped == {"empty": 25, "versification": 633, "too_long": 107, "ratio": 1}
    expected, chapters = collections.defaultdict(collections.Counter), collections.defaultdict(set)
    for (book, chapter, _), source, target in pairs:
        split = bible.chapter_split(book, chapter, config.validation_fraction, config.test_fraction)
        expected[split][(source, target)] += 1
        chapters[(book, chapter)].add(split)
    assert all(len(s) == 1 for s in chapters.values())
    assert {split: collections.Counter(examples) for split, examples in splits.items()} == expected


@real_modules
def test_real_pairs_are_clean_and_short_enough(real):
    _, splits, _ = real
    for examples in splits.values():
        for source, target in examples:
            assert 1 <= len(source.split()) <= 60 and 1 <= len(target.split()) <= 60
            assert "<" not in source + target and "  " not in source + target
    genesis_1 = bible.chapter_split("Gen", 1, 0.04, 0.055)
    assert ("En el principio crió Dios los cielos y la tierra.",
            "In the beginning, God created the heavens and the earth.") in splits[genesis_1]


@real_modules
def test_real_text_files_match_the_array_record_splits(real):
    builder, splits, _ = real
    for split, examples in splits.items():
        assert collections.Counter(read_text(bible.text_dir(builder), split)) == collections.Counter(examples)
