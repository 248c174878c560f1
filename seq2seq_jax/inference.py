"""From parameters to decoded strings and scores: the glue between ``Seq2Seq`` and ``decoding``.

``predict_fn`` compiles one search per ``(beam_size, max_len)`` and batch shape; batches come in a few
bucket shapes, so a run compiles a handful of programs. ``evaluate_split`` decodes a whole split and
scores it overall and by source length; ``translate_lines`` (and its shorthand ``translate``) decode raw
strings. ``sample_fn`` compiles sampling (``sampling.py``) as ``predict_fn`` compiles searches, and
``model`` may be an ``ensemble.Ensemble`` (``params`` then a tuple) wherever a search or sampling runs.
"""

import dataclasses
import functools
import itertools
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seq2seq_jax import decoding
from seq2seq_jax import ensemble
from seq2seq_jax import metrics as metrics_lib
from seq2seq_jax import parallel
from seq2seq_jax import sampling as sampling_lib
from seq2seq_jax.data.vocab import BOS, EOS
from seq2seq_jax.model import Seq2Seq


# What a by-length breakdown counts (`eval.length_unit`): source tokens, or whitespace-separated words of
# the raw source (Bahdanau et al. 2014, fig. 2), which do not depend on the vocabulary.
LENGTH_UNITS = ("tokens", "words")


def length_buckets(source_lengths: Sequence[int], eval_config) -> list[float]:
    """The by-length bucket edges: ``eval.length_edges`` then infinity, else ``eval.num_length_buckets``
    quantiles of ``source_lengths``."""
    edges = eval_config.get("length_edges")  # get: absent from the configs of runs made before the field
    if edges:
        return [float(x) for x in edges] + [float("inf")]
    return metrics_lib.length_buckets(source_lengths, eval_config.num_length_buckets)


def source_length(source: str, source_ids_length: int, eval_config) -> int:
    """An example's length in ``eval.length_unit``: its ``source_ids_length`` tokens, or its words."""
    if eval_config.get("length_unit", "tokens") == "words":
        return len(source.split())
    return source_ids_length


def split_beam_size(eval_config, split: str) -> int:
    """The beam a run decodes ``split`` with: ``eval.test_beam_size`` (when set) for test, after model
    selection; ``eval.beam_size`` otherwise."""
    if split == "test" and eval_config.get("test_beam_size"):
        return int(eval_config.test_beam_size)
    return int(eval_config.beam_size)


def max_output_length(source_len: int, eval_config) -> int:
    """Longest output for a source of ``source_len`` tokens: ``ratio * source_len + extra``."""
    return int(eval_config.max_output_ratio * source_len + eval_config.max_output_extra)


def search_inputs(model: Seq2Seq | ensemble.Ensemble, params, inputs, lengths):
    """``(step_fn, memory, initial_state)`` for ``decoding``: the source is encoded and its keys projected
    once into the per-sentence ``Memory``; the per-hypothesis state is the ``DecoderState``. For an
    ``ensemble.Ensemble`` (``params`` a tuple, one entry per member), the members' combined
    (``ensemble.combine``)."""
    if isinstance(model, ensemble.Ensemble):
        return ensemble.combine([search_inputs(m, p, inputs, lengths) for m, p in zip(model.models, params)])
    variables = {"params": params}
    encoded = model.apply(variables, inputs, lengths, method=Seq2Seq.encode)
    memory, state = model.apply(variables, encoded, method=Seq2Seq.init_decoding)

    def step_fn(memory, state, tokens):
        return model.apply(variables, memory, state, tokens, method=Seq2Seq.decode_step)

    return step_fn, memory, state


@functools.lru_cache(maxsize=None)
def predict_fn(model: Seq2Seq, beam_size: int, max_len: int, with_attention: bool = False,
               nbest: int | None = None):
    """A jitted ``(params, inputs [batch, src_len], lengths [batch], alpha, max_lengths [batch] | None)
    -> DecodeOutput``, outputs of at most ``max_len`` tokens (``max_lengths``: each example's own limit);
    see ``decoding.beam_search`` for ``with_attention`` and ``nbest``. Greedy when ``beam_size == 1``.
    ``model`` may be an ``ensemble.Ensemble``, ``params`` then a tuple (`search_inputs`)."""

    def predict(params, inputs, lengths, alpha, max_lengths=None):
        step_fn, memory, state = search_inputs(model, params, inputs, lengths)
        sizes = dict(batch_size=inputs.shape[0], max_len=max_len, src_len=inputs.shape[1],
                     bos_id=BOS, eos_id=EOS, with_attention=with_attention, max_lengths=max_lengths)
        if beam_size == 1 and not nbest:
            return decoding.greedy_search(step_fn, memory, state, **sizes)
        return decoding.beam_search(step_fn, memory, state, beam_size=beam_size, alpha=alpha, nbest=nbest,
                                    **sizes)

    return jax.jit(predict)


@functools.lru_cache(maxsize=None)
def sample_fn(model: Seq2Seq, max_len: int, top_k: int, num_samples: int, with_attention: bool = False):
    """A jitted ``(params, inputs [batch, src_len], lengths [batch], line_numbers [batch], seed, temperature,
    max_lengths [batch] | None) -> DecodeOutput`` of ``num_samples`` samples per example (every field
    ``[batch, num_samples, ...]``), see ``sampling.sample_search``."""

    def sample(params, inputs, lengths, line_numbers, seed, temperature, max_lengths=None):
        step_fn, memory, state = search_inputs(model, params, inputs, lengths)
        return sampling_lib.sample_search(
            step_fn, memory, state, line_numbers=line_numbers, seed=seed, temperature=temperature, top_k=top_k,
            num_samples=num_samples, batch_size=inputs.shape[0], max_len=max_len, src_len=inputs.shape[1],
            bos_id=BOS, eos_id=EOS, with_attention=with_attention, max_lengths=max_lengths)

    return jax.jit(sample)


def decode_batch(model, params, batch, eval_config, *, beam_size=None, alpha=None, max_len=None,
                 with_attention=False, nbest=None, sampling: sampling_lib.Sampling | None = None
                 ) -> decoding.DecodeOutput:
    """Decodes one padded batch with ``eval_config``'s settings (overridable); results on the host.

    Each output is at most ``max_output_length`` of its own source length (so one sentence that never
    ends does not keep the batch decoding much past the others), or ``max_len`` tokens if given. The
    attention weights are returned only ``with_attention``; ``nbest=N`` returns the N best of the beam
    (``[batch, N, ...]``). A numpy ``batch`` is split over this process's devices (padded to a multiple
    of their number); a batch of global arrays (``parallel.shard_batch``, every process calling) is
    decoded where it lies.

    With ``sampling`` (``sampling.Sampling``) the examples are sampled instead (``beam_size`` and ``alpha``
    unused; ``nbest`` must be None): ``batch["line_numbers"] [batch]`` gives each example's line number,
    which seeds its samples, and every output field is ``[batch, num_samples, ...]``.
    """
    beam_size = eval_config.beam_size if beam_size is None else beam_size
    alpha = eval_config.length_penalty if alpha is None else alpha
    if sampling is not None and nbest:
        raise ValueError(f"nbest={nbest} ranks a beam's hypotheses: sampling draws num_samples instead")
    keys = ("inputs", "input_lengths", "line_numbers") if sampling is not None else ("inputs", "input_lengths")
    inputs, rows = {k: batch[k] for k in keys}, None
    if not isinstance(inputs["inputs"], jax.Array):
        rows, mesh = len(inputs["inputs"]), parallel.data_mesh(jax.local_devices())
        inputs = parallel.shard_batch(parallel.pad_rows(inputs, jax.local_device_count()), mesh)
        params = jax.device_put(params, parallel.replicated(mesh))
    max_lengths = None
    if max_len is None:  # the program's size from the width, each example's limit from its length
        max_len = max_output_length(inputs["inputs"].shape[1], eval_config)
        max_lengths = (eval_config.max_output_ratio * inputs["input_lengths"]
                       + eval_config.max_output_extra).astype(jnp.int32)  # [batch]
    # Only options that differ from predict_fn's defaults go in its cache key, so a caller asking for
    # predict_fn(model, beam_size, max_len) finds the program decode_batch compiled.
    options = dict(with_attention=True) if with_attention else {}
    if sampling is not None:
        out = sample_fn(model, int(max_len), sampling.top_k, sampling.num_samples, **options)(
            params, inputs["inputs"], inputs["input_lengths"], inputs["line_numbers"], jnp.uint32(sampling.seed),
            jnp.float32(sampling.temperature), max_lengths)
        out = parallel.to_host(out)
        return out if rows is None else jax.tree.map(lambda x: x[:rows], out)
    options.update(dict(nbest=int(nbest)) if nbest else {})
    out = predict_fn(model, int(beam_size), int(max_len), **options)(
        params, inputs["inputs"], inputs["input_lengths"], jnp.float32(alpha), max_lengths)
    out = parallel.to_host(out)
    return out if rows is None else jax.tree.map(lambda x: x[:rows], out)


def _tokens_of(output, row) -> list[int]:
    return [int(t) for t in output.tokens[row, : output.lengths[row]]]


def kept_rows(index, num_examples: int, max_examples: int = 0) -> np.ndarray:
    """Which rows of an eval batch ``evaluate_split`` scores: real examples (``index`` ≥ 0, not padding)
    among the split's first ``max_examples`` of ``num_examples`` (0 = all)."""
    limit = num_examples if not max_examples else min(max_examples, num_examples)
    index = np.asarray(index)
    return (index >= 0) & (index < limit)


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
    mesh = parallel.data_mesh()
    params = jax.device_put(params, parallel.replicated(mesh))
    nll = tokens = correct = 0.0
    hyps, source_lengths, attention = {}, {}, {}
    for local_batch in data.eval_batches(split):
        batch = parallel.shard_batch(parallel.pad_rows(local_batch, jax.local_device_count()), mesh)
        index = parallel.to_host(batch.pop("index"))  # every process's rows, in the global batch's order
        kept = kept_rows(index, len(examples), max_examples)
        if not kept.any():  # the same decision on every process
            continue
        sums = parallel.to_host(eval_step(params, batch))
        nll += float(sums["loss_sum"])
        tokens += float(sums["token_count"])
        correct += float(sums["correct_sum"])
        output = decode_batch(model, params, batch, eval_config, beam_size=beam_size,
                              with_attention=keep_attention > 0)
        input_lengths = parallel.to_host(batch["input_lengths"])
        for row in np.flatnonzero(kept):
            i = int(index[row])
            hyps[i] = data.target_vocab.decode(_tokens_of(output, row))
            source_lengths[i] = int(input_lengths[row])
            if i < keep_attention:
                attention[i] = output.attention[row, : output.lengths[row], : source_lengths[i]]
    indices = sorted(hyps)
    hyp_list = [hyps[i] for i in indices]
    refs = [examples[i]["references"] for i in indices]
    lengths = [source_length(examples[i]["source"], source_lengths[i], eval_config) for i in indices]
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
    edges = length_buckets(lengths, eval_config)
    result["length_unit"] = eval_config.get("length_unit", "tokens")
    result["by_length"] = metrics_lib.metrics_by_length(hyp_list, refs, lengths, edges, names=names,
                                                        tokenize=tokenize)
    result["predictions"] = [(examples[i]["source"], hyps[i], list(examples[i]["references"]))
                             for i in indices]
    result["attention"] = {i: attention[i] for i in sorted(attention)}
    return result


@dataclasses.dataclass
class Translation:
    """The result of one input line.

    ``hypotheses``, ``target_ids`` and ``scores`` hold the best hypothesis, or the ``nbest`` best in the
    beam's ranking, or the samples in the order drawn; ``target_ids`` include the EOS where the output
    ended; ``scores`` are the beam's ``log p(Y|X) / lp(Y)``, a sample's ``log p(Y|X)`` (None for an empty
    line, which is not decoded). ``source_ids`` is what was
    decoded: the line's ``input_length`` tokens, cut to ``max_source_len`` where longer. ``attention`` is
    ``[len(target_ids[0]), len(source_ids)]`` (the best hypothesis), or None unless asked for.
    """

    source_ids: list[int]
    input_length: int
    hypotheses: list[str]
    target_ids: list[list[int]]
    scores: list[float | None]
    attention: np.ndarray | None = None

    @property
    def truncated(self) -> bool:
        return len(self.source_ids) < self.input_length


def source_width(length: int, bucket: int) -> int:
    """The padded width of a source of ``length`` tokens: ``bucket * 2**k``, so any file compiles only
    ``log2(longest / bucket) + 1`` widths."""
    width = bucket
    while width < length:
        width *= 2
    return width


def translate_lines(model, params, source_vocab, target_vocab, lines: Sequence[str], eval_config, *,
                    batch_size=128, beam_size=None, alpha=None, max_len=None, nbest=None, with_attention=False,
                    max_source_len=None, bucket=16, sampling: sampling_lib.Sampling | None = None,
                    first_line: int = 0) -> list[Translation]:
    """Decodes ``lines`` (e.g. a chunk of a file), one ``Translation`` per line in input order.

    Lines are sorted by length and decoded in batches of ``batch_size`` rows padded to a few source widths
    (`source_width`), so a whole file compiles a handful of programs. Empty lines are not decoded.
    ``max_len`` overrides ``max_output_length`` of each width; ``max_source_len`` cuts longer sources.
    ``sampling`` samples each line instead of searching (`decode_batch`); line ``i`` of ``lines`` is line
    number ``first_line + i`` of the input (e.g. of a file read in chunks), which seeds its samples.
    """
    encoded = [source_vocab.encode(line) if line else [] for line in lines]
    results: list[Translation | None] = [None] * len(lines)
    # Copied to this process's devices once, not per batch (decode_batch's own copy is then a no-op).
    params = jax.device_put(params, parallel.replicated(parallel.data_mesh(jax.local_devices())))
    for i, ids in enumerate(encoded):
        if not ids:
            results[i] = Translation(source_ids=[], input_length=0, hypotheses=[""], target_ids=[[]], scores=[None],
                                     attention=np.zeros((0, 0), np.float32) if with_attention else None)
    order = sorted((i for i, ids in enumerate(encoded) if ids),
                   key=lambda i: min(len(encoded[i]), max_source_len or len(encoded[i])))
    sources = {i: encoded[i][:max_source_len] for i in order}
    batches = []  # consecutive runs of one width, at most batch_size long
    for i in order:
        width = source_width(len(sources[i]), bucket)
        if not batches or batches[-1][0] != width or len(batches[-1][1]) == batch_size:
            batches.append((width, []))
        batches[-1][1].append(i)
    for width, rows in batches:
        inputs = np.zeros((batch_size, width), np.int32)  # [batch, width], rows past the lines all PAD
        lengths = np.zeros((batch_size,), np.int32)
        line_numbers = np.zeros((batch_size,), np.int32)  # rows past the lines: 0, their samples unused
        for row, i in enumerate(rows):
            inputs[row, : len(sources[i])] = sources[i]
            lengths[row] = len(sources[i])
            line_numbers[row] = first_line + i
        batch = {"inputs": inputs, "input_lengths": lengths}
        if sampling is not None:
            batch["line_numbers"] = line_numbers
        out = decode_batch(model, params, batch, eval_config, beam_size=beam_size, alpha=alpha, max_len=max_len,
                           with_attention=with_attention, nbest=nbest, sampling=sampling)
        if not nbest and sampling is None:  # one hypothesis per line: [batch, 1, ...] like nbest=1
            out = jax.tree_util.tree_map(lambda x: x[:, None], out)
        for row, i in enumerate(rows):
            ids = [[int(t) for t in out.tokens[row, k, : out.lengths[row, k]]] for k in range(out.tokens.shape[1])]
            results[i] = Translation(
                source_ids=sources[i], input_length=len(encoded[i]),
                hypotheses=[target_vocab.decode(t) for t in ids], target_ids=ids,
                scores=[float(x) for x in out.normalized_scores[row]],
                attention=(out.attention[row, 0, : len(ids[0]), : len(sources[i])] if with_attention else None))
    return results


def translate(model, params, source_vocab, target_vocab, lines: Iterable[str], eval_config, *,
              batch_size=32, beam_size=None, bucket=16, with_target_ids=False):
    """Decodes raw ``lines``; yields ``(hypothesis, attention [out_len, src_len], source_ids)`` in order.

    With ``with_target_ids``, yields ``(..., target_ids)`` too: the ``out_len`` output ids the attention
    rows belong to (EOS included when the output ended), e.g. for heatmap labels. A shorthand for
    `translate_lines` over chunks of ``lines``.
    """
    lines = iter(lines)
    while chunk := list(itertools.islice(lines, 64 * batch_size)):
        for t in translate_lines(model, params, source_vocab, target_vocab, chunk, eval_config,
                                 batch_size=batch_size, beam_size=beam_size, with_attention=True, bucket=bucket):
            translation = (t.hypotheses[0], t.attention, t.source_ids)
            yield (*translation, t.target_ids[0]) if with_target_ids else translation
