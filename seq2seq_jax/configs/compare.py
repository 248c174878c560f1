"""One comparison of two run configs, for both questions asked of a saved run: may training resume from it
(``seq2seq_jax.train``), and did it train with the config a study asks for now (``experiments.sweep``)."""

import json
from collections.abc import Mapping

import ml_collections

from seq2seq_jax.configs import default

MACHINE_FIELDS = ("data.data_dir",)  # where this machine keeps things, not what the run is: never compared
# How the same function is computed (the same parameters, loss and gradients, tested): a run may resume with
# either value, e.g. with model.remat on a device with less memory.
COMPUTATION_FIELDS = ("model.remat", "model.recurrent_impl")


def _identity(value):
    return value


def resume_rule(key: str):
    """What of field ``key`` a checkpoint can only resume with, as a function of its value; None if it may
    change on resume (the step budget, logging, decoding). The sections that define the run, and what shapes
    the optimizer state the checkpoint holds (clipping adds a state only when it is on)."""
    if key in COMPUTATION_FIELDS:
        return None
    if key.startswith(("model.", "data.")) or key in ("train.optimizer", "train.skip_nonfinite_updates"):
        return _identity
    if key == "train.max_grad_norm":
        return lambda value: isinstance(value, (int, float)) and value > 0
    if key == "train.schedule":  # only the plateau schedule keeps a state
        return lambda value: value == "plateau"
    if key == "train.accumulate_steps":  # the state counts batches, a step is accumulate_steps of them
        return _identity
    return None


def flat(config: ml_collections.ConfigDict | Mapping) -> dict:
    """``{"section.field": value}`` as JSON values (a mapping already flat is returned as it is), without
    ``MACHINE_FIELDS``."""
    if isinstance(config, ml_collections.ConfigDict):
        config = json.loads(config.to_json_best_effort())

    def walk(node, prefix):
        out = {}
        for key, value in node.items():
            if isinstance(value, Mapping):
                out.update(walk(value, f"{prefix}{key}."))
            elif f"{prefix}{key}" not in MACHINE_FIELDS:
                out[f"{prefix}{key}"] = value
        return out
    return walk(config, "")


def differences(saved: Mapping | None, current: ml_collections.ConfigDict | Mapping, *,
                resume: bool = False) -> list[str]:
    """``field: saved -> current`` for each field that differs; ``['no recorded config']`` if ``saved`` is None.

    A field the saved config lacks counts as its default (``configs/default.py``): an option added since that
    run trained defaults to what the code did before it existed. With ``resume``, only the fields of ``resume_rule``
    are compared (a resumed run may change its step budget, logging or decoding), so every run a study accepts as
    its own can also resume.
    """
    if saved is None:
        return ["no recorded config"]
    saved, current = flat(saved), flat(current)
    defaults = flat(default.get_config())
    saved = {**{k: defaults[k] for k in current if k not in saved and k in defaults}, **saved}
    out = []
    for key in sorted(set(saved) | set(current)):
        rule = resume_rule(key) if resume else _identity
        if rule is not None and rule(saved.get(key, "<absent>")) != rule(current.get(key, "<absent>")):
            out.append(f"{key}: {saved.get(key, '<absent>')!r} -> {current.get(key, '<absent>')!r}")
    return out
