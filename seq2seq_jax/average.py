"""Averages the parameters of a run's last N (or chosen) checkpoints into a new checkpoint, as fairseq's
``scripts/average_checkpoints.py`` and JoeyNMT's ``scripts/average_checkpoints.py`` do.

    python -m seq2seq_jax.average --workdir=runs/tiny --last=5 [--output=averaged]
    python -m seq2seq_jax.average --workdir=runs/tiny --steps=8000,9000,10000 --output=avg3
    python -m seq2seq_jax.evaluate --workdir=runs/tiny --checkpoint=averaged

The steps come from ``<workdir>/checkpoints``, which keeps the latest ``train.keep_checkpoints`` of them
(raise it before training to average more). Each parameter is the elementwise mean of its values in those
steps (summed in float64, stored in its own dtype). The result is a checkpoint in the run's own format,
written to ``<workdir>/<output>/<step>`` with ``step`` the newest averaged step and the rest of its state
(optimizer, data position) that step's, and ``meta`` listing the averaged steps; ``evaluate`` and
``translate`` load it with ``--checkpoint=<output>``. It stays apart from ``checkpoints/`` and ``best/``,
which training prunes, resumes from and selects on, and is never replaced: an existing ``--output`` is
refused (the checkpoints it came from may be pruned since). It is written to a temporary directory first
and renamed when complete, so a failed run leaves nothing.

A bad request (no run or no checkpoints in the workdir, more steps asked for than kept, an unknown step, an
existing output) is one ``error:`` line and exit status 1, before anything is written. The JSON summary
(output directory, step, averaged steps) alone goes to stdout. Runs on one process.
"""

import json
import os
import shutil
from collections.abc import Iterable

import jax
import numpy as np
from absl import app, flags, logging

from seq2seq_jax import checkpointing
from seq2seq_jax import cli
from seq2seq_jax import optim
from seq2seq_jax import workdir as workdir_lib

_WORKDIR = cli.workdir_flag()
_LAST = flags.DEFINE_integer("last", None, "Average the newest N checkpoints of <workdir>/checkpoints.",
                             lower_bound=1)
_STEPS = flags.DEFINE_list("steps", None, "Average these steps of <workdir>/checkpoints, e.g. 800,900,1000.")
_OUTPUT = cli.output_flag()  # shared with translate (absl defines a name once); here: default 'averaged'
DEFAULT_OUTPUT = "averaged"
for _name in ("workdir", "output"):
    flags.declare_key_flag(_name)


def select_steps(available: list[int], directory: str, *, last: int | None = None,
                 steps: list[str] | None = None) -> list[int]:
    """The steps to average, ascending: the newest ``last`` of ``available`` (the steps saved in
    ``directory``) or the listed ``steps``; a ``ValueError`` naming what is wrong."""
    if not available:
        raise ValueError(f"no checkpoint in {directory}: train the run first")
    available = sorted(available)
    have = f"{directory} has steps {', '.join(map(str, available))}"
    if last is not None:
        if last > len(available):
            raise ValueError(f"--last={last}: {have} (train.keep_checkpoints sets how many are kept)")
        return available[-last:]
    numbers = []
    for text in steps:
        if not text.strip().isdigit():
            raise ValueError(f"--steps: {text!r} is not a step number")
        numbers.append(int(text))
    for step in numbers:
        if step not in available:
            raise ValueError(f"--steps: step {step} is not saved; {have}")
        if numbers.count(step) > 1:
            raise ValueError(f"--steps: step {step} is listed twice")
    return sorted(numbers)


def average_params(trees: Iterable):
    """The elementwise mean of the pytrees (of one structure) that ``trees`` yields, taken one at a time into
    a float64 sum; each leaf keeps its dtype."""
    total, count = None, 0
    for tree in trees:
        tree64 = jax.tree.map(lambda leaf: np.asarray(leaf, np.float64), tree)
        total, count = tree64 if total is None else jax.tree.map(np.add, total, tree64), count + 1
        dtypes = jax.tree.map(lambda leaf: np.asarray(leaf).dtype, tree)
    return jax.tree.map(lambda leaf, dtype: (leaf / count).astype(dtype), total, dtypes)


def average_checkpoints(workdir: str, steps: list[int], output: str) -> dict:
    """Writes the average of ``steps`` of ``workdir/checkpoints`` to ``workdir/<output>`` (see the module
    docstring); returns the summary printed on stdout."""
    config, model, _, _ = workdir_lib.load_run(workdir)
    abstract = optim.create_train_state(model, config)
    saved = checkpointing.open_manager(os.path.join(workdir, "checkpoints"), create=False)
    newest = {}

    def each_step_params():  # one step in memory at a time; the newest one's state and data position kept
        for step in steps:
            newest["state"], newest["data"], _ = checkpointing.restore_step(saved, step, abstract)
            logging.info("read step %d of %s", step, saved.directory)
            yield jax.device_get(newest["state"].params)

    try:
        params = average_params(each_step_params())
    finally:
        saved.close()
    state, data_state = newest["state"].replace(params=params), newest["data"]
    meta = {checkpointing.AVERAGED_STEPS: steps, "averaged_from": str(saved.directory)}
    final, tmp = os.path.join(workdir, output), os.path.join(workdir, f".{output}.tmp{os.getpid()}")
    try:
        written = checkpointing.open_manager(tmp)
        written.save(steps[-1], args=checkpointing.save_args(state, data_state, meta))
        written.wait_until_finished()
        written.close()
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"checkpoint": output, "directory": final, "step": steps[-1], "averaged_steps": steps}


def saved_steps(workdir: str) -> list[int]:
    """The steps in ``workdir/checkpoints`` (none if it does not exist); creates nothing."""
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    saved = checkpointing.open_manager(directory, create=False)
    try:
        return list(saved.all_steps())
    finally:
        saved.close()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.require(_WORKDIR)
    if (_LAST.value is None) == (_STEPS.value is None):
        raise app.UsageError("give either --last=N or --steps=S1,S2,...")
    cli.quiet_libraries()
    workdir, output = _WORKDIR.value, _OUTPUT.value or DEFAULT_OUTPUT
    try:
        checkpointing.check_averaged_name(output)
        workdir_lib.load_run(workdir)  # a workdir holding a run: config.json and vocab/
        if os.path.lexists(os.path.join(workdir, output)):
            raise ValueError(f"{os.path.join(workdir, output)} exists: remove it or choose another --output")
        steps = select_steps(saved_steps(workdir), os.path.join(workdir, "checkpoints"), last=_LAST.value,
                             steps=_STEPS.value)
        summary = average_checkpoints(workdir, steps, output)
    except (ValueError, FileNotFoundError, checkpointing.CheckpointError) as error:
        cli.fail(str(error))
    logging.info("wrote %s, the average of steps %s: load it with --checkpoint=%s", summary["directory"],
                 ", ".join(map(str, steps)), output)
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
