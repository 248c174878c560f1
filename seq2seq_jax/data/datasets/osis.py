"""From the OSIS markup of a SWORD Bible verse to plain text: the cleaning rules of dataset `bible`.

`clean_verse` cleans one verse; `clean_module` a whole module: every verse, plus the capitals opening each
chapter (`recase_opening`) and the subscriptions the RV1909 adds to the letters (`drop_subscription`). The
rules and what they were checked on are in `seq2seq_jax/data/datasets/bible.py`'s docstring.
"""

import collections
import html
import re
from collections.abc import Iterable

Ref = tuple[str, int, int]  # (OSIS book name, chapter, verse), e.g. ("Gen", 1, 1)

# --- One verse ---

# A footnote or cross-reference, with its text: it is not part of the verse.
_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.S)
# Song of Songs speaker labels ("Beloved", "Friends"): an editor's heading, not the translation.
_SPEAKER = re.compile(r"<speaker\b[^>]*>.*?</speaker>", re.S)
# The milestone closing a book; the WEB's last verse (Rev 22:21) continues with its 3,000-word glossary.
_BOOK_END = re.compile(r'<div\b(?=[^>]*\beID=)(?=[^>]*\btype="book")[^>]*/>')
# A run of tags between the end of a word (a letter, a digit or closing punctuation) and the start of one
# separates two words ("allí</w><transChange>también" in the RV1909, "righteousness.”</q><w>Then" in the WEB);
# any other tag ("<w>EN el principio</w>.", "¿<w>Conque") is dropped without a space.
# (It starts with "<" and looks behind it, rather than the reverse, so that re searches for the "<" fast.)
_TAGS_BETWEEN_WORDS = re.compile(r"<(?<=(?:[^\W_]|[.,;:!?)\]”’»])<)[^>]*>(?:<[^>]*>)*(?=[^\W_]|[(\[“‘«¿¡])")
_TAG = re.compile(r"<[^>]*>")
# A space the module itself puts before punctuation ("two assaria coins</q> <note.../> <q>? Not" in the WEB).
_SPACE_BEFORE_PUNCTUATION = re.compile(r" +(?=[,.;:!?)\]])")
# Spanish object pronouns the RV1909 marks as added words (`<transChange>`) right after a verb, where they
# belong to it: "sáca</w><transChange>lo</transChange>" is "sácalo", not "sáca lo".
_ENCLITIC = re.compile(r"</w><transChange\b[^>]*>(?P<pronoun>me|te|se|nos|os|lo|la|los|las|le|les)</transChange>")
_LAST_WORD = re.compile(r"\w+$")
_SHORT_IMPERATIVES = frozenset({"da", "di", "haz", "he", "pon", "sal", "ten", "ve", "ven", "vi"})


def _takes_enclitic(word: str) -> bool:
    """Whether a Spanish word is a verb form that pronouns attach to: an infinitive (-r), an imperative
    (-d, "haz", "di"), or a form whose written accent only makes sense with the pronoun ("díjo|le", "oyéndo|lo",
    "sáca|lo"). Names ending in an accent ("Josué") and "cuánto" are the known misses (3 of the 108 in the
    RV1909)."""
    lower = word.lower()
    return lower.endswith(("r", "d")) or lower in _SHORT_IMPERATIVES or bool(re.search("[áéíóú]", lower))


def _attach_enclitics(raw: str) -> str:
    def attach(match: re.Match) -> str:
        verb = _LAST_WORD.search(raw, max(0, match.start() - 40), match.start())
        return match["pronoun"] if verb and _takes_enclitic(verb[0]) else match[0]

    return _ENCLITIC.sub(attach, raw)


def clean_verse(raw: str, lang: str | None = None) -> str:
    """Plain text of one verse's OSIS markup (see the module docstring for the rules).

    Args:
      raw: the verse as pysword returns it with `clean=False`.
      lang: the module's language (`Lang=` of its .conf); "es" attaches the RV1909's enclitic pronouns.
    """
    if book_end := _BOOK_END.search(raw):
        raw = raw[:book_end.start()]
    # A note or label becomes an empty tag, so that, like any tag, it separates the words on either side
    # ("God<note>...</note><w>created" → "God created") but leaves punctuation alone ("gerahs<note/>);").
    raw = _SPEAKER.sub("<speaker/>", _NOTE.sub("<note/>", raw))
    if lang == "es":
        raw = _attach_enclitics(raw)
    text = _TAG.sub("", _TAGS_BETWEEN_WORDS.sub(" ", raw))
    return _SPACE_BEFORE_PUNCTUATION.sub("", " ".join(html.unescape(text).split()))


# --- The capitals opening a chapter ---

_TOKEN = re.compile(r"(\W*)(.*?)(\W*)", re.S)
_CLOSING = "”’»)]\"'"


def _core(token: str) -> tuple[str, str, str]:
    """(leading punctuation, word, trailing punctuation): "¡OH" → ("¡", "OH", "")."""
    return _TOKEN.fullmatch(token).groups()


def _is_caps(token: str, min_letters: int = 1) -> bool:
    word = _core(token)[1]
    return sum(c.isalpha() for c in word) >= min_letters and word.isupper()


def _starts_sentence(words: list[str], i: int) -> bool:
    return i == 0 or words[i - 1].rstrip(_CLOSING).endswith((".", ":", "?", "!"))


def mid_sentence_counts(texts: Iterable[str]) -> collections.Counter:
    """How often each word form occurs inside a sentence (not first), all-caps forms left out: whether
    "Jehová" or "jehová" is the usual spelling of "JEHOVÁ" there."""
    tokens = collections.Counter()
    for text in texts:
        words = text.split()
        tokens.update(token for i, token in enumerate(words) if not _starts_sentence(words, i))
    counts = collections.Counter()
    for token, n in tokens.items():
        if not _is_caps(token):
            counts[_core(token)[1]] += n
    return counts


def recase_opening(text: str, counts: collections.Counter) -> str:
    """A chapter's first verse with its opening capitals in ordinary case.

    The RV1909 prints the first word of a chapter in capitals ("EN el principio", "Y ACONTECIÓ", after a
    psalm's title "Salmo de David. JEHOVÁ, no me reprendas"): the first all-caps word of two or more letters
    and the all-caps words right after it are recased. A word starting a sentence is capitalised ("En",
    "¡Oh"); inside one it takes the spelling that `counts` (`mid_sentence_counts` of the whole module) finds
    more often ("Y aconteció", "A ti", but "Y Jehová", "Y Abraham"). A verse in capitals throughout is left
    alone.
    """
    words = text.split(" ")
    if all(_is_caps(w) for w in words if any(c.isalpha() for c in w)):
        return text
    start = next((i for i, w in enumerate(words) if _is_caps(w, min_letters=2)), None)
    if start is None:
        return text
    i = start
    while i < len(words) and _is_caps(words[i]):
        lead, word, trail = _core(words[i])
        lower = word.lower()
        capital = lower[:1].upper() + lower[1:]
        if not _starts_sentence(words, i) and counts[lower] >= counts[capital]:
            words[i] = lead + lower + trail
        else:
            words[i] = lead + capital + trail
        i += 1
    return " ".join(words)


# The letters of Paul and Hebrews, whose last verse carries a subscription in the KJV tradition.
EPISTLES = ("Rom", "1Cor", "2Cor", "Gal", "Eph", "Phil", "Col", "1Thess", "2Thess", "1Tim", "2Tim", "Titus", "Phlm",
            "Heb")
_AMEN = re.compile(r"\bAm[eé]n\.")


def drop_subscription(text: str) -> str:
    """A letter's last verse without the subscription after its final "Amén." that the RV1909 (unmarked,
    like the KJV) adds: "... sea con vosotros. Amén. Escrita de Roma á los Efesios por Tichîco." → "... Amén."."""
    amens = list(_AMEN.finditer(text))
    return text[:amens[-1].end()] if amens else text


def clean_module(raw: dict[Ref, str], lang: str | None = None) -> dict[Ref, str]:
    """Every verse cleaned (`clean_verse`), each chapter's first verse recased (`recase_opening`), the letters'
    subscriptions dropped (`drop_subscription`)."""
    texts = {ref: clean_verse(text, lang) for ref, text in raw.items()}
    counts = mid_sentence_counts(texts.values())
    last_verse = {ref[0]: ref for ref, text in texts.items() if text}  # the book's last non-empty verse
    for ref, text in texts.items():
        if ref[2] == 1:
            texts[ref] = recase_opening(text, counts)
    for book in EPISTLES:
        if (ref := last_verse.get(book)) is not None:
            texts[ref] = drop_subscription(texts[ref])
    return texts
