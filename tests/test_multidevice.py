"""Several devices: 8 simulated CPU devices train, evaluate, decode and resume like one device.

A process's device count is fixed when JAX starts, so every 8-device run is a fresh process started with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``: ``python -m seq2seq_jax.main`` as a user runs it.
Run A trains 8 steps on 1 device, then resumes on 8 devices for 8 more; run B does the reverse. Each
phase ends with the full evaluation, so both device counts are compared on every part of a run.
"""

import os
import shutil

import jax
import numpy as np
import pytest
from cli_runs import SMALL, assert_same_evaluation, final_metrics, finish, read_eval, start, succeed

from seq2seq_jax import inference, parallel
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.logger import read_metrics

pytestmark = pytest.mark.slow


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


# How far apart the parameters of 1 and 8 devices may end, per array: |a - b| / |a| (L2 norms).
# The two runs sum each gradient in another order, so float32 rounding makes them differ by a few ulps
# (relative ~1e-7) per step. Adam divides every component by its own running scale, so in a component whose
# gradient is nearly zero that rounding difference becomes a visible difference of the update: after 16
# steps one weight of 256 differed by 2.3e-6 (relative 3e-4) on an AMD EPYC with AVX2 only, whose vector
# width, and so summation order, differs from AVX-512's. An elementwise tolerance thus tests the CPU, not
# the code. Over a whole array such components weigh little (measured: at most 2.1e-6 of an array's norm,
# AVX-512), while 8 steps of training move every array by at least 0.13 of its norm, so a sharding bug
# that changed the updates by even 1% (a batch split wrongly, a gradient averaged over the wrong count)
# moves arrays by ~1e-3, ten times this bound.
PARAMETER_RELATIVE_TOLERANCE = 1e-4


def test_eight_devices_end_with_the_parameters_of_one(runs):
    a, b = (workdir_lib.load_trained(runs[run], "latest")[2] for run in ("a", "b"))
    relative = jax.tree.map(lambda x, y: float(np.linalg.norm(x - y) / np.linalg.norm(x)), a, b)
    assert max(jax.tree.leaves(relative)) <= PARAMETER_RELATIVE_TOLERANCE, relative


def test_a_run_resumes_on_another_device_count(runs):
    for _, stderr in runs["second"]:
        assert "resumed" in stderr and "from step 8" in stderr


def test_eight_devices_evaluate_and_decode_like_one(runs):
    assert_same_evaluation(runs["first_eval"]["b"], runs["first_eval"]["a"])  # step 8: B on 8 devices, A on 1
    assert_same_evaluation(read_eval(runs["a"]), read_eval(runs["b"]))  # step 16: A on 8 devices, B on 1
    hypotheses = [line.split("\t")[1] for line in read_eval(runs["a"])[1].splitlines()[1:]]
    assert len(set(hypotheses)) > 1  # the model says something: equal predictions are not all empty
    finals = [final_metrics(stdout) for stdout, _ in runs["second"]]
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
    config, model, params, source_vocab, target_vocab = workdir_lib.load_trained(runs["b"])
    one_device = [hyp for hyp, *_ in inference.translate(model, params, source_vocab, target_vocab, sources,
                                                         config.eval, batch_size=5)]
    assert (tmp_path / "out.txt").read_text().splitlines() == one_device


def test_batch_size_not_divisible_by_the_devices_fails_before_anything_is_written(tmp_path):
    workdir = tmp_path / "run"
    [(code, _, stderr)] = finish(start("main", *SMALL, f"--workdir={workdir}", "--config.train.batch_size=12",
                                       devices=8))
    assert code == 1
    assert "train.batch_size=12 must be divisible by the 8 devices" in stderr and "Traceback" not in stderr
    assert not workdir.exists()


def test_pad_rows_appends_padding_rows_up_to_a_multiple():
    batch = {"inputs": np.ones((5, 3), np.int32), "index": np.arange(5, dtype=np.int32)}
    padded = parallel.pad_rows(batch, 4)
    np.testing.assert_array_equal(padded["inputs"], np.concatenate([np.ones((5, 3)), np.zeros((3, 3))]))
    np.testing.assert_array_equal(padded["index"], [0, 1, 2, 3, 4, -1, -1, -1])
    assert parallel.pad_rows(batch, 5) is batch
