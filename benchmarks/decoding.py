"""Decoding speed and compiled shapes over a validation pass: greedy and beam search of our model.

  python -m benchmarks.decoding --config=tiny --beam_sizes=1,4
  python -m benchmarks.decoding --config=default --workdir=/path/to/trained/run   # trained parameters

``--config`` names a file of ``seq2seq_jax/configs`` (model sizes and dataset); parameters are freshly
initialised unless ``--workdir`` holds a trained run. Per beam size:

* a cold pass: ``inference.evaluate_split`` on validation (teacher-forced loss + decoding + metrics), the
  caches of ``inference.predict_fn`` cleared first; we count the programs compiled — entries of the jitted
  search and eval-step caches, and every XLA backend compile seen by ``jax.monitoring`` — and compare
  with the number of bucket shapes validation batches come in (the "few compiled shapes" design);
* ``--repeats`` warm passes of ``inference.decode_batch`` over the same batches: median sentences/s.

An untrained model rarely emits EOS, so its searches run to ``max_len`` (``2 * src_len + 10``) steps; a
trained one stops as soon as every sentence has ended: untrained throughput is a lower bound.
"""

import json
import statistics
import tempfile
import time

import jax
from absl import app, flags

from benchmarks.common import machine
from seq2seq_jax import inference, train
from seq2seq_jax import model as model_lib
from seq2seq_jax import optim
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.data import pipeline

_CONFIG = flags.DEFINE_string("config", "tiny", "A config of seq2seq_jax/configs (e.g. tiny, default).")
_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run to load parameters and config from.")
_BEAM_SIZES = flags.DEFINE_list("beam_sizes", ["1", "4"], "Beam sizes (1 = greedy).")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", 0, "Validation examples to decode (0 = all).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Warm passes timed per beam size.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_compiles = []
_listening = False


def _listen():
    global _listening
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(
            lambda event, duration, **kw: _compiles.append(duration) if event == BACKEND_COMPILE_EVENT else None)
        _listening = True


def load(config_name: str, workdir: str | None):
    """``(config, model, params, data)``: a trained run's, or ``config_name`` with fresh parameters."""
    if workdir:
        config, model, params, _, _ = workdir_lib.load_trained(workdir)
        vocab_dir = f"{workdir}/vocab"
    else:
        import importlib
        config = importlib.import_module(f"seq2seq_jax.configs.{config_name}").get_config()
        vocab_dir = tempfile.mkdtemp()
    data = pipeline.get_data(config.data, batch_size=config.train.batch_size, seed=config.train.seed,
                             vocab_dir=vocab_dir)
    if not workdir:
        model = model_lib.create_model(config, data.source_vocab.size, data.target_vocab.size)
        params = optim.create_train_state(model, config).params
    return config, model, params, data


def benchmark(*, config_name="tiny", workdir=None, beam_sizes=(1, 4), max_examples=0, repeats=3) -> dict:
    _listen()
    config, model, params, data = load(config_name, workdir)
    num_examples = len(data.examples("validation"))
    kept = [(b, inference.kept_rows(b["index"], num_examples, max_examples)) for b in data.eval_batches("validation")]
    batches = [b for b, rows in kept if rows.any()]  # the batches evaluate_split decodes
    sentences = sum(int(rows.sum()) for _, rows in kept)
    shapes = sorted({b["inputs"].shape for b in batches})
    max_lens = sorted({inference.max_output_length(s[1], config.eval) for s in shapes})
    m = config.model
    result = {
        "benchmark": "decoding",
        "settings": dict(config=config_name, workdir=workdir, cell=m.cell, decoder=m.decoder,
                         embedding_size=m.embedding_size, hidden_size=m.hidden_size, num_layers=m.num_layers,
                         bidirectional=m.bidirectional, dataset=config.data.dataset,
                         batch_size=config.train.batch_size, repeats=repeats, trained=bool(workdir),
                         validation_sentences=sentences, validation_batches=len(batches),
                         bucket_shapes=[list(s) for s in data.bucket_shapes],
                         batch_shapes=[list(s) for s in shapes]),
        "machine": machine(),
        "searches": [],
    }
    for beam_size in beam_sizes:
        inference.predict_fn.cache_clear()  # a cold pass compiles every shape afresh
        eval_step = jax.jit(lambda p, b: train.eval_step(p, b, model=model))
        before = len(_compiles)
        start = time.perf_counter()
        inference.evaluate_split(model, params, data, "validation", config.eval, eval_step=eval_step,
                                 max_examples=max_examples, beam_size=beam_size)
        cold = time.perf_counter() - start
        compiles = _compiles[before:]
        search_programs = sum(inference.predict_fn(model, beam_size, n)._cache_size() for n in max_lens)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for b in batches:
                inference.decode_batch(model, params, b, config.eval, beam_size=beam_size)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        result["searches"].append({
            "beam_size": beam_size,
            "cold_pass_s": cold,
            "search_programs": search_programs,
            "eval_step_programs": eval_step._cache_size(),
            "xla_compiles": len(compiles),
            "xla_compile_s": sum(compiles),
            "median_pass_s": median,
            "sentences_per_s": sentences / median,
            "pass_times_s": times,
        })
    return result


def format_text(r: dict) -> str:
    s = r["settings"]
    lines = [f"decoding: config={s['config']} ({s['cell']}/{s['decoder']}, embed {s['embedding_size']}, hidden "
             f"{s['hidden_size']}, {'trained' if s['trained'] else 'untrained'}) on {s['dataset']} validation: "
             f"{s['validation_sentences']} sentences in {s['validation_batches']} batches of {s['batch_size']}, "
             f"batch shapes {s['batch_shapes']}; median of {s['repeats']} warm passes"]
    for x in r["searches"]:
        name = "greedy" if x["beam_size"] == 1 else f"beam {x['beam_size']}"
        lines.append(f"  {name:7s} {x['sentences_per_s']:>9,.1f} sentences/s  cold pass {x['cold_pass_s']:6.2f} s: "
                     f"{x['search_programs']} search + {x['eval_step_programs']} eval-step programs compiled "
                     f"({x['xla_compiles']} XLA compiles in all, {x['xla_compile_s']:.2f} s)")
    return "\n".join(lines)


def main(argv):
    del argv
    result = benchmark(config_name=_CONFIG.value, workdir=_WORKDIR.value,
                       beam_sizes=tuple(int(b) for b in _BEAM_SIZES.value), max_examples=_MAX_EXAMPLES.value,
                       repeats=_REPEATS.value)
    print(json.dumps(result) if _JSON.value else format_text(result))


if __name__ == "__main__":
    app.run(main)
