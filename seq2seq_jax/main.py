"""Trains and evaluates one run: ``train.train_and_evaluate(config, workdir)`` from the command line.

    python -m seq2seq_jax.main --config=seq2seq_jax/configs/tiny.py --workdir=/tmp/tiny \
        --config.train.num_steps=300 --config.data.data_dir=/tmp/tfds

Any config field can be overridden with ``--config.<section>.<field>=value``; the config is locked, so a
misspelt field (``--config.train.num_step=5``) is an error, not a silently ignored flag. Running again on
the same workdir resumes from its latest checkpoint. The final metrics are printed as JSON on stdout, and
nothing else is: the log (absl, INFO and up), progress bars and TFDS's dataset preparation go to stderr,
so ``... > metrics.json`` holds valid JSON.

``--dry_run`` prints, as JSON, what the run would train on: the resolved config, the vocabularies' sizes,
the bucket shapes, the number of parameters and, per split, the examples kept, filtered and truncated by
the length limits; then it exits without training and writes nothing to the workdir (which it does not
need). It prepares the dataset in the data directory like a run would.

Exit status: 0 done; 1 an error, in one ``error: ...`` line (a config file that is missing, not valid Python
or whose ``get_config`` raises, with the file's line, ``--verbosity=1`` adding the traceback; a bad config
value, path or data file, a busy workdir, a diverged run; absl reports a malformed flag itself); 75
(``train.EXIT_PREEMPTED``) stopped by SIGTERM/SIGINT after saving its current step: rerun the same command
to resume. A second signal ends the process at once (143 / 130).

Multi-host: pass ``--multihost`` on every host to call ``jax.distributed.initialize()`` first. It detects
SLURM, Open MPI and Cloud TPU by itself; elsewhere set ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, which are passed on. ``JAX_COORDINATOR_ADDRESS`` alone in the
environment implies ``--multihost``.
"""

import ast
import contextlib
import json
import os
import re
import sys
import tempfile
import traceback

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from seq2seq_jax import checkpointing
from seq2seq_jax import cli
from seq2seq_jax import files
from seq2seq_jax import model as model_lib
from seq2seq_jax import optim
from seq2seq_jax import train
from seq2seq_jax.configs import default as default_config
from seq2seq_jax.data import pipeline

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. seq2seq_jax/configs/tiny.py; override fields with --config.x.y=v.",
    lock_config=True)


class ConfigFileError(Exception):
    """The config file cannot be loaded: it is missing or not valid Python, has no ``get_config``, or that raised."""


def config_file_error(path: str, error: BaseException) -> str:
    """One line naming the config file of ``--config=path``, its line where ``error`` arose (if known) and
    the error."""
    if str(error).startswith("Error whilst parsing config file") and error.__context__ is not None:
        error = error.__context__  # ml_collections re-raises a TypeError/ValueError with the traceback as text
    file = path.split(":", 1)[0]
    if isinstance(error, SyntaxError):
        line, text = error.lineno, f"{type(error).__name__}: {error.msg}"
    else:
        frames = [f.lineno for f in traceback.extract_tb(error.__traceback__)
                  if os.path.realpath(f.filename) == os.path.realpath(file)]
        line = frames[-1] if frames else None
        text = f"{type(error).__name__}: {' '.join(str(error).split())}"
        if not frames and isinstance(error, AttributeError) and error.name == "get_config":
            text = "it defines no get_config()"
    return f"config file {file}{f', line {line}' if line else ''}: {text} (--verbosity=1 shows the traceback)"


class _ConfigFileParser:
    """ml_collections' parser of ``--config`` (which it loads the file with), whose failures in the file
    itself become one ``ConfigFileError``: absl would turn a TypeError or ValueError into a flag error
    holding the traceback, and let any other error through as one."""

    def __init__(self, parser):
        self._parser = parser

    def parse(self, path):
        file = path.split(":", 1)[0]
        if not os.path.isfile(file):  # ml_collections would defer it, as a 4-line error
            raise ConfigFileError(f"config file {file} {'is not a file' if os.path.exists(file) else 'does not exist'}")
        try:
            return self._parser.parse(path)
        except Exception as error:  # whatever the user's file raises
            raise ConfigFileError(config_file_error(path, error)) from error

    def __getattr__(self, name):  # the rest of absl's ArgumentParser interface
        return getattr(self._parser, name)


flags.FLAGS["config"].parser = _ConfigFileParser(flags.FLAGS["config"].parser)
_WORKDIR = cli.workdir_flag()
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Call jax.distributed.initialize() first (see the module docstring).")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Print the resolved config, vocabulary sizes, bucket shapes, parameter count and examples "
    "per split as JSON, then exit without training; writes nothing to the workdir.")
flags.declare_key_flag("workdir")


def _initialize_distributed() -> None:
    env = {name: os.environ.get(var) for name, var in (
        ("coordinator_address", "JAX_COORDINATOR_ADDRESS"), ("num_processes", "JAX_NUM_PROCESSES"),
        ("process_id", "JAX_PROCESS_ID"))}
    kwargs = {k: (int(v) if k != "coordinator_address" else v) for k, v in env.items() if v}
    jax.distributed.initialize(**kwargs)
    logging.info("process %d of %d; %d local / %d global devices", jax.process_index(), jax.process_count(),
                 jax.local_device_count(), jax.device_count())


def _verbosity(argv: list[str]) -> int:
    """absl's ``--verbosity`` (``-v``) in ``argv``, read apart from the other flags."""
    values = flags.FlagValues()
    flags.DEFINE_integer("verbosity", 0, "", short_name="v", flag_values=values)
    try:
        values(argv, known_only=True)
    except flags.Error:
        return 0
    return values.verbosity


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing for ``app.run``, plus one clean error where ml_collections raises a non-absl
    exception: a config file that cannot be loaded (``ConfigFileError``: one ``error:`` line, the traceback
    with ``--verbosity=1``), a misspelt ``--config.x.y`` (AttributeError) or an unreadable config file (OSError)."""
    try:
        return app.parse_flags_with_usage(argv)
    except ConfigFileError as error:
        if _verbosity(argv) >= 1 and error.__cause__ is not None:
            traceback.print_exception(error.__cause__)
        cli.fail(str(error))
    except (AttributeError, KeyError, OSError) as error:
        message = str(error)
        while len(message) > 1 and message[0] == message[-1] == "'":  # KeyError text, quoted once per wrap
            message = ast.literal_eval(message)
        if not isinstance(error, OSError):
            field = re.match(r"'([^']*)'", message)
            culprits = [a.split("=")[0] for a in argv if a.startswith("--config.")
                        and field and field.group(1) in a.split("=")[0].split(".")]
            message = (f"{culprits[0] if culprits else '--config'}: the config has no field "
                       f"{message.replace(chr(10), '; ', 1)}")
        sys.stderr.write(f"FATAL Flags parsing error: {message}\n")
        sys.stderr.write("Pass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)


def dry_run(config: ml_collections.ConfigDict) -> dict:
    """What a run of ``config`` would train on (see the module docstring); vocabularies are built in a
    temporary directory and the parameters are only shaped (``jax.eval_shape``), not initialised."""
    t = config.train
    with tempfile.TemporaryDirectory() as vocab_dir:
        data = pipeline.get_data(config.data, batch_size=t.batch_size // jax.process_count(), seed=t.seed,
                                 vocab_dir=vocab_dir)
    model = model_lib.create_model(config, data.source_vocab.size, data.target_vocab.size)
    params = jax.eval_shape(lambda: optim.create_train_state(model, config).params)
    return {
        "config": json.loads(config.to_json_best_effort()),
        "vocab_sizes": {"source": data.source_vocab.size, "target": data.target_vocab.size},
        "bucket_shapes": [list(shape) for shape in data.bucket_shapes],
        "num_params": sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params)),
        "examples": {split: {"kept": len(data.examples(split)), "filtered": data.num_filtered[split],
                             "truncated": data.num_truncated[split]} for split in data.num_filtered},
        "train_batches_per_epoch": data.batches_per_epoch,
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.require(_CONFIG)
    if not _DRY_RUN.value:
        cli.require(_WORKDIR)
    config = _CONFIG.value
    try:
        config.get("train")  # config_flags defers a config file's loading error to the first access
    except OSError as error:
        cli.fail(f"--config: {error}")
    cli.quiet_libraries()
    cli.enable_compilation_cache()
    if _MULTIHOST.value or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        _initialize_distributed()
    logging.info("JAX devices: %s", jax.devices())
    try:
        default_config.validate(config)  # a bad value: one message, nothing written
    except ValueError as error:
        cli.fail(str(error))
    if _DRY_RUN.value:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout holds the result alone
                summary = dry_run(config)
        except ValueError as error:  # a bad data file or length setting: one message
            cli.fail(str(error))
        if jax.process_index() == 0:
            print(json.dumps(summary, indent=2, sort_keys=True))
        return
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout holds the result alone (TFDS prints to it)
            final = train.train_and_evaluate(config, _WORKDIR.value)
    except train.Preempted as error:  # saved: a scheduler requeues on this status
        sys.stderr.write(f"preempted: {error}\n")
        sys.exit(train.EXIT_PREEMPTED)
    except (ValueError, OSError, train.NonFiniteLossError, checkpointing.CheckpointError,
            files.WorkdirBusyError) as error:  # bad data, files or state: the messages say what to do
        if checkpointing.is_disk_full(error) and not isinstance(error, checkpointing.DiskFullError):
            cli.fail(f"no space left on device ({error}) while training in workdir {_WORKDIR.value}: free space, "
                     "then run the same command to resume from its newest complete checkpoint")
        cli.fail(str(error))
    if jax.process_index() == 0:
        print(json.dumps(final, indent=2, sort_keys=True))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
