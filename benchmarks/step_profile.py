"""Where our train step's time goes: XLA's own trace of the step's ops, summed by what each op computes.

  python -m benchmarks.step_profile --cell=lstm --decoder=bottleneck        # benchmarks.train_step's flags
  LD_PRELOAD=libtcmalloc_minimal.so.4 python -m benchmarks.step_profile ...  # the same under tcmalloc

Builds the step of ``benchmarks.train_step`` (same model, batch and jitted, donated step), runs it ``--warmup``
times, then ``--traced_steps`` times under ``jax.profiler.trace`` and reads the trace's per-op events (XLA's CPU
runtime records one per executed HLO instruction; the loops' bodies once per iteration). Each op is placed by
its HLO metadata: the pass (``forward``, ``backward``: JAX's ``transpose(jvp(...))``, ``update``: clipping,
Adam, the metrics; or ``XLA's own``: ops no JAX op made, such as copies of buffers), the part of the model
(``encoder scan``, ``decoder scan``, ``output layer``, ``embeddings, loss, rest``) and its kind (``matmul``: a
``dot`` or a fusion XLA hands to its matmul library; ``copy``: a buffer copied; ``other``). Prints one JSON
object: ms per step for each (pass, part, kind) (``ops``), the traced steps' wall time, the ops' total (they may
overlap on several threads) and minor page faults per traced step (the profiler's own allocations included). The
profiler adds its own overhead, so the shares matter, not the absolute times; ``benchmarks.train_step`` times
the step without it. ``benchmarks.run``'s ``step_profile`` rows run it for each train-step model; RESULTS.md sets
those shares beside the train-step rows under "Where the time goes".
"""

import collections
import glob
import gzip
import json
import re
import tempfile
import time

import jax
from absl import app, flags

from benchmarks import train_step
from benchmarks.common import page_faults, threads

_TRACED = flags.DEFINE_integer("traced_steps", 5, "Traced steps.", lower_bound=1)

# `%name = shape opcode(...)`, with the op's kind of fusion and its metadata when it has them.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?\s([\w\-]+)\((.*)$")
_CONTROL = ("while", "conditional", "call", "tuple", "get-tuple-element", "parameter", "bitcast", "constant")


def op_table(hlo_text: str) -> dict[str, tuple[str, str, str]]:
    """Each executed HLO instruction of the optimized module -> ``(pass, part, kind)``; control flow and views
    (loops, tuples, bitcasts), whose events would count their bodies twice or nothing, are left out."""
    table = {}
    for line in hlo_text.splitlines():
        m = _INSTRUCTION.match(line)
        if not m or m.group(2) in _CONTROL:
            continue
        name, opcode, rest = m.groups()
        matmul = opcode == "dot" or (opcode == "fusion" and "kind=kCustom" in rest)  # XLA's matmul libraries
        kind = "matmul" if matmul else "copy" if opcode == "copy" or name.startswith("wrapped_copy") else "other"
        metadata = re.search(r'op_name="([^"]*)"', rest)
        if not metadata:  # not from a JAX op: XLA's own, e.g. a loop's output buffers initialised by a copy
            table[name] = ("XLA's own", "buffers", kind)
            continue
        op_name = metadata.group(1)
        if "jvp(" not in op_name:
            table[name] = ("update", "optimizer, metrics", kind)
            continue
        part = ("encoder scan" if "encode" in op_name and "while" in op_name else
                "decoder scan" if "decode" in op_name and "while" in op_name else
                "output layer" if "output_projection" in op_name else "embeddings, loss, rest")
        table[name] = ("backward" if "transpose(jvp(" in op_name else "forward", part, kind)
    return table


def profile(*, cell="lstm", decoder="bottleneck", batch=64, src_len=32, tgt_len=32, hidden=256, embed=128,
            vocab=1000, recurrent_impl="scan", warmup=3, traced_steps=5) -> dict:
    """See the module docstring; returns a JSON-able dict."""
    side, _, settings = train_step._side("ours", cell, decoder, batch, src_len, tgt_len, hidden, embed, vocab, False,
                                         recurrent_impl)
    table = op_table(side.step_fn.lower(side.state, side.batch).compile().as_text())
    for _ in range(1 + warmup):
        side.step()
    with tempfile.TemporaryDirectory() as folder:
        faults = page_faults()
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            start = time.perf_counter()
            for _ in range(traced_steps):
                side.step()
            wall = time.perf_counter() - start
        faults = page_faults() - faults
        (path,) = glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True)
        with gzip.open(path) as f:
            events = json.load(f)["traceEvents"]
    ms = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in table:
            ms[table[e["name"]]] += e["dur"] / 1e3 / traced_steps  # microseconds -> ms per step
    ops = [{"pass": p, "part": part, "kind": kind, "ms_per_step": t} for (p, part, kind), t in ms.most_common()]
    return {"benchmark": "step_profile", "settings": dict(settings, warmup=warmup, traced_steps=traced_steps),
            "threads": threads("ours"), "step_ms_traced": 1e3 * wall / traced_steps,
            "ops_ms_per_step": sum(ms.values()), "page_faults_per_step": faults / traced_steps, "ops": ops}


def main(argv):
    del argv
    f = train_step  # its flags: the same model and batch as its rows
    print(json.dumps(profile(cell=f._CELL.value, decoder=f._DECODER.value, batch=f._BATCH.value,
                             src_len=f._SRC_LEN.value, tgt_len=f._TGT_LEN.value, hidden=f._HIDDEN.value,
                             embed=f._EMBED.value, vocab=f._VOCAB.value, recurrent_impl=f._RECURRENT_IMPL.value,
                             warmup=f._WARMUP.value, traced_steps=_TRACED.value)))


if __name__ == "__main__":
    app.run(main)
