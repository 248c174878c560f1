"""Start-up time and peak host memory of the input pipeline as the corpus grows (`pipeline.get_data`).

  python -m benchmarks.data_startup --pairs=1000000 --folder=/tmp/startup --phase=prepare
  python -m benchmarks.data_startup --pairs=1000000 --folder=/tmp/startup --phase=first_start
  python -m benchmarks.data_startup --pairs=1000000 --folder=/tmp/startup --phase=later_start

One phase per process, in this order on one folder (`benchmarks.run` runs them so):
  prepare      TFDS prepares generated parallel text of `--pairs` pairs (once per corpus);
  first_start  a new run's start on the prepared data: word vocabularies built from the training split, which
               is encoded once into the data directory's cache;
  later_start  a resumed run's start (or any later one with those vocabularies): the vocabularies read back,
               the encoded split opened; then its first training batch.
Each start then draws `--batches` more training batches, each timed (their median: `batch_s`), so the peak
memory also covers what reading many batches' rows holds.
With `--checkout=DIR` (after this one's `prepare`), the phases time that checkout's package on the same
prepared data, with vocabularies of its own. The corpus: `--pairs` training pairs of 1-40 words (about 20
on average) drawn from a Zipfian vocabulary of 30,000 words, the target a word-for-word rewrite of the
source; 2,000 pairs each for validation and test.
It is generated into the folder before the timed part. Prints one JSON line: `times_s` (the phase's
seconds, its first batch included), `batch_s`, `peak_rss_bytes` (the process's peak resident memory,
`VmHWM`), `imports_rss_bytes` (its resident memory just before the phase: interpreter and libraries), the
corpus's size, and the encoding cache's bytes on disk.
"""

import importlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

_PAIRS = flags.DEFINE_integer("pairs", 100_000, "Training pairs of the generated corpus.")
_FOLDER = flags.DEFINE_string("folder", None, "Corpus, TFDS data and vocabularies live here.", required=True)
_PHASE = flags.DEFINE_enum("phase", "later_start", ["prepare", "first_start", "later_start"], "What to time.")
_CHECKOUT = flags.DEFINE_string(
    "checkout", None, "Time the seq2seq_jax package of this checkout (e.g. a worktree of an older commit) instead "
    "of the installed one, on the same prepared TFDS data, with vocabularies of its own.")
_BATCHES = flags.DEFINE_integer("batches", 100, "Training batches a start draws after its first, each timed.",
                                lower_bound=1)

WORDS = 30_000
MAX_WORDS = 40
EVAL_PAIRS = 2_000
CHUNK = 100_000


def write_corpus(folder: str, pairs: int, seed: int = 0) -> dict[str, str]:
    """The corpus's `src,tgt` file spec per split (written once; an existing corpus is kept)."""
    specs = {}
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(WORDS)])
    for split, count in (("train", pairs), ("validation", EVAL_PAIRS), ("test", EVAL_PAIRS)):
        src, tgt = (os.path.join(folder, f"{split}.{side}") for side in ("src", "tgt"))
        specs[split] = f"{src},{tgt}"
        if os.path.exists(tgt):
            continue
        with open(src + ".tmp", "w") as fs, open(tgt + ".tmp", "w") as ft:
            for start in range(0, count, CHUNK):
                n = min(CHUNK, count - start)
                lengths = rng.integers(1, MAX_WORDS + 1, size=n)
                ids = np.minimum(rng.zipf(1.2, size=int(lengths.sum())) - 1, WORDS - 1)
                for row in np.split(ids, np.cumsum(lengths)[:-1]):
                    fs.write(" ".join(words[row]) + "\n")
                    ft.write(" ".join(words[(row * 7 + 1) % WORDS]) + "\n")
        os.replace(src + ".tmp", src)
        os.replace(tgt + ".tmp", tgt)
    return specs


def data_config(config_lib, folder: str, specs: dict[str, str]):
    c = config_lib.get_data_config()
    c.dataset = "parallel_text"
    c.data_dir = os.path.join(folder, "tfds")
    c.train_file, c.validation_file, c.test_file = specs["train"], specs["validation"], specs["test"]
    c.source_vocab = c.target_vocab = "word"
    return c


def _status_bytes(field: str) -> int:
    """A memory field of ``/proc/self/status``: ``VmRSS`` (resident now) or ``VmHWM`` (this process's peak).
    Not ``ru_maxrss``, which a child inherits from its parent's peak (``benchmarks.common.max_rss_bytes``);
    not that function itself, which would import the installed package before a ``--checkout``'s."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(f"{field}:"))


def main(argv):
    del argv
    folder = os.path.join(_FOLDER.value, f"pairs{_PAIRS.value}")
    os.makedirs(folder, exist_ok=True)
    specs = write_corpus(folder, _PAIRS.value)
    if _CHECKOUT.value:
        sys.path.insert(0, _CHECKOUT.value)
        commit = subprocess.run(["git", "-C", _CHECKOUT.value, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    config_lib = importlib.import_module("seq2seq_jax.data.config")
    datasets = importlib.import_module("seq2seq_jax.data.datasets")
    pipeline = importlib.import_module("seq2seq_jax.data.pipeline")
    encoded_dir = getattr(pipeline, "ENCODED_DIR", None)  # (a checkout from before the cache has none)
    c = data_config(config_lib, folder, specs)  # the TFDS data is shared with the checkout: the same builder
    vocab_dir = os.path.join(folder, f"vocab-{commit}" if _CHECKOUT.value else "vocab")
    if _PHASE.value == "prepare":
        shutil.rmtree(c.data_dir, ignore_errors=True)
    elif _PHASE.value == "first_start":
        if encoded_dir and not _CHECKOUT.value:
            shutil.rmtree(os.path.join(c.data_dir, encoded_dir), ignore_errors=True)
        shutil.rmtree(vocab_dir, ignore_errors=True)
    imports_rss = _status_bytes("VmRSS")
    start = time.perf_counter()
    if _PHASE.value == "prepare":
        datasets.get_builder("parallel_text", c.data_dir, train_file=c.train_file, validation_file=c.validation_file,
                             test_file=c.test_file).download_and_prepare()
        first_batch_s = batch_s = None
        seconds = time.perf_counter() - start
    else:
        data = pipeline.get_data(c, batch_size=64, seed=0, vocab_dir=vocab_dir)
        setup = time.perf_counter()
        batches = data.train_iterator(prefetch=0)
        next(batches)
        first_batch_s = time.perf_counter() - setup
        seconds = time.perf_counter() - start
        times = []
        for _ in range(_BATCHES.value):
            before = time.perf_counter()
            next(batches)
            times.append(time.perf_counter() - before)
        batch_s = float(np.median(times))
    cache = os.path.join(c.data_dir, encoded_dir or "")
    cache_bytes = None if not encoded_dir else sum(  # None: a checkout without the cache
        os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(cache) for name in names)
    corpus_bytes = sum(os.path.getsize(p) for p in c.train_file.split(","))
    print(json.dumps({"package": os.path.dirname(pipeline.__file__), "times_s": [seconds], "first_s": None,
                      "first_batch_s": first_batch_s, "batch_s": batch_s, "peak_rss_bytes": _status_bytes("VmHWM"),
                      "imports_rss_bytes": imports_rss, "pairs": _PAIRS.value, "corpus_bytes": corpus_bytes,
                      "cache_bytes": cache_bytes}))


if __name__ == "__main__":
    app.run(main)
