"""Several processes: two processes joined by ``jax.distributed`` train and evaluate like one.

The two processes run on this machine (CPU, one device each, gloo collectives, a coordinator on
127.0.0.1), started the way ``main``'s docstring tells users to start them on several hosts: the same
command with ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set.
"""

import os
import socket

import pytest
from cli_runs import SMALL, assert_same_evaluation, final_metrics, read_eval, start, succeed

from seq2seq_jax.logger import read_metrics

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A single process and a pair of processes train the same run, 8 steps each, at the same time."""
    root = tmp_path_factory.mktemp("multiprocess")
    flags = lambda name: (*SMALL, f"--workdir={root / name}", "--config.train.num_steps=8",  # noqa: E731
                          f"--config.data.data_dir={root / ('tfds_' + name)}")  # fresh: the pair prepares it
    coordinator = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{free_port()}", "JAX_NUM_PROCESSES": "2"}
    outputs = succeed(start("main", *flags("single")),
                      *(start("main", *flags("pair"), env={**coordinator, "JAX_PROCESS_ID": str(i)}) for i in (0, 1)))
    return {"single": str(root / "single"), "pair": str(root / "pair"), "outputs": outputs}


def test_two_processes_train_with_the_losses_of_one(runs):
    rows = {run: [r for r in read_metrics(runs[run]) if "train_loss" in r] for run in ("single", "pair")}
    assert [r["step"] for r in rows["pair"]] == list(range(1, 9))  # once each: one process writes
    for key in ("train_loss", "train_token_acc", "grad_norm", "param_norm"):
        assert [r[key] for r in rows["pair"]] == pytest.approx([r[key] for r in rows["single"]], rel=1e-5), key


def test_two_processes_evaluate_like_one(runs):
    for split in ("validation", "test"):
        assert_same_evaluation(read_eval(runs["pair"], split), read_eval(runs["single"], split))
    (single, _), (first, _), (second, _) = runs["outputs"]
    assert final_metrics(first) == pytest.approx(final_metrics(single), rel=1e-5)
    assert "{" not in second  # the final metrics are printed once, by process 0


def test_only_process_zero_writes_logs_and_tensorboard(runs):
    logs = [r for r in read_metrics(runs["pair"]) if "train_loss" not in r]
    assert [sorted(k.split("/")[0] for k in r if "/" in k)[0] for r in logs] == ["validation", "test"]
    assert len(os.listdir(os.path.join(runs["pair"], "tensorboard"))) == 1  # one event file
