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
    """A single process and a pair of processes train the same run, 8 steps each, at the same time; then
    each run goes on to step 12 on one process (the pair's resumes on another number of processes)."""
    root = tmp_path_factory.mktemp("multiprocess")
    flags = lambda name, steps: (*SMALL, f"--workdir={root / name}", f"--config.train.num_steps={steps}",  # noqa: E731
                                 f"--config.data.data_dir={root / ('tfds_' + name)}")  # fresh: the pair prepares it
    coordinator = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{free_port()}", "JAX_NUM_PROCESSES": "2"}
    outputs = succeed(start("main", *flags("single", 8)),
                      *(start("main", *flags("pair", 8), env={**coordinator, "JAX_PROCESS_ID": str(i)})
                        for i in (0, 1)))
    first_eval = {run: {split: read_eval(root / run, split) for split in ("validation", "test")}
                  for run in ("single", "pair")}
    event_files = os.listdir(root / "pair" / "tensorboard")
    resumed = succeed(start("main", *flags("single", 12)), start("main", *flags("pair", 12)))
    return {"single": str(root / "single"), "pair": str(root / "pair"), "outputs": outputs,
            "first_eval": first_eval, "event_files": event_files, "resumed": resumed}


def test_two_processes_train_with_the_losses_of_one_and_resume_on_one(runs):
    rows = {run: [r for r in read_metrics(runs[run]) if "train_loss" in r] for run in ("single", "pair")}
    assert [r["step"] for r in rows["pair"]] == list(range(1, 13))  # once each: one process writes
    assert "resumed" in runs["resumed"][1][1] and "from step 8" in runs["resumed"][1][1]
    for key in ("train_loss", "train_token_acc", "grad_norm", "param_norm"):
        assert [r[key] for r in rows["pair"]] == pytest.approx([r[key] for r in rows["single"]], rel=1e-5), key


def test_two_processes_evaluate_like_one(runs):
    for split in ("validation", "test"):
        assert_same_evaluation(runs["first_eval"]["pair"][split], runs["first_eval"]["single"][split])
        assert_same_evaluation(read_eval(runs["pair"], split), read_eval(runs["single"], split))  # step 12
    (single, _), (first, _), (second, _) = runs["outputs"]
    assert final_metrics(first) == pytest.approx(final_metrics(single), rel=1e-5)
    assert "{" not in second  # the final metrics are printed once, by process 0


def test_only_process_zero_writes_logs_and_tensorboard(runs):
    logs = [r for r in read_metrics(runs["pair"]) if "train_loss" not in r]
    assert [(r["step"], next(k for k in r if "/" in k).split("/")[0]) for r in logs] == [
        (8, "validation"), (8, "test"), (12, "validation"), (12, "test")]
    assert len(runs["event_files"]) == 1  # the pair's: one TensorBoard writer
