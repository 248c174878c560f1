"""The ``config.model`` section: every field of ``seq2seq_jax.model.ModelConfig`` with its default (the
comments there say what each field does)."""

import dataclasses

import ml_collections

from seq2seq_jax.model import ModelConfig


def get_model_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({f.name: f.default for f in dataclasses.fields(ModelConfig)
                                      if f.default is not dataclasses.MISSING})
