"""Decoding speed of ONE search, alone in this process: our greedy or beam search, or the PyTorch peer's
greedy decoding, on one synthetic batch with the output length fixed.

  python -m benchmarks.search --impl=ours --beam_size=5 --out_len=80
  python -m benchmarks.search --impl=torch --out_len=80     # optional extra 'bench'

The model is the train-step benchmark's (lstm/attention by default) with freshly initialised parameters;
the peer gets the same parameters (``torch_seq2seq.load_flax_params``), so both emit the same tokens and
stop at the same step. Untrained models rarely emit EOS: searches run to ``--out_len`` steps (the source
is as long). The first call (ours: trace + compile) and ``--warmup`` more are not timed. Prints one JSON
object; ``benchmarks.run`` starts one such process per search and repetition.

  python -m benchmarks.search --profile --beam_size=5 --out_len=80

times instead, alternating in this one process (a ratio of two of them stands a shared machine better than
times taken apart): our greedy search, our beam search, and the encoder then the decoder step alone run
``out_len`` times on ``batch`` rows and on ``batch * beam_size`` rows (mapped over the beams as the beam
search maps it, each row fed its own argmax). The beam search's own work (log-softmax, top-k, reordering) is
what it takes beyond the step at ``batch * beam_size`` rows, a cost no change of the search itself can
remove. Medians of wall and of process CPU time (every thread's).
"""

import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.common import model_config, synthetic_batch, threads, timed
from seq2seq_jax import decoding, inference
from seq2seq_jax import model as model_lib
from seq2seq_jax import optim
from seq2seq_jax.data.vocab import BOS, EOS

_IMPL = flags.DEFINE_enum("impl", "ours", ["ours", "torch"], "Implementation timed in this process.")
_BEAM_SIZE = flags.DEFINE_integer("beam_size", 1, "1 = greedy (the peer has greedy only).", lower_bound=1)
_CELL = flags.DEFINE_enum("cell", "lstm", ["lstm", "gru"], "Recurrent cell.")
_DECODER = flags.DEFINE_enum("decoder", "attention", ["attention", "bottleneck"], "Decoder.")
_BATCH = flags.DEFINE_integer("batch", 64, "Sentences decoded together.")
_OUT_LEN = flags.DEFINE_integer("out_len", 40, "Source length and maximum output length.")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Hidden size (and attention size).")
_EMBED = flags.DEFINE_integer("embed", 128, "Embedding size.")
_VOCAB = flags.DEFINE_integer("vocab", 1000, "Source and target vocabulary size.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed calls after the first one.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed calls.")
_PROFILE = flags.DEFINE_bool("profile", False, "Time greedy, beam and the decoder step alone, alternating (ours).")


def _model_and_batch(cell, decoder, batch, out_len, hidden, embed, vocab):
    """``(config, model, params, data)``: the model with fresh parameters and one synthetic batch."""
    config = model_config(cell, decoder, hidden, embed)
    model = model_lib.create_model(config, vocab, vocab)
    params = optim.create_train_state(model, config).params
    data = synthetic_batch(batch, out_len, out_len, vocab)
    return config, model, params, data


def benchmark(*, impl="ours", beam_size=1, cell="lstm", decoder="attention", batch=64, out_len=40, hidden=256,
              embed=128, vocab=1000, warmup=1, steps=5) -> dict:
    if impl == "torch" and beam_size != 1:
        raise ValueError("the PyTorch peer decodes greedily only: use --beam_size=1")
    config, model, params, data = _model_and_batch(cell, decoder, batch, out_len, hidden, embed, vocab)
    if impl == "ours":
        predict = inference.predict_fn(model, beam_size, out_len)
        inputs, lengths = jax.device_put(data["inputs"]), jax.device_put(data["input_lengths"])

        def search():
            out = jax.block_until_ready(predict(params, inputs, lengths, jnp.float32(config.eval.length_penalty)))
            return int(np.max(out.lengths))
    else:
        import torch  # optional extra 'bench'
        from benchmarks import torch_seq2seq

        torch.set_num_threads(os.cpu_count())
        on = torch_seq2seq.device()
        m = config.model
        peer = torch_seq2seq.TorchSeq2Seq(cell=cell, source_vocab_size=vocab, target_vocab_size=vocab,
                                          embedding_size=m.embedding_size, hidden_size=m.hidden_size,
                                          attention_size=m.attention_size, decoder=decoder)
        torch_seq2seq.load_flax_params(peer, params)
        peer.to(on)
        tb = torch_seq2seq.to_torch_batch(data, data["targets"], on)

        def search():
            tokens = torch_seq2seq.greedy_decode(peer, tb["inputs"], tb["input_lengths"], max_len=out_len,
                                                 bos_id=BOS, eos_id=EOS)
            torch_seq2seq.synchronize(on)
            return tokens.shape[1]

    first = timed(search)
    for _ in range(warmup):
        search()
    times, output_steps = [], search()
    for _ in range(steps):
        times.append(timed(search))
    return {
        "benchmark": "search", "impl": impl,
        "settings": dict(beam_size=beam_size, cell=cell, decoder=decoder, batch=batch, out_len=out_len,
                         hidden=hidden, embed=embed, vocab=vocab, warmup=warmup, steps=steps),
        "sentences": batch, "output_steps": output_steps,  # steps the search ran (out_len: nothing ended)
        "first_s": first, "times_s": times, "threads": threads(impl),
    }


def profile(*, beam_size=5, cell="lstm", decoder="attention", batch=64, out_len=40, hidden=256, embed=128,
            vocab=1000, warmup=1, steps=5) -> dict:
    """Medians (ms) of ``steps`` rounds, each calling every search in turn: see the module docstring."""
    config, model, params, data = _model_and_batch(cell, decoder, batch, out_len, hidden, embed, vocab)
    inputs, lengths = jax.device_put(data["inputs"]), jax.device_put(data["input_lengths"])
    alpha = jnp.float32(config.eval.length_penalty)

    def step_alone(rows_per_example):
        def run(params, inputs, lengths):
            step_fn, memory, state = inference.search_inputs(model, params, inputs, lengths)
            if rows_per_example > 1:  # mapped over the beams as beam_search maps it
                step_fn = decoding._per_beam(step_fn, batch, rows_per_example)

            def body(_, carry):
                logits, state, _ = step_fn(memory, *carry)
                return state, decoding.argmax(logits)

            tokens = jnp.full((batch * rows_per_example,), BOS, jnp.int32)
            return jax.lax.fori_loop(0, out_len, body, (decoding.tile_beams(state, rows_per_example), tokens))[1]

        return jax.jit(run)

    greedy, beam = inference.predict_fn(model, 1, out_len), inference.predict_fn(model, beam_size, out_len)
    alone, alone_beams = step_alone(1), step_alone(beam_size)
    calls = {
        "greedy": lambda: greedy(params, inputs, lengths, alpha),
        f"beam {beam_size}": lambda: beam(params, inputs, lengths, alpha),
        "step alone, batch rows": lambda: alone(params, inputs, lengths),
        f"step alone, batch * {beam_size} rows": lambda: alone_beams(params, inputs, lengths),
    }
    for call in calls.values():
        for _ in range(1 + warmup):
            jax.block_until_ready(call())
    wall, cpu = {name: [] for name in calls}, {name: [] for name in calls}
    for _ in range(steps):
        for name, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(call())
            wall[name].append(1e3 * (time.perf_counter() - start))
            cpu[name].append(1e3 * (time.process_time() - start_cpu))
    wall, cpu = ({name: statistics.median(t) for name, t in times.items()} for times in (wall, cpu))
    return {
        "benchmark": "search_profile",
        "settings": dict(beam_size=beam_size, cell=cell, decoder=decoder, batch=batch, out_len=out_len,
                         hidden=hidden, embed=embed, vocab=vocab, warmup=warmup, steps=steps),
        "wall_ms": wall, "cpu_ms": cpu,
        "wall_vs_greedy": {name: t / wall["greedy"] for name, t in wall.items()},
        "cpu_vs_greedy": {name: t / cpu["greedy"] for name, t in cpu.items()},
        "load_average": os.getloadavg(), "threads": threads("ours"),
    }


def main(argv):
    del argv
    if _PROFILE.value:
        if _IMPL.value != "ours" or _BEAM_SIZE.value < 2:
            raise app.UsageError("--profile times our searches: --impl=ours and --beam_size >= 2")
        print(json.dumps(profile(beam_size=_BEAM_SIZE.value, cell=_CELL.value, decoder=_DECODER.value,
                                 batch=_BATCH.value, out_len=_OUT_LEN.value, hidden=_HIDDEN.value,
                                 embed=_EMBED.value, vocab=_VOCAB.value, warmup=_WARMUP.value, steps=_STEPS.value)))
        return
    print(json.dumps(benchmark(impl=_IMPL.value, beam_size=_BEAM_SIZE.value, cell=_CELL.value,
                               decoder=_DECODER.value, batch=_BATCH.value, out_len=_OUT_LEN.value,
                               hidden=_HIDDEN.value, embed=_EMBED.value, vocab=_VOCAB.value,
                               warmup=_WARMUP.value, steps=_STEPS.value)))


if __name__ == "__main__":
    app.run(main)
