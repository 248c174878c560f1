"""Orbax checkpoints of a run: the train state, the data iterator's position and the config.

``workdir/checkpoints`` keeps the latest ``train.keep_checkpoints`` steps; ``workdir/best`` keeps the
parameters of the best validation score so far (``eval.best_metric``). A run started on a workdir that
has checkpoints resumes from the latest one, with the data iterator where it was, so the resumed run sees
exactly the batches, dropout masks and losses of a run that was never stopped.
"""

import json
import os

import flax.serialization
import jax
import orbax.checkpoint as ocp
from absl import logging


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be read; nothing is deleted."""


def _manager(directory: str, max_to_keep: int | None) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                                 item_names=("state", "data", "meta"))


class Checkpoints:
    """The latest-k and best checkpoints of one workdir."""

    def __init__(self, workdir: str, keep: int = 2):
        self.workdir = workdir
        self.latest = _manager(os.path.join(workdir, "checkpoints"), keep)
        self.best = _manager(os.path.join(workdir, "best"), 1)

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def save(self, state, data_state: dict, meta: dict, *, best: bool = False) -> None:
        """Saves ``state`` (a TrainState) with the iterator state and ``meta`` at ``state.step``."""
        step = int(jax.device_get(state.step))
        manager = self.best if best else self.latest
        if step in manager.all_steps():
            return
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
            data=ocp.args.JsonSave(data_state),
            meta=ocp.args.JsonSave(meta),
        )
        manager.save(step, args=args)

    def restore(self, abstract_state, *, best: bool = False, step: int | None = None):
        """Returns ``(state, data_state, meta)`` of ``step`` (default: latest) into ``abstract_state``'s tree."""
        manager = self.best if best else self.latest
        step = manager.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {manager.directory}")
        target = flax.serialization.to_state_dict(abstract_state)
        try:
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore(),
                meta=ocp.args.JsonRestore()))
        except Exception as error:  # orbax raises many types for unreadable files
            raise CheckpointError(
                f"checkpoint {manager.directory}/{step} cannot be read ({type(error).__name__}: "
                f"{str(error)[:300]}); it is left in place. Move it away to resume from an earlier step "
                f"(available: {list(manager.all_steps())})"
            ) from error
        state = flax.serialization.from_state_dict(abstract_state, restored.state)
        return state, restored.data, restored.meta

    def has_best(self) -> bool:
        return self.best.latest_step() is not None

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()


def save_json(path: str, value) -> None:
    """Writes ``value`` as JSON atomically (tmp file + rename), so a crash never leaves half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    logging.debug("wrote %s", path)
