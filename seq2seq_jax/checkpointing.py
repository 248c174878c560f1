"""Orbax checkpoints of a run (the train state, the data iterator's position, the best-so-far meta).

``workdir/checkpoints`` keeps the latest ``train.keep_checkpoints`` steps; ``workdir/best`` keeps the
parameters of the best validation score so far (``eval.best_metric``). A run started on a workdir that
has checkpoints resumes from the newest readable one, with the data iterator where it was, so the resumed
run sees exactly the batches, dropout masks and losses of a run that was never stopped. Orbax writes each
step into a temporary directory and renames it when complete, so a process killed during a save leaves
only the earlier steps visible. An unreadable step is moved to ``workdir/unreadable_checkpoints`` (never
deleted) and the one before it is used. A save that finds the disk full stops the run with one
``DiskFullError`` naming the workdir; every complete step is kept, and the trainer removes partial ones
(orbax's temporary directories) when it starts again.
``workdir/<name>`` holds an averaged checkpoint written by ``seq2seq_jax.average`` (``--output=<name>``,
default ``averaged``), in the same format (``open_averaged``).
"""

import contextlib
import errno
import os
import re
import signal
import time

import flax.serialization
import jax
import orbax.checkpoint as ocp
from absl import logging

# Test hook: ``SEQ2SEQ_JAX_TEST_FAULT=<point>@<step>[:<SIGNAL>]`` makes the process send itself SIGKILL
# (or the named signal) when it reaches ``point`` at ``step`` (see ``fault_point``). Unset in real runs.
FAULT_ENV = "SEQ2SEQ_JAX_TEST_FAULT"


class CheckpointError(RuntimeError):
    """No checkpoint of a workdir can be read; nothing is deleted."""


class DiskFullError(OSError):
    """No space was left on the workdir's device for a checkpoint (``errno.ENOSPC``); the message says which
    step was lost and which are kept."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errno = errno.ENOSPC


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or one it was raised from, is ENOSPC: an ``OSError``, or tensorstore's message in
    the ``ValueError`` orbax raises for an array it could not write."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _disk_full_message(workdir: str, lost: str, kept: list[int]) -> str:
    resume = (f"the complete checkpoints are kept ({'steps' if len(kept) > 1 else 'step'} {', '.join(map(str, kept))})"
              f". Free space, then run the same command to resume from step {max(kept)}" if kept else
              "there is no complete checkpoint. Free space, then run the same command to start again")
    return (f"no space left on device for workdir {workdir}: {lost} could not be saved (its partial files go when "
            f"the run starts again); {resume}")


# An averaged checkpoint's ``meta`` lists the steps it averages under this key; it marks the directory as one.
AVERAGED_STEPS = "averaged_steps"
SELECTIONS = ("best", "latest")  # what --checkpoint means besides the name of an averaged checkpoint
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def fault_point(point: str, step: int) -> None:
    """Test hook: kills (or signals) this process at ``point``/``step`` if ``$SEQ2SEQ_JAX_TEST_FAULT`` says so."""
    spec = os.environ.get(FAULT_ENV)
    if spec and spec.partition(":")[0] == f"{point}@{step}":
        os.kill(os.getpid(), getattr(signal, spec.partition(":")[2] or "SIGKILL"))


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def open_manager(directory: str, max_to_keep: int | None = None, *, create: bool = True,
                 remove_partial: bool = False) -> ocp.CheckpointManager:
    """Orbax's manager of the checkpoints in ``directory`` (``create=False``: reads, creates nothing;
    ``remove_partial``: removes the temporary directories of saves that never completed)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                           cleanup_tmp_directories=remove_partial)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                                 item_names=("state", "data", "meta"))


def save_args(state, data_state: dict, meta: dict) -> ocp.args.Composite:
    """What one step of a checkpoint holds: the train state, the data iterator's state and ``meta``."""
    return ocp.args.Composite(state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
                              data=ocp.args.JsonSave(data_state), meta=ocp.args.JsonSave(meta))


def restore_step(manager: ocp.CheckpointManager, step: int, abstract_state):
    """``(state, data_state, meta)`` of ``step`` of ``manager`` into ``abstract_state``'s tree."""
    target = flax.serialization.to_state_dict(abstract_state)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore()))
    except Exception as error:  # orbax raises many types for unreadable files
        raise CheckpointError(f"checkpoint {manager.directory}/{step} cannot be read ({_one_line(error)}); "
                              "it is left in place") from error
    return flax.serialization.from_state_dict(abstract_state, restored.state), restored.data, restored.meta


def _can_name_averaged(name: str) -> bool:
    return name not in SELECTIONS and _PLAIN_NAME.fullmatch(name) is not None


def check_averaged_name(name: str) -> None:
    """A ``ValueError`` unless ``name`` can name an averaged checkpoint: a plain file name, not 'best'/'latest'."""
    if not _can_name_averaged(name):
        raise ValueError(f"{name!r} cannot name an averaged checkpoint: use letters, digits, '.', '_' and '-' "
                         f"(not starting with '.', '_' or '-'), other than {' and '.join(map(repr, SELECTIONS))}")


def open_averaged(workdir: str, name: str) -> tuple[ocp.CheckpointManager, int]:
    """The manager of the averaged checkpoint ``workdir/<name>`` and its step; a ``FileNotFoundError`` or
    ``CheckpointError`` saying why there is none. Reads only its ``meta``."""
    directory = os.path.join(workdir, name)
    if not _can_name_averaged(name) or not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoint {name!r} in {workdir}: the checkpoint is 'best', 'latest' or the "
                                "--output name of an averaged one (seq2seq_jax.average)")
    averaged = open_manager(directory, create=False)
    steps, meta = averaged.all_steps(), None
    if len(steps) == 1:
        with contextlib.suppress(Exception):  # whatever orbax raises for a directory that is no checkpoint
            meta = averaged.restore(steps[0], args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if not isinstance(meta, dict) or AVERAGED_STEPS not in meta:
        averaged.close()
        raise CheckpointError(f"{directory} is not an averaged checkpoint (one step whose meta lists "
                              f"'{AVERAGED_STEPS}', as seq2seq_jax.average writes)")
    return averaged, steps[0]


def averaged_step(workdir: str, name: str) -> int:
    """The step of the averaged checkpoint ``workdir/<name>``: the newest of the steps it averages."""
    averaged, step = open_averaged(workdir, name)
    averaged.close()
    return step


class Checkpoints:
    """The latest-k and best checkpoints of one workdir."""

    def __init__(self, workdir: str, keep: int = 2, *, remove_partial: bool = False):
        """``remove_partial``: remove what saves that never completed left (the trainer, which holds the
        workdir's lock, does; a reader must not, as a save may be under way)."""
        self.workdir = workdir
        self.latest = open_manager(os.path.join(workdir, "checkpoints"), keep, remove_partial=remove_partial)
        self.best = open_manager(os.path.join(workdir, "best"), 1, remove_partial=remove_partial)
        self._saving = {}  # id(manager) -> the step it was last asked to save
        self._disk_full: DiskFullError | None = None

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def wait_and_latest_step(self) -> int | None:
        """The newest completed step, once pending saves have finished."""
        self.wait()
        return self.latest.latest_step()

    def save(self, state, data_state: dict, meta: dict, *, best: bool = False) -> None:
        """Saves ``state`` (a TrainState) with the iterator state and ``meta`` at ``state.step``."""
        step = int(jax.device_get(state.step))
        manager = self.best if best else self.latest
        if step in manager.all_steps():
            return
        with self._reporting_disk_full(manager):  # the previous save's failure, if any (orbax waits for it anyway)
            manager.wait_until_finished()
        self._saving[id(manager)] = step
        with self._reporting_disk_full(manager):
            manager.save(step, args=save_args(state, data_state, meta))
        fault_point("best_save" if best else "save", step)  # a test kills the process mid-save here

    def restore(self, abstract_state, *, best: bool = False, step: int | None = None):
        """Returns ``(state, data_state, meta)`` of ``step`` (default: latest) into ``abstract_state``'s tree."""
        manager = self.best if best else self.latest
        step = manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {manager.directory}")
        return restore_step(manager, step, abstract_state)

    def restore_newest_readable(self, abstract_state):
        """``restore`` of the newest readable latest-k step. Unreadable newer steps are reported (one line
        each) and moved to ``workdir/unreadable_checkpoints/<step>-<time>``: kept, and out of orbax's way so
        the resumed run can save those steps again. If no step is readable, nothing is moved and one
        ``CheckpointError`` says why."""
        failures = []
        for step in sorted(self.latest.all_steps(), reverse=True):
            try:
                restored = self.restore(abstract_state, step=step)
            except CheckpointError as error:
                failures.append((step, error))
                continue
            for bad_step, error in failures:
                kept = os.path.join(self.workdir, "unreadable_checkpoints",
                                    f"{bad_step}-{time.strftime('%Y%m%dT%H%M%S')}")
                os.makedirs(os.path.dirname(kept), exist_ok=True)
                os.replace(os.path.join(self.latest.directory, str(bad_step)), kept)
                logging.warning("%s; moved to %s, resuming from step %d", str(error).removesuffix(
                    "; it is left in place"), kept, step)
            if failures:
                self.latest.reload()
            return restored
        raise CheckpointError(f"no checkpoint in {self.latest.directory} can be read, all left in place; the newest: "
                              f"{failures[0][1]}" if failures else f"no checkpoint in {self.latest.directory}")

    def has_best(self) -> bool:
        return self.best.latest_step() is not None

    def wait(self) -> None:
        for manager in (self.latest, self.best):
            with self._reporting_disk_full(manager):
                manager.wait_until_finished()

    def close(self) -> None:
        for manager in (self.latest, self.best):
            if self._disk_full is None:
                manager.close()
            else:  # already reported: orbax would raise it again
                with contextlib.suppress(Exception):
                    manager.close()

    @contextlib.contextmanager
    def _reporting_disk_full(self, manager: ocp.CheckpointManager):
        """Turns orbax's failure to save for want of space into one ``DiskFullError`` naming the step lost
        and those kept. The step's temporary directory is left to the next start (``remove_partial``): some of
        orbax's writers of it may still be running."""
        try:
            yield
        except Exception as error:
            if not is_disk_full(error):
                raise
            with contextlib.suppress(Exception):  # the failed save's own thread ends first
                manager.wait_until_finished()
            self.latest.reload()
            kept, step = self.latest.all_steps(), self._saving.get(id(manager))
            self._disk_full = DiskFullError(_disk_full_message(
                self.workdir, f"the {'best ' if manager is self.best else ''}checkpoint of step {step}", kept))
            raise self._disk_full from error
