"""Trains and evaluates one run: ``train.train_and_evaluate(config, workdir)`` from the command line.

    python -m seq2seq_jax.main --config=seq2seq_jax/configs/tiny.py --workdir=/tmp/tiny \
        --config.train.num_steps=300 --config.data.data_dir=/tmp/tfds

Any config field can be overridden with ``--config.<section>.<field>=value``; the config is locked, so a
misspelt field (``--config.train.num_step=5``) is an error, not a silently ignored flag. Running again on
the same workdir resumes from its latest checkpoint. The final metrics are printed as JSON on stdout; the
log (absl, INFO and up) goes to stderr.

Exit status: 0 done; 1 an error, in one ``error: ...`` line (a bad config value, path or data file, a busy
workdir, a diverged run; absl reports a malformed flag itself); 75 (``train.EXIT_PREEMPTED``) stopped by SIGTERM/SIGINT after saving its current
step: rerun the same command to resume. A second signal ends the process at once (143 / 130).

Multi-host: pass ``--multihost`` on every host to call ``jax.distributed.initialize()`` first. It detects
SLURM, Open MPI and Cloud TPU by itself; elsewhere set ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, which are passed on. ``JAX_COORDINATOR_ADDRESS`` alone in the
environment implies ``--multihost``.
"""

import ast
import json
import os
import re
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from seq2seq_jax import checkpointing
from seq2seq_jax import cli
from seq2seq_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. seq2seq_jax/configs/tiny.py; override fields with --config.x.y=v.",
    lock_config=True)
_WORKDIR = cli.workdir_flag()
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Call jax.distributed.initialize() first (see the module docstring).")
flags.declare_key_flag("workdir")


def _initialize_distributed() -> None:
    env = {name: os.environ.get(var) for name, var in (
        ("coordinator_address", "JAX_COORDINATOR_ADDRESS"), ("num_processes", "JAX_NUM_PROCESSES"),
        ("process_id", "JAX_PROCESS_ID"))}
    kwargs = {k: (int(v) if k != "coordinator_address" else v) for k, v in env.items() if v}
    jax.distributed.initialize(**kwargs)
    logging.info("process %d of %d; %d local / %d global devices", jax.process_index(), jax.process_count(),
                 jax.local_device_count(), jax.device_count())


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing for ``app.run``, plus one clean usage error where ml_collections raises a
    non-absl exception: a misspelt ``--config.x.y`` (AttributeError) or an unreadable config file (OSError)."""
    try:
        return app.parse_flags_with_usage(argv)
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.require(_CONFIG, _WORKDIR)
    config = _CONFIG.value
    try:
        config.get("train")  # config_flags defers a config file's loading error to the first access
    except OSError as error:
        cli.fail(f"--config: {error}")
    cli.quiet_libraries()
    if _MULTIHOST.value or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        _initialize_distributed()
    logging.info("JAX devices: %s", jax.devices())
    try:
        train.validate_config(config)  # a bad value: one message, nothing written
    except ValueError as error:
        cli.fail(str(error))
    try:
        final = train.train_and_evaluate(config, _WORKDIR.value)
    except train.Preempted as error:  # saved: a scheduler requeues on this status
        sys.stderr.write(f"preempted: {error}\n")
        sys.exit(train.EXIT_PREEMPTED)
    except (ValueError, OSError, train.NonFiniteLossError, checkpointing.CheckpointError,
            checkpointing.WorkdirBusyError) as error:  # bad data, files or state: the messages say what to do
        cli.fail(str(error))
    if jax.process_index() == 0:
        print(json.dumps(final, indent=2, sort_keys=True))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
