"""The `data` section of a run's config, and its validation.

A model config embeds it as `config.data = get_data_config()` and overrides fields, e.g.
`--config.data.dataset=cmudict_g2p/no_stress --config.data.max_source_length=40`.
"""

import os

import ml_collections
from ml_collections import config_dict

from seq2seq_jax.data import vocab as vocab_lib

LENGTH_POLICIES = ("filter", "truncate")
# Default length limit of sources and targets, in tokens: far above every bundled task's examples, and low
# enough that one stray huge line (a 100k-character line of a corpus) cannot make a bucket that exhausts
# the accelerator's memory.
DEFAULT_MAX_LENGTH = 1024


def default_data_dir() -> str:
    """`$SEQ2SEQ_JAX_DATA_DIR`, else `~/.cache/seq2seq_jax/tensorflow_datasets`."""
    return os.environ.get(
        "SEQ2SEQ_JAX_DATA_DIR", os.path.join(os.path.expanduser("~"), ".cache", "seq2seq_jax", "tensorflow_datasets"))


def get_data_config() -> ml_collections.ConfigDict:
    """Default data settings: English → French number names, character vocabularies, 4 length buckets."""
    c = ml_collections.ConfigDict()
    # Dataset name: 'number_words/en_fr', 'cmudict_g2p/no_stress', 'dates', 'synthetic/reverse', 'parallel_text',
    # 'bible/es-en' (needs the SWORD modules: apt-get install sword-text-sparv sword-text-web), 'wmt14_translate/fr-en', ...
    c.dataset = "number_words/en_fr"
    # TFDS data directory where datasets are prepared as array_record files.
    c.data_dir = default_data_dir()
    # parallel_text only: training data, 'path.tsv' (source<TAB>target lines) or 'src_path,tgt_path' (aligned lines).
    c.train_file = config_dict.placeholder(str)
    # parallel_text only: validation data, same forms as train_file; None = no validation split (training needs one).
    c.validation_file = config_dict.placeholder(str)
    # parallel_text only: test data, same forms as train_file; None = no test split (training needs one).
    c.test_file = config_dict.placeholder(str)
    # parallel_text only: validation/test lines sharing a source are one example scored against all their
    # targets (None or True); False keeps every line its own example.
    c.merge_references = config_dict.placeholder(bool)
    # Swap source and target (e.g. wmt14_translate/fr-en is fr → en; True makes it en → fr).
    c.reverse_pair = False
    # Generated datasets (number_words, dates, synthetic): training examples; None = the builder's default (50k).
    c.num_train = config_dict.placeholder(int)
    # Generated datasets: validation examples; None = the builder's default (2k).
    c.num_validation = config_dict.placeholder(int)
    # Generated datasets: test examples; None = the builder's default (2k).
    c.num_test = config_dict.placeholder(int)
    # synthetic only: shortest string (digits per operand for addition); None = 1.
    c.synthetic_min_length = config_dict.placeholder(int)
    # synthetic only: longest string (digits per operand for addition); None = 20.
    c.synthetic_max_length = config_dict.placeholder(int)
    # synthetic only: number of symbols, the first letters of 'a'..'z'; None = 26.
    c.synthetic_alphabet_size = config_dict.placeholder(int)
    # Source vocabulary kind: 'char', 'word' or 'sentencepiece'.
    c.source_vocab = "char"
    # Target vocabulary kind: 'char', 'word' or 'sentencepiece'.
    c.target_vocab = "char"
    # Size of a sentencepiece vocabulary (either side), specials included.
    c.vocab_size = 8000
    # Longest source in tokens (longer examples are handled by length_policy); None = no limit.
    c.max_source_length = config_dict.FieldReference(DEFAULT_MAX_LENGTH, field_type=int)
    # Longest target in tokens, not counting the EOS the pipeline appends; None = no limit.
    c.max_target_length = config_dict.FieldReference(DEFAULT_MAX_LENGTH, field_type=int)
    # What to do with a longer example: 'filter' (drop it) or 'truncate' (cut it); counted and logged either way.
    c.length_policy = "filter"
    # Number of padded (src_len, tgt_len) shapes, from training-length quantiles; ignored if bucket_boundaries is set.
    c.num_buckets = 4
    # Explicit bucket shapes as a list of (src_len, tgt_len) pairs, e.g. [(16, 16), (64, 64)]; None = from quantiles.
    c.bucket_boundaries = config_dict.placeholder(list)
    return c


def _check(ok: bool, field: str, value, allowed: str) -> None:
    if not ok:
        raise ValueError(f"data.{field} = {value!r} is invalid; allowed: {allowed}.")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate(c: ml_collections.ConfigDict) -> None:
    """Raises a `ValueError` naming `data.<field>` and its allowed values for the first bad field."""
    _check(isinstance(c.dataset, str) and bool(c.dataset), "dataset", c.dataset, "a dataset name string")
    _check(isinstance(c.data_dir, str) and bool(c.data_dir), "data_dir", c.data_dir, "a directory path")
    for field in ("train_file", "validation_file", "test_file"):
        value = c[field]
        _check(value is None or (isinstance(value, str) and 1 <= len(value.split(",")) <= 2), field, value,
               "None, 'path.tsv' or 'src_path,tgt_path'")
    if c.dataset.partition("/")[0] == "parallel_text":
        _check(c.train_file is not None, "train_file", c.train_file, "'path.tsv' or 'src_path,tgt_path'")
    merge = c.get("merge_references")  # get: absent from the configs of runs made before the field existed
    _check(merge is None or isinstance(merge, bool), "merge_references", merge, "None, True or False")
    _check(isinstance(c.reverse_pair, bool), "reverse_pair", c.reverse_pair, "True or False")
    for field in ("num_train", "num_validation", "num_test", "synthetic_min_length", "synthetic_max_length",
                  "synthetic_alphabet_size", "max_source_length", "max_target_length"):
        _check(c[field] is None or (_is_int(c[field]) and c[field] >= 1), field, c[field],
               "None or an integer >= 1")
    if c.synthetic_min_length is not None and c.synthetic_max_length is not None:
        _check(c.synthetic_min_length <= c.synthetic_max_length, "synthetic_min_length", c.synthetic_min_length,
               f"at most data.synthetic_max_length={c.synthetic_max_length}")
    for field in ("source_vocab", "target_vocab"):
        _check(c[field] in vocab_lib.KINDS, field, c[field], ", ".join(repr(k) for k in vocab_lib.KINDS))
    _check(_is_int(c.vocab_size) and c.vocab_size > len(vocab_lib.SPECIALS), "vocab_size", c.vocab_size,
           f"an integer > {len(vocab_lib.SPECIALS)}")
    _check(c.length_policy in LENGTH_POLICIES, "length_policy", c.length_policy,
           ", ".join(repr(p) for p in LENGTH_POLICIES))
    _check(_is_int(c.num_buckets) and c.num_buckets >= 1, "num_buckets", c.num_buckets, "an integer >= 1")
    if c.bucket_boundaries is not None:
        pairs = list(c.bucket_boundaries) if isinstance(c.bucket_boundaries, (list, tuple)) else []
        _check(bool(pairs) and all(isinstance(p, (list, tuple)) and len(p) == 2
                                   and all(_is_int(x) and x >= 1 for x in p) for p in pairs),
               "bucket_boundaries", c.bucket_boundaries, "None or a non-empty list of (src_len, tgt_len) positive ints")
