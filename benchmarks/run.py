"""Every speed benchmark, each implementation timed alone in its own fresh process.

  python -m benchmarks.run --json=benchmarks/results.json      # published settings, on an idle machine
  python -m benchmarks.run --quick --json=/tmp/quick.json      # tiny sizes, fewer rows, 1 repetition: runs?
  python -m benchmarks.report --results=benchmarks/results.json > benchmarks/RESULTS.md

Each job (one implementation of one benchmark variant) is a fresh ``python -m benchmarks.<worker>`` process
that runs its untimed first call (ours: trace + compile) and warm-up, then times its steps. Processes run one
at a time; ``--reps`` repetitions alternate them (ours, peer, ours, peer, ... within each repetition), so a
slow spell of the machine spreads over all implementations. Rows pool the timed steps of every repetition:
median, min and max. The machine, each side's threads and the load average before and after are recorded,
with a warning when the machine was busy: XLA's and PyTorch's thread pools degrade very differently under
load (PyTorch's far more), so a ratio measured beside other jobs is not a ratio of the implementations.

Benchmarks: ``train_step`` (ours, the PyTorch peer and, for the bottleneck, Flax's plain ``nn.RNN``;
lstm/gru x bottleneck/attention at two sizes), ``train_step_length`` (our compile and step time as the
sequences grow), ``search`` (our greedy and beam 5 against the peer's greedy decoding, two output lengths)
and ``translate`` (``python -m seq2seq_jax.translate`` end to end on a generated file, process start
included, with a small model this script trains first). The PyTorch rows need the optional extra 'bench';
without it they are skipped and ``ratio_vs_torch`` (our time / PyTorch's, < 1 = faster) is null.
"""

import dataclasses
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags, logging

from benchmarks.common import machine
from seq2seq_jax import configs

_QUICK = flags.DEFINE_bool("quick", False, "Tiny sizes and 1 repetition (for tests), not the published settings.")
_JSON = flags.DEFINE_string("json", None, "Write the results here (one object: machine, load, rows).")
_REPS = flags.DEFINE_integer("reps", None, "Repetitions (processes per job); default 3, with --quick 1.")
_ONLY = flags.DEFINE_list("only", [], "Run only these benchmarks (train_step, train_step_length, search, "
                          "translate); default all.")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the PyTorch rows even if torch is installed.")

BENCHMARKS = ("train_step", "train_step_length", "search", "translate")
BUSY_LOAD_PER_CPU = 0.5  # 1-minute load average per CPU above which the machine counts as busy

SETTINGS = {
    False: dict(
        train_models=[(cell, decoder) for cell in ("lstm", "gru") for decoder in ("bottleneck", "attention")],
        train_sizes=[dict(batch=64, src_len=32, tgt_len=32, embed=128, hidden=256, vocab=1000),
                     dict(batch=64, src_len=40, tgt_len=40, embed=256, hidden=512, vocab=8000)],
        train_steps=dict(warmup=3, steps=10), lengths=(20, 40, 80, 160), out_lens=(20, 80),
        search_sizes=dict(batch=64, embed=128, hidden=256, vocab=1000), search_steps=dict(warmup=1, steps=5),
        translate_lines=6000, translate_train_steps=600, reps=3, timeout_s=1800),
    True: dict(
        train_models=[("lstm", "bottleneck"), ("gru", "attention")],  # fewer processes: the tests run this
        train_sizes=[dict(batch=4, src_len=6, tgt_len=6, embed=4, hidden=8, vocab=20)],
        train_steps=dict(warmup=1, steps=2), lengths=(4,), out_lens=(4,),
        search_sizes=dict(batch=4, embed=4, hidden=8, vocab=20), search_steps=dict(warmup=0, steps=2),
        translate_lines=100, translate_train_steps=2, reps=1, timeout_s=300),
}
SEARCHES = [("ours", 1), ("ours", 5), ("torch", 1)]


@dataclasses.dataclass(frozen=True)
class Job:
    """One implementation of one benchmark variant: the command of its process."""

    benchmark: str
    variant: str
    impl: str
    args: tuple[str, ...]

    @property
    def key(self):
        return self.benchmark, self.variant, self.impl


def _flags(**values) -> tuple[str, ...]:
    return tuple(f"--{k}={v}" for k, v in values.items())


def _size_name(s: dict) -> str:
    return f"B {s['batch']}, S {s['src_len']}, T {s['tgt_len']}, E {s['embed']}, H {s['hidden']}, V {s['vocab']}"


def plan(quick: bool, use_torch: bool, only=BENCHMARKS, translate_files=None) -> list[Job]:
    """Every job of one repetition, the implementations of a variant next to each other."""
    s = SETTINGS[quick]
    worker = lambda name: (sys.executable, "-m", f"benchmarks.{name}")  # noqa: E731
    jobs = []
    if "train_step" in only:
        for size in s["train_sizes"]:
            for cell, decoder in s["train_models"]:
                impls = ["ours"] + ["torch"] * use_torch + ["flax_rnn"] * (decoder == "bottleneck")
                for impl in impls:
                    args = _flags(impl=impl, cell=cell, decoder=decoder, **size, **s["train_steps"])
                    jobs.append(Job("train_step", f"{cell}/{decoder}, {_size_name(size)}", impl,
                                    worker("train_step") + args))
    if "train_step_length" in only:
        size = s["train_sizes"][0]
        for length in s["lengths"]:
            sized = dict(size, src_len=length, tgt_len=length)
            jobs.append(Job("train_step_length", f"lstm/attention, {_size_name(sized)}", "ours",
                            worker("train_step") + _flags(impl="ours", **sized, **s["train_steps"])))
    if "search" in only:
        for out_len in s["out_lens"]:
            for impl, beam in SEARCHES:
                if impl == "torch" and not use_torch:
                    continue
                variant = f"lstm/attention, out_len {out_len}, B {s['search_sizes']['batch']}"
                name = f"{impl} {'greedy' if beam == 1 else f'beam {beam}'}"
                jobs.append(Job("search", variant, name, worker("search") + _flags(
                    impl=impl, beam_size=beam, out_len=out_len, **s["search_sizes"], **s["search_steps"])))
    if "translate" in only:
        workdir, source = translate_files
        for beam in (1, 5):
            jobs.append(Job("translate", f"{s['translate_lines']} lines, tiny model", f"ours {'greedy' if beam == 1 else f'beam {beam}'}",
                            (sys.executable, "-m", "seq2seq_jax.translate", f"--workdir={workdir}",
                             f"--input={source}", f"--output={workdir}/out_beam{beam}.txt", f"--beam_size={beam}")))
    return jobs


def prepare_translate(quick: bool, folder: str) -> tuple[str, str]:
    """A small trained model (the ``tiny`` config: reverse strings) and a file of random source strings."""
    s = SETTINGS[quick]
    workdir = os.path.join(folder, "tiny_run")
    steps = s["translate_train_steps"]
    subprocess.run([sys.executable, "-m", "seq2seq_jax.main",
                    f"--config={os.path.join(os.path.dirname(configs.__file__), 'tiny.py')}", f"--workdir={workdir}",
                    *(f"--config.train.{k}={steps}" for k in ("num_steps", "eval_every", "checkpoint_every",
                                                              "log_every"))],
                   check=True, capture_output=True, timeout=s["timeout_s"])
    rng = random.Random(0)
    source = os.path.join(folder, "source.txt")
    with open(source, "w") as f:  # the tiny config's task: 1 to 12 letters
        f.writelines("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12))) + "\n"
                     for _ in range(s["translate_lines"]))
    return workdir, source


def run_job(job: Job, timeout_s: float) -> dict:
    """Runs the job's process; a worker's JSON result, or the wall time of a whole ``translate``."""
    start = time.perf_counter()
    out = subprocess.run(job.args, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"{' '.join(job.args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    if job.benchmark == "translate":
        return {"times_s": [wall], "first_s": None}
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(job: Job, samples: list[dict], lines: int) -> dict:
    """Pools the timed steps of every repetition of ``job``."""
    times = [t for s in samples for t in s["times_s"]]
    median = statistics.median(times)
    first = samples[0]
    r = {"benchmark": job.benchmark, "variant": job.variant, "impl": job.impl, "ms_median": 1e3 * median,
         "ms_min": 1e3 * min(times), "ms_max": 1e3 * max(times), "tokens_per_s": None, "sentences_per_s": None,
         "ratio_vs_torch": None, "processes": len(samples), "timed_calls": len(times),
         "threads": first.get("threads")}
    if first["first_s"] is not None:  # trace + compile (ours) and one call, less a timed call's median
        r["compile_s"] = statistics.median(s["first_s"] for s in samples) - median
    if job.benchmark.startswith("train_step"):
        r.update(tokens_per_s=first["tokens"] / median, params=first["params"], settings=first["settings"])
    elif job.benchmark == "search":
        r.update(sentences_per_s=first["sentences"] / median, output_steps=first["output_steps"],
                 settings=first["settings"])
    else:
        r["sentences_per_s"] = lines / median
    return r


def with_ratios(rows: list[dict]) -> list[dict]:
    """``ratio_vs_torch``: our median / the PyTorch row's of the same variant (its greedy, for searches)."""
    torch_ms = {(r["benchmark"], r["variant"]): r["ms_median"] for r in rows if r["impl"].startswith("torch")}
    for r in rows:
        peer = torch_ms.get((r["benchmark"], r["variant"]))
        if peer and not r["impl"].startswith("torch"):
            r["ratio_vs_torch"] = r["ms_median"] / peer
    return rows


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def benchmark(*, quick: bool, use_torch: bool, reps: int, only=BENCHMARKS) -> dict:
    s = SETTINGS[quick]
    info = machine()
    load_before = load_average()
    busy = load_before[0] > BUSY_LOAD_PER_CPU * info["cpu_count"]
    if busy:
        logging.warning("the machine is busy (1-minute load %.2f on %d CPUs): the timings will be unreliable, "
                        "PyTorch's more than ours", load_before[0], info["cpu_count"])
    with tempfile.TemporaryDirectory() as folder:
        files = prepare_translate(quick, folder) if "translate" in only else None
        jobs = plan(quick, use_torch, only, files)
        samples = {job.key: [] for job in jobs}
        for rep in range(reps):
            for job in jobs:
                logging.info("rep %d/%d: %s | %s | %s", rep + 1, reps, *job.key)
                samples[job.key].append(run_job(job, s["timeout_s"]))
    rows = with_ratios([row(job, samples[job.key], s["translate_lines"]) for job in jobs])
    load_after = load_average()  # recorded only: it counts this benchmark's own processes, which just ran
    return {"command": " ".join(["python -m benchmarks.run"] + sys.argv[1:]), "quick": quick, "reps": reps,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "machine": info,
            "torch_rows": use_torch, "load_before": load_before, "load_after": load_after,
            "busy_warning": (f"the machine was busy when the benchmark started (1-minute load average "
                             f"{load_before[0]} on {info['cpu_count']} CPUs): not for publication") if busy else None,
            "rows": rows}


def main(argv):
    del argv
    unknown = sorted(set(_ONLY.value) - set(BENCHMARKS))
    if unknown:
        raise app.UsageError(f"--only names unknown benchmark(s) {unknown}; allowed: {list(BENCHMARKS)}")
    reps = _REPS.value or SETTINGS[_QUICK.value]["reps"]
    use_torch = machine()["torch"] is not None and not _NO_TORCH.value
    result = benchmark(quick=_QUICK.value, use_torch=use_torch, reps=reps, only=tuple(_ONLY.value) or BENCHMARKS)
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=1)
    for r in result["rows"]:
        ratio = "" if r["ratio_vs_torch"] is None else f"  ours/torch {r['ratio_vs_torch']:.2f}"
        print(f"{r['benchmark']:18s} {r['variant']:55s} {r['impl']:12s} {r['ms_median']:10.2f} ms "
              f"[{r['ms_min']:.2f}, {r['ms_max']:.2f}]{ratio}")
    if result["busy_warning"]:
        print("WARNING:", result["busy_warning"])


if __name__ == "__main__":
    app.run(main)
