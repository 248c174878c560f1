"""From parameters to decoded strings and scores: the glue between ``Seq2Seq`` and ``decoding``.

``predict_fn`` compiles one search per ``(beam_size, max_len)`` and batch shape; batches come in a few
bucket shapes, so a run compiles a handful of programs. ``evaluate_split`` decodes a whole split and
scores it overall and by source length; ``translate`` decodes raw strings.
"""

import functools
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from seq2seq_jax import decoding
from seq2seq_jax import metrics as metrics_lib
from seq2seq_jax import parallel
from seq2seq_jax.data.vocab import BOS, EOS
from seq2seq_jax.model import Seq2Seq


def max_output_length(source_len: int, eval_config) -> int:
    """Longest output for a source bucket of ``source_len``: ``ratio * source_len + extra``."""
    return int(eval_config.max_output_ratio * source_len + eval_config.max_output_extra)


def search_inputs(model: Seq2Seq, params, inputs, lengths):
    """``(step_fn, initial_state)`` for ``decoding``: the source is encoded and its keys projected once;
    the search state is ``(Memory, DecoderState)``, every leaf with the batch as leading axis."""
    variables = {"params": params}
    encoded = model.apply(variables, inputs, lengths, method=Seq2Seq.encode)
    state = model.apply(variables, encoded, method=Seq2Seq.init_decoding)

    def step_fn(state, tokens):
        memory, decoder_state = state
        logits, decoder_state, weights = model.apply(
            variables, memory, decoder_state, tokens, method=Seq2Seq.decode_step)
        return logits, (memory, decoder_state), weights

    return step_fn, state


@functools.lru_cache(maxsize=None)
def predict_fn(model: Seq2Seq, beam_size: int, max_len: int):
    """A jitted ``(params, inputs [batch, src_len], lengths [batch], alpha) -> DecodeOutput``."""

    def predict(params, inputs, lengths, alpha):
        step_fn, state = search_inputs(model, params, inputs, lengths)
        sizes = dict(batch_size=inputs.shape[0], max_len=max_len, src_len=inputs.shape[1],
                     bos_id=BOS, eos_id=EOS)
        if beam_size == 1:
            return decoding.greedy_search(step_fn, state, **sizes)
        return decoding.beam_search(step_fn, state, beam_size=beam_size, alpha=alpha, **sizes)

    return jax.jit(predict)


def decode_batch(model, params, batch, eval_config, *, beam_size=None, alpha=None) -> decoding.DecodeOutput:
    """Decodes one padded batch with ``eval_config``'s settings (overridable); results on the host.

    A numpy ``batch`` is split over this process's devices (padded to a multiple of their number); a
    batch of global arrays (``parallel.shard_batch``, every process calling) is decoded where it lies.
    """
    beam_size = eval_config.beam_size if beam_size is None else beam_size
    alpha = eval_config.length_penalty if alpha is None else alpha
    max_len = max_output_length(batch["inputs"].shape[1], eval_config)
    inputs, rows = {k: batch[k] for k in ("inputs", "input_lengths")}, None
    if not isinstance(inputs["inputs"], jax.Array):
        rows, mesh = len(inputs["inputs"]), parallel.data_mesh(jax.local_devices())
        inputs = parallel.shard_batch(parallel.pad_rows(inputs, jax.local_device_count()), mesh)
        params = jax.device_put(params, parallel.replicated(mesh))
    out = predict_fn(model, int(beam_size), max_len)(params, inputs["inputs"], inputs["input_lengths"],
                                                      jnp.float32(alpha))
    out = parallel.to_host(out)
    return out if rows is None else jax.tree.map(lambda x: x[:rows], out)


def _tokens_of(output, row) -> list[int]:
    return [int(t) for t in output.tokens[row, : output.lengths[row]]]


def evaluate_split(model, params, data, split, eval_config, *, eval_step, max_examples=0,
                   beam_size=None, keep_attention=0) -> dict:
    """Loss, perplexity and decoded-output metrics of ``split``, overall and by source length.

    Every process calls it: each one's eval batches (padded to a multiple of its devices) become one
    global batch sharded over all devices, for the teacher-forced step and the search alike, and the
    decoded rows come back to every process, so all return the whole split's result, the same as on
    one device. Returns a JSON-able dict; ``predictions`` holds ``(source, hypothesis, references)`` per
    example and ``attention`` the weights of the first ``keep_attention`` examples (for heatmaps).
    """
    examples = data.examples(split)
    limit = len(examples) if not max_examples else min(max_examples, len(examples))
    mesh = parallel.data_mesh()
    params = jax.device_put(params, parallel.replicated(mesh))
    nll = tokens = correct = 0.0
    hyps, source_lengths, attention = {}, {}, {}
    for local_batch in data.eval_batches(split):
        batch = parallel.shard_batch(parallel.pad_rows(local_batch, jax.local_device_count()), mesh)
        index = parallel.to_host(batch.pop("index"))  # every process's rows, in the global batch's order
        if not np.any((index >= 0) & (index < limit)):  # the same decision on every process
            continue
        sums = parallel.to_host(eval_step(params, batch))
        nll += float(sums["loss_sum"])
        tokens += float(sums["token_count"])
        correct += float(sums["correct_sum"])
        output = decode_batch(model, params, batch, eval_config, beam_size=beam_size)
        input_lengths = parallel.to_host(batch["input_lengths"])
        for row, i in enumerate(index):
            if 0 <= i < limit:
                hyps[int(i)] = data.target_vocab.decode(_tokens_of(output, row))
                source_lengths[int(i)] = int(input_lengths[row])
                if i < keep_attention:
                    attention[int(i)] = output.attention[row, : output.lengths[row], : source_lengths[int(i)]]
    indices = sorted(hyps)
    hyp_list = [hyps[i] for i in indices]
    refs = [examples[i]["references"] for i in indices]
    lengths = [source_lengths[i] for i in indices]
    names, tokenize = tuple(eval_config.metrics), metrics_lib.vocab_tokenizer(data.target_vocab)
    result = {
        "split": split,
        "num_examples": len(indices),
        "beam_size": int(eval_config.beam_size if beam_size is None else beam_size),
        "loss": nll / max(tokens, 1.0),
        "perplexity": metrics_lib.perplexity(nll, tokens),
        "teacher_forced_token_acc": correct / max(tokens, 1.0),
        **metrics_lib.compute_metrics(hyp_list, refs, names=names, tokenize=tokenize),
        "sacrebleu_signatures": metrics_lib.sacrebleu_signatures(hyp_list, refs, names),
    }
    edges = metrics_lib.length_buckets(lengths, eval_config.num_length_buckets)
    result["by_length"] = metrics_lib.metrics_by_length(hyp_list, refs, lengths, edges, names=names,
                                                        tokenize=tokenize)
    result["predictions"] = [(examples[i]["source"], hyps[i], list(examples[i]["references"]))
                             for i in indices]
    result["attention"] = {i: attention[i] for i in sorted(attention)}
    return result


def translate(model, params, source_vocab, target_vocab, lines: Iterable[str], eval_config, *,
              batch_size=32, beam_size=None, bucket=16, with_target_ids=False):
    """Decodes raw ``lines``; yields ``(hypothesis, attention [out_len, src_len], source_ids)`` in order.

    With ``with_target_ids``, yields ``(..., target_ids)`` too: the ``out_len`` output ids the attention
    rows belong to (EOS included when the output ended), e.g. for heatmap labels.
    Sources are padded to a multiple of ``bucket`` tokens so a file compiles only a few shapes.
    """
    lines = list(lines)
    for start in range(0, len(lines), batch_size):
        chunk = [source_vocab.encode(line) for line in lines[start:start + batch_size]]
        width = max(bucket, -(-max(len(ids) for ids in chunk) // bucket) * bucket)
        inputs = np.zeros((batch_size, width), np.int32)
        lengths = np.zeros((batch_size,), np.int32)
        for row, ids in enumerate(chunk):
            inputs[row, : len(ids)] = ids
            lengths[row] = len(ids)
        output = decode_batch(model, params, {"inputs": inputs, "input_lengths": lengths}, eval_config,
                              beam_size=beam_size)
        for row, ids in enumerate(chunk):
            tokens = _tokens_of(output, row)
            translation = (target_vocab.decode(tokens), output.attention[row, : len(tokens), : len(ids)], ids)
            yield (*translation, tokens) if with_target_ids else translation
