"""Sampling (``seq2seq_jax.sampling``): temperature and top-k, seeded per line.

* ``top_k=1``, and a temperature near 0, are greedy decoding.
* A seed reproduces the samples, another draws others; a line's samples do not depend on the lines decoded
  with it; sample 0 of several is the one sample of a single draw.
* On a mocked distribution, samples come from the top-k tokens only, as often as the tempered, renormalised
  distribution says.
* Each bad value is one clear error; ``translate --sampling_temperature --seed`` samples as ``Translator.sample``
  does and refuses a beam.

The trained run is the session's ``tiny_workdir`` (conftest.py), read once; after a few dozen steps its
distributions are spread, so samples at temperature 1.5 vary.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from seq2seq_jax import sampling
from seq2seq_jax import translate

LINES = ["abcdefghijkl", "b", "", "cab", "abcabc", "hello", "zz"]
SPREAD = dict(temperature=1.5)


def hypotheses(samples):
    return [[h for h, _ in line] for line in samples]


# --- The trained run ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_top_k_one_and_a_temperature_near_zero_are_greedy_decoding(tiny_translator):
    greedy = tiny_translator.translations(LINES, beam_size=1)
    for options in (dict(top_k=1, seed=3), dict(temperature=1e-4, seed=4)):
        got = tiny_translator.sample(LINES, **options)
        assert hypotheses(got) == [t.hypotheses for t in greedy]
        for line, t in zip(got, greedy):
            np.testing.assert_allclose([s for _, s in line if s is not None],
                                       [s for s in t.scores if s is not None], rtol=1e-6)


@pytest.mark.slow
def test_a_seed_reproduces_its_samples_whatever_the_batch_and_another_seed_draws_others(tiny_translator):
    first = tiny_translator.sample(LINES, seed=1, **SPREAD)
    assert tiny_translator.sample(LINES, seed=1, **SPREAD) == first
    assert hypotheses(tiny_translator.sample(LINES, seed=2, **SPREAD)) != hypotheses(first)
    assert first[2] == [("", None)]  # the empty line is not decoded
    # Lines 3.. alone (numbered as in the whole input) share their batch with none of the lines before.
    options = sampling.Sampling(seed=1, **SPREAD)
    rest = tiny_translator.translations(LINES[3:], sampling=options, first_line=3)
    assert [t.hypotheses for t in rest] == hypotheses(first[3:])
    several = tiny_translator.sample(LINES, seed=1, num_samples=3, **SPREAD)
    assert [h[0] for h in hypotheses(several)] == [h[0] for h in hypotheses(first)]  # sample 0: the single draw
    assert all(len(line) == 3 for i, line in enumerate(several) if LINES[i])
    assert any(len(set(h)) > 1 for h in hypotheses(several))


# --- A mocked distribution -----------------------------------------------------------------------------


PROBS = np.array([0.01, 0.01, 0.08, 0.4, 0.3, 0.2], np.float32)  # PAD, BOS, EOS and three words
ROWS = 4000


def first_tokens(temperature: float, top_k: int) -> np.ndarray:
    """The first token of ``ROWS`` lines (one sample each, seed 0) of a model that always gives ``PROBS``:
    ``sample_tokens`` with the keys ``sample_search`` gives each line's first step."""
    keys = sampling.sample_keys(jnp.uint32(0), jnp.arange(ROWS), 1)  # [ROWS]
    step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 0)
    log_probs = jnp.broadcast_to(jnp.log(PROBS), (ROWS, len(PROBS)))
    return np.asarray(jax.jit(sampling.sample_tokens, static_argnums=3)(log_probs, step_keys, temperature, top_k))


@pytest.mark.parametrize("temperature, top_k", [(1.0, 3), (0.5, 2), (2.0, 0)])
def test_samples_come_from_the_top_k_tokens_as_often_as_the_tempered_distribution_says(temperature, top_k):
    tokens = first_tokens(temperature, top_k)
    kept = np.argsort(-PROBS, kind="stable")[: top_k or len(PROBS)]
    assert set(np.unique(tokens)) <= set(kept)
    want = np.zeros(len(PROBS))
    want[kept] = PROBS[kept] ** (1 / temperature)
    want /= want.sum()
    counts = np.bincount(tokens, minlength=len(PROBS))
    # Each count is binomial(ROWS, p): within 4.5 standard deviations (a false alarm about once in 10^5).
    np.testing.assert_array_less(np.abs(counts - ROWS * want), 4.5 * np.sqrt(ROWS * want * (1 - want)) + 1e-9)


# --- Bad values ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    (dict(temperature=0.0), r"temperature=0.0 must be a number > 0 \(near 0 samples the most likely token"),
    (dict(temperature=-1), "temperature=-1 must be a number > 0"),
    (dict(temperature=float("nan")), "temperature=nan must be a number > 0"),
    (dict(temperature=True), "temperature=True must be a number > 0"),
    (dict(top_k=-1), r"top_k=-1 must be an integer >= 0 \(0: the whole vocabulary\)"),
    (dict(top_k=2.0), "top_k=2.0 must be an integer >= 0"),
    (dict(num_samples=0), "num_samples=0 must be a positive integer"),
    (dict(seed=-1), r"seed=-1 must be an integer in \[0, 2\*\*32\)"),
    (dict(seed=2**32), "seed=4294967296 must be an integer in"),
])
def test_a_bad_value_is_one_clear_error(options, message):
    with pytest.raises(ValueError, match=f"^{message}") as info:
        sampling.Sampling(**options)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_the_translator_refuses_bad_values_and_a_beam_before_decoding(tiny_translator):
    with pytest.raises(ValueError, match="^temperature=0 must be a number > 0"):
        tiny_translator.sample(["abc"], temperature=0)
    with pytest.raises(ValueError, match="^top_k=-2 must be an integer >= 0"):
        tiny_translator.sample(["abc"], top_k=-2)
    for options in (dict(beam_size=3), dict(nbest=2)):
        with pytest.raises(ValueError, match="cannot be combined with sampling"):
            tiny_translator.translations(["abc"], sampling=sampling.Sampling(), **options)


# --- The command line ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_translate_samples_as_the_translator_does_and_refuses_a_beam(tiny_workdir, tiny_translator, tmp_path,
                                                                      run_tool):
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("\n".join(LINES) + "\n")
    common = (f"--workdir={tiny_workdir}", f"--input={source}", "--batch_size=4")
    run_tool(translate, *common, f"--output={output}", "--sampling_temperature=1.5", "--seed=1")
    assert output.read_text().splitlines() == [line[0][0] for line in tiny_translator.sample(LINES, seed=1, **SPREAD)]

    def fails_with(*args) -> str:
        with pytest.raises(SystemExit) as info:
            run_tool(translate, *common, *args)
        message = str(info.value.code)
        assert message.startswith("error: ") and "\n" not in message
        return message

    assert "--beam_size=3 cannot be combined with sampling" in fails_with("--sampling_top_k=5", "--beam_size=3")
    assert "--nbest=2 ranks a beam's hypotheses" in fails_with("--sampling_top_k=5", "--nbest=2")
    assert "--seed=1 seeds sampling only" in fails_with("--seed=1")
    assert "--sampling_temperature=0.0 must be a number > 0" in fails_with("--sampling_temperature=0")
    with pytest.raises(flags.IllegalFlagValueError, match="sampling_top_k"):
        run_tool(translate, *common, "--sampling_top_k=-1")
    run_tool(translate, *common, f"--output={output}", "--sampling_top_k=1", "--beam_size=1")  # greedy
    assert output.read_text().splitlines() == [t.hypotheses[0] for t in tiny_translator.translations(LINES,
                                                                                                       beam_size=1)]
