"""Ensembles (``seq2seq_jax.ensemble``): decoding with the renormalised mean of several runs' log-probabilities.

* An ensemble of one run decodes exactly as that run (greedy and beam), through ``Translator.from_workdirs``.
* Two mocked models whose first-step distributions disagree: the ensemble picks a token neither picks alone,
  greedy and beam, with the hand-computed renormalised mean as its score.
* ``score`` of two different models (the run and a perturbed copy) is the teacher-forced log-probability of
  their renormalised mean.
* Runs that tokenise differently are refused in one line naming both, before any checkpoint is read.
* ``translate --workdir=A,B`` and ``evaluate --workdir=A,B`` decode with the ensemble (once, end to end).

The trained run is the session's ``tiny_workdir`` (conftest.py), its checkpoint read once for the session
(``load_trained_once``), also by the tools run in-process.
"""

import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cli_runs import assert_same_evaluation, read_eval
from seq2seq_jax import decoding
from seq2seq_jax import ensemble
from seq2seq_jax import evaluate
from seq2seq_jax import score
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax import translate
from seq2seq_jax import translator as translator_lib
from seq2seq_jax.model import shift_right
from seq2seq_jax.translator import Translator

LINES = ["abcdefghijkl", "b", "", "cab", "abcabc"]
REFERENCES = ["lkjihgfedcba", "b", "", "bac", "cbacba"]  # the tiny task reverses its source


# --- Two mocked models -----------------------------------------------------------------------------

PAD, BOS, EOS, A, B, C = range(6)
STEP0_1 = [1e-4, 1e-4, 0.0498, 0.6, 0.05, 0.3]  # model 1 prefers a, model 2 b; both give c 0.3
STEP0_2 = [1e-4, 1e-4, 0.0498, 0.05, 0.6, 0.3]
LATER = [1e-4, 1e-4, 0.9, 0.0332, 0.0333, 0.0333]  # then both end
TABLES = [np.log(np.array([STEP0_1, LATER, LATER], np.float32)), np.log(np.array([STEP0_2, LATER, LATER], np.float32))]
BATCH, SRC_LEN, MAX_LEN = 2, 3, 3


def table_model(table):
    """``(step_fn, memory, state)`` of a model whose step ``i`` gives the log-probabilities ``table[i]``
    whatever the source and prefix; the state counts steps."""
    def step_fn(memory, state, tokens):
        logits = jnp.asarray(table)[jnp.minimum(state, len(table) - 1)]  # [N, vocab]
        return logits, state + 1, jnp.zeros((tokens.shape[0], SRC_LEN), jnp.float32)

    return step_fn, jnp.zeros((BATCH, SRC_LEN), jnp.float32), jnp.zeros((BATCH,), jnp.int32)


def ensemble_log_probs(step: int) -> np.ndarray:
    """By hand: the mean of the two models' log-probabilities at ``step``, renormalised."""
    mean = (TABLES[0][step].astype(np.float64) + TABLES[1][step]) / 2
    return mean - np.log(np.sum(np.exp(mean)))


def run_search(search, parts, **options):
    step_fn, memory, state = parts
    return search(step_fn, memory, state, batch_size=BATCH, max_len=MAX_LEN, src_len=SRC_LEN, bos_id=BOS,
                  eos_id=EOS, **options)


@pytest.mark.parametrize("search, options", [(decoding.greedy_search, {}),
                                             (decoding.beam_search, dict(beam_size=2, alpha=0.0))])
def test_the_ensemble_picks_the_token_of_the_mean_log_probability_that_neither_model_picks(search, options):
    # Alone, model 1 decodes (a, EOS) greedily and with any beam (0.6 * 0.9 beats c's 0.3 * 0.9 and EOS's
    # 0.0498), model 2 (b, EOS). Their renormalised mean gives a and b sqrt(0.6 * 0.05) = 0.17 each, c 0.3.
    assert [int(np.argmax(t[0])) for t in TABLES] == [A, B]
    out = run_search(search, ensemble.combine([table_model(t) for t in TABLES]), **options)
    np.testing.assert_array_equal(out.tokens, [[C, EOS, PAD]] * BATCH)
    np.testing.assert_array_equal(out.lengths, [2] * BATCH)
    want = ensemble_log_probs(0)[C] + ensemble_log_probs(1)[EOS]
    np.testing.assert_allclose(out.scores, [want] * BATCH, rtol=1e-5)


# --- A trained run -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def translators(tiny_workdir, tiny_translator, load_trained_once):
    """The run alone (the session's) and an ensemble of it alone, its checkpoint read once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workdir_lib, "load_trained", load_trained_once)
        return tiny_translator, Translator.from_workdirs([tiny_workdir], beam_size=3, batch_size=4)


@pytest.mark.slow
@pytest.mark.parametrize("beam_size", [1, 3])
def test_an_ensemble_of_one_run_decodes_exactly_as_the_run(translators, beam_size):
    single, one = translators
    assert isinstance(one.model, ensemble.Ensemble) and not single.is_ensemble
    want, got = (t.translations(LINES, beam_size=beam_size) for t in translators)
    assert [(t.hypotheses, t.target_ids, t.scores) for t in got] == [(t.hypotheses, t.target_ids, t.scores)
                                                                     for t in want]


def test_the_tools_load_one_workdir_as_its_run_and_several_as_their_ensemble(tiny_workdir, load_trained_once,
                                                                             monkeypatch):
    monkeypatch.setattr(workdir_lib, "load_trained", load_trained_once)
    assert not Translator.from_runs([tiny_workdir]).is_ensemble
    assert Translator.from_runs([tiny_workdir, tiny_workdir], beam_size=2).is_ensemble
    assert not isinstance(translator_lib.load_runs([tiny_workdir])[1], ensemble.Ensemble)
    assert isinstance(translator_lib.load_runs([tiny_workdir] * 2)[1], ensemble.Ensemble)


@pytest.mark.slow
def test_score_is_the_teacher_forced_log_probability_of_the_renormalised_mean(translators):
    single, _ = translators
    rng = np.random.default_rng(0)  # a second model: the run's parameters, each scaled by its own factor
    other = jax.tree_util.tree_map(lambda p: np.asarray(p) * rng.uniform(0.0, 2.0, p.shape).astype(np.float32),
                                   single.params)
    params = (single.params, other)
    translator = Translator(ensemble.Ensemble((single.model, single.model)), params, single.source_vocab, single.target_vocab,
                            single.eval_config, batch_size=4)
    sources, targets = ["abc", "hgfedcba", "a"], ["cba", "a", ""]
    got = [row["logprob"] for row in translator.score(sources, targets)]
    # By the definition: the mean of the members' log-probabilities, renormalised, at each target position.
    source_ids = [single.source_vocab.encode(s) for s in sources]
    target_ids = [single.target_vocab.encode(t) + [EOS] for t in targets]
    inputs, outputs = np.zeros((3, 8), np.int32), np.zeros((3, 4), np.int32)
    for row, (s, t) in enumerate(zip(source_ids, target_ids)):
        inputs[row, : len(s)], outputs[row, : len(t)] = s, t

    @jax.jit
    def member_log_probs(params):  # [batch, tgt_len, vocab]
        logits = single.model.apply({"params": params}, inputs, np.array([len(s) for s in source_ids]),
                                    shift_right(outputs))
        return jax.nn.log_softmax(logits.astype(jnp.float32))

    mean = sum(np.asarray(member_log_probs(p), np.float64) for p in params) / 2
    log_probs = mean - np.log(np.sum(np.exp(mean), axis=-1, keepdims=True))  # renormalised
    want = [sum(log_probs[row, i, y] for i, y in enumerate(t)) for row, t in enumerate(target_ids)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert not np.allclose(got, [row["logprob"] for row in single.score(sources, targets)], rtol=1e-2)
    with pytest.raises(ValueError, match="an ensemble of 2 runs has no attention weights of its own"):
        translator.attention("abc")


def copy_run(workdir, path, *, config=None, target_tokens=None):
    """A run's ``config.json`` and ``vocab/`` (no checkpoint), with config fields or target tokens changed."""
    os.makedirs(path)
    shutil.copytree(os.path.join(workdir, "vocab"), os.path.join(path, "vocab"))
    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    for key, value in (config or {}).items():
        section, field = key.split(".")
        saved[section][field] = value
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(saved, f)
    if target_tokens is not None:
        vocab_path = os.path.join(path, "vocab", "target_vocab.json")
        with open(vocab_path) as f:
            vocab = json.load(f)
        with open(vocab_path, "w") as f:
            json.dump({**vocab, "tokens": target_tokens(vocab["tokens"])}, f)
    return str(path)


@pytest.mark.slow
def test_runs_that_tokenise_differently_are_refused_in_one_line_before_a_checkpoint_is_read(tiny_workdir, tmp_path):
    swapped = copy_run(tiny_workdir, tmp_path / "swapped", target_tokens=lambda t: [t[1], t[0], *t[2:]])
    longer = copy_run(tiny_workdir, tmp_path / "longer", target_tokens=lambda t: [*t, "#"])
    words = copy_run(tiny_workdir, tmp_path / "words", config={"data.source_vocab": "word"})
    # These copies hold no checkpoint: loading one would be a FileNotFoundError, not this refusal.
    cases = [(swapped, r"their target vocabularies differ \(\d+ ids vs \d+, id 4 is '.' vs '.'\)"),
             (longer, r"their target vocabularies differ \((\d+) ids vs \d+\)"),
             (words, "data.source_vocab is 'char' in .* and 'word' in ")]
    for other, message in cases:
        prefix = re.escape(f"cannot ensemble {tiny_workdir} and {other}: ")
        with pytest.raises(ValueError, match=f"^{prefix}{message}") as info:
            Translator.from_workdirs([tiny_workdir, other])
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="for an ensemble of several runs use Translator.from_workdirs"):
        Translator.from_workdir([tiny_workdir, tiny_workdir])
    with pytest.raises(ValueError, match="paths must be a list of workdirs, got str"):
        Translator.from_workdirs(tiny_workdir)


# --- The command-line tools ----------------------------------------------------------------------------


@pytest.mark.slow
def test_translate_and_evaluate_decode_with_the_ensemble_of_the_runs_listed(tiny_workdir, translators, tmp_path,
                                                                          run_tool, capsys):
    """A run listed twice is an ensemble equal to the run itself ((l + l) / 2 = l exactly), so the tools'
    outputs are the run's own, through the ensemble's programs."""
    run = run_tool
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("\n".join(LINES) + "\n")
    run(translate, f"--workdir={tiny_workdir},{tiny_workdir}", f"--input={source}", f"--output={output}",
        "--beam_size=3", "--batch_size=4")
    single, _ = translators
    assert output.read_text().splitlines() == single.translate(LINES)

    run(evaluate, f"--workdir={tiny_workdir},{tiny_workdir}", "--split=test")
    name = "test" + evaluate.ensemble_name([tiny_workdir, tiny_workdir])
    printed = json.loads(capsys.readouterr().out)
    got = read_eval(tiny_workdir, name)
    assert printed == got[0] and name.startswith("test_ensemble2_")
    assert got[0]["ensemble"] == [{"workdir": os.path.abspath(tiny_workdir), "step": got[0]["step"]}] * 2
    assert_same_evaluation(got, read_eval(tiny_workdir, "test"))  # the run's own test evaluation, untouched

    (tmp_path / "ref.txt").write_text("\n".join(REFERENCES) + "\n")
    run(score, f"--workdir={tiny_workdir},{tiny_workdir}", f"--source={source}", f"--target={tmp_path / 'ref.txt'}",
        f"--output={tmp_path / 'scores.jsonl'}")
    scored = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    want = single.score(LINES, REFERENCES)
    assert [r["tokens"] for r in scored] == [w["tokens"] for w in want]
    np.testing.assert_allclose([r["logprob"] for r in scored], [w["logprob"] for w in want], rtol=1e-5)

    other = copy_run(tiny_workdir, tmp_path / "other", target_tokens=lambda t: [*t, "#"])
    for module, args in ((translate, [f"--input={source}"]), (evaluate, []),
                         (score, [f"--source={source}", f"--target={tmp_path / 'ref.txt'}"])):
        with pytest.raises(SystemExit) as info:
            run(module, f"--workdir={tiny_workdir},{other}", *args)
        assert str(info.value.code).startswith(f"error: cannot ensemble {tiny_workdir} and {other}: their target")
    with pytest.raises(SystemExit, match="--attention_plots: an ensemble of 2 runs has no attention weights"):
        run(translate, f"--workdir={tiny_workdir},{tiny_workdir}", f"--input={source}",
            f"--attention_plots={tmp_path / 'plots'}")
    assert sorted(os.listdir(tmp_path)) == ["in.txt", "other", "out.txt", "ref.txt", "scores.jsonl"]
