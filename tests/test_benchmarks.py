"""The benchmarks run and report what they promise (never how fast: timings are not tested), and the
PyTorch peer computes our loss when given our weights."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import report

TINY = dict(batch=4, src_len=5, tgt_len=4, hidden=8, embed=4, vocab=20, warmup=1, repeats=2)


def _check_side(side):
    assert side["params"] > 0
    assert side["first_step_s"] > 0 and side["median_step_s"] > 0 and side["tokens_per_s"] > 0
    assert len(side["step_times_s"]) == TINY["repeats"]


@pytest.mark.slow
def test_train_step_without_torch_compares_our_two_decoders():
    r = report.run("train_step", cell="gru", decoder="attention", no_torch=True, **TINY)
    assert r["benchmark"] == "train_step" and r["settings"]["use_torch"] is False
    assert r["ours"]["name"] == "seq2seq_jax gru/attention"
    assert r["peer"]["name"] == "seq2seq_jax gru/bottleneck"
    for side in ("ours", "peer"):
        _check_side(r[side])
    assert r["ratio_peer_over_ours"] == pytest.approx(r["peer"]["median_step_s"] / r["ours"]["median_step_s"])
    assert r["machine"]["cpu_count"] >= 1 and r["machine"]["jax"] == jax.__version__


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["attention", "bottleneck"])
def test_train_step_against_torch(decoder):
    pytest.importorskip("torch")
    r = report.run("train_step", cell="lstm", decoder=decoder, **TINY)
    assert r["peer"]["name"].startswith("torch ") and r["peer"]["name"].endswith(f"lstm/{decoder}")
    for side in ("ours", "peer"):
        _check_side(r[side])
    extra = 4 * TINY["hidden"] * 2  # PyTorch's second bias vector in 2 LSTM layers
    assert r["peer"]["params"] == r["ours"]["params"] + extra


@pytest.mark.slow
def test_decoding_compiles_one_search_per_batch_shape():
    r = report.run("decoding", config="tiny", beam_sizes="1,2", repeats=1, max_examples=16)
    shapes = r["settings"]["batch_shapes"]
    assert 1 <= len(shapes) <= len(r["settings"]["bucket_shapes"])
    assert [x["beam_size"] for x in r["searches"]] == [1, 2]
    for x in r["searches"]:
        assert x["search_programs"] == len(shapes)  # one program per batch shape, no retracing
        assert x["eval_step_programs"] == len(shapes)
        assert x["xla_compiles"] >= x["search_programs"] + x["eval_step_programs"]
        assert x["sentences_per_s"] > 0 and len(x["pass_times_s"]) == 1


@pytest.mark.slow
def test_report_renders_markdown_from_results():
    r = report.run("train_step", cell="lstm", decoder="bottleneck", no_torch=True, **TINY)
    text = report.markdown([r], quick=True)
    assert "| lstm/bottleneck |" in text and f"{r['ratio_peer_over_ours']:.2f}" in text
    assert f"jax {jax.__version__}" in text


# --- The PyTorch peer is the same model ---------------------------------------------------------------


@functools.cache
def _ours(cell, decoder):
    from benchmarks import train_step  # noqa: PLC0415  (defines the benchmark's flags)
    from seq2seq_jax import train

    config = train_step.model_config(cell, decoder, hidden=8, embed=6)
    config.model.attention_size = 5  # distinct from hidden, so a mixed-up projection would fail to load
    model = train.create_model(config, 13, 11)
    params = train.create_train_state(model, config).params
    # Non-zero biases, so each one's place is checked too.
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p + 0.1 * jax.random.normal(jax.random.key(len(str(path))), p.shape)
        if "bias" in str(path[-1]) else p, params)
    return config, model, params, train_step.synthetic_batch(3, 5, 4, 11, seed=1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("decoder", ["attention", "bottleneck"])
def test_torch_peer_computes_our_logits_and_loss_with_our_weights(cell, decoder):
    torch = pytest.importorskip("torch")
    from benchmarks import torch_seq2seq
    from seq2seq_jax import train
    from seq2seq_jax.model import shift_right

    config, model, params, batch = _ours(cell, decoder)
    logits = model.apply({"params": params}, batch["inputs"], batch["input_lengths"], shift_right(batch["targets"]))
    sums = train.token_losses(logits, jnp.asarray(batch["targets"]), jnp.asarray(batch["target_lengths"]))
    m = config.model
    peer = torch_seq2seq.TorchSeq2Seq(cell=cell, source_vocab_size=13, target_vocab_size=11,
                                      embedding_size=m.embedding_size, hidden_size=m.hidden_size,
                                      attention_size=m.attention_size, decoder=decoder)
    torch_seq2seq.load_flax_params(peer, params)
    extra = (4 if cell == "lstm" else 2) * m.hidden_size * 2  # b_ih and b_hh of 2 recurrent layers
    assert torch_seq2seq.num_params(peer) == sum(p.size for p in jax.tree_util.tree_leaves(params)) + extra
    tb = torch_seq2seq.to_torch_batch(batch, shift_right(batch["targets"]))
    with torch.no_grad():
        peer_logits = peer(tb["inputs"], tb["input_lengths"], tb["decoder_inputs"])
        loss_sum, count, _ = torch_seq2seq.token_losses(peer_logits, tb["targets"], tb["target_lengths"])
    np.testing.assert_allclose(peer_logits.numpy(), np.asarray(logits), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(loss_sum), float(sums["loss_sum"]), rtol=1e-5)
    assert float(count) == float(sums["token_count"])
