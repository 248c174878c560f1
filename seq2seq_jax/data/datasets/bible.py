"""Bible verse pairs read offline from two installed SWORD modules; config `es-en`: Spanish → English.

Data: the Reina-Valera 1909 (module `spaRV1909eb`, Debian package `sword-text-sparv`) as source and the World
English Bible (`engWEB2015eb`, `sword-text-web`) as target, read from `$SEQ2SEQ_JAX_SWORD_DIR` (default
/usr/share/sword; an unzipped CrossWire module directory with `mods.d/` and `modules/` works the same) with
`pysword`. A missing module raises one `MissingModuleError` (a `ValueError`) saying how to install it, before
anything is written. The SWORD directory is a machine path, not part of the dataset's name or version.

Pairs: one per verse reference (book, chapter, verse) of the source module's versification that the target
module's also has (RV1909: KJV versification, all 31,102 verses of the 66 books; WEB: NRSVA, whose
deuterocanonical books the RV1909 lacks).

Cleaning, per verse (`osis.py`: `clean_verse`, `recase_opening`, `drop_subscription`), from the raw OSIS
markup (pysword's own cleaning glues the words around a footnote: "Godcreated"):
  - the text after a book's closing milestone is dropped (the WEB's Rev 22:21 holds its 3,000-word glossary);
  - `<note>` (footnotes, cross-references) and `<speaker>` (Song of Songs' "Beloved") go with their content;
  - every other tag (`<w lemma=...>`, `<transChange>`, `<q>`, `<l/>`, `<div/>`, `<title>` of a psalm, whose
    text the RV1909 has inline) goes, leaving a space where it stood between the end of a word and the start
    of one ("allí</w><transChange>también" → "allí también", "righteousness.”</q><w>Then") and nothing
    elsewhere ("<w>tierra</w>." → "tierra."); for Spanish, an object pronoun the RV1909 marks as added right
    after a verb form joins it ("sáca</w><transChange>lo" → "sácalo"; 105 of 108 right, "Josué los",
    "Jehová los" and "cuánto nos" get glued);
  - XML entities are unescaped, whitespace collapsed and stripped, a space before , . ; : ! ? ) removed;
  - the capitals opening a chapter ("EN el principio", "Y ACONTECIÓ", "Salmo de David. JEHOVÁ, no me")
    are written in ordinary case in each chapter's first verse: "En el principio", "Y aconteció", "Y
    Abraham" (`recase_opening`); capitals inside verses (inscriptions, "JAH") stay;
  - the RV1909 ends the last verse of 14 letters (Romans to Hebrews) with the KJV tradition's unmarked
    subscription after "Amén." ("Escrita de Roma á los Efesios por Tichîco."): it is dropped.
No pilcrows, brackets (but in the WEB's deuterocanon) or entities but &amp; occur in these modules.

Filters (`align_and_filter`; each dropped pair counted once and logged, per reason):
  - empty: a verse empty in either module (verses the WEB omits, Acts 8:37; slots the RV1909 leaves empty);
  - versification: verse numbers that mean different text. Where one translation's chapter boundary lies
    elsewhere, the RV1909 leaves the chapter's last verses empty and shifts the next chapter (Num 12:16 is its
    13:1) or merges them into the verse before: a chapter whose last shared verse is empty on one side only
    is dropped with the next (`misaligned_chapters`: 24 chapters here); plus the verse ranges of
    `BibleConfig.exclude`, where the modules split verses differently without an empty verse (es-en:
    `ES_EN_MISALIGNED`, found by a length-based alignment and checked by reading);
  - too_long: more than `max_words` (60) words on either side, words = whitespace-separated tokens;
  - ratio: the longer side has over `max_ratio` (2.5) times the words of the shorter and over
    `ratio_min_words` (10) words.

Split: by whole chapters (neighbouring verses share wording), `_common.hash_split("Book.chapter")`:
validation 4%, test 5.5% of the chapters, the rest train (`chapter_split`).

Measured for es-en with spaRV1909eb 2.60 and engWEB2015eb 426.0 (Debian packages 2.60-1, 426.0-1), pysword
0.2.8: of 31,102 shared references, 30,336 pairs are kept: train 27,825, validation 1,423, test 1,088 (1,063,
54 and 48 chapters); dropped: 25 empty, 633 versification (592 in the 24 chapters, 41 in the excluded
ranges), 107 too long, 1 ratio (1 John 5:7). Source length in words: mean 22.5 (train 22.3, validation 24.1,
test 24.6); share of sources with 30 words or more: 22.2% (train 21.7%, validation 26.8%, test 29.6%);
targets: mean 23.8 words in train. Preparing takes about 6 s on a busy 2-core machine (reading both modules
0.4 s; pysword alone would take ~100 s, see `open_modules`).

Besides the array_record splits, preparation writes them as plain text, one sentence a line, line-aligned:
`train.es`, `train.en`, `validation.es`, ... (language codes from the config's name) in the `text/`
directory of the prepared dataset, `<data_dir>/bible/es-en/1.0.0/text/` (`text_dir(builder)` returns it), so
another toolkit can train on exactly these splits. The text files list pairs in canonical order; the
array_record files hold the same pairs in TFDS's order.

Other pairs of installed modules (e.g. `engKJV2006eb`, from `sword-text-kjv`) only need another
`BibleConfig`.
"""

import collections
import dataclasses
import functools
import os
import re
import time
from collections.abc import Iterable

import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from pysword.modules import SwordModules

from seq2seq_jax.data.datasets import _common
from seq2seq_jax.data.datasets.osis import Ref, clean_module

SWORD_DIR_ENV = "SEQ2SEQ_JAX_SWORD_DIR"
DEFAULT_SWORD_DIR = "/usr/share/sword"
# Debian/Ubuntu packages that install a module under /usr/share/sword.
APT_PACKAGES = {"spaRV1909eb": "sword-text-sparv", "engWEB2015eb": "sword-text-web",
                "engKJV2006eb": "sword-text-kjv"}
CROSSWIRE_MODULES = "https://www.crosswire.org/sword/modules/ModDisp.jsp?modType=Bibles"
# Subdirectory of the prepared dataset's directory holding the splits as plain text (see `text_dir`).
TEXT_DIR = "text"



class MissingModuleError(ValueError):
    """A SWORD module the config needs is not installed; the message says where it was looked for and how to
    install it."""


def sword_dir() -> str:
    """`$SEQ2SEQ_JAX_SWORD_DIR`, else /usr/share/sword: a directory holding `mods.d/` and `modules/`."""
    return os.environ.get(SWORD_DIR_ENV) or DEFAULT_SWORD_DIR



# ---------------------------------------------------------------------------------------------------------
# Reading the modules.

def _missing_message(name: str, missing: dict[str, str], directory: str) -> str:
    packages = [APT_PACKAGES[m] for m in missing if m in APT_PACKAGES]
    apt = (f"`apt-get install {' '.join(packages)}` (Debian/Ubuntu; installs into {DEFAULT_SWORD_DIR}), or "
           if packages else "")
    return (f"Dataset bible/{name} needs the SWORD module{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)}, not available in {directory!r} (${SWORD_DIR_ENV}, default {DEFAULT_SWORD_DIR}): "
            f"{'; '.join(f'{module} {why}' for module, why in missing.items())}. Install "
            f"{'them' if len(missing) > 1 else 'it'} with {apt}download {'them' if len(missing) > 1 else 'it'} from "
            f"CrossWire's module repository ({CROSSWIRE_MODULES}), unzip into one directory (which then holds "
            f"mods.d/ and modules/) and set {SWORD_DIR_ENV} to that directory.")


def open_modules(name: str, modules: list[str], directory: str) -> dict[str, tuple[object, dict]]:
    """module → (pysword bible, its .conf fields) for each of `modules` in the SWORD `directory`.

    Raises:
      MissingModuleError: one error naming every module that is missing or unreadable, the directory and
        how to install them.
    """
    confs, missing, out = {}, {}, {}
    if not os.path.isdir(directory):
        absent = "(the directory does not exist)"
    elif not os.path.isdir(os.path.join(directory, "mods.d")):
        absent = "(the directory has no mods.d/)"
    else:
        absent = "(no mods.d/*.conf declares it)"
        library = SwordModules(directory)
        confs = library.parse_modules()
    for module in modules:
        if module not in confs:
            missing[module] = absent
            continue
        try:
            bible = library.get_bible_from_module(module)
        except (OSError, ValueError, KeyError) as error:  # no data files, an unknown versification, ...
            missing[module] = f"(declared but unreadable: {error})"
            continue
        # pysword decompresses a zText book's whole block again for every verse it returns: reading a Bible
        # takes ~50 s instead of ~0.3 s without this cache of the last blocks.
        if hasattr(bible, "_decompressed_text"):
            bible._decompressed_text = functools.lru_cache(maxsize=8)(bible._decompressed_text)
        out[module] = (bible, confs[module])
    if missing:
        raise MissingModuleError(_missing_message(name, missing, directory))
    return out


def read_module(bible) -> dict[Ref, str]:
    """Every verse of the module's versification, in canonical order, as raw OSIS text ("" for an empty verse)."""
    verses = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            for chapter, num_verses in enumerate(book.chapter_lengths, start=1):
                texts = list(bible.get_iter(books=[book.osis_name], chapters=[chapter], clean=False))
                if len(texts) != num_verses:
                    raise ValueError(f"SWORD module: {book.osis_name} {chapter} has {len(texts)} verses, "
                                     f"its versification {num_verses}.")
                for verse, text in enumerate(texts, start=1):
                    verses[(book.osis_name, chapter, verse)] = text if isinstance(text, str) else ""
    return verses


# ---------------------------------------------------------------------------------------------------------
# Pairs, filters and splits.

DROP_REASONS = ("empty", "versification", "too_long", "ratio")


def misaligned_chapters(source: dict[Ref, str], target: dict[Ref, str]) -> set[tuple[str, int]]:
    """Chapters whose verse numbers mean different verses in the two modules.

    Where one translation's chapter boundary lies a verse or more away from the other's, the module that
    follows a foreign versification leaves the chapter's last verses empty and moves their text into the
    next chapter, shifting every verse there (the RV1909 puts Num 12:16 at 13:1, Jonah 1:17 at 2:1) or merges
    it into the verse before (2 Sam 20:25 holds 20:25-26). A chapter whose last shared verse is empty on one
    side only is taken as such, with the next chapter of the book.
    """
    last = {}
    for ref in source:
        if ref in target:
            last[ref[:2]] = max(last.get(ref[:2], 0), ref[2])
    bad = set()
    for (book, chapter), verse in last.items():
        ref = (book, chapter, verse)
        if bool(source[ref]) != bool(target[ref]):
            bad |= {(book, chapter), (book, chapter + 1)}
    return bad


def drop_reason(source: str, target: str, *, max_words: int, max_ratio: float, ratio_min_words: int) -> str | None:
    """Why a pair is dropped ("empty", "too_long", "ratio"), or None to keep it. Words = whitespace tokens."""
    if not source or not target:
        return "empty"
    n_source, n_target = len(source.split()), len(target.split())
    if max(n_source, n_target) > max_words:
        return "too_long"
    if max(n_source, n_target) > ratio_min_words and max(n_source, n_target) > max_ratio * min(n_source, n_target):
        return "ratio"
    return None


def parse_verses(spec: str) -> tuple[str, int, int, int]:
    """"1Kgs.22.43-53" → ("1Kgs", 22, 43, 53); "Gen.1.1" → ("Gen", 1, 1, 1)."""
    match = re.fullmatch(r"([^.\s]+)\.(\d+)\.(\d+)(?:-(\d+))?", spec)
    if not match:
        raise ValueError(f"bible: {spec!r} is not a verse range like '1Kgs.22.43-53'.")
    book, chapter, first, last = match.groups()
    return book, int(chapter), int(first), int(last or first)


def align_and_filter(source: dict[Ref, str], target: dict[Ref, str], *, max_words: int, max_ratio: float,
                     ratio_min_words: int, exclude: Iterable[str] = ()) -> tuple[list[tuple[Ref, str, str]],
                                                                                  collections.Counter]:
    """(ref, source, target) for each reference in both modules (source order) that passes every filter, and
    the number dropped per reason (`DROP_REASONS`; each pair counted once, under the first that applies).

    "versification": the verse is in a `misaligned_chapters` chapter or an `exclude` range (`parse_verses`).
    """
    skip = misaligned_chapters(source, target)
    excluded = set()
    for book, chapter, first, last in map(parse_verses, exclude):
        excluded |= {(book, chapter, verse) for verse in range(first, last + 1)}
    kept, dropped = [], collections.Counter({reason: 0 for reason in DROP_REASONS})
    for ref, source_text in source.items():
        if ref not in target:
            continue
        target_text = target[ref]
        reason = drop_reason(source_text, target_text, max_words=max_words, max_ratio=max_ratio,
                             ratio_min_words=ratio_min_words)
        if reason != "empty" and (ref[:2] in skip or ref in excluded):
            reason = "versification"
        if reason:
            dropped[reason] += 1
        else:
            kept.append((ref, source_text, target_text))
    return kept, dropped


def chapter_split(book: str, chapter: int, validation: float, test: float) -> str:
    """The split of every verse of `book` `chapter`: by the stable hash of "Book.chapter" (e.g. "Gen.1")."""
    return _common.hash_split(f"{book}.{chapter}", validation=validation, test=test)


# ---------------------------------------------------------------------------------------------------------
# The builder.

@dataclasses.dataclass(eq=False)
class BibleConfig(tfds.core.BuilderConfig):
    """Which two installed SWORD modules to pair, and the filters and split fractions."""

    source_module: str = ""
    target_module: str = ""
    # Longest source or target in words: fig. 2 of Bahdanau et al. (2014) spans sentences of 0-60 words.
    max_words: int = 60
    # A pair whose longer side has more than `max_ratio` times the words of its shorter side, when that
    # longer side has more than `ratio_min_words` words, is not the translation of one verse. In es-en, once
    # the misaligned verses are out, pairs up to 2.5 are genuine (Gen 22:22 "Y á Chêsed, y á Hazo, y á
    # Pildas, ..." → "Chesed, Hazo, Pildash, ..."; Acts 5:33 2.4), as are shorter ones up to 3 ("Y á Gath, y á
    # Maresa, y á Ziph," → "Gath, Mareshah, Ziph,"); above 2.5 is 1 John 5:7, whose Spanish has the
    # Comma Johanneum the WEB leaves out.
    max_ratio: float = 2.5
    ratio_min_words: int = 10
    # Shares of chapters (not verses) for validation and test: in es-en 4% and 5.5% of the chapters hold
    # 1,423 and 1,088 verses (chapters range from 2 verses to Psalm 119's 176).
    validation_fraction: float = 0.04
    test_fraction: float = 0.055
    # Verse ranges ("Book.chapter.first-last") whose numbers mean different text in the two modules although
    # neither leaves a verse empty (which `misaligned_chapters` catches); dropped as "versification".
    exclude: tuple[str, ...] = ()


# Where the RV1909 (spaRV1909eb 2.60) splits verses otherwise than the WEB (engWEB2015eb 426.0) without an
# empty verse: found by a length-based (Gale-Church) alignment of the two modules, then checked by reading
# each (the alignment also flags correct pairs near textual variants, so it is not a filter itself).
ES_EN_MISALIGNED = (
    "Judg.14.18-20",  # ES 14:19 is EN 14:18's end, ES 14:20 EN 14:19
    "2Sam.2.31-32",  # ES 2:31 is EN 2:31 and half of 2:32
    "1Kgs.18.33-34",  # ES 18:34 starts with EN 18:33's end
    "1Kgs.22.43-53",  # ES 22:44 is EN 22:43's end, then every ES verse is the EN one before
    "1Chr.1.30-32",  # ES 1:30 is EN 1:30-31
    "1Chr.2.34-35",  # ES 2:35 starts with EN 2:34's end
    "1Chr.21.15-30",  # ES 21:16 is EN 21:15's end, then every ES verse is the EN one before
    "Jer.51.21-22",  # ES 51:21 runs into EN 51:22
)


class Bible(tfds.core.GeneratorBasedBuilder):
    """Verse pairs of two SWORD Bible modules; see the module docstring."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: RV1909 (spaRV1909eb 2.60) → WEB (engWEB2015eb 426.0)."}
    BUILDER_CONFIGS = [BibleConfig(name="es-en", source_module="spaRV1909eb", target_module="engWEB2015eb",
                                   exclude=ES_EN_MISALIGNED,
                                   description="Reina-Valera 1909 (Spanish) → World English Bible.")]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=_common.features(), supervised_keys=("source", "target"),
                                     homepage=CROSSWIRE_MODULES)

    def _open_modules(self) -> dict[str, tuple[object, dict]]:
        config = self.builder_config
        return open_modules(config.name, [config.source_module, config.target_module], sword_dir())

    def download_and_prepare(self, *args, **kwargs):
        """As TFDS's, but a missing module raises `MissingModuleError` before anything is written."""
        if not self.data_path.exists():
            self._open_modules()
        super().download_and_prepare(*args, **kwargs)

    def _split_generators(self, dl_manager):
        del dl_manager  # The modules are installed locally.
        config = self.builder_config
        start = time.perf_counter()
        modules = self._open_modules()
        texts = {}
        for module in (config.source_module, config.target_module):
            bible, conf = modules[module]
            texts[module] = clean_module(read_module(bible), conf.get("lang"))
        pairs, dropped = align_and_filter(texts[config.source_module], texts[config.target_module],
                                          max_words=config.max_words, max_ratio=config.max_ratio,
                                          ratio_min_words=config.ratio_min_words, exclude=config.exclude)
        splits = {split: [] for split in _common.SPLITS}
        for ref, source, target in pairs:
            splits[chapter_split(ref[0], ref[1], config.validation_fraction, config.test_fraction)].append(
                    (ref, source, target))
        logging.info("bible/%s: %d pairs kept (%s); dropped %s; read and cleaned in %.1f s.", config.name,
                     len(pairs), ", ".join(f"{s} {len(p)}" for s, p in splits.items()),
                     ", ".join(f"{n} {reason}" for reason, n in dropped.items()), time.perf_counter() - start)
        # self.data_dir is TFDS's temporary directory here, renamed to the final one when preparation ends.
        self._write_text(epath.Path(self.data_dir) / TEXT_DIR, splits)
        return {split: self._generate_examples(split_pairs) for split, split_pairs in splits.items()}

    def _write_text(self, directory: epath.Path, splits: dict[str, list]) -> None:
        source_lang, target_lang = languages(self.builder_config)
        directory.mkdir(parents=True, exist_ok=True)
        for split, pairs in splits.items():
            for lang, column in ((source_lang, 1), (target_lang, 2)):
                (directory / f"{split}.{lang}").write_text("".join(pair[column] + "\n" for pair in pairs),
                                                           encoding="utf-8")

    def _generate_examples(self, pairs):
        for (book, chapter, verse), source, target in pairs:
            yield f"{book}.{chapter}.{verse}", _common.example(source, target)


def languages(config: BibleConfig) -> tuple[str, str]:
    """(source, target) language codes from the config's name: "es-en" (or "es-en-<hash>") → ("es", "en")."""
    source, target = config.name.split("-")[:2]
    return source, target


def text_dir(builder: tfds.core.DatasetBuilder) -> str:
    """The directory of a prepared bible builder's splits as text: `<split>.<lang>` files, one sentence a
    line, line i of `train.es` translating line i of `train.en` (e.g. `<data_dir>/bible/es-en/1.0.0/text`).

    Raises:
      FileNotFoundError: if the builder is not prepared.
    """
    path = epath.Path(builder.data_dir) / TEXT_DIR
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: prepare the dataset first (builder.download_and_prepare()).")
    return os.fspath(path)
