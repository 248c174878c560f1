"""Runs the command-line tools in fresh processes, for tests that need their own JAX set-up (a device
count, or several processes joined by ``jax.distributed``), which is fixed when JAX starts."""

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = (  # the tiny config, smaller: mechanics, not learning; beam search so both searches are covered
    "--config=seq2seq_jax/configs/tiny.py", "--config.data.num_train=256", "--config.data.num_validation=24",
    "--config.data.num_test=24", "--config.data.synthetic_max_length=8", "--config.data.num_buckets=1",
    "--config.model.hidden_size=16", "--config.model.embedding_size=8", "--config.model.attention_size=8",
    "--config.train.batch_size=16", "--config.train.learning_rate=0.02", "--config.train.log_every=1",
    "--config.train.eval_every=0", "--config.train.checkpoint_every=8", "--config.eval.beam_size=2")


def start(module: str, *flags: str, devices: int = 1, env: dict | None = None) -> subprocess.Popen:
    """``python -m seq2seq_jax.<module> flags`` in a fresh process that sees ``devices`` CPU devices (and the
    session's compilation cache, from the environment: conftest.py)."""
    xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags, **(env or {})}
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # pipes could fill up and block
    process = subprocess.Popen([sys.executable, "-m", f"seq2seq_jax.{module}", *flags], cwd=REPO, env=env,
                               stdout=out, stderr=err, text=True)
    process.outputs = (out, err)
    return process


def _read(file) -> str:
    file.seek(0)
    text = file.read()
    file.close()
    return text


def finish(*processes: subprocess.Popen, timeout: float = 240) -> list[tuple[int, str, str]]:
    """``(returncode, stdout, stderr)`` of each process. Once one fails or ``timeout`` seconds pass, the
    others are killed: processes joined by ``jax.distributed`` would wait for the failed one forever."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes):
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in processes):
            for p in processes:
                if p.poll() is None:
                    p.kill()
        time.sleep(0.2)
    return [(p.returncode, *map(_read, p.outputs)) for p in processes]


def succeed(*processes: subprocess.Popen) -> list[tuple[str, str]]:
    """Waits for ``processes``; each must exit 0. Returns their ``(stdout, stderr)``."""
    results = finish(*processes)
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    return [(stdout, stderr) for _, stdout, stderr in results]


def final_metrics(stdout: str) -> dict:
    """The JSON ``main`` prints at the end (after TFDS's preparation notes, while those reach stdout)."""
    return json.loads(stdout[stdout.index("{"):])


def read_eval(workdir, name: str = "test") -> tuple[dict, str]:
    """``eval/<name>.json`` and the text of ``eval/<name>_predictions.tsv``."""
    with open(os.path.join(workdir, "eval", f"{name}.json")) as f:
        result = json.load(f)
    with open(os.path.join(workdir, "eval", f"{name}_predictions.tsv")) as f:
        return result, f.read()


def assert_same_evaluation(actual: tuple[dict, str], expected: tuple[dict, str]) -> None:
    """Equal metrics (float tolerance: sums reduced in another order) and identical predictions."""
    shared = {"loss", "perplexity", "seq_acc", "token_acc", "by_length", "num_examples", "step"}
    assert shared <= set(actual[0]) & set(expected[0])
    assert {k: actual[0][k] for k in shared} == pytest.approx({k: expected[0][k] for k in shared}, rel=1e-5)
    assert actual[1] == expected[1]
