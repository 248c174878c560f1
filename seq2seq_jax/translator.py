"""A trained run loaded once, from Python: translate, N-best, score given targets, attention weights.

    from seq2seq_jax import Translator

    translator = Translator.from_workdir("runs/tiny")          # config, model, parameters, vocabularies
    translator.translate(["abc", "hello"])                      # e.g. ['cba', 'olleh']
    translator.nbest(["abc"], 3)                                # e.g. [[('cba', -0.01), ('cb', -2.3), ...]]
    translator.score(["abc"], ["cba"])                          # [{'logprob': ..., 'tokens': 4, 'perplexity': ...}]
    translator.attention("abc")                                 # weights [target_len, source_len] and labels
    translator.sample(["abc"], temperature=0.8, top_k=5, num_samples=2, seed=1)  # e.g. [[('cba', -0.2), ...]]

As fairseq's ``from_pretrained(...).translate`` and OpenNMT-py's ``Translator``, the run's checkpoint is read
once and every call reuses it (and JAX's compiled programs). Decoding is ``inference.translate_lines``: sources
sorted by length, padded to a few widths (``inference.source_width``) and decoded in batches of
``batch_size``; results come back in input order. ``score`` is the teacher-forced log-probability of a given
target (fairseq-generate's ``--score-reference``, OpenNMT's gold score with ``-tgt``), computed in batches the
same way. Sources longer than the run's ``data.max_source_length`` (``DEFAULT_MAX_SOURCE_LENGTH`` for a run
without one) are cut to it, with a warning, as ``translate`` does.

Several runs decode as an ensemble (``ensemble.py``: the renormalised mean of their per-step
log-probabilities, as OpenNMT-py's ensemble decoding): ``Translator.from_workdirs(["runs/a", "runs/b"])``.
Its ``translate`` and ``nbest`` search with the ensemble and its ``score`` is the ensemble's teacher-forced
log-probability; it has no ``attention`` (a ``ValueError``: each member attends on its own). The runs must
tokenise alike (the same kinds of vocabulary with the same tokens), checked before any checkpoint is read;
the decoding settings (beam, length penalty, output limits, longest source) are the first run's.

A bad request (sources that are not a list of strings, sources and targets of different lengths, ``n < 1``
or wider than the beam, attention of a model that has none) is one ``ValueError`` saying what is wrong.
"""

import dataclasses
import functools
import math
import numbers
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from seq2seq_jax import cli
from seq2seq_jax import ensemble as ensemble_lib
from seq2seq_jax import inference
from seq2seq_jax import metrics as metrics_lib
from seq2seq_jax import parallel
from seq2seq_jax import sampling as sampling_lib
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.data.vocab import EOS, UNK
from seq2seq_jax.model import Seq2Seq, shift_right
from seq2seq_jax.recurrent import time_mask

# Longest source decoded for a run that set no data.max_source_length: bounds a line's memory and time.
DEFAULT_MAX_SOURCE_LENGTH = 512


def max_source_length(config) -> tuple[int, str]:
    """Longest source decoded, and where it comes from: the run's ``data.max_source_length``, else
    `DEFAULT_MAX_SOURCE_LENGTH`."""
    if config.data.get("max_source_length"):
        return config.data.max_source_length, "the run's data.max_source_length"
    return DEFAULT_MAX_SOURCE_LENGTH, "translate's default for a run without data.max_source_length"


@dataclasses.dataclass(frozen=True)
class Attention:
    """``weights [len(target_tokens), len(source_tokens)]``: row i is the distribution over the source of
    the step that emitted target token i (``</s>`` included). ``target`` is the text those rows belong to:
    the model's translation, or the target given."""

    weights: np.ndarray
    source_tokens: list[str]
    target_tokens: list[str]
    target: str


def load_ensemble(workdirs: Sequence[str], checkpoint: str = "best"):
    """``(config, ensemble, params, source_vocab, target_vocab)`` of the runs in ``workdirs``, as
    ``workdir.load_trained`` gives them for one run: ``ensemble`` an ``ensemble.Ensemble`` of their models,
    ``params`` a tuple of their parameters (each run's ``checkpoint``), ``config`` and the vocabularies the
    first run's. Runs that tokenise differently are a ``ValueError`` naming two of them and what differs
    (``ensemble.check_compatible``), raised before any checkpoint is read."""
    runs = [workdir_lib.load_run(w) for w in workdirs]  # config.json and vocab/ only
    ensemble_lib.check_compatible(list(workdirs), [r[0] for r in runs], [r[2] for r in runs], [r[3] for r in runs])
    loaded = [workdir_lib.load_trained(w, checkpoint) for w in workdirs]
    config, _, _, source_vocab, target_vocab = loaded[0]
    return (config, ensemble_lib.Ensemble(tuple(r[1] for r in loaded)), tuple(r[2] for r in loaded), source_vocab,
            target_vocab)


def load_runs(workdirs: Sequence[str], checkpoint: str = "best"):
    """What the command-line tools load for ``--workdir=A[,B,...]``: one run's ``workdir.load_trained``, or
    several runs' ``load_ensemble`` (the same 5-tuple)."""
    if len(workdirs) == 1:
        return workdir_lib.load_trained(workdirs[0], checkpoint)
    return load_ensemble(workdirs, checkpoint)


@functools.lru_cache(maxsize=None)
def _teacher_forced_fn(model: Seq2Seq | ensemble_lib.Ensemble, attention: bool):
    """A jitted ``(params, inputs, input_lengths, targets, target_lengths)`` -> per-row ``log p(target |
    source)`` ``[batch]`` summed over the real target tokens, or (``attention``) the teacher-forced
    attention weights ``[batch, tgt_len, src_len]``. An ensemble's is that of its renormalised mean
    (``ensemble.teacher_forced_logits``); it has no attention."""

    def fn(params, inputs, input_lengths, targets, target_lengths):
        if isinstance(model, ensemble_lib.Ensemble):
            if attention:
                raise ValueError("an ensemble has no attention weights of its own")
            logits = ensemble_lib.teacher_forced_logits(model, params, inputs, input_lengths, shift_right(targets))
        else:
            logits, state = model.apply({"params": params}, inputs, input_lengths, shift_right(targets),
                                        mutable=["intermediates"])
        if attention:
            return state["intermediates"]["attention_weights"][0]
        log_probs = jax.nn.log_softmax(logits, axis=-1)  # [batch, tgt_len, vocab], float32
        picked = jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]  # [batch, tgt_len]
        # where, not a product: a padding position's value (whatever it is) never reaches the sum.
        return jnp.sum(jnp.where(time_mask(target_lengths, targets.shape[1]), picked, 0.0), axis=1)

    return jax.jit(fn)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _texts(name: str, texts) -> list[str]:
    """``texts`` as a list of strings; a ``ValueError`` for one string (whose characters would be read as
    sentences) or anything that is not a sequence of strings."""
    if isinstance(texts, str):
        raise ValueError(f"{name} must be a list of strings, not one string: write [{texts[:20]!r}...]")
    try:
        texts = list(texts)
    except TypeError:
        raise ValueError(f"{name} must be a list of strings, got {type(texts).__name__}") from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{i}] must be a string, got {type(text).__name__}: {text!r}")
    return texts


def _workdir_path(name: str, path) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        raise ValueError(f"{name} must be a workdir's path, got {type(path).__name__}: {path!r}") from None


def _check_load_options(checkpoint, beam_size, batch_size) -> None:
    """Checks the options of `Translator.from_workdir(s)` before any checkpoint is read."""
    if not isinstance(checkpoint, str) or not checkpoint:
        raise ValueError(f"checkpoint={checkpoint!r} must be 'best', 'latest' or an averaged checkpoint's name")
    for name, value in (("beam_size", beam_size), ("batch_size", batch_size)):
        if value is not None:
            _positive_int(name, value)


class Translator:
    """A model, its parameters, vocabularies and decoding settings, to translate and score text with.

    Build it with `from_workdir` (an ensemble: `from_workdirs`), or from the pieces (e.g. a model just
    trained in-process): ``eval_config`` is a run's ``config.eval`` (output length limits, and the defaults
    of ``beam_size``, its test-time beam, and ``length_penalty``). ``model`` may be an ``ensemble.Ensemble``
    with ``params`` a tuple, one entry per member.
    """

    def __init__(self, model: Seq2Seq | ensemble_lib.Ensemble, params, source_vocab, target_vocab, eval_config, *,
                 beam_size=None, length_penalty=None, batch_size: int = 128,
                 max_source_len: int = DEFAULT_MAX_SOURCE_LENGTH, bucket: int = 16, config=None):
        self.beam_size = _positive_int("beam_size", inference.split_beam_size(eval_config, "test")
                                       if beam_size is None else beam_size)
        length_penalty = eval_config.length_penalty if length_penalty is None else length_penalty
        if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) or not (
                math.isfinite(length_penalty) and length_penalty >= 0):
            raise ValueError(f"length_penalty={length_penalty!r} must be a number >= 0")
        self.length_penalty = float(length_penalty)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.max_source_len = _positive_int("max_source_len", max_source_len)
        self.bucket = _positive_int("bucket", bucket)
        self.model, self.source_vocab, self.target_vocab = model, source_vocab, target_vocab
        self.eval_config, self.config = eval_config, config
        self._mesh = parallel.data_mesh(jax.local_devices())
        # On this process's devices once; translate_lines' and decode_batch's own copies are then no-ops.
        self.params = jax.device_put(params, parallel.replicated(self._mesh))

    @classmethod
    def from_workdir(cls, path: str, checkpoint: str = "best", beam_size=None, length_penalty=None,
                     batch_size: int = 128) -> "Translator":
        """The run trained in ``path``: its ``config.json``, ``vocab/`` and the parameters of ``checkpoint``
        (``'best'``, ``'latest'`` or an averaged checkpoint's name, see ``workdir.load_trained``).
        ``beam_size`` defaults to the run's test-time beam (``eval.test_beam_size``, else ``eval.beam_size``),
        ``length_penalty`` to ``eval.length_penalty``. A missing run or checkpoint raises
        ``FileNotFoundError`` or ``checkpointing.CheckpointError``, as ``workdir.load_trained`` does."""
        if isinstance(path, (list, tuple)):
            raise ValueError(f"path must be one workdir's path, got a {type(path).__name__}: for an ensemble of "
                             "several runs use Translator.from_workdirs")
        path = _workdir_path("path", path)
        _check_load_options(checkpoint, beam_size, batch_size)
        config, model, params, source_vocab, target_vocab = workdir_lib.load_trained(path, checkpoint)
        return cls(model, params, source_vocab, target_vocab, config.eval, beam_size=beam_size,
                   length_penalty=length_penalty, batch_size=batch_size, max_source_len=max_source_length(config)[0],
                   config=config)

    @classmethod
    def from_workdirs(cls, paths: Sequence[str], checkpoint: str = "best", beam_size=None, length_penalty=None,
                      batch_size: int = 128) -> "Translator":
        """An ensemble of the runs trained in ``paths`` (``ensemble.py``), each with the parameters of its
        ``checkpoint``, decoding with the renormalised mean of their per-step log-probabilities. The
        defaults of ``beam_size`` and ``length_penalty``, the output limits and the longest source are the
        first run's, as `from_workdir` takes them from its one run. Runs that tokenise differently are one
        ``ValueError`` naming two of them and what differs, before any checkpoint is read (see
        `load_ensemble`); a missing run or checkpoint is an error as in `from_workdir`. One path gives an
        ensemble of one run, which decodes exactly as that run."""
        if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, Sequence):
            raise ValueError(f"paths must be a list of workdirs, got {type(paths).__name__}: {paths!r} (one run: "
                             "Translator.from_workdir)")
        if not paths:
            raise ValueError("paths must name at least one workdir")
        paths = [_workdir_path(f"paths[{i}]", p) for i, p in enumerate(paths)]
        _check_load_options(checkpoint, beam_size, batch_size)
        config, model, params, source_vocab, target_vocab = load_ensemble(paths, checkpoint)
        return cls(model, params, source_vocab, target_vocab, config.eval, beam_size=beam_size,
                   length_penalty=length_penalty, batch_size=batch_size, max_source_len=max_source_length(config)[0],
                   config=config)

    @classmethod
    def from_runs(cls, paths: Sequence[str], checkpoint: str = "best", **options) -> "Translator":
        """``from_workdir`` of one path, ``from_workdirs`` of several: what ``--workdir=A[,B,...]`` loads."""
        if len(paths) == 1:
            return cls.from_workdir(paths[0], checkpoint, **options)
        return cls.from_workdirs(paths, checkpoint, **options)

    @property
    def is_ensemble(self) -> bool:
        return isinstance(self.model, ensemble_lib.Ensemble)

    # --- Decoding ----------------------------------------------------------------------------------

    def translations(self, sources: Sequence[str], *, nbest: int | None = None, with_attention: bool = False,
                     beam_size: int | None = None, max_len: int | None = None,
                     sampling: sampling_lib.Sampling | None = None,
                     first_line: int = 0) -> list[inference.Translation]:
        """``inference.translate_lines`` of ``sources`` with this translator's settings (``beam_size``
        overridable per call): one ``inference.Translation`` per source, in input order. With ``sampling``
        (``sampling.Sampling``; no ``nbest``, and ``beam_size`` 1 if given) each source is sampled instead,
        source ``i`` as line ``first_line + i`` of the input (its samples' seed, see ``sampling.py``)."""
        sources = _texts("sources", sources)
        if sampling is not None:
            if not isinstance(sampling, sampling_lib.Sampling):
                raise ValueError(f"sampling must be a sampling.Sampling, got {type(sampling).__name__}")
            if beam_size not in (None, 1) or nbest is not None:
                what = f"nbest={nbest}" if nbest is not None else f"beam_size={beam_size}"
                raise ValueError(f"{what} cannot be combined with sampling: sampling draws each token, it keeps no "
                                 "beam (Translator.nbest searches one)")
            if isinstance(first_line, bool) or not isinstance(first_line, numbers.Integral) or first_line < 0:
                raise ValueError(f"first_line={first_line!r} must be an integer >= 0")
        beam_size = self.beam_size if beam_size is None else _positive_int("beam_size", beam_size)
        if nbest is not None and _positive_int("n", nbest) > beam_size:
            raise ValueError(f"n={nbest} best hypotheses need a beam at least as wide: beam_size={beam_size} "
                             f"(Translator.from_workdir(..., beam_size={nbest}))")
        if max_len is not None:
            _positive_int("max_len", max_len)
        if with_attention:
            self._check_attention()
        return inference.translate_lines(
            self.model, self.params, self.source_vocab, self.target_vocab, sources, self.eval_config,
            batch_size=self.batch_size, beam_size=beam_size, alpha=self.length_penalty, max_len=max_len,
            nbest=nbest, with_attention=with_attention, max_source_len=self.max_source_len, bucket=self.bucket,
            sampling=sampling, first_line=int(first_line))

    def translate(self, sources: Sequence[str]) -> list[str]:
        """The best hypothesis of each source, detokenised, in input order; an empty source gives ""."""
        translations = self.translations(sources)
        self._warn_cut(t.truncated for t in translations)
        return [t.hypotheses[0] for t in translations]

    def nbest(self, sources: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        """The ``n`` best hypotheses of each source with their scores, in the beam's order: the beam's
        ``log p(Y|X) / lp(Y)`` (as ``translate --nbest`` writes them). ``n`` is at most the beam size. An empty
        source gives ``[("", None)]``: it is not decoded."""
        translations = self.translations(sources, nbest=n)
        self._warn_cut(t.truncated for t in translations)
        return [list(zip(t.hypotheses, t.scores)) for t in translations]

    def sample(self, sources: Sequence[str], *, temperature: float = 1.0, top_k: int = 0, num_samples: int = 1,
               seed: int = 0) -> list[list[tuple[str, float]]]:
        """``num_samples`` samples of each source with their scores, in the order drawn: each token drawn from
        the model's distribution at ``temperature`` (> 0) over its ``top_k`` most likely tokens (0: all; 1:
        greedy decoding), the score the model's ``log p(Y|X)`` of the sample (see ``sampling.py``). ``seed``
        (in ``[0, 2**32)``) and a source's place in ``sources`` fix its samples, whatever the batching. An
        empty source gives ``[("", None)]``: it is not decoded. A bad value is one ``ValueError`` naming it."""
        options = sampling_lib.Sampling(temperature=temperature, top_k=top_k, num_samples=num_samples, seed=seed)
        translations = self.translations(sources, sampling=options)
        self._warn_cut(t.truncated for t in translations)
        return [list(zip(t.hypotheses, t.scores)) for t in translations]

    # --- Teacher forcing -----------------------------------------------------------------------------

    def _teacher_forced(self, source_ids, target_ids, *, attention: bool) -> list[np.ndarray]:
        """Per pair, the teacher-forced log-probability (a float32 scalar) or attention weights
        ``[len(target_ids), len(source_ids)]``: pairs sorted by their padded widths and run in batches of
        ``batch_size`` rows, so a whole list compiles one program per pair of widths."""
        width = functools.partial(inference.source_width, bucket=self.bucket)
        order = sorted(range(len(source_ids)), key=lambda i: (width(len(source_ids[i])), width(len(target_ids[i]))))
        batches = []  # consecutive runs of one (source, target) width, at most batch_size long
        for i in order:
            shape = (width(len(source_ids[i])), width(len(target_ids[i])))
            if not batches or batches[-1][0] != shape or len(batches[-1][1]) == self.batch_size:
                batches.append((shape, []))
            batches[-1][1].append(i)
        results: list = [None] * len(source_ids)
        fn = _teacher_forced_fn(self.model, attention)
        for (source_width, target_width), rows in batches:
            batch = {"inputs": np.zeros((self.batch_size, source_width), np.int32),  # rows past the pairs: PAD
                     "input_lengths": np.zeros((self.batch_size,), np.int32),
                     "targets": np.zeros((self.batch_size, target_width), np.int32),
                     "target_lengths": np.zeros((self.batch_size,), np.int32)}
            for row, i in enumerate(rows):
                batch["inputs"][row, : len(source_ids[i])] = source_ids[i]
                batch["input_lengths"][row] = len(source_ids[i])
                batch["targets"][row, : len(target_ids[i])] = target_ids[i]
                batch["target_lengths"][row] = len(target_ids[i])
            batch = parallel.shard_batch(parallel.pad_rows(batch, jax.local_device_count()), self._mesh)
            out = parallel.to_host(fn(self.params, batch["inputs"], batch["input_lengths"], batch["targets"],
                                      batch["target_lengths"]))
            for row, i in enumerate(rows):
                results[i] = out[row, : len(target_ids[i]), : len(source_ids[i])] if attention else out[row]
        return results

    def score(self, sources: Sequence[str], targets: Sequence[str]) -> list[dict]:
        """Per pair, how likely the model finds ``target`` given ``source``, by teacher forcing:
        ``logprob`` = ``sum_t log p(y_t | y_<t, x)`` over the target's tokens and its ``</s>`` (natural
        log), ``tokens`` their number, ``perplexity`` = ``exp(-logprob / tokens)``. Characters or words the
        target vocabulary lacks are scored as ``<unk>`` (with a warning). An empty target is its ``</s>``
        alone; an empty source is scored too (the model's ``p(target | no source)``)."""
        sources, targets = _texts("sources", sources), _texts("targets", targets)
        if len(sources) != len(targets):
            raise ValueError(f"sources and targets must pair up: {len(sources)} sources, {len(targets)} targets")
        encoded = [self.source_vocab.encode(s) for s in sources]
        self._warn_cut(len(ids) > self.max_source_len for ids in encoded)
        source_ids = [ids[: self.max_source_len] for ids in encoded]
        target_ids = [self.target_vocab.encode(t) + [EOS] for t in targets]
        if unknown := sum(UNK in ids for ids in target_ids):
            logging.warning("%d of %d targets hold tokens the target vocabulary lacks, scored as <unk>", unknown,
                            len(targets))
        logprobs = self._teacher_forced(source_ids, target_ids, attention=False)
        return [{"logprob": float(lp), "tokens": len(ids), "perplexity": metrics_lib.perplexity(-float(lp), len(ids))}
                for lp, ids in zip(logprobs, target_ids)]

    # --- Attention ---------------------------------------------------------------------------------

    def _check_attention(self) -> None:
        if self.is_ensemble:
            raise ValueError(f"an ensemble of {len(self.model.models)} runs has no attention weights of its own "
                             "(each run attends on its own): load one run with Translator.from_workdir to see its "
                             "attention")
        if self.model.config.decoder != "attention":
            raise ValueError(f"the model's decoder is {self.model.config.decoder!r}, which has no attention "
                             "(a fixed-vector bottleneck): there are no attention weights to show")

    def attention(self, source: str, target: str | None = None) -> Attention:
        """The attention weights ``[target_len, source_len]`` of the model's translation of ``source``
        (``target`` None; the best hypothesis of the beam), or of the given ``target`` by teacher forcing;
        target rows include the step that emitted ``</s>``. A ``ValueError`` for a model without attention
        (the bottleneck decoder) or an empty source (nothing to attend to)."""
        self._check_attention()
        for name, text in (("source", source), ("target", target)):
            if not isinstance(text, str) and (name == "source" or text is not None):
                raise ValueError(f"{name} must be a string, got {type(text).__name__}")
        encoded = self.source_vocab.encode(source)
        if not encoded:
            raise ValueError(f"source {source!r} has no token: there is nothing to attend to")
        self._warn_cut([len(encoded) > self.max_source_len])
        source_ids = encoded[: self.max_source_len]
        if target is None:
            translation, = self.translations([source], with_attention=True)
            target, target_ids, weights = translation.hypotheses[0], translation.target_ids[0], translation.attention
            target_labels = cli.token_labels(self.target_vocab, target_ids)
        else:
            target_ids = self.target_vocab.encode(target) + [EOS]
            weights, = self._teacher_forced([source_ids], [target_ids], attention=True)
            target_labels = cli.token_labels(self.target_vocab, target_ids[:-1], target) + ["</s>"]
        source_labels = cli.token_labels(self.source_vocab, source_ids, source)[: len(source_ids)]
        return Attention(weights=np.asarray(weights), source_tokens=source_labels, target_tokens=target_labels,
                         target=target)

    def _warn_cut(self, cut) -> None:
        if count := sum(map(bool, cut)):
            logging.warning("%d source(s) longer than %d tokens cut to the first %d", count, self.max_source_len,
                            self.max_source_len)
