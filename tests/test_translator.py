"""``seq2seq_jax.Translator``: a trained run loaded once, from Python.

* ``score`` is the teacher-forced log-probability of a target: it equals the sum of ``log p(y_t | y_<t, x)``
  computed one decoder step at a time, and no batching or padding changes it.
* ``translate`` and ``nbest`` are ``inference.translate_lines`` with the run's settings, in input order.
* ``attention`` gives the weights of the model's translation, the same as teacher forcing that translation
  gives, with token labels; a model without attention is a clear error.
* Every bad request is one ``ValueError``; ``import seq2seq_jax`` stays free of JAX.
* The README's "From Python" example runs as written against a trained run.

The score tests build tiny untrained models in-process; the tests that read a trained run use the session's
``tiny_workdir`` (conftest.py) and are marked slow, as the translate tests are.
"""

import functools
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from seq2seq_jax import inference
from seq2seq_jax import translator as translator_lib
from seq2seq_jax import workdir as workdir_lib
import seq2seq_jax
from seq2seq_jax.configs import default
from seq2seq_jax.data.vocab import BOS, EOS, build_vocab
from seq2seq_jax.model import ModelConfig, Seq2Seq

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCE_CHARS, TARGET_CHARS = "abcdefgh", "xyzuv"
PAIRS = [  # (source, target): lengths 0 to 21, an empty target, a target character the vocabulary lacks
    ("abcdefgh" * 2 + "abcde", "xyzuvxyzuvxyz"), ("a", ""), ("hgf", "zyx"), ("", "xu"), ("bad", "vq"),
    ("cabbage", "uvxyzuvxyzuvxyzuvxyzu")]


@functools.cache
def tiny_model(decoder: str = "attention"):
    """An untrained model, its output layer scaled so that its distributions are confident and varied."""
    m = default.get_config().model
    m.update(dict(decoder=decoder, cell="lstm", embedding_size=8, hidden_size=16, attention_size=8,
                  bidirectional=decoder == "attention"))
    source_vocab, target_vocab = build_vocab("char", [SOURCE_CHARS]), build_vocab("char", [TARGET_CHARS])
    model = Seq2Seq(ModelConfig.from_config(m, source_vocab_size=source_vocab.size,
                                            target_vocab_size=target_vocab.size))
    params = model.init(jax.random.key(1), jnp.ones((1, 3), jnp.int32), jnp.ones((1,), jnp.int32),
                        jnp.ones((1, 2), jnp.int32))["params"]
    params = jax.tree_util.tree_map(lambda p: 3.0 * p, params)
    return model, params, source_vocab, target_vocab


def tiny_translator(decoder="attention", **options) -> translator_lib.Translator:
    model, params, source_vocab, target_vocab = tiny_model(decoder)
    return translator_lib.Translator(model, params, source_vocab, target_vocab, default.get_config().eval,
                                     **options)


def step_by_step_logprob(model, params, source_ids, target_ids) -> float:
    """``sum_t log p(y_t | y_<t, x)`` over ``target_ids`` (EOS included), one ``decode_step`` at a time, the
    source alone and unpadded: the search's path through the model, not the teacher-forced scan."""
    inputs = np.zeros((1, max(len(source_ids), 1)), np.int32)  # an empty source: one PAD, length 0
    inputs[0, : len(source_ids)] = source_ids
    lengths = jnp.asarray([len(source_ids)])
    step_fn, memory, state = inference.search_inputs(model, params, inputs, lengths)
    total, previous = 0.0, BOS
    for y in target_ids:
        logits, state, _ = step_fn(memory, state, jnp.asarray([previous], jnp.int32))
        total += float(jax.nn.log_softmax(logits[0])[y])
        previous = y
    return total


@pytest.mark.parametrize("decoder", ["attention", "bottleneck"])
def test_score_is_the_sum_of_the_decoders_step_by_step_log_probabilities(decoder):
    model, params, source_vocab, target_vocab = tiny_model(decoder)
    got = tiny_translator(decoder, batch_size=4).score([s for s, _ in PAIRS], [t for _, t in PAIRS])
    for (source, target), row in zip(PAIRS, got):
        target_ids = target_vocab.encode(target) + [EOS]
        want = step_by_step_logprob(model, params, source_vocab.encode(source), target_ids)
        assert row["tokens"] == len(target) + 1  # characters, and the EOS
        # Two programs (the teacher-forced scan over a padded batch; single decode steps on the pair alone,
        # summed here in float64) agree on each term to float32 rounding, ~1e-6 of terms of order 1-5; the
        # float32 sum of up to 22 terms, with partial sums up to ~70, adds at most tokens * ulp(70) / 2 =
        # 22 * 4e-6. Bound: 1e-5 a token plus 1e-5 of the value (seen: under 4e-6 on an AVX-512 CPU).
        np.testing.assert_allclose(row["logprob"], want, rtol=1e-5, atol=1e-5 * row["tokens"])
        assert row["logprob"] < 0
        assert row["perplexity"] == pytest.approx(math.exp(-row["logprob"] / row["tokens"]), rel=1e-12)


def test_a_pair_scores_the_same_alone_and_in_a_batch_of_mixed_lengths():
    """Batches of 3 pairs of several lengths, padded to widths 4, 8, 16, 32, against each pair alone in a
    batch of one padded to width 16 or 32: the same numbers, in input order."""
    sources, targets = [s for s, _ in PAIRS], [t for _, t in PAIRS]
    batched = tiny_translator(batch_size=3, bucket=4).score(sources, targets)
    alone = tiny_translator(batch_size=1)
    for source, target, row in zip(sources, targets, batched):
        single, = alone.score([source], [target])
        assert single["tokens"] == row["tokens"]
        np.testing.assert_allclose(row["logprob"], single["logprob"], rtol=1e-6, atol=1e-6)
    assert tiny_translator().score([], []) == []


def test_the_score_of_a_hypothesis_is_the_log_probability_the_beam_found_for_it():
    """A second, independent path: beam search sums the same log-probabilities while it decodes; without a
    length penalty its ranking scores are those sums. Kept: hypotheses that ended and whose text encodes
    back to their ids (the untrained model also emits BOS, which a hypothesis's text drops)."""
    translator = tiny_translator(beam_size=3, length_penalty=0.0)
    sources = ["cabbagecabbage", "gfedcba", "bbb", "hgfab", "abc"]
    pairs = [(source, hypothesis, beam_score)
             for source, t in zip(sources, translator.translations(sources, nbest=3))
             for hypothesis, ids, beam_score in zip(t.hypotheses, t.target_ids, t.scores)
             if translator.target_vocab.encode(hypothesis) + [EOS] == ids]
    assert len(pairs) >= 6
    scores = translator.score([s for s, _, _ in pairs], [h for _, h, _ in pairs])
    for (_, hypothesis, beam_score), row in zip(pairs, scores):
        assert row["tokens"] == len(hypothesis) + 1
        # The beam's float32 running sum against the scan's float32 sum: the bound of the test above.
        np.testing.assert_allclose(row["logprob"], beam_score, rtol=1e-5, atol=1e-5 * row["tokens"])


def test_a_source_longer_than_the_limit_is_cut_to_it_with_a_warning(caplog):
    translator = tiny_translator(max_source_len=4, beam_size=2)
    assert translator.score(["abcdefgh", "abcd"], ["xyz", "xyz"])[0] == translator.score(["abcd"], ["xyz"])[0]
    assert translator.translate(["abcdefgh"]) == translator.translate(["abcd"])
    assert translator.attention("abcdefgh").source_tokens == ["a", "b", "c", "d"]
    warnings = [r.getMessage() for r in caplog.records if "cut" in r.getMessage()]
    assert warnings == ["1 source(s) longer than 4 tokens cut to the first 4"] * 3


def test_attention_of_a_given_target_is_a_distribution_over_the_source_with_labels():
    att = tiny_translator().attention("abcq", "xyzu")  # 'q' is not in the source vocabulary
    assert att.source_tokens == ["a", "b", "c", "q"] and att.target_tokens == ["x", "y", "z", "u", "</s>"]
    assert att.weights.shape == (5, 4) and att.target == "xyzu"
    np.testing.assert_allclose(att.weights.sum(axis=1), 1.0, rtol=1e-5)


def test_attention_of_the_translation_is_what_teacher_forcing_it_gives():
    """The search's weights of its best hypothesis equal the teacher-forced weights of that hypothesis: both
    feed the model the same tokens. (Sources whose translation ends and holds no BOS, which its text drops.)"""
    translator = tiny_translator(beam_size=3)
    for source in ("cabbagecabbage", "gfedcba"):
        own = translator.attention(source)
        forced = translator.attention(source, own.target)
        assert own.target_tokens[-1] == "</s>", "the hypothesis ended within its length limit"
        assert own.target_tokens == forced.target_tokens and own.source_tokens == list(source)
        np.testing.assert_allclose(own.weights, forced.weights, atol=1e-5)


def test_a_model_without_attention_says_so():
    with pytest.raises(ValueError, match="decoder is 'bottleneck', which has no attention"):
        tiny_translator("bottleneck").attention("abc")
    with pytest.raises(ValueError, match="no attention"):
        tiny_translator("bottleneck").translations(["abc"], with_attention=True)


def test_the_beam_and_length_penalty_default_to_the_runs_test_time_decoding():
    model, params, source_vocab, target_vocab = tiny_model()
    eval_config = default.get_config().eval
    eval_config.beam_size, eval_config.test_beam_size, eval_config.length_penalty = 1, 4, 0.6
    translator = translator_lib.Translator(model, params, source_vocab, target_vocab, eval_config)
    assert (translator.beam_size, translator.length_penalty) == (4, 0.6)
    eval_config.test_beam_size = 0  # none set: eval.beam_size
    translator = translator_lib.Translator(model, params, source_vocab, target_vocab, eval_config,
                                           length_penalty=0.0)
    assert (translator.beam_size, translator.length_penalty) == (1, 0.0)


@pytest.mark.parametrize("call, message", [
    (lambda t: t.translate("abc"), "sources must be a list of strings, not one string"),
    (lambda t: t.translate(["abc", None]), r"sources\[1\] must be a string, got NoneType"),
    (lambda t: t.translate(5), "sources must be a list of strings, got int"),
    (lambda t: t.nbest(["abc"], 0), "n=0 must be a positive integer"),
    (lambda t: t.nbest(["abc"], 2.0), "n=2.0 must be a positive integer"),
    (lambda t: t.nbest(["abc"], 3), "n=3 best hypotheses need a beam at least as wide: beam_size=2"),
    (lambda t: t.score(["abc", "cab"], ["xyz"]), "must pair up: 2 sources, 1 targets"),
    (lambda t: t.score(["abc"], "xyz"), "targets must be a list of strings, not one string"),
    (lambda t: t.attention(""), "source '' has no token: there is nothing to attend to"),
    (lambda t: t.attention(None), "source must be a string, got NoneType"),
    (lambda t: t.attention(["abc"]), "source must be a string, got list"),
    (lambda t: t.attention("abc", 3), "target must be a string, got int"),
])
def test_a_bad_request_is_one_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_translator(beam_size=2))


@pytest.mark.parametrize("options, message", [
    (dict(beam_size=0), "beam_size=0 must be a positive integer"),
    (dict(beam_size=True), "beam_size=True must be a positive integer"),
    (dict(length_penalty=-0.5), "length_penalty=-0.5 must be a number >= 0"),
    (dict(length_penalty=float("nan")), "length_penalty=nan must be a number >= 0"),
    (dict(batch_size=0), "batch_size=0 must be a positive integer"),
])
def test_bad_settings_are_one_clear_value_error(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_translator(**options)


def test_bad_settings_are_refused_before_the_run_is_read(tmp_path):
    for options in (dict(beam_size=0), dict(batch_size=-1), dict(checkpoint="")):
        with pytest.raises(ValueError, match="must be"):
            translator_lib.Translator.from_workdir(tmp_path / "no_run", **options)
    with pytest.raises(ValueError, match="path must be a workdir's path, got int"):
        translator_lib.Translator.from_workdir(3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        translator_lib.Translator.from_workdir(tmp_path / "no_run")


def test_importing_the_package_does_not_import_jax_until_the_translator_is_used():
    code = ("import sys, seq2seq_jax; assert 'jax' not in sys.modules; "
            "from seq2seq_jax import Translator; assert 'jax' in sys.modules; print(Translator.__module__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0 and out.stdout.strip() == "seq2seq_jax.translator", out.stderr
    assert seq2seq_jax.Translator is translator_lib.Translator
    with pytest.raises(AttributeError, match="has no attribute 'Translater'"):
        seq2seq_jax.Translater  # noqa: B018


ON_THREE_DEVICES = """
import json, sys
import jax
assert jax.local_device_count() == 3
from test_translator import PAIRS, tiny_translator
translator = tiny_translator(batch_size=4)  # 4 rows a batch, padded to 6 over the devices
scores = translator.score([s for s, _ in PAIRS], [t for _, t in PAIRS])
print(json.dumps({"scores": scores, "attention": translator.attention("abcd", "xyz").weights.tolist()}))
"""


@pytest.mark.slow
def test_scores_and_attention_on_three_devices_are_those_of_one():
    """Batches split over this process's devices (rows padded to a multiple of them) give every pair its
    own numbers, in input order."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=3".strip()}
    out = subprocess.run([sys.executable, "-c", ON_THREE_DEVICES], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    translator = tiny_translator(batch_size=4)
    want = translator.score([s for s, _ in PAIRS], [t for _, t in PAIRS])
    assert [r["tokens"] for r in got["scores"]] == [r["tokens"] for r in want]
    np.testing.assert_allclose([r["logprob"] for r in got["scores"]], [r["logprob"] for r in want], rtol=1e-5)
    np.testing.assert_allclose(got["attention"], translator.attention("abcd", "xyz").weights, atol=1e-6)


# --- A trained run -----------------------------------------------------------------------------------


@pytest.fixture
def load_counter(monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return load_trained(*args, **kwargs)

    load_trained = workdir_lib.load_trained
    monkeypatch.setattr(workdir_lib, "load_trained", counted)
    return calls


@pytest.mark.slow
def test_a_run_is_loaded_once_and_translates_as_translate_lines_does(tiny_workdir, load_counter):
    lines = ["abcdefghijkl", "b", "", "cab", "abcabc"]
    translator = seq2seq_jax.Translator.from_workdir(tiny_workdir, beam_size=3, length_penalty=0.6, batch_size=2)
    hypotheses = translator.translate(lines)
    best = translator.nbest(lines, 3)
    scores = translator.score(lines, hypotheses)
    assert load_counter == [(tiny_workdir, "best")]  # read once, for every call
    config, model, params, source_vocab, target_vocab = workdir_lib.load_trained(tiny_workdir)
    want = inference.translate_lines(model, params, source_vocab, target_vocab, lines, config.eval,
                                     beam_size=3, alpha=0.6, nbest=3)
    assert hypotheses[2] == "" and best[2] == [("", None)]
    for line, got, got_best, t in zip(lines, hypotheses, best, want):
        assert got == t.hypotheses[0] == got_best[0][0]
        assert [h for h, _ in got_best] == t.hypotheses
        if line:  # the empty line's score is None: it is not decoded
            np.testing.assert_allclose([s for _, s in got_best], t.scores, rtol=1e-6)
    assert [row["tokens"] for row in scores] == [len(h) + 1 for h in hypotheses]


@pytest.mark.slow
def test_a_run_defaults_to_its_test_beam_and_reads_the_checkpoint_asked_for(tiny_workdir):
    config, _, _, _, _ = workdir_lib.load_trained(tiny_workdir)
    translator = seq2seq_jax.Translator.from_workdir(tiny_workdir, checkpoint="latest")
    assert translator.beam_size == inference.split_beam_size(config.eval, "test")
    assert translator.length_penalty == config.eval.length_penalty
    assert translator.max_source_len == config.data.max_source_length
    with pytest.raises(FileNotFoundError, match="no checkpoint .no_such_average."):
        seq2seq_jax.Translator.from_workdir(tiny_workdir, checkpoint="no_such_average")


def readme_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    block, = [b for b in blocks if marker in b]
    return block


@pytest.mark.slow
def test_the_readmes_python_example_runs_on_a_trained_run(tiny_workdir):
    code = readme_block("Translator.from_workdir")
    line, seeds = 'workdir = "runs/tiny"', 'seeds = ["runs/tiny", "runs/tiny_seed1"]'
    assert code.count(line) == 1 and code.count(seeds) == 1
    code = code.replace(line, f"workdir = {tiny_workdir!r}").replace(seeds, f"seeds = {[tiny_workdir] * 2!r}")
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    sources = namespace["sources"]
    assert len(namespace["hypotheses"]) == len(sources) and all(isinstance(h, str) for h in namespace["hypotheses"])
    assert [len(b) for b in namespace["best"]] == [3] * len(sources)
    assert [len(s) for s in namespace["samples"]] == [2] * len(sources)
    assert [set(row) for row in namespace["scores"]] == [{"logprob", "tokens", "perplexity"}] * len(sources)
    attention = namespace["attention"]
    assert attention.weights.shape == (len(attention.target_tokens), 3) and attention.source_tokens == ["a", "b", "c"]
    assert namespace["ensembled"] == namespace["hypotheses"]  # a run twice is the run: (l + l) / 2 = l
    np.testing.assert_allclose([s["logprob"] for s in namespace["ensemble_scores"]],
                               [s["logprob"] for s in namespace["scores"]], rtol=1e-5)



# --- python -m seq2seq_jax.score ------------------------------------------------------------------


@pytest.fixture
def score_cli():
    """``score.main`` as ``app.run`` calls it, flags parsed first; FLAGS left as the test found it."""
    from seq2seq_jax import score  # noqa: PLC0415 - defines its flags on import

    was_parsed = flags.FLAGS.is_parsed()
    flags.FLAGS.unparse_flags()
    yield lambda *args: score.main(flags.FLAGS(["score", *args]))
    flags.FLAGS.unparse_flags()
    if was_parsed:
        flags.FLAGS.mark_as_parsed()


@pytest.mark.slow
def test_the_score_command_writes_one_json_row_per_pair_and_the_overall_perplexity(tiny_workdir, tmp_path,
                                                                                     score_cli, capsys):
    sources, targets = ["abc", "", "hello", "ba"], ["cba", "", "olleh", "x"]
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n")
    (tmp_path / "tgt.txt").write_bytes(("\r\n".join(targets)).encode())  # CRLF, no final newline
    score_cli(f"--workdir={tiny_workdir}", f"--source={tmp_path / 'src.txt'}", f"--target={tmp_path / 'tgt.txt'}",
              f"--output={tmp_path / 'scores.jsonl'}")
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    want = seq2seq_jax.Translator.from_workdir(tiny_workdir).score(sources, targets)
    assert [sorted(r) for r in rows] == [["logprob", "perplexity", "tokens"]] * 4
    assert [r["tokens"] for r in rows] == [w["tokens"] for w in want] == [4, 1, 6, 2]
    np.testing.assert_allclose([r["logprob"] for r in rows], [w["logprob"] for w in want], rtol=1e-6)
    overall = math.exp(-sum(r["logprob"] for r in rows) / sum(r["tokens"] for r in rows))
    printed = capsys.readouterr().err.strip().splitlines()
    summary = next(line for line in printed if line.endswith(f", perplexity {overall:.4f}"))
    assert summary.startswith("4 pairs, 13 target tokens (</s> included): log-probability ")
    table = printed[printed.index("by source length (tokens):") + 2:]  # after the title and the header
    assert sum(int(line.split()[1]) for line in table) == 4 and sum(int(line.split()[2]) for line in table) == 13


@pytest.mark.slow
def test_scores_by_source_length_sum_the_pairs_of_each_bucket(tiny_translator):
    """The by-length table of ``score`` partitions the pairs by the run's length buckets (here given edges,
    in source tokens) and sums each bucket's log-probabilities and tokens."""
    from seq2seq_jax import score  # noqa: PLC0415 - defines its flags on import

    sources, targets = ["abc", "", "hello", "ba", "abcdefg"], ["cba", "", "olleh", "x", "gfedcba"]
    rows = tiny_translator.score(sources, targets)
    lengths = score.source_lengths(sources, tiny_translator)
    assert lengths == [3, 0, 5, 2, 7]  # characters
    eval_config = tiny_translator.config.eval.copy_and_resolve_references()
    eval_config.length_edges = (0, 3, 5)
    buckets = score.by_length(rows, lengths, eval_config)
    want = [(0, [1, 3]), (3, [0]), (5, [2, 4])]  # [0, 3), [3, 5), [5, inf)
    assert [(b["lo"], b["pairs"]) for b in buckets] == [(lo, len(i)) for lo, i in want]
    for b, (_, members) in zip(buckets, want):
        assert b["tokens"] == sum(rows[i]["tokens"] for i in members)
        np.testing.assert_allclose(b["logprob"], sum(rows[i]["logprob"] for i in members), rtol=1e-6)
        np.testing.assert_allclose(b["perplexity"], math.exp(-b["logprob"] / b["tokens"]), rtol=1e-6)
    assert buckets[-1]["hi"] == math.inf
    assert "5+" in score.format_by_length(buckets, "tokens").splitlines()[-1]


@pytest.mark.slow
def test_the_score_command_refuses_bad_requests_in_one_line(tiny_workdir, tmp_path, score_cli):
    (tmp_path / "src.txt").write_text("abc\ncab\n")
    (tmp_path / "tgt.txt").write_text("cba\n")
    (tmp_path / "empty.txt").write_text("")

    def fails_with(*args) -> str:
        with pytest.raises(SystemExit) as exit_info:
            score_cli(f"--workdir={tiny_workdir}", *args)
        message = str(exit_info.value.code)
        assert message.startswith("error: ") and "\n" not in message
        return message

    assert fails_with(f"--source={tmp_path / 'src.txt'}", f"--target={tmp_path / 'tgt.txt'}") == (
        f"error: --source={str(tmp_path / 'src.txt')!r} has 2 lines but --target={str(tmp_path / 'tgt.txt')!r} "
        "has 1: each line of one is scored against the same line of the other")
    assert "does not exist" in fails_with(f"--source={tmp_path / 'nope.txt'}", f"--target={tmp_path / 'tgt.txt'}")
    assert "the folder of --output" in fails_with(f"--source={tmp_path / 'src.txt'}", f"--target={tmp_path / 'src.txt'}",
                                                   f"--output={tmp_path / 'no' / 'out.jsonl'}")
    assert "same file" in fails_with(f"--source={tmp_path / 'src.txt'}", f"--target={tmp_path / 'src.txt'}",
                                     f"--output={tmp_path / 'src.txt'}")
    assert "no pair to score" in fails_with(f"--source={tmp_path / 'empty.txt'}", f"--target={tmp_path / 'empty.txt'}")
    assert sorted(os.listdir(tmp_path)) == ["empty.txt", "src.txt", "tgt.txt"]


@pytest.mark.slow
@pytest.mark.parametrize("damaged", ["config.json", "vocab/target_vocab.json"])
def test_a_damaged_run_is_one_line_naming_its_file_in_translate_evaluate_and_score(tiny_workdir, tmp_path, damaged,
                                                                                   run_tool):
    from seq2seq_jax import evaluate, score, translate  # noqa: PLC0415 - define their flags on import

    run = str(tmp_path / "run")
    for part in ("vocab", "config.json"):  # what a run is read from before its checkpoint
        (shutil.copytree if part == "vocab" else shutil.copy)(os.path.join(tiny_workdir, part), os.path.join(run, part))
    pathlib.Path(run, damaged).write_text('{"cut short')
    (tmp_path / "in.txt").write_text("abc\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for module, args in ((translate, [f"--input={tmp_path / 'in.txt'}", f"--output={tmp_path / 'out.txt'}"]),
                         (evaluate, []),
                         (score, [f"--source={tmp_path / 'in.txt'}", f"--target={tmp_path / 'in.txt'}"])):
        with pytest.raises(SystemExit) as info:
            run_tool(module, f"--workdir={run}", *args)
        message = str(info.value.code)
        assert message.startswith("error: ") and "\n" not in message
        assert f"{os.path.join(run, damaged)} is damaged and cannot be read" in message
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
