"""The trainer's jitted step ALONE, on the batches the trainer would train on: the other half of the
``train_run`` benchmark's share of step time spent outside the jitted step.

  python -m benchmarks.trainer_overhead --config=seq2seq_jax/configs/g2p.py:cpu \
      --config.train.num_steps=300 --config.train.log_every=50 [--config.x.y=v ...]

It takes the trainer's own flags (``--config`` and its ``--config.x.y=v`` overrides: ``benchmarks.run`` gives it
the ``train_run`` command's) and builds what ``train.train_and_evaluate`` builds, with the trainer's code: the
data (``pipeline.get_data``, the same batch size and seed, so the same batches in the same order, bucket
shapes included), the model and state (``optim.create_train_state``, replicated on ``parallel.data_mesh``) and
the step (``train.jitted_train_step``, the trainer's own). Then:

1. Every batch of the run (``train.num_steps`` x ``train.accumulate_steps``) is drawn from the trainer's
   iterator and put on the device (``parallel.shard_batch``) in advance; the time that takes per batch is
   ``input_s`` (the input pipeline on its own: the iterator's prefetch thread and the transfer).
2. Every batch shape is compiled by one call on a copy of the state (the run's own state is not touched).
3. The steps run in the trainer's log windows (``train.log_every``): the first window's steps untimed (the
   trainer's first window compiles; ``benchmarks.run`` leaves it out), then each later window timed back to
   back, ``block_until_ready`` at its end, as the trainer syncs once per window. ``times_s``: seconds per step
   of each timed window, the trainer's ``1 / steps_per_sec`` without anything the trainer does around the step
   (input, transfer, metrics kept and fetched, logging).
4. One checkpoint save of the final state with the trainer's ``checkpointing.Checkpoints`` (in a temporary
   directory), waited for: ``checkpoint_s``. The trainer's windows leave its saves out (its ``paused`` time),
   so this is reported apart: ``benchmarks.run`` spreads it over the setting's ``train.checkpoint_every``.

Prints one JSON object. The steps are the trainer's: run to the end, the state is the trainer's after the
same steps, bit for bit (tests/test_benchmarks.py checks it on the tiny config).
"""

import contextlib
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
from absl import app
from jax.sharding import NamedSharding, PartitionSpec

from benchmarks.common import threads
from seq2seq_jax import checkpointing
from seq2seq_jax import cli
from seq2seq_jax import main as trainer_main  # the trainer's --config flag and its parsing
from seq2seq_jax import optim
from seq2seq_jax import train
from seq2seq_jax.configs import default as default_config
from seq2seq_jax.data import pipeline
from seq2seq_jax.model import create_model
from seq2seq_jax.parallel import data_mesh, shard_batch


def _windows(num_steps: int, log_every: int) -> list[range]:
    """The trainer's log windows of a fresh run: steps ``(previous log, this log]``, a log every ``log_every``
    steps and at ``num_steps``."""
    ends = sorted({*range(log_every, num_steps + 1, log_every), num_steps})
    return [range(start + 1, end + 1) for start, end in zip([0, *ends], ends)]


def _shapes(batch: dict) -> tuple:
    return tuple(sorted((k, v.shape) for k, v in batch.items()))


def measure(config: ml_collections.ConfigDict, *, return_state: bool = False) -> dict:
    """The jitted step alone over the run's batches (see the module docstring): ``times_s`` (seconds per step,
    one per timed window), ``input_s`` (seconds per batch drawn and put on the device), ``checkpoint_s``,
    the batch shapes and how many steps ran. ``return_state``: also the final ``state`` (not JSON-able)."""
    default_config.validate(config)
    t = config.train
    with tempfile.TemporaryDirectory() as scratch:
        # The trainer builds its vocabularies in its workdir; built from the same training split, they are the same.
        data = pipeline.get_data(config.data, batch_size=t.batch_size // jax.process_count(), seed=t.seed,
                                 vocab_dir=os.path.join(scratch, "vocab"), reuse_vocab=False)
        model = create_model(config, data.source_vocab.size, data.target_vocab.size)
        mesh = data_mesh()
        replicated = NamedSharding(mesh, PartitionSpec())
        state = jax.device_put(optim.create_train_state(model, config), replicated)
        first_bad = jax.device_put(jnp.int32(-1), replicated)
        p_train_step = train.jitted_train_step(t)

        iterator = data.train_iterator()
        start = time.perf_counter()
        batches = [shard_batch(next(iterator), mesh) for _ in range(t.num_steps * t.accumulate_steps)]
        jax.block_until_ready(batches)
        input_s = (time.perf_counter() - start) / len(batches)

        shapes = {}  # shape -> the index of its first batch
        for i, batch in enumerate(batches):
            shapes.setdefault(_shapes(batch), i)
        for i in shapes.values():  # compile each shape on a copy: the donated copies are consumed
            copies = jax.tree.map(jnp.copy, (state, first_bad))
            jax.block_until_ready(p_train_step(*copies, batches[i]))

        windows = _windows(t.num_steps, t.log_every)
        times_s = []
        for w, steps in enumerate(windows):
            start = time.perf_counter()
            for step in steps:
                for k in range(t.accumulate_steps):
                    state, first_bad, _ = p_train_step(state, first_bad, batches[(step - 1) * t.accumulate_steps + k])
            jax.block_until_ready((state, first_bad))
            if w:  # the trainer's first window compiles: benchmarks.run leaves it out
                times_s.append((time.perf_counter() - start) / len(steps))
        if int(first_bad) >= 0:
            raise train.NonFiniteLossError(f"step {int(first_bad)} failed the trainer's health checks")

        checkpoints = checkpointing.Checkpoints(os.path.join(scratch, "run"), keep=t.keep_checkpoints)
        start = time.perf_counter()
        checkpoints.save(state, iterator.get_state(), {"best": None, "best_step": None, "pending": []})
        checkpoints.wait()
        checkpoint_s = time.perf_counter() - start
        checkpoints.close()
    first_window = windows[0][-1]
    result = {
        "times_s": times_s, "first_s": None, "input_s": input_s, "checkpoint_s": checkpoint_s,
        "steps": t.num_steps, "timed_steps": sum(len(w) for w in windows[1:]), "log_every": t.log_every,
        "bucket_shapes": [list(s) for s in data.bucket_shapes],
        "batch_shapes": sorted({tuple(dict(s)["inputs"]) + tuple(dict(s)["targets"]) for s in shapes}),
        # Shapes the trainer met only in a timed window: it compiled them there (this process did before).
        "shapes_first_met_after_first_window": sum(i // t.accumulate_steps + 1 > first_window
                                                   for i in shapes.values()),
        "threads": threads("ours"),
    }
    return {**result, "state": state} if return_state else result


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.require(trainer_main._CONFIG)  # noqa: SLF001 - the trainer's own flag, so its command line works here
    cli.quiet_libraries()
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds the result alone (TFDS prints to it)
        result = measure(trainer_main._CONFIG.value)  # noqa: SLF001
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main, flags_parser=trainer_main.parse_flags)
