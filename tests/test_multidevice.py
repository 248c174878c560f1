"""Several devices: 8 simulated CPU devices train, evaluate, decode and resume like one device.

A process's device count is fixed when JAX starts, so every 8-device run is a fresh process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``: ``python -m seq2seq_jax.main`` as a user runs it.
Run A trains 8 steps on 1 device, then resumes on 8 devices for 8 more; run B does the reverse. Each
phase ends with the full evaluation, so both device counts are compared on every part of a run.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from seq2seq_jax import inference, parallel, train
from seq2seq_jax.logger import read_metrics

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = (  # the tiny config, smaller: mechanics, not learning; beam search so both searches are covered
    "--config=seq2seq_jax/configs/tiny.py", "--config.data.num_train=256", "--config.data.num_validation=24",
    "--config.data.num_test=24", "--config.data.synthetic_max_length=8", "--config.model.hidden_size=16",
    "--config.model.embedding_size=8", "--config.model.attention_size=8", "--config.train.batch_size=16",
    "--config.train.learning_rate=0.02", "--config.train.log_every=1", "--config.train.eval_every=0",
    "--config.train.checkpoint_every=8", "--config.eval.beam_size=2")


def start(module: str, *flags: str, devices: int = 1, env: dict | None = None) -> subprocess.Popen:
    """``python -m seq2seq_jax.<module> flags`` in a fresh process that sees ``devices`` CPU devices."""
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", f"seq2seq_jax.{module}", *flags], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    """``(returncode, stdout, stderr)``; the process is killed if it outlives ``timeout`` seconds."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return process.returncode, stdout, stderr


def succeed(*processes: subprocess.Popen) -> list[tuple[str, str]]:
    """Waits for all ``processes``; each must exit 0. Returns their ``(stdout, stderr)``."""
    results = [finish(p) for p in processes]
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    return [(stdout, stderr) for _, stdout, stderr in results]


def read_eval(workdir, name: str = "test") -> tuple[dict, str]:
    with open(os.path.join(workdir, "eval", f"{name}.json")) as f:
        result = json.load(f)
    with open(os.path.join(workdir, "eval", f"{name}_predictions.tsv")) as f:
        return result, f.read()


def assert_same_evaluation(actual: tuple[dict, str], expected: tuple[dict, str]) -> None:
    """Equal metrics (float tolerance: the sums are reduced in another order) and identical predictions."""
    shared = {"loss", "perplexity", "seq_acc", "token_acc", "by_length", "num_examples", "step"}
    assert shared <= set(actual[0]) & set(expected[0])
    assert {k: actual[0][k] for k in shared} == pytest.approx({k: expected[0][k] for k in shared}, rel=1e-5)
    assert actual[1] == expected[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multidevice")
    a, b = str(root / "a"), str(root / "b")
    flags = lambda workdir, steps: (*SMALL, f"--workdir={workdir}", f"--config.train.num_steps={steps}",  # noqa: E731
                                    f"--config.data.data_dir={root / ('tfds_' + os.path.basename(workdir))}")
    first = succeed(start("main", *flags(a, 8), devices=1), start("main", *flags(b, 8), devices=8))
    first_eval = {"a": read_eval(a), "b": read_eval(b)}
    second = succeed(start("main", *flags(a, 16), devices=8), start("main", *flags(b, 16), devices=1))
    return {"a": a, "b": b, "root": root, "first": first, "first_eval": first_eval, "second": second}


def train_rows(workdir: str) -> list[dict]:
    return [r for r in read_metrics(workdir) if "train_loss" in r]


def test_eight_devices_train_with_the_losses_and_norms_of_one(runs):
    a, b = train_rows(runs["a"]), train_rows(runs["b"])  # steps 1-8: A on 1 device, B on 8; 9-16: reversed
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 17))
    for key in ("train_loss", "train_token_acc", "grad_norm", "param_norm"):
        assert [r[key] for r in a] == pytest.approx([r[key] for r in b], rel=1e-5), key
    assert a[-1]["train_loss"] < a[0]["train_loss"]  # the steps did train


def test_eight_devices_end_with_the_parameters_of_one(runs):
    a, b = (train.load_trained(runs[run], "latest")[2] for run in ("a", "b"))
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6), a, b)


def test_a_run_resumes_on_another_device_count(runs):
    for _, stderr in runs["second"]:
        assert "resumed" in stderr and "from step 8" in stderr


def test_eight_devices_evaluate_and_decode_like_one(runs):
    assert_same_evaluation(runs["first_eval"]["b"], runs["first_eval"]["a"])  # step 8: B on 8 devices, A on 1
    assert_same_evaluation(read_eval(runs["a"]), read_eval(runs["b"]))  # step 16: A on 8 devices, B on 1
    hypotheses = [line.split("\t")[1] for line in read_eval(runs["a"])[1].splitlines()[1:]]
    assert len(set(hypotheses)) > 1  # the model says something: equal predictions are not all empty
    finals = [json.loads(stdout) for stdout, _ in runs["second"]]
    assert finals[0] == pytest.approx(finals[1], rel=1e-5)


def test_evaluate_pads_batches_that_do_not_divide_over_the_devices(runs, tmp_path):
    workdir = str(tmp_path / "b")
    shutil.copytree(runs["b"], workdir)
    succeed(start("evaluate", f"--workdir={workdir}", "--split=test", devices=3))  # batch 16 -> 18 rows
    assert_same_evaluation(read_eval(workdir), read_eval(runs["b"]))


def test_translate_on_eight_devices_gives_the_hypotheses_of_one(runs, tmp_path):
    sources = [line.split("\t")[0] for line in read_eval(runs["b"])[1].splitlines()[1:]]
    (tmp_path / "in.txt").write_text("".join(f"{s}\n" for s in sources))
    succeed(start("translate", f"--workdir={runs['b']}", f"--input={tmp_path / 'in.txt'}",
                  f"--output={tmp_path / 'out.txt'}", "--batch_size=5", devices=8))  # 5 rows -> 8
    config, model, params, source_vocab, target_vocab = train.load_trained(runs["b"])
    one_device = [hyp for hyp, *_ in inference.translate(model, params, source_vocab, target_vocab, sources,
                                                         config.eval, batch_size=5)]
    assert (tmp_path / "out.txt").read_text().splitlines() == one_device


def test_batch_size_not_divisible_by_the_devices_fails_before_anything_is_written(tmp_path):
    workdir = tmp_path / "run"
    code, _, stderr = finish(start("main", *SMALL, f"--workdir={workdir}", "--config.train.batch_size=12",
                                   devices=8), timeout=120)
    assert code == 1
    assert "train.batch_size=12 must be divisible by the 8 devices" in stderr and "Traceback" not in stderr
    assert not workdir.exists()


def test_pad_rows_appends_padding_rows_up_to_a_multiple():
    batch = {"inputs": np.ones((5, 3), np.int32), "index": np.arange(5, dtype=np.int32)}
    padded = parallel.pad_rows(batch, 4)
    np.testing.assert_array_equal(padded["inputs"], np.concatenate([np.ones((5, 3)), np.zeros((3, 3))]))
    np.testing.assert_array_equal(padded["index"], [0, 1, 2, 3, 4, -1, -1, -1])
    assert parallel.pad_rows(batch, 5) is batch
