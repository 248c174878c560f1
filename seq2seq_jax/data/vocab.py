"""Vocabularies: characters, whitespace-separated words, or a SentencePiece model.

Every kind reserves the same four ids: `PAD, BOS, EOS, UNK = 0, 1, 2, 3`. `encode` adds no BOS/EOS;
`decode` stops at the first EOS, skips PAD and BOS, and writes any id it cannot map as `UNK_SYMBOL`.
A vocabulary is saved as plain JSON (`char`, `word`) or a SentencePiece `.model` file, and
`load_vocab` reads either back, so a run's workdir fixes how its ids are decoded later.
"""

import abc
import collections
import io
import json
from collections.abc import Iterable, Sequence

import sentencepiece as spm

from seq2seq_jax import files

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
# How decoding writes an unknown id; the same symbol SentencePiece uses.
UNK_SYMBOL = "\u2047"
KINDS = ("char", "word", "sentencepiece")


class Vocab(abc.ABC):
    """Maps text to token ids and back."""

    kind: str

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Number of ids, specials included; every id is in `[0, size)`."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without BOS/EOS; unknown tokens become UNK."""

    @abc.abstractmethod
    def split(self, text: str) -> list[str]:
        """The tokens of `text` as strings (characters, words or pieces), one per id `encode` gives."""

    @abc.abstractmethod
    def _decode_tokens(self, ids: list[int]) -> str:
        """Text of ids that are all in `[UNK, size)`."""

    @abc.abstractmethod
    def save(self, path: str) -> None:
        """Writes the vocabulary to `path` (`.json` for char/word, `.model` for sentencepiece)."""

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids` up to the first EOS, skipping PAD and BOS; out-of-range ids decode as UNK."""
        kept = []
        for i in map(int, ids):
            if i == EOS:
                break
            if i not in (PAD, BOS):
                kept.append(i if UNK <= i < self.size else UNK)
        return self._decode_tokens(kept)


class TokenVocab(Vocab):
    """A fixed list of characters (`kind='char'`) or whitespace-separated words (`kind='word'`)."""

    def __init__(self, kind: str, tokens: Sequence[str]):
        if kind not in ("char", "word"):
            raise ValueError(f"TokenVocab kind must be 'char' or 'word', got {kind!r}.")
        self.kind = kind
        self.tokens = list(tokens)
        self._ids = {t: i for i, t in enumerate(self.tokens, start=len(SPECIALS))}

    @property
    def size(self) -> int:
        return len(SPECIALS) + len(self.tokens)

    def split(self, text: str) -> list[str]:
        """Tokens of `text`: its characters, or its whitespace-separated words."""
        return list(text) if self.kind == "char" else text.split()

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(t, UNK) for t in self.split(text)]

    def _decode_tokens(self, ids: list[int]) -> str:
        tokens = [UNK_SYMBOL if i == UNK else self.tokens[i - len(SPECIALS)] for i in ids]
        return ("" if self.kind == "char" else " ").join(tokens)

    def save(self, path: str) -> None:
        files.write_atomic(path, json.dumps({"kind": self.kind, "tokens": self.tokens}, ensure_ascii=False,
                                                    indent=0))


class SentencePieceVocab(Vocab):
    """A SentencePiece model whose PAD/BOS/EOS/UNK ids are 0/1/2/3."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @property
    def size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def _decode_tokens(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    def split(self, text: str) -> list[str]:
        """The pieces ``text`` encodes to, as strings (``encode`` gives their ids)."""
        return self._sp.encode(text, out_type=str)

    def piece(self, token_id: int) -> str:
        """The piece of ``token_id`` as SentencePiece writes it, e.g. '▁le' (a word start shows as '▁')."""
        return self._sp.id_to_piece(token_id)

    def save(self, path: str) -> None:
        files.write_atomic(path, self.model_proto)


def build_vocab(kind: str, texts: Iterable[str], *, vocab_size: int | None = None, min_count: int = 1) -> Vocab:
    """Builds a vocabulary of `kind` from `texts` (normally the training split's side).

    Args:
      kind: 'char', 'word' or 'sentencepiece'.
      texts: the training text.
      vocab_size: char/word: optional cap on the total size (most frequent tokens kept, ties by token);
        sentencepiece: required target size (a soft limit, so small corpora still train).
      min_count: char/word: tokens seen fewer times are left out (they encode as UNK).
    """
    if kind in ("char", "word"):
        counts = collections.Counter()
        splitter = list if kind == "char" else str.split
        for text in texts:
            counts.update(splitter(text))
        tokens = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if vocab_size is not None:
            tokens = tokens[:max(vocab_size - len(SPECIALS), 0)]
        return TokenVocab(kind, tokens)
    if kind == "sentencepiece":
        if not vocab_size:
            raise ValueError("data.vocab_size: a sentencepiece vocabulary needs a size, e.g. 8000.")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
            pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK, character_coverage=1.0, hard_vocab_limit=False,
            # Exact round trips: no Unicode normalisation, spaces kept as written.
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            input_sentence_size=2_000_000, shuffle_input_sentence=True, minloglevel=2, num_threads=1)
        return SentencePieceVocab(model.getvalue())
    raise ValueError(f"Unknown vocabulary kind {kind!r}; allowed: {KINDS}.")


def vocab_filename(kind: str, name: str) -> str:
    """File name a vocabulary of `kind` is saved under: `<name>.json` or `<name>.model`."""
    return f"{name}.model" if kind == "sentencepiece" else f"{name}.json"


def load_vocab(path: str) -> Vocab:
    """Reads a vocabulary written by `Vocab.save` (`.model` → sentencepiece, otherwise JSON); a damaged
    file is a `ValueError` naming it."""
    try:
        if path.endswith(".model"):
            with open(path, "rb") as f:
                return SentencePieceVocab(f.read())
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return TokenVocab(data["kind"], data["tokens"])
    except (ValueError, KeyError, TypeError, RuntimeError) as error:  # json, sentencepiece or missing keys
        raise ValueError(f"vocabulary {path} is damaged and cannot be read ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:200]})") from None
