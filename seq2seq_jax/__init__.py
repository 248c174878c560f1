"""seq2seq_jax: recurrent sequence-to-sequence models in JAX/Flax.

From the vanilla RNN through the LSTM to the encoder-decoder of Sutskever, Vinyals & Le (2014) and the
additive attention of Bahdanau, Cho & Bengio (2014).

``seq2seq_jax.Translator`` (``translator.py``) loads a trained run once and translates, scores and shows
attention from Python. It is imported on first use, so ``import seq2seq_jax`` (e.g. for ``__version__``)
does not import JAX.
"""

__version__ = "0.1.0"  # the package's version, its one source (pyproject.toml reads it); see CHANGELOG.md
__all__ = ["Translator", "__version__"]


def __getattr__(name: str):
    if name == "Translator":
        from seq2seq_jax.translator import Translator  # noqa: PLC0415 - lazy: imports JAX

        return Translator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
