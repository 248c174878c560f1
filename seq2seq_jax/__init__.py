"""seq2seq_jax: recurrent sequence-to-sequence models in JAX/Flax.

From the vanilla RNN through the LSTM to the encoder-decoder of Sutskever, Vinyals & Le (2014) and the
additive attention of Bahdanau, Cho & Bengio (2014).
"""

__version__ = "0.1.0"  # the package's version, its one source (pyproject.toml reads it); see CHANGELOG.md
