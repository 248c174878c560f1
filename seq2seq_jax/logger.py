"""Where a run's numbers go: ``metrics.jsonl``, TensorBoard event files and a tqdm progress bar.

``workdir/metrics.jsonl`` holds one JSON object per logged step and per evaluation, floats at full
precision. On resume, rows past the checkpoint's step are dropped first, so the file reads as if the run
had never stopped.
"""

import json
import math
import os

import tqdm
from tensorboardX import SummaryWriter

from seq2seq_jax import parallel


def read_metrics(workdir: str) -> list[dict]:
    """The rows of ``workdir/metrics.jsonl`` (empty if none)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricsLogger:
    def __init__(self, workdir: str, *, start_step: int = 0, hparams: dict | None = None):
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = self._writer = None
        if not parallel.is_main_process():  # process 0 writes for all; write() and close() do nothing here
            return
        kept = [row for row in read_metrics(workdir) if row["step"] <= start_step]
        with open(self.path + ".tmp", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in kept)
        os.replace(self.path + ".tmp", self.path)
        self._file = open(self.path, "a")
        self._writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
        if hparams is not None and start_step == 0:
            self._writer.add_text("config", "```\n" + json.dumps(hparams, indent=2) + "\n```", 0)

    def write(self, row: dict) -> None:
        """Appends ``row`` (must have ``step``) to metrics.jsonl and its scalars to TensorBoard."""
        if self._file is None:
            return
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(key, value, row["step"])

    @staticmethod
    def progress(start: int, total: int) -> tqdm.tqdm:
        """A progress bar (hidden when stderr is not a terminal)."""
        return tqdm.tqdm(initial=start, total=total, unit="step", dynamic_ncols=True, disable=None)

    def close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._writer.close()
