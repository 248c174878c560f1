"""Input-pipeline throughput: training batches per second from `get_data`, on this machine's CPU.

  python -m benchmarks.input_pipeline --dataset=number_words/en_fr --batch_size=64

Prepares the dataset on first use (under $SEQ2SEQ_JAX_DATA_DIR or the default data dir); vocabularies go to
a temporary directory. Prints setup time (read + encode every split) and batches/s with and without the
prefetch thread.
"""

import itertools
import tempfile
import time

from absl import app, flags

from seq2seq_jax.data import config as config_lib
from seq2seq_jax.data import pipeline

_DATASET = flags.DEFINE_string("dataset", "number_words/en_fr", "data.dataset to read.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 5000, "Batches to time per setting.")


def main(argv):
    del argv
    c = config_lib.get_data_config()
    c.dataset = _DATASET.value
    pipeline.get_data(c, batch_size=_BATCH_SIZE.value, seed=0, vocab_dir=tempfile.mkdtemp())  # Prepare once.
    start = time.perf_counter()
    data = pipeline.get_data(c, batch_size=_BATCH_SIZE.value, seed=0, vocab_dir=tempfile.mkdtemp())
    print(f"{c.dataset}: setup (read + encode all splits, build vocabularies) {time.perf_counter() - start:.2f} s; "
          f"buckets {data.bucket_shapes}")
    for prefetch in (0, 4):
        it = data.train_iterator(prefetch=prefetch)
        next(it)
        start = time.perf_counter()
        for _ in itertools.islice(it, _NUM_BATCHES.value):
            pass
        rate = _NUM_BATCHES.value / (time.perf_counter() - start)
        print(f"batch_size={_BATCH_SIZE.value} prefetch={prefetch}: {rate:,.0f} batches/s")


if __name__ == "__main__":
    app.run(main)
