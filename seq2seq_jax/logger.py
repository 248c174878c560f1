"""Where a run's numbers go: ``metrics.jsonl``, TensorBoard event files, a tqdm progress bar, and
``run_info.json`` (what produced them).

``workdir/metrics.jsonl`` holds one JSON object per logged step and per evaluation, floats at full
precision. On resume, rows past the checkpoint's step are dropped first (and a last row that a killed
process left half-written), so the file reads as if the run had never stopped.
"""

import datetime
import importlib.metadata
import json
import math
import os
import platform
import socket
import subprocess
import sys

import jax
import tqdm
from absl import logging
from tensorboardX import SummaryWriter

from seq2seq_jax import files
from seq2seq_jax import parallel

# Packages whose versions run_info.json records.
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "tensorflow-datasets", "numpy",
            "ml-collections", "sacrebleu", "sentencepiece")


def read_metrics(workdir: str) -> list[dict]:
    """The rows of ``workdir/metrics.jsonl`` (empty if none). A half-written last line (a process killed
    while appending it) is dropped with a warning; an unreadable line elsewhere is a ``ValueError``."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):  # no newline after it: the append never finished
                logging.warning("%s: dropped the half-written last line %d (%r)", path, number, line[:80])
                break
            raise ValueError(f"{path} line {number} is not a JSON row ({error}); the file is damaged") from None
    return rows


def git_commit(directory: str) -> dict:
    """``{'commit', 'dirty'}`` of the git checkout holding ``directory``; ``{}`` outside one or without git."""
    def git(*args):
        return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {}


def machine() -> dict:
    """What this process runs on, as strings and numbers (studies record them per run as ``machine/<key>``;
    the benchmarks beside their timings), the CPU's model, cores, vector extensions and clock included."""
    return {"platform": platform.platform(), "cpu_count": os.cpu_count() or 0, "jax_backend": jax.default_backend(),
            "device": jax.devices()[0].device_kind, "device_count": jax.device_count(), "jax_version": jax.__version__,
            **cpu()}


# The CPU flags that say how wide its vector arithmetic is (x86: /proc/cpuinfo "flags"; Arm: "Features").
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                     "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "sve", "sve2")


def cpu(cpuinfo: str | None = None, lscpu: str | None = None) -> dict:
    """``cpu_model``, ``cpu_cores`` (physical: distinct (physical id, core id) pairs, else ``os.cpu_count()``),
    ``cpu_vector_extensions`` (those of ``VECTOR_EXTENSIONS`` the CPU has, space-separated), ``cpu_mhz`` and
    ``cpu_mhz_source``: lscpu's "CPU max MHz", else /proc/cpuinfo's "cpu MHz" (what a VM usually shows), else
    0.0 and "unknown". Reads /proc/cpuinfo and ``lscpu`` unless their text is given (the tests). Scalars only,
    never None: a study records them as metrics."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    if lscpu is None:
        try:
            lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True,
                                   env={**os.environ, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            lscpu = ""
    processors = [dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
                  for block in cpuinfo.split("\n\n") if block.strip()]
    processors = [{k.strip(): v.strip() for k, v in p.items()} for p in processors]
    first = processors[0] if processors else {}
    flags = set((first.get("flags") or first.get("Features") or "").split())
    cores = {(p.get("physical id"), p.get("core id")) for p in processors if "core id" in p}
    mhz, source = 0.0, "unknown"
    for line in lscpu.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "CPU max MHz" and value.strip():
            mhz, source = float(value), "lscpu CPU max MHz"
    if not mhz and first.get("cpu MHz"):
        mhz, source = float(first["cpu MHz"]), "/proc/cpuinfo cpu MHz"
    return {"cpu_model": first.get("model name") or platform.processor() or platform.machine(),
            "cpu_cores": len(cores) or os.cpu_count() or 0,
            "cpu_vector_extensions": " ".join(x for x in VECTOR_EXTENSIONS if x in flags),
            "cpu_mhz": mhz, "cpu_mhz_source": source}


def record_start(workdir: str) -> dict:
    """Appends this (re)start to ``workdir/run_info.json``: command line, git commit and dirty flag,
    package versions, devices, host and start time. Returns the entry."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    entry = {
        "start_time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.executable, *sys.argv],
        "host": socket.gethostname(), "pid": os.getpid(),
        "process": f"{jax.process_index()} of {jax.process_count()}",
        "devices": [str(d) for d in jax.devices()],
        "python": sys.version.split()[0], "packages": versions,
        "git": git_commit(os.path.dirname(os.path.abspath(__file__))),
    }
    path = os.path.join(workdir, "run_info.json")
    starts = []
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                starts = json.load(f)["starts"]
        except (ValueError, KeyError, TypeError) as error:  # written atomically; damaged only by hand
            logging.warning("%s is unreadable (%s); starting it afresh", path, error)
    files.save_json(path, {"starts": [*starts, entry]})
    return entry


class MetricsLogger:
    def __init__(self, workdir: str, *, start_step: int = 0, hparams: dict | None = None,
                 redo_evaluations_at: int | None = None):
        """Keeps the rows up to ``start_step``, except evaluation rows (keys with '/') at step
        ``redo_evaluations_at``, which the caller is about to write again."""
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._file = self._writer = None
        if not parallel.is_main_process():  # process 0 writes for all; write() and close() do nothing here
            return
        kept = [row for row in read_metrics(workdir) if row["step"] <= start_step and not (
            row["step"] == redo_evaluations_at and any("/" in key for key in row))]
        files.write_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))
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
