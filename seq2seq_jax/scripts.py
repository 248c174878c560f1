"""The console scripts (``[project.scripts]`` in pyproject.toml): ``seq2seq-train``, ``seq2seq-evaluate``,
``seq2seq-translate`` and ``seq2seq-average``.

Each runs its tool's module as ``python -m seq2seq_jax.<module>`` does (``runpy``, as ``__main__``), so the
two commands are the same program: absl's ``--help`` shows the module's docstring and flags, which it looks
for in ``__main__``, and a flag is defined once, by the module that runs.
"""

import runpy


def _run(module: str) -> None:
    runpy.run_module(f"seq2seq_jax.{module}", run_name="__main__", alter_sys=True)


def train() -> None:
    """``seq2seq-train``: ``python -m seq2seq_jax.main``."""
    _run("main")


def evaluate() -> None:
    """``seq2seq-evaluate``: ``python -m seq2seq_jax.evaluate``."""
    _run("evaluate")


def translate() -> None:
    """``seq2seq-translate``: ``python -m seq2seq_jax.translate``."""
    _run("translate")


def average() -> None:
    """``seq2seq-average``: ``python -m seq2seq_jax.average``."""
    _run("average")
